"""`qwq verify math|choice|code|rules`: run one verifier by hand, to see why a sample got its reward.

    qwq verify math --gold '\\frac{1}{2}' --pred 'so the answer is \\boxed{0.5}' [--json]
    qwq verify choice --gold C --pred '{"answer": "C"}'
    qwq verify code --code solution.py --tests tests.json [--fraction] [--json]
    qwq verify rules --pred-file out.txt --instructions '["punctuation:no_comma"]' --kwargs '[{}]' --json

Prints `true`, `false` or `none` (cannot judge); `--json` adds the extracted answers and the reason. Texts may be
given inline or read from files (`--pred-file`, `-` for stdin). A prediction containing `</think>` is read as a
model completion (answers only after it); `--thinking yes|no` forces either reading.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qwq.utils.errors import UsageError


def add_args(parser) -> None:
    sub = parser.add_subparsers(dest="verifier", metavar="VERIFIER", required=True)

    def texts(p, gold: bool = True) -> None:
        p.add_argument("--pred", help="the model's response (inline)")
        p.add_argument("--pred-file", help="read the response from this file ('-' for stdin)")
        if gold:
            p.add_argument("--gold", help="the gold answer, or a full solution ending in \\boxed{} / ####")
            p.add_argument("--gold-file", help="read the gold from this file")
        p.add_argument("--thinking", choices=("auto", "yes", "no"), default="auto",
                       help="does the response start inside <think> (QwQ)? auto: yes when it contains </think>")
        p.add_argument("--json", action="store_true", help="print a JSON object with answers and reasons")

    math_p = sub.add_parser("math", help="math answer equivalence (sympy in a killable subprocess)")
    texts(math_p)
    math_p.add_argument("--timeout", type=float, default=10.0, help="seconds before the check is killed (none)")

    choice_p = sub.add_parser("choice", help="multiple-choice letter")
    texts(choice_p)
    choice_p.add_argument("--letters", default="ABCD", help="the valid option letters (default ABCD)")

    code_p = sub.add_parser("code", help="run a program against test cases in the sandbox")
    code_p.add_argument("--code", required=True, help="file with the program, or with a completion holding it "
                                                      "('-' for stdin)")
    code_p.add_argument("--tests", required=True, help="JSON file: a list of {input, output} stdio cases, or "
                                                       "{\"entry_point\": ..., \"test\": ...} for function tests")
    code_p.add_argument("--language", default="python")
    code_p.add_argument("--fraction", action="store_true", help="reward = passed fraction (default all-or-nothing)")
    code_p.add_argument("--thinking", choices=("auto", "yes", "no"), default="auto")
    code_p.add_argument("--json", action="store_true")

    rules_p = sub.add_parser("rules", help="format, language, length, repetition and IFEval instruction checks")
    texts(rules_p, gold=False)
    rules_p.add_argument("--prompt", default="", help="the prompt (its script is the language target)")
    rules_p.add_argument("--language", help="target language (ISO 639-1) or script for language consistency")
    rules_p.add_argument("--instructions", help="JSON list of IFEval instruction ids")
    rules_p.add_argument("--kwargs", help="JSON list of argument objects, one per instruction")
    rules_p.add_argument("--require-boxed", action="store_true", help="the format check requires a \\boxed{}")
    rules_p.add_argument("--max-length", type=int, help="for the overlong check (characters)")
    rules_p.add_argument("--buffer", type=int, default=0, help="soft-punishment buffer for --max-length")
    rules_p.add_argument("--ngram", type=int, default=4, help="n for the repetition check")


def _read(inline: str | None, path: str | None, what: str, required: bool = True) -> str | None:
    if inline is not None and path is not None:
        raise UsageError(f"give --{what} or --{what}-file, not both")
    if path is not None:
        if path == "-":
            return sys.stdin.read()
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --{what}-file {path}: {exc.strerror}") from None
    if inline is None and required:
        raise UsageError(f"--{what} or --{what}-file is required")
    return inline


def _starts_in_thinking(mode: str, text: str) -> bool:
    return mode == "yes" or (mode == "auto" and "</think>" in text)


def _verdict(value: bool | None) -> str:
    return "none" if value is None else ("true" if value else "false")


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(result["verdict"])


def main(args) -> int:
    return {"math": _math, "choice": _choice, "code": _code, "rules": _rules}[args.verifier](args)


def _math(args) -> int:
    from qwq.verify.math import math_pool, verify_math

    pred = _read(args.pred, args.pred_file, "pred")
    gold = _read(args.gold, args.gold_file, "gold")
    result = verify_math(pred, gold, starts_in_reasoning=_starts_in_thinking(args.thinking, pred),
                         timeout=args.timeout, pool=math_pool(workers=1))  # one check: one worker to start
    _print({"verdict": _verdict(result.correct), **result.to_dict()}, args.json)
    return 0


def _choice(args) -> int:
    from qwq.verify.choice import verify_choice

    pred = _read(args.pred, args.pred_file, "pred")
    gold = _read(args.gold, args.gold_file, "gold")
    result = verify_choice(pred, gold, letters=args.letters,
                           starts_in_reasoning=_starts_in_thinking(args.thinking, pred))
    _print({"verdict": _verdict(result.correct), **result.to_dict()}, args.json)
    return 0


def _code(args) -> int:
    from qwq.verify.code import load_tests_file, verify_code

    text = _read(None, args.code, "code")
    if "```" not in text and "</think>" not in text:  # a bare program file
        text = f"```{args.language}\n{text}\n```"
    tests = load_tests_file(args.tests)
    result = verify_code(text, tests, language=args.language,
                         starts_in_reasoning=_starts_in_thinking(args.thinking, text),
                         stop_at_first_failure=not args.fraction)
    value = result.score(fraction=args.fraction)
    detail = result.to_dict()
    detail["sandbox_verdict"] = detail.pop("verdict")
    _print({"verdict": _verdict(None if value is None else value == 1.0), "reward": value, **detail}, args.json)
    return 0


def _rules(args) -> int:
    from qwq.verify.ifeval import evaluate_ifeval
    from qwq.verify.rules import (check_format, dominant_script, language_consistency, ngram_repetition,
                                  overlong_penalty)

    pred = _read(args.pred, args.pred_file, "pred")
    thinking = _starts_in_thinking(args.thinking, pred)
    fmt = check_format(pred, starts_in_reasoning=thinking, require_boxed=args.require_boxed)
    checks: dict[str, dict] = {"format": {"verdict": _verdict(fmt.passed), "reason": fmt.reason}}
    target = args.language or dominant_script(args.prompt) or "en"
    try:
        share = language_consistency(pred, target, starts_in_reasoning=thinking)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    checks["language"] = {"target": target, "share": share}
    checks["repetition"] = {"ngram": args.ngram, "repeated_share": ngram_repetition(pred, args.ngram)}
    if args.max_length is not None:
        try:
            checks["overlong"] = {"length_chars": len(pred),
                                  "penalty": overlong_penalty(len(pred), args.max_length, args.buffer)}
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    passed = fmt.passed
    if args.instructions:
        from qwq.verify.extract import answer_region

        try:
            ids = json.loads(args.instructions)
            kwargs = json.loads(args.kwargs) if args.kwargs else None
        except ValueError as exc:
            raise UsageError(f"--instructions/--kwargs must be JSON: {exc}") from None
        if not isinstance(ids, list):
            raise UsageError("--instructions must be a JSON list of instruction ids")
        region = answer_region(pred, starts_in_reasoning=thinking)
        result = evaluate_ifeval(region.text, ids, kwargs, prompt=args.prompt)
        checks["ifeval"] = result.to_dict()
        passed = passed and result.prompt_strict
    summary = {"verdict": _verdict(passed), "checks": checks}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(summary["verdict"])
        for name, detail in checks.items():
            print(f"  {name}: {json.dumps(detail, ensure_ascii=False)}")
    return 0
