"""`qwq eval`: run the QwQ benchmarks against a local model or an OpenAI-compatible endpoint.

    qwq eval --tasks aime24,math500 -m qwq-32b-dir --n 16
    qwq eval --tasks ifeval --endpoint http://127.0.0.1:8000 --limit 50
    qwq eval --tasks gsm8k -m qwen2.5-coder-0.5b --limit 2 --n 1 --max-tokens 64
    qwq eval --list
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    from qwq.eval.metrics import DEFAULT_PRICE_IN, DEFAULT_PRICE_OUT
    from qwq.eval.tasks.base import PROTOCOL_SAMPLING

    p = parser
    p.add_argument("--tasks", help="comma-separated: aime24,aime25,math500,gsm8k,humaneval,livecodebench,ifeval,gpqa,"
                                   "rg:<dataset>,proc:<task>")
    p.add_argument("--list", action="store_true", help="list the tasks and whether each can run here")
    who = p.add_mutually_exclusive_group()
    who.add_argument("-m", "--model", help="model spec: checkpoint dir, .gguf, run dir, or a known name")
    who.add_argument("--endpoint", help="base URL of an OpenAI-compatible server (…/v1 optional)")
    p.add_argument("--n", type=int, help="samples per problem (default: the protocol's per task: AIME 64, LCB 8...)")
    p.add_argument("--limit", type=int, help="only the first K problems of each task")
    p.add_argument("--thinking-budget", help="thinking-token budget, or a comma list to sweep "
                                             "(e.g. 1024,4096,none; none = unlimited)")
    p.add_argument("--out", help="results directory (default: runs/eval/<model>)")
    p.add_argument("--max-tokens", type=int, default=PROTOCOL_SAMPLING["max_tokens"])
    p.add_argument("--temperature", type=float, default=PROTOCOL_SAMPLING["temperature"], help="0 = greedy")
    p.add_argument("--top-p", type=float, default=PROTOCOL_SAMPLING["top_p"])
    p.add_argument("--top-k", type=int, default=PROTOCOL_SAMPLING["top_k"])
    p.add_argument("--min-p", type=float, default=PROTOCOL_SAMPLING["min_p"])
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="benchmark data directory (default: $QWQ_DATA or ../shared/data)")
    p.add_argument("--lcb-tests", help="directory of LiveCodeBench test files (not shipped)")
    p.add_argument("--count", type=int, default=200, help="problems drawn for rg:/proc: tasks (default 200)")
    p.add_argument("--problem-seed", type=int, help="which rg:/proc: problems (default: the pipeline's eval seed)")
    local = p.add_argument_group("local model")
    local.add_argument("--quant", choices=("none", "int8", "int4"), default="none")
    local.add_argument("--max-batch-size", type=int, default=16, help="sequences decoded together")
    local.add_argument("--kv-cache-tokens", type=int,
                       help="KV-cache size in tokens, shared by the batch (default: the engine's; long reasoning "
                            "needs max-batch-size x max-tokens)")
    remote = p.add_argument_group("endpoint")
    remote.add_argument("--endpoint-model", help="model name to request (default: the first of /v1/models)")
    remote.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    remote.add_argument("--retries", type=int, default=5, help="retries per request (back-off with jitter)")
    remote.add_argument("--starts-in-reasoning", choices=("auto", "yes", "no"), default="auto",
                        help="whether a raw completion (no reasoning_content) starts inside <think>")
    remote.add_argument("--openai-strict", action="store_true", help="send only OpenAI's fields (no top_k/min_p)")
    p.add_argument("--price-in", type=float, default=DEFAULT_PRICE_IN, help="$ per 1M input tokens")
    p.add_argument("--price-out", type=float, default=DEFAULT_PRICE_OUT, help="$ per 1M output tokens")
    p.add_argument("--rescore", action="store_true", help="score every stored sample again")
    p.add_argument("--overwrite", action="store_true", help="discard results of other settings in --out")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true")


def parse_budgets(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    budgets: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("none", "inf", "unlimited"):
            budgets.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"--thinking-budget: {part!r} is not a token count or 'none'") from None
        if value < 0:
            raise UsageError(f"--thinking-budget: {value} is negative")
        budgets.append(value)
    if len(set(budgets)) != len(budgets):
        raise UsageError("--thinking-budget lists a budget twice")
    return budgets


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "model"


def _list_tasks(args) -> int:
    from qwq.eval.tasks import BENCHMARKS, build_task

    for name in BENCHMARKS:
        task = build_task(name, data_dir=args.data_dir, options={"lcb_tests": args.lcb_tests})
        reason = task.unavailable()
        print(f"{name:14} {task.kind:9} n={task.default_n:<3} {'ok' if not reason else 'unavailable: ' + reason}")
    print("rg:<dataset>   reasoning-gym families (needs the reasoning-gym package)")
    print("proc:<task>    the RL pipeline's procedural tasks (held-out split)")
    return 0


def _backend(args):
    if args.endpoint:
        from qwq.eval.endpoint import EndpointBackend

        starts = {"auto": None, "yes": True, "no": False}[args.starts_in_reasoning]
        return EndpointBackend(args.endpoint, model=args.endpoint_model, concurrency=args.concurrency,
                               max_retries=args.retries, starts_in_reasoning=starts,
                               send_extra_sampling=not args.openai_strict)
    from qwq.eval.local import LocalEngineBackend

    engine_options = {"max_batch_size": args.max_batch_size}
    if args.kv_cache_tokens:
        engine_options["kv_cache_tokens"] = args.kv_cache_tokens
    return LocalEngineBackend.from_spec(args.model, quant=args.quant, **engine_options)


def _print_table(summary: dict) -> None:
    from qwq.eval.report import _pct

    print(f"{'run':22} {'n':>3} {'problems':>8} {'pass@1%':>8} {'maj@k%':>7} {'trunc%':>7} {'tokens':>8} {'cost$':>8}")
    for name, s in summary["tasks"].items():
        maj = s.get("maj@k") or {}
        top = maj[max(maj, key=int)] if maj else None
        tokens = s["tokens"].get("mean_completion_tokens")
        print(f"{name:22} {s['n']:>3} {s['problems']:>8} {_pct(s['pass@1']):>8} {_pct(top):>7} "
              f"{_pct(s['truncation_rate']):>7} {'-' if tokens is None else f'{tokens:.0f}':>8} {s['cost_usd']:>8.4f}")


def main(args) -> int:
    from qwq.eval.backends import SamplingConfig
    from qwq.eval.harness import EvalOptions, run_eval
    from qwq.eval.tasks import build_task

    if args.list:
        return _list_tasks(args)
    if not args.tasks:
        raise UsageError("--tasks is required (e.g. --tasks aime24,math500; --list shows them)")
    if not args.model and not args.endpoint:
        raise UsageError("give a model with -m/--model or a server with --endpoint")
    budgets = parse_budgets(args.thinking_budget)
    options = {"lcb_tests": args.lcb_tests, "count": args.count, "problem_seed": args.problem_seed}
    tasks = [build_task(name, data_dir=args.data_dir, options=options) for name in args.tasks.split(",") if name.strip()]
    if not tasks:
        raise UsageError("--tasks names no task")
    for task in tasks:  # before loading a model: say at once what cannot run
        reason = task.unavailable()
        if reason:
            raise UsageError(f"task {task.name} cannot run: {reason}")
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                              presence_penalty=args.presence_penalty, max_tokens=args.max_tokens, seed=args.seed)
    out = Path(args.out) if args.out else Path("runs") / "eval" / _slug(args.model or args.endpoint)
    eval_options = EvalOptions(n=args.n, limit=args.limit, budgets=budgets, rescore=args.rescore,
                               overwrite=args.overwrite, price_in=args.price_in, price_out=args.price_out,
                               progress=False if args.no_progress else None)
    with _backend(args) as backend:
        summary = run_eval(tasks, backend, sampling, out, eval_options)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_table(summary)
        print(f"report: {out / 'report.md'}")
    if summary["failed_samples"]:
        first = summary["failures"][0] if summary["failures"] else ""
        print(f"qwq eval: {summary['failed_samples']} samples failed (first: {first}); run the same command again "
              "to retry them", file=sys.stderr)
        return 1
    return 0
