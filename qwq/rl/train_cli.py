"""`qwq train sft|grpo|rm --config FILE [--set key=value ...]`: one trainer from a config file.

    qwq train grpo --config recipes/qwen2.5-coder-0.5b-lora-gsm8k.toml --set grpo.steps=2
    qwq train sft --config recipes/tiny.toml            # a pipeline recipe works too: its [sft] section is used

The model comes from `model.init` (any `-m` spec: HF dir, .gguf, run dir, name); `sft` may instead build the
`model.preset` architecture from scratch with a BPE trained on the task corpus. With `lora.enabled` only adapters
train; the saved model has them merged (and the adapter is saved on its own too). Output: <out>/final.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KINDS = ("sft", "grpo", "rm")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="what to train")
    parser.add_argument("--config", required=True, help="config file (TOML or YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set grpo.steps=5 (repeatable)")
    parser.add_argument("--out", help="run directory (default: <run.out>/<run.name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument("--no-progress", action="store_true")


def _raw_for_train(path: str) -> dict:
    """A pipeline recipe has [stage1]/[stage2] where a train config has [grpo]: accept both (stage1 -> grpo)."""
    from qwq.rl.config import read_config_file

    data = read_config_file(path)
    if "grpo" not in data and "stage1" in data:
        data["grpo"] = data["stage1"]
    for key in ("stage1", "stage2", "gate"):
        data.pop(key, None)
    return data


def main(args: argparse.Namespace) -> int:
    from qwq.rl.config import TrainConfig, apply_overrides, build_section, resolve_paths, to_dict, validate
    from qwq.rl.trainers import run_training
    from qwq.utils.atomic import atomic_write_text

    raw = apply_overrides(_raw_for_train(args.config), args.overrides, TrainConfig)
    config = build_section(TrainConfig, raw)
    validate(config)
    resolve_paths(config, Path(args.config).resolve().parent)
    run_dir = Path(args.out) if args.out else Path(config.run.out) / config.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / f"{args.kind}_config.json", json.dumps(to_dict(config), indent=2) + "\n")
    result = run_training(args.kind, config, run_dir, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(result, indent=2))
    return 0
