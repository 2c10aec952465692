"""Controls for stage 1: the same cold start trained with the real reward, with shuffled rewards (same values,
no relation to the completions) and with a constant reward. Only the real reward should raise held-out accuracy
(the acceptance bound: controls gain <= +2 points).

    python benchmarks/bench_reward_controls.py [--seed 0] [--threads 2] [--out runs/controls] [--set k=v ...]

Runs the pipeline once up to the cold-start evaluation, copies that run three times, and resumes each copy through
stage 1 and its held-out evaluation with `stage1.reward_control` = none / shuffle / constant. `--from RUN` starts
from a finished `qwq pipeline` run of the same seed and settings instead: its cold start is reused and its own
stage 1 is the "none" row (so only the two controls are trained).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTROLS = ("none", "shuffle", "constant")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/controls")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--from", dest="source", metavar="RUN",
                        help="a finished pipeline run (same seed, threads, settings): reuse its cold start and stage 1")
    args = parser.parse_args()
    out = Path(args.out)
    base = out / "base"
    if args.source:
        source = Path(args.source)
        state = json.loads((source / "state.json").read_text()) if (source / "state.json").is_file() else {}
        if "eval_stage1" not in state.get("done", {}):
            raise SystemExit(f"{source}: not a pipeline run that finished stage 1")
        copy_cold_start(source, base)
    elif not (base / "state.json").is_file() or "eval_cold" not in json.loads((base / "state.json").read_text())["done"]:
        shutil.rmtree(base, ignore_errors=True)
        pipeline(base, args.seed, args.threads, args.overrides, "--stop-after", "eval_cold")
    results = {}
    for control in CONTROLS:
        reuse = bool(args.source) and control == "none"  # the finished run's own stage 1 is the "none" row
        target = Path(args.source) if reuse else out / control
        if not reuse:
            copy_cold_start(base, target)
            pipeline(target, args.seed, args.threads, args.overrides + [f"stage1.reward_control={control}"],
                     "--resume", "--stop-after", "eval_stage1")
        state = json.loads((target / "state.json").read_text())
        before, after = state["done"]["eval_cold"]["groups"], state["done"]["eval_stage1"]["groups"]
        results[control] = {g: (before[g], after[g]) for g in ("math", "code") if g in before}
        print(f"{control:8s} " + "  ".join(f"{g} {100 * b:.1f} -> {100 * a:.1f} ({100 * (a - b):+.1f})"
                                          for g, (b, a) in results[control].items()), flush=True)
    print()
    print("| stage-1 reward | math held-out gain | code held-out gain |")
    print("|---|---|---|")
    for control, groups in results.items():
        print(f"| {control} | " + " | ".join(f"{100 * (a - b):+.1f}" for b, a in groups.values()) + " |")
    ok = all(100 * (a - b) <= 2.0 for control in ("shuffle", "constant") for b, a in results[control].values())
    print(f"\ncontrols gain <= +2 points: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
