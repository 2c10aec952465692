"""Tool use learned by RL: held-out accuracy of a tiny model with the tool offered and without it, before and after
GRPO with tool-using episodes (`qwq agent train-tool`, qwq.agent.tool_train).

    python benchmarks/bench_tool_rl.py [--seeds 0] [--steps N] [--tool python|calculator] [--threads 2]
                                       [--out runs/tool_rl] [--set key=value ...]

Each seed is a whole run (tokenizer, cold-start SFT, evaluation, GRPO, evaluation) through the `qwq` CLI. Prints
one table per seed and, with several seeds, the mean; the acceptance check of issue 9 is "with tool > without tool
after RL". `--json` prints the summaries instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = ("with_tool", "without_tool")


def run(out: Path, seed: int, args) -> dict:
    cmd = [sys.executable, "-m", "qwq", "agent", "train-tool", "--out", str(out), "--seed", str(seed),
           "--threads", str(args.threads), "--json"]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    if args.tool:
        cmd += ["--tool", args.tool]
    for item in args.overrides:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def table(summary: dict) -> str:
    acc, greedy, seconds = summary["accuracy"], summary["greedy_accuracy"], summary["seconds"]
    rows = [f"{'accuracy':22} {'before RL':>10} {'after RL':>10}"]
    for mode in MODES:
        name = mode.replace("_", " ")
        rows.append(f"{name + ' (sampled)':22} {acc[mode]['before_rl']:10.3f} {acc[mode]['after_rl']:10.3f}")
        rows.append(f"{name + ' (greedy)':22} {greedy[mode]['before_rl']:10.3f} {greedy[mode]['after_rl']:10.3f}")
    tool_use = [summary[stage]["with_tool"]["tool_call_rate"] for stage in ("before_rl", "after_rl")]
    rows.append(f"{'tool-call rate':22} {tool_use[0]:10.3f} {tool_use[1]:10.3f}")
    rows.append(f"{'chance (no tool)':22} {summary.get('chance_accuracy', 0.0):10.3f}")
    sft = summary["sft"]
    copied = f"copies from step {sft['copy_step']}" if sft.get("copy_step") else "the stop rate was never reached"
    exact = sft.get("heldout_exact")
    rows.append(f"cold start: {sft['steps']} SFT steps, final loss {sft['final_loss']:.3f}, {copied}"
                + (f" (held-out turns reproduced: {exact:.2f})" if exact is not None else ""))
    rows.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0", help="comma-separated run seeds")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the trainer's)")
    parser.add_argument("--tool", choices=("python", "calculator"), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/tool_rl")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    summaries = []
    for seed in seeds:
        target = Path(args.out) / f"seed{seed}"
        shutil.rmtree(target, ignore_errors=True)
        started = time.perf_counter()
        summary = run(target, seed, args)
        summary["wall_s"] = round(time.perf_counter() - started, 1)
        summaries.append(summary)
        if not args.json:
            print(f"== seed {seed}: {summary['task']} with the {summary['tool']} tool, {summary['parameters']:,} "
                  f"parameters, {summary['heldout_problems']} held-out problems, {summary['wall_s']:.0f} s wall")
            print(table(summary), flush=True)
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    if len(summaries) > 1:
        print(f"== mean over seeds {args.seeds}")
        for mode in MODES:
            for kind, key in (("sampled", "accuracy"), ("greedy", "greedy_accuracy")):
                values = {stage: statistics.fmean(s[key][mode][stage] for s in summaries)
                          for stage in ("before_rl", "after_rl")}
                print(f"{mode.replace('_', ' ') + f' ({kind})':22} {values['before_rl']:10.3f} "
                      f"{values['after_rl']:10.3f}")
    for kind, key in (("sampled", "accuracy"), ("greedy", "greedy_accuracy")):
        helped = sum(s[key]["with_tool"]["after_rl"] > s[key]["without_tool"]["after_rl"] for s in summaries)
        improved = sum(s[key]["with_tool"]["after_rl"] > s[key]["with_tool"]["before_rl"] for s in summaries)
        print(f"{kind}: with tool > without tool after RL in {helped} of {len(summaries)} runs; with tool improved "
              f"by RL in {improved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
