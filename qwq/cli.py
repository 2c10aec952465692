"""The `qwq` command. Subcommands are imported lazily so `qwq --help` stays fast and torch-free.

Each subcommand module defines `add_args(parser)` and `main(args) -> int | None`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Help text lives here so listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("qwq.model.info", "show a model's config, exact parameter count and memory needs"),
    "generate": ("qwq.engine.generate_cli", "generate text from a prompt (n samples, JSON output)"),
    "chat": ("qwq.engine.chat_cli", "interactive chat in the terminal, thinking shown dimmed"),
    "bench": ("qwq.engine.bench_cli", "measure decode speed, load time and batching throughput"),
    "quantize": ("qwq.engine.quantize_cli", "quantize a checkpoint to int8/int4 weight-only, shard by shard"),
    "convert": ("qwq.model.convert", "convert a GGUF or HF checkpoint to a HF safetensors directory"),
    "sandbox": ("qwq.sandbox.cli", "run or serve the code-execution sandbox"),
    "verify": ("qwq.verify.cli", "check an answer with the math, code or rule verifiers"),
    "train": ("qwq.rl.train_cli", "train: sft, grpo or rm (reward model) from a config file"),
    "pipeline": ("qwq.rl.pipeline_cli", "the full recipe: cold start -> stage-1 RL -> stage-2 RL, with a report"),
    "eval": ("qwq.eval.cli", "evaluate a model or endpoint on the QwQ benchmarks"),
    "serve": ("qwq.serve.cli", "OpenAI-compatible server with a chat web page"),
    "agent": ("qwq.agent.cli", "run a tool-using agent"),
    "guard": ("qwq.safety.cli", "classify a text with the safety guard"),
    "redteam": ("qwq.safety.redteam_cli", "measure safe-response and over-refusal rates"),
}


def available_commands() -> dict[str, tuple[str, str]]:
    """The commands whose module is installed (finding a module imports only its parent package)."""
    import importlib.util

    found = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            if importlib.util.find_spec(module) is not None:
                found[name] = (module, help_text)
        except ModuleNotFoundError:
            pass
    return found


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line reason (it already does; keep the message to one line)."""

    def error(self, message: str) -> None:  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from qwq import __version__

    parser = _Parser(prog="qwq", description="qwq: the QwQ-32B reasoning-model system, open and in Python.")
    parser.add_argument("--version", action="version", version=f"qwq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in available_commands().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from qwq.utils.errors import QwqError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] == "--version":
        parser.parse_args(argv or ["--help"])
        return 0
    name = argv[0]
    commands = available_commands()
    if name not in commands:
        parser.error(f"unknown command {name!r} (choose from {', '.join(commands)})")
    module_name, help_text = commands[name]
    module = importlib.import_module(module_name)
    sub = _Parser(prog=f"qwq {name}", description=help_text)
    module.add_args(sub)
    args = sub.parse_args(argv[1:])
    try:
        code = module.main(args)
    except QwqError as exc:
        print(f"qwq {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qwq {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
