"""Verifier quality and throughput.

    python benchmarks/bench_verify.py [--workers 2] [--code-samples 40] [--rules-samples 2000]

Prints:
1. precision / recall of our math verifier and of raw math-verify (parse + verify, its defaults) on the table of
   tests/verify/math_cases.py, with the cases each one gets wrong;
2. MATH-500: gold-vs-gold acceptance through the parser and rejection of perturbed golds (+1, sign, dropped term);
3. verified samples/s with the worker pool on `--workers` processes: math (sympy path: each pair is parsed and
   compared in a worker; and the end-to-end mix of `verify_math_batch`, where trivial pairs are decided in-process),
   code (sandbox judge, simple stdio programs), rules (format + language + repetition + 3 IFEval checks). Raw
   math-verify in one process is measured on the same pairs as the peer.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _shared_data() -> Path:
    for candidate in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    raise SystemExit("shared data not found beside the checkout")


def _raw_math_verify(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$", parsing_timeout=None), parse(f"${pred}$", parsing_timeout=None),
                           timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a crash counts as "not verified", as in the library's own default
        return False


def _precision_recall(verdicts, expected) -> tuple[float, float, int, int]:
    tp = sum(v is True and e for v, e in zip(verdicts, expected))
    fp = sum(v is True and not e for v, e in zip(verdicts, expected))
    fn = sum(v is not True and e for v, e in zip(verdicts, expected))
    return tp / max(1, tp + fp), tp / max(1, tp + fn), fp, fn


def table_quality(pool) -> None:
    from qwq.verify.math import compare_math_answers
    from tests.verify.math_cases import CASES

    preds, golds, expected = [c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES]
    ours = [r.correct for r in compare_math_answers(preds, golds, timeout=20.0, pool=pool)]
    raw = [_raw_math_verify(g, p) for p, g in zip(preds, golds)]
    print(f"\n1. math table: {len(CASES)} cases "
          f"({sum(expected)} equivalent, {len(CASES) - sum(expected)} different incl. near misses)")
    print(f"   {'verifier':<22}{'precision':>10}{'recall':>8}{'false +':>9}{'false -':>9}")
    for name, verdicts in (("ours", ours), ("raw math-verify", raw)):
        precision, recall, fp, fn = _precision_recall(verdicts, expected)
        print(f"   {name:<22}{precision:>10.3f}{recall:>8.3f}{fp:>9}{fn:>9}")
        for (p, g, e, kind), v in zip(CASES, verdicts):
            if (v is True) != e:
                print(f"      {name} wrong on {kind}: pred {p!r} gold {g!r} -> {v}")


def _perturbations():
    def plus_one(a):
        m = re.search(r"\d+", a)
        return None if not m else a[:m.start()] + str(int(m.group()) + 1) + a[m.end():]

    def flip_sign(a):
        if a.strip() == "0":
            return None  # -0 is 0: not a perturbation
        m = re.search(r"(?<![\w\\])-?(?=[\d\\(a-zA-Z])", a)
        if not m:
            return None
        return a[:m.start()] + a[m.end():] if a[m.start():m.end()] == "-" else a[:m.start()] + "-" + a[m.start():]

    def drop_term(a):
        depth, cut = 0, None
        for i, ch in enumerate(a):
            depth += ch in "{([" and 1 or 0
            depth -= ch in "})]" and 1 or 0
            if depth == 0 and ch in "+-," and i > 0 and a[i - 1] not in "^_{(,=":
                cut = i
        return None if cut is None or not a[:cut].strip() else a[:cut].rstrip()

    return {"+1": plus_one, "sign": flip_sign, "dropped term": drop_term}


def math500(pool) -> list[tuple[str, str]]:
    from qwq.verify.extract import gold_answer
    from qwq.verify.math import _check_in_worker

    rows = [json.loads(line) for line in (_shared_data() / "math500" / "test.jsonl").read_text().splitlines()]
    golds = [gold_answer(r["answer"]) for r in rows]
    print("\n2. MATH-500 golds")
    t0 = time.perf_counter()
    same = pool.map(_check_in_worker, [(g, g, False) for g in golds], timeout=20.0)
    wall = time.perf_counter() - t0
    print(f"   gold vs itself through the parser: {sum(o.ok and o.value[0] is True for o in same)}/{len(golds)}"
          f" accepted ({len(golds) / wall:.0f} pairs/s)")
    all_pairs = []
    for name, perturb in _perturbations().items():
        pairs = [(g, p) for g, p in ((g, perturb(g)) for g in golds) if p is not None and p != g]
        outcomes = pool.map(_check_in_worker, pairs, timeout=20.0)
        rejected = sum(o.ok and o.value[0] is False for o in outcomes)
        print(f"   perturbed ({name:>12}): {rejected}/{len(pairs)} rejected ({100 * rejected / len(pairs):.1f}%)")
        all_pairs += pairs
    return all_pairs


def throughput(pool, pairs, workers: int, code_samples: int, rules_samples: int) -> None:
    from qwq.verify.math import _check_in_worker, verify_math_batch

    print(f"\n3. throughput ({workers} worker processes)")
    t0 = time.perf_counter()
    pool.map(_check_in_worker, [(g, p, False) for g, p in pairs], timeout=20.0)
    ours = len(pairs) / (time.perf_counter() - t0)
    sample = pairs[:300]
    t0 = time.perf_counter()
    for g, p in sample:
        _raw_math_verify(g, p)
    raw = len(sample) / (time.perf_counter() - t0)
    print(f"   math, sympy path (parse + compare every pair): {ours:7.1f} samples/s   "
          f"[peer: raw math-verify, 1 process: {raw:.1f}/s]")

    gsm = [json.loads(line) for line in (_shared_data() / "gsm8k" / "test.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (_shared_data() / "math500" / "test.jsonl").read_text().splitlines()]
    completions = [f"thinking</think>The answer is {r['answer'].split('####')[-1].strip()}." for r in gsm]
    completions += [f"thinking</think>{r['answer']}" for r in rows]
    golds = [r["answer"] for r in gsm] + [r["answer"] for r in rows]
    t0 = time.perf_counter()
    verify_math_batch(completions, golds, pool=pool)
    print(f"   math, end to end (GSM8K + MATH-500 completions): "
          f"{len(completions) / (time.perf_counter() - t0):7.1f} samples/s")

    if code_samples:
        from qwq.verify.code import verify_code_batch

        tests = [[{"input": f"{i}\n", "output": f"{2 * i}\n"}, {"input": "7\n", "output": "14\n"}]
                 for i in range(code_samples)]
        programs = ["ok</think>```python\nprint(int(input()) * 2)\n```"] * code_samples
        verify_code_batch(programs[:2], tests[:2], workers=workers)  # start the sandbox's fork server
        t0 = time.perf_counter()
        results = verify_code_batch(programs, tests, workers=workers)
        wall = time.perf_counter() - t0
        assert all(r.correct for r in results), [r for r in results if not r.correct][:2]
        print(f"   code (sandbox judge, 2 stdio tests each):     {code_samples / wall:7.1f} samples/s")

    from qwq.verify.registry import build_reward

    reward = build_reward(["format", "language_consistency", "repetition", "ifeval"], none_policy="skip")
    text = "Let me think about it carefully.</think>" + "Here is a short answer without commas. " * 20
    n = rules_samples
    fields = {"instruction_id_list": [["punctuation:no_comma", "length_constraints:number_words",
                                       "detectable_format:title"]] * n,
              "kwargs": [[{}, {"num_words": 50, "relation": "at least"}, {}]] * n, "prompt": ["Answer."] * n}
    t0 = time.perf_counter()
    reward([text] * n, **fields)
    print(f"   rules (format+language+repetition+3 IFEval):  {n / (time.perf_counter() - t0):7.1f} samples/s "
          "(in-process, no pool)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--code-samples", type=int, default=40)
    parser.add_argument("--rules-samples", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    from qwq.verify.math import math_pool

    pool = math_pool(workers=args.workers)
    pool.map(len, [("warm",)] * args.workers)  # start the workers before timing anything
    table_quality(pool)
    pairs = math500(pool)
    throughput(pool, pairs, args.workers, args.code_samples, args.rules_samples)


if __name__ == "__main__":
    main()
