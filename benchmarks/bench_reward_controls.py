"""Controls for stage 1: the same cold start trained with the real reward, with shuffled rewards (same values,
no relation to the completions) and with a constant reward. Only the real reward should raise held-out accuracy
(the acceptance bound: controls gain <= +2 points).

    python benchmarks/bench_reward_controls.py [--seeds 0,1,2] [--controls shuffle,constant] [--threads 2]
                                               [--out runs/controls] [--from RUN_PATTERN] [--set k=v ...]

Runs the pipeline once up to the cold-start evaluation, copies that run three times, and resumes each copy through
stage 1 and its held-out evaluation with `stage1.reward_control` = none / shuffle / constant. `--from RUN` starts
from a finished `qwq pipeline` run of the same seed and settings instead: its cold start is reused and its own
stage 1 is the "none" row (so only the controls are trained); with several seeds the pattern names each run,
e.g. `--from runs/seeds/seed-{seed}` (the run directories benchmarks/bench_pipeline_seeds.py leaves).

`shuffle` permutes the rewards across the batch, `shuffle_group` within each group (the same groups carry signal,
with the same advantage sizes, as under the real reward; only which completion earned which reward is random).
Shuffled rewards give every completion a random advantage: the expected update is zero, but one run is a random walk
that can move held-out accuracy either way by several points. So the check is on the mean over seeds (each seed's
row is printed too). A constant reward leaves every group without signal: no update is ever taken, so its gain is 0
by construction (one seed shows it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTROLS = ("none", "shuffle", "shuffle_group", "constant")
COLD_START_STAGES = ("tokenizer", "eval_init", "sft", "eval_cold")


def copy_cold_start(source: Path, target: Path) -> None:
    """`target` = `source` as it was right after its cold-start evaluation (later stages dropped)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("stage1", "rm", "stage2", "final", "plots",
                                                                   "report.md", "summary.json"))
    state = json.loads((target / "state.json").read_text())
    state["done"] = {k: v for k, v in state["done"].items() if k in COLD_START_STAGES}
    state["seconds"] = {k: v for k, v in state["seconds"].items() if k in COLD_START_STAGES}
    (target / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def pipeline(out: Path, seed: int, threads: int, overrides: list[str], *extra: str) -> None:
    cmd = [sys.executable, "-m", "qwq", "pipeline", "--seed", str(seed), "--threads", str(threads), "--out", str(out),
           "--no-progress", *extra]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")


def run_seed(seed: int, controls: list[str], args) -> dict:
    out = Path(args.out) / f"seed-{seed}"
    base = out / "base"
    source = Path(args.source.format(seed=seed)) if args.source else None
    if source is not None:
        state = json.loads((source / "state.json").read_text()) if (source / "state.json").is_file() else {}
        if "eval_stage1" not in state.get("done", {}):
            raise SystemExit(f"{source}: not a pipeline run that finished stage 1")
        config = json.loads((source / "config.json").read_text()) if (source / "config.json").is_file() else {}
        if config.get("run", {}).get("seed", seed) != seed:
            raise SystemExit(f"{source}: a run of seed {config['run']['seed']}, not {seed}")
        copy_cold_start(source, base)
    elif not (base / "state.json").is_file() or "eval_cold" not in json.loads((base / "state.json").read_text())["done"]:
        shutil.rmtree(base, ignore_errors=True)
        pipeline(base, seed, args.threads, args.overrides, "--stop-after", "eval_cold")
    results = {}
    for control in ["none", *controls]:
        reuse = source is not None and control == "none"  # the finished run's own stage 1 is the "none" row
        target = source if reuse else out / control
        if not reuse:
            copy_cold_start(base, target)
            pipeline(target, seed, args.threads, args.overrides + [f"stage1.reward_control={control}"],
                     "--resume", "--stop-after", "eval_stage1")
        state = json.loads((target / "state.json").read_text())
        before, after = state["done"]["eval_cold"]["groups"], state["done"]["eval_stage1"]["groups"]
        results[control] = {g: 100 * (after[g] - before[g]) for g in ("math", "code") if g in before}
        print(f"seed {seed} {control:8s} " + "  ".join(f"{g} {100 * before[g]:.1f} -> {100 * after[g]:.1f} "
                                                     f"({gain:+.1f})" for g, gain in results[control].items()),
              flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--controls", default="shuffle,constant", help="comma-separated: shuffle, shuffle_group, constant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/controls")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--from", dest="source", metavar="RUN",
                        help="finished pipeline run(s) of the same settings, {seed} in the path for several seeds: "
                             "reuse the cold start and stage 1")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    controls = [c for c in args.controls.split(",") if c]
    if unknown := [c for c in controls if c not in CONTROLS[1:]]:
        raise SystemExit(f"unknown controls {unknown}: expected some of {', '.join(CONTROLS[1:])}")
    if args.source and len(seeds) > 1 and "{seed}" not in args.source:
        raise SystemExit("--from needs a {seed} placeholder when several seeds are given")
    per_seed = {seed: run_seed(seed, controls, args) for seed in seeds}
    groups = list(next(iter(per_seed.values()))["none"])
    print()
    print("| stage-1 reward | seed | " + " | ".join(f"{g} held-out gain" for g in groups) + " |")
    print("|---|---|" + "---|" * len(groups))
    means = {}
    for control in ["none", *controls]:
        for seed, results in per_seed.items():
            print(f"| {control} | {seed} | " + " | ".join(f"{results[control][g]:+.1f}" for g in groups) + " |")
        means[control] = {g: sum(r[control][g] for r in per_seed.values()) / len(per_seed) for g in groups}
        if len(per_seed) > 1:
            print(f"| {control} | mean | " + " | ".join(f"{means[control][g]:+.1f}" for g in groups) + " |")
    ok = all(gain <= 2.0 for control in controls for gain in means[control].values())
    print(f"\ncontrols gain <= +2 points (mean over {len(seeds)} seed(s)): {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
