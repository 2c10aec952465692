"""`qwq agent`: run a tool-using agent on one request against the local engine or an OpenAI-compatible endpoint.

    qwq agent -m MODEL --prompt "..." [--tools python,calculator]      run the agent (the default action)
    qwq agent train-tool --out DIR [--steps N] [--seed S] [--tool python|calculator] [--set key=value ...]
        train a tiny model to use a tool (cold-start SFT on tool traces, then GRPO with tool-using episodes) and
        measure held-out accuracy with the tool and without it, before and after RL (qwq.agent.tool_train)
"""

from __future__ import annotations

import argparse
import json
import sys

from qwq.utils.errors import UsageError

BUILTIN_TOOLS = ("python", "calculator", "files")


ACTIONS = ("run", "train-tool")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="run", choices=ACTIONS,
                        help="run (default): answer one request with tools; train-tool: the tool-use RL experiment")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("-m", "--model", help="model spec for the local engine (dir, .gguf, or a name)")
    src.add_argument("--endpoint", help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--endpoint-model", default="default", help="model name sent to the endpoint")
    parser.add_argument("--api-key", default=None, help="bearer token for the endpoint")
    req = parser.add_mutually_exclusive_group()
    req.add_argument("--prompt", help="the request")
    req.add_argument("--prompt-file", help="read the request from a file ('-' for stdin)")
    parser.add_argument("--system", default=None, help="system prompt")
    parser.add_argument("--tools", default="python,calculator",
                        help=f"comma-separated built-in tools: {', '.join(BUILTIN_TOOLS)} (files needs --dir)")
    parser.add_argument("--dir", default=None, help="directory the read-only file tools may read")
    parser.add_argument("--max-steps", type=int, default=8, help="model calls at most")
    parser.add_argument("--token-budget", type=int, default=None, help="completion tokens over the whole run")
    parser.add_argument("--max-new-tokens", type=int, default=4096, help="completion tokens per model call")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--guard", default="rules+learned",
                        help="safety guard: none, or rules, learned, model (= the same model) joined by '+' "
                             "(default rules+learned)")
    parser.add_argument("--transcript", default=None, help="save the full transcript as JSON here")
    parser.add_argument("--json", action="store_true", help="print the transcript as JSON instead of the answer")
    train = parser.add_argument_group("train-tool")
    train.add_argument("--out", help="train-tool: run directory (metrics, models, summary.json)")
    train.add_argument("--steps", type=int, default=None, help="train-tool: GRPO steps")
    train.add_argument("--tool", choices=("python", "calculator"), default=None,
                       help="train-tool: the tool to learn (python runs in the sandbox; calculator is cheaper)")
    train.add_argument("--threads", type=int, default=None, help="train-tool: torch threads")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="train-tool: any setting of qwq.agent.tool_train.ToolRLConfig (repeatable)")


def build_tools(names: str, directory: str | None) -> list:
    from qwq.agent.calculator import calculator_tool
    from qwq.agent.files import FileTools
    from qwq.agent.python_tool import python_tool

    tools = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name == "python":
            tools.append(python_tool())
        elif name == "calculator":
            tools.append(calculator_tool())
        elif name == "files":
            if not directory:
                raise UsageError("the files tool needs --dir DIRECTORY")
            tools.extend(FileTools(directory).tools())
        else:
            raise UsageError(f"unknown tool {name!r}: expected {', '.join(BUILTIN_TOOLS)}")
    if directory and "files" not in names:
        tools.extend(FileTools(directory).tools())
    return tools


def main(args) -> int:
    if args.action == "train-tool":
        return train_tool_main(args)
    if not (args.model or args.endpoint):
        raise UsageError("one of -m/--model or --endpoint is required")
    if args.prompt is None and args.prompt_file is None:
        raise UsageError("one of --prompt or --prompt-file is required")
    return run_agent(args)


def train_tool_main(args) -> int:
    from qwq.agent.tool_train import ToolRLConfig, parse_overrides, train_tool_use

    if not args.out:
        raise UsageError("train-tool needs --out DIR")
    settings = parse_overrides(args.overrides)
    for name, value in (("steps", args.steps), ("seed", args.seed), ("tool", args.tool), ("threads", args.threads)):
        if value is not None:
            settings[name] = value
    summary = train_tool_use(ToolRLConfig.from_dict(settings), args.out,
                             log=lambda message: print(message, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        acc, greedy = summary["accuracy"], summary["greedy_accuracy"]
        print(f"held-out accuracy on {summary['heldout_problems']} problems ({summary['tool']} tool), sampled "
              f"(greedy):")
        print(f"  {'':14} {'before RL':>16} {'after RL':>16}")
        for mode in ("with_tool", "without_tool"):
            cells = [f"{acc[mode][k]:.3f} ({greedy[mode][k]:.3f})" for k in ("before_rl", "after_rl")]
            print(f"  {mode.replace('_', ' '):14} {cells[0]:>16} {cells[1]:>16}")
        print(f"summary: {args.out}/summary.json ({summary['seconds']['total']:.0f} s)")
    return 0


def run_agent(args) -> int:
    from qwq.agent.backends import backend_from_spec
    from qwq.agent.loop import Agent
    from qwq.safety.guard import build_guard

    if args.prompt_file:
        try:
            prompt = sys.stdin.read() if args.prompt_file == "-" else open(args.prompt_file, encoding="utf-8").read()
        except OSError as exc:
            raise UsageError(f"{args.prompt_file}: cannot read ({exc.strerror})") from None
    else:
        prompt = args.prompt
    if not prompt.strip():
        raise UsageError("the request is empty")
    tools = build_tools(args.tools, args.dir)
    backend = backend_from_spec(model=args.model, endpoint=args.endpoint, endpoint_model=args.endpoint_model,
                                api_key=args.api_key, temperature=args.temperature, top_p=args.top_p,
                                max_tokens=args.max_new_tokens, seed=args.seed)
    complete = None
    if "model" in args.guard.split("+"):
        complete = lambda p: backend.complete([{"role": "user", "content": p}], max_tokens=512).text  # noqa: E731
    guard = build_guard(args.guard, classifier_complete=complete)
    agent = Agent(backend, tools, system=args.system, max_steps=args.max_steps, token_budget=args.token_budget,
                  max_tokens_per_step=args.max_new_tokens, guard=guard)
    transcript = agent.run(prompt)
    if args.transcript:
        transcript.save(args.transcript)
    if args.json:
        print(transcript.to_json())
    else:
        for step in transcript.steps:
            for ev in step.tool_events:
                label = ev.name or "parse-error"
                print(f"[{label}] {ev.content[:400]}", file=sys.stderr)
        if transcript.final_answer is not None:
            print(transcript.final_answer)
        else:
            print(f"(no answer: stopped by {transcript.stop_reason})")
    return 0
