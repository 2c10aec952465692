"""`qwq pipeline` for several seeds: held-out accuracy before/after each stage, the gate, wall time per seed.

    python benchmarks/bench_pipeline_seeds.py                  # seeds 0-4, tiny preset, 2 threads
    python benchmarks/bench_pipeline_seeds.py --seeds 0,1 --threads 2 --out runs/seeds --set stage1.steps=30

Each seed runs in its own process (`python -m qwq pipeline --seed S`), one after the other (the time target is for
a whole 2-core machine); `--parallel N` runs N seeds at once to get the accuracy table sooner (the accuracies are
the same as in a solo run with the same thread count, but the seconds are then not the solo time). Prints a
markdown table for the README and the mean / min over seeds, writes it to OUT/seeds.json and plots OUT/seeds.png;
`--repeat` runs seed 0 a second time and checks that the final weights hash is identical (determinism);
`--reuse` takes the seeds whose runs already finished in OUT as they are (e.g. after an interrupted benchmark).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_seed(seed: int, out: Path, threads: int, overrides: list[str], reuse: bool = False) -> dict:
    summary_file = out / "summary.json"
    if reuse and summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        summary["process_wall_seconds"] = summary["seconds"]  # the pipeline's own time (no interpreter start-up)
        return summary
    shutil.rmtree(out, ignore_errors=True)  # a run left half-done by an interrupted benchmark would refuse to start
    cmd = [sys.executable, "-m", "qwq", "pipeline", "--seed", str(seed), "--threads", str(threads), "--out", str(out),
           "--no-progress"]
    for item in overrides:
        cmd += ["--set", item]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not summary_file.is_file():
        raise SystemExit(f"seed {seed}: no summary ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    summary = json.loads(summary_file.read_text())
    summary["process_wall_seconds"] = wall
    return summary


def row(seed: int, summary: dict) -> dict:
    stages = {s["name"]: s for s in summary["stages"]}
    s1, s2 = stages["stage1"], stages["stage2"]
    return {
        "seed": seed,
        "math": (s1["heldout_before"].get("math", 0), s1["heldout_after"].get("math", 0)),
        "code": (s1["heldout_before"].get("code", 0), s1["heldout_after"].get("code", 0)),
        "instruct": (s2["heldout_before"].get("instruct", 0), s2["heldout_after"].get("instruct", 0)),
        "drops": summary["gate"]["drops"],
        "gate": summary["gate"]["passed"],
        "seconds": summary["process_wall_seconds"],
        "hash": summary.get("weights_sha256", "")[:12],
    }


def pct(pair: tuple[float, float]) -> str:
    before, after = pair
    return f"{100 * before:.1f} -> {100 * after:.1f} ({100 * (after - before):+.1f})"


def plot(rows: list[dict], path: Path) -> None:
    """Held-out accuracy before and after its stage, per metric, one pair of bars per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("math", "stage 1"), ("code", "stage 1"), ("instruct", "stage 2"))
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), sharey=True)
    for ax, (key, stage) in zip(axes, keys):
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [100 * r[key][0] for r in rows], 0.4, label="before", color="#bbbbbb")
        ax.bar([x + 0.2 for x in xs], [100 * r[key][1] for r in rows], 0.4, label="after", color="#3b7dd8")
        ax.set_xticks(list(xs), [f"seed {r['seed']}" for r in rows])
        ax.set_title(f"{key} ({stage})")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("held-out accuracy (%)")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeat", action="store_true", help="run seed 0 twice and compare the weights hash")
    parser.add_argument("--reuse", action="store_true",
                        help="take a seed's finished run (OUT/seed-N/summary.json) instead of running it again")
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at once (seconds are then not solo times)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    rows = []

    def one(seed: int) -> dict:
        r = row(seed, run_seed(seed, out / f"seed-{seed}", args.threads, args.overrides, args.reuse))
        print(f"seed {seed}: math {pct(r['math'])}, code {pct(r['code'])}, instruct {pct(r['instruct'])}, "
              f"gate {'pass' if r['gate'] else 'FAIL'} {r['drops']}, {r['seconds']:.0f} s", flush=True)
        return r

    with concurrent.futures.ThreadPoolExecutor(max(1, args.parallel)) as pool:
        rows = sorted(pool.map(one, seeds), key=lambda r: r["seed"])
    if args.parallel > 1:
        print(f"\n({args.parallel} seeds ran at once: the seconds below are not solo times)")
    print()
    print("| seed | math (stage 1) | code (stage 1) | instruct (stage 2) | stage-1 metrics during stage 2 | gate | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        drops = ", ".join(f"{k} {-100 * v:+.1f}" for k, v in r["drops"].items())  # the gate's drop = before - after
        print(f"| {r['seed']} | {pct(r['math'])} | {pct(r['code'])} | {pct(r['instruct'])} | {drops} | "
              f"{'pass' if r['gate'] else 'FAIL'} | {r['seconds']:.0f} |")
    gains = {k: [r[k][1] - r[k][0] for r in rows] for k in ("math", "code", "instruct")}
    print()
    for key, values in gains.items():
        print(f"{key}: mean gain {100 * statistics.fmean(values):+.1f} points, min {100 * min(values):+.1f}")
    print(f"gate passed {sum(r['gate'] for r in rows)}/{len(rows)}; seconds mean "
          f"{statistics.fmean(r['seconds'] for r in rows):.0f}, max {max(r['seconds'] for r in rows):.0f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"rows": rows, "parallel": args.parallel, "threads": args.threads,
                                                "overrides": args.overrides}, indent=2) + "\n")
    plot(rows, out / "seeds.png")
    print(f"table: {out / 'seeds.json'}, plot: {out / 'seeds.png'}")
    if args.repeat and seeds:
        again = row(seeds[0], run_seed(seeds[0], out / f"seed-{seeds[0]}-repeat", args.threads, args.overrides))
        same = again["hash"] == rows[0]["hash"]
        print(f"determinism: seed {seeds[0]} twice -> {'identical' if same else 'DIFFERENT'} weights "
              f"({rows[0]['hash']} / {again['hash']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
