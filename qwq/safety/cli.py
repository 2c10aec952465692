"""`qwq guard`: classify one text with the safety guard (rules + learned classifier by default; -m/--endpoint adds
the model-based classifier)."""

from __future__ import annotations

import argparse
import json
import sys

from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text to classify")
    src.add_argument("--file", help="read the text from a file ('-' for stdin)")
    parser.add_argument("--role", choices=["user", "assistant"], default="user",
                        help="user: check it as a request; assistant: check it as a response (thinking included)")
    parser.add_argument("--guard", default=None,
                        help="guard parts joined by '+': rules, learned, model (default rules+learned, plus model with -m)")
    parser.add_argument("-m", "--model", help="also run the model-based classifier on this model")
    parser.add_argument("--endpoint", help="also run the classifier on an OpenAI-compatible endpoint (base URL)")
    parser.add_argument("--endpoint-model", default="default", help="model name to send to the endpoint")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def classifier_from_args(args) -> "callable | None":
    """prompt -> text from -m (local engine) or --endpoint, or None."""
    if getattr(args, "model", None) and getattr(args, "endpoint", None):
        raise UsageError("give -m/--model or --endpoint, not both")
    if getattr(args, "model", None) or getattr(args, "endpoint", None):
        from qwq.agent.backends import backend_from_spec

        backend = backend_from_spec(model=args.model, endpoint=args.endpoint,
                                    endpoint_model=getattr(args, "endpoint_model", "default"),
                                    temperature=0.0, max_tokens=getattr(args, "classifier_max_tokens", 512))
        return lambda prompt: backend.complete([{"role": "user", "content": prompt}]).text
    return None


def main(args) -> int:
    from qwq.safety.guard import DEFAULT_GUARD, build_guard

    if args.file:
        try:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        except OSError as exc:
            raise UsageError(f"{args.file}: cannot read ({exc.strerror})") from None
    else:
        text = args.text
    complete = classifier_from_args(args)
    spec = args.guard or (DEFAULT_GUARD + "+model" if complete else DEFAULT_GUARD)
    guard = build_guard(spec, classifier_complete=complete)
    verdict = guard.check_input(text) if args.role == "user" else guard.check_output(text)
    if args.json:
        print(json.dumps(verdict.to_dict(), ensure_ascii=False))
    else:
        line = verdict.action + (f" ({verdict.category})" if verdict.category else "")
        print(line)
        if verdict.reason:
            print(f"  reason: {verdict.reason} [{verdict.source}]")
        if verdict.action == "redact" and verdict.redacted is not None:
            print(f"  redacted: {verdict.redacted}")
    return 0
