"""`qwq redteam`: safe-response and over-refusal rates on the shipped red-team set, with and without the guard.

Without -m/--endpoint the model is the worst case (complies with everything), which measures what the guard alone
guarantees whatever model sits behind it. With a model, each prompt is answered once and the same answer is judged
in both arms (guard off: as is; guard on: after the input check and the output check).
"""

from __future__ import annotations

import argparse
import json
import sys

from qwq.utils.errors import UsageError

# every shipped split (qwq.safety.redteam.SPLITS; repeated here so building the parser imports nothing heavy)
SPLITS_DEFAULT = ("dev", "heldout", "fresh", "fresh2", "fresh3", "fresh4", "fresh5")


def add_args(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("-m", "--model", help="model under test, on the local engine")
    src.add_argument("--endpoint", help="model under test behind an OpenAI-compatible endpoint (base URL)")
    parser.add_argument("--endpoint-model", default="default")
    parser.add_argument("--guard", default="rules+learned",
                        help="guard for the guard-on arm: parts rules, learned, model joined by '+' (default rules+learned)")
    parser.add_argument("--set", dest="path", default=None, help="a red-team JSONL file (default: the shipped set)")
    parser.add_argument("--splits", default=",".join(SPLITS_DEFAULT), help="comma-separated splits to run")
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write report.md, redteam.png, summary.json and outcomes here")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args) -> int:
    from qwq.safety.guard import NullGuard, build_guard
    from qwq.safety.redteam import SPLITS, load_items, outcomes_to_jsonl, run, summarize

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise UsageError(f"unknown split(s) {unknown}: expected {', '.join(SPLITS)}")
    items = load_items(args.path, splits)
    if args.limit:
        items = items[: args.limit]
    if not items:
        raise UsageError("no red-team prompts selected")

    respond = None
    complete = None
    model_name = "worst case (always complies)"
    if args.model or args.endpoint:
        from qwq.agent.backends import backend_from_spec

        backend = backend_from_spec(model=args.model, endpoint=args.endpoint, endpoint_model=args.endpoint_model,
                                    temperature=args.temperature, max_tokens=args.max_new_tokens, seed=args.seed)
        cache: dict[str, str] = {}

        def respond(messages, _cache=cache):
            key = json.dumps(messages, sort_keys=True)
            if key not in _cache:
                _cache[key] = backend.complete(messages).text
            return _cache[key]

        complete = lambda p: backend.complete([{"role": "user", "content": p}], max_tokens=512).text  # noqa: E731
        model_name = args.model or args.endpoint
    guard = build_guard(args.guard, classifier_complete=complete)

    def progress(arm):
        return lambda i, n: print(f"\r{arm}: {i}/{n}", end="" if i < n else "\n", file=sys.stderr) \
            if sys.stderr.isatty() else None

    outcomes = {"guard off": run(items, NullGuard(), respond, progress=progress("guard off")),
                f"guard on ({guard.name})": run(items, guard, respond, progress=progress("guard on"))}
    arms = {arm: summarize(o) for arm, o in outcomes.items()}
    if args.out:
        from qwq.safety.report import write_report

        notes = (f"Model: {model_name}. Prompts: {len(items)} from splits {', '.join(splits)}. Judge: the rule "
                 "layer's output check plus a refusal detector. Splits: dev = tuned on; heldout and fresh = scored "
                 "once, then used for tuning; fresh3, fresh4 and fresh5 = each written before a guard change, never "
                 "tuned on (see qwq/safety/data/README.md).")
        path = write_report(arms, args.out, notes=notes,
                            outcomes_jsonl={a: outcomes_to_jsonl(o) for a, o in outcomes.items()})
        print(f"report: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(arms, indent=2))
    else:
        for arm, s in arms.items():
            o = s["overall"]
            print(f"{arm}: safe-response {100 * o['safe_response_rate']:.1f}% of {o['n_harmful']} harmful, "
                  f"over-refusal {100 * o['over_refusal_rate']:.1f}% of {o['n_not_harmful']} benign+borderline")
            for split, r in s["by_split"].items():
                print(f"  {split:8s} safe {100 * r['safe_response_rate']:.1f}%  over-refusal "
                      f"{100 * r['over_refusal_rate']:.1f}%")
    return 0
