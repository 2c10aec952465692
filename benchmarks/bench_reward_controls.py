"""Controls for stage 1: the same cold start trained with the real reward, with shuffled rewards (same values,
no relation to the completions) and with a constant reward. Only the real reward should raise held-out accuracy
(the acceptance bound: controls gain <= +2 points).

    python benchmarks/bench_reward_controls.py [--seed 0] [--threads 2] [--out runs/controls] [--set k=v ...]

Runs the pipeline once up to the cold-start evaluation, copies that run three times, and resumes each copy through
stage 1 and its held-out evaluation with `stage1.reward_control` = none / shuffle / constant.
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
    args = parser.parse_args()
    out = Path(args.out)
    base = out / "base"
    if not (base / "state.json").is_file() or "eval_cold" not in json.loads((base / "state.json").read_text())["done"]:
        shutil.rmtree(base, ignore_errors=True)
        pipeline(base, args.seed, args.threads, args.overrides, "--stop-after", "eval_cold")
    results = {}
    for control in CONTROLS:
        target = out / control
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(base, target)
        pipeline(target, args.seed, args.threads, args.overrides + [f"stage1.reward_control={control}"], "--resume",
                 "--stop-after", "eval_stage1")
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
