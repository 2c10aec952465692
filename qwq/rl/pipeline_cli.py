"""`qwq pipeline`: the whole recipe (tokenizer, cold start, stage-1 RL, reward model, stage-2 RL, gate, report).

With no arguments it runs the tiny preset into runs/tiny; the trained model lands in runs/tiny/final, usable as
`-m runs/tiny` by every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRESETS = ("tiny",)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", choices=PRESETS, help="built-in recipe (default: tiny)")
    parser.add_argument("--config", help="a pipeline config file (TOML or YAML) instead of the preset")
    parser.add_argument("--out", help="run directory (default: runs/<run.name>)")
    parser.add_argument("--seed", type=int, help="random seed (run.seed)")
    parser.add_argument("--threads", type=int, help="torch threads (run.threads; results depend on it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set stage1.steps=20 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--stop-after", metavar="STAGE",
                        help="end after this stage (tokenizer, eval_init, sft, eval_cold, stage1, eval_stage1, rm, "
                             "stage2); --resume continues later")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")


def main(args: argparse.Namespace) -> int:
    from qwq.rl.config import PipelineConfig, load_config
    from qwq.rl.pipeline import Pipeline
    from qwq.rl.report import print_table

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.threads is not None:
        overrides.append(f"run.threads={args.threads}")
    config = load_config(args.config, overrides, PipelineConfig)
    run_dir = Path(args.out) if args.out else Path(config.run.out) / config.run.name
    progress_factory = None
    if config.run.progress and not args.no_progress:
        from qwq.utils.progress import make_progress

        progress_factory = lambda: make_progress(disable=None)  # noqa: E731 - a factory, called once
    summary = Pipeline(config, run_dir, resume=args.resume, progress_factory=progress_factory).run(args.stop_after)
    if "stopped_after" in summary:
        print(f"stopped after {summary['stopped_after']}; continue with --resume --out {run_dir}")
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
        print(f"report: {run_dir / 'report.md'}")
    if not summary["gate"]["passed"]:
        print(f"qwq pipeline: the regression gate failed (see {run_dir / 'report.md'}); no final/ model written",
              file=sys.stderr)
        return 1
    return 0
