"""Acceptance on real data: MATH-500, GSM8K and AIME gold answers verify against themselves and fail perturbed."""

import json
import re

import pytest

from qwq.verify.extract import gold_answer
from qwq.verify.math import _check_in_worker, math_pool, verify_math_batch


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def math500(shared_data):
    return _rows(shared_data / "math500" / "test.jsonl")


def _plus_one(answer: str) -> str | None:
    match = re.search(r"\d+", answer)
    if not match:
        return None
    return answer[:match.start()] + str(int(match.group()) + 1) + answer[match.end():]


def _flip_sign(answer: str) -> str | None:
    if answer.strip() == "0":
        return None  # -0 is 0: not a perturbation
    match = re.search(r"(?<![\w\\])-?(?=[\d\\(a-zA-Z])", answer)
    if not match:
        return None
    if answer[match.start():match.end()] == "-":
        return answer[:match.start()] + answer[match.end():]
    return answer[:match.start()] + "-" + answer[match.start():]


def _drop_term(answer: str) -> str | None:
    """Remove the last top-level '+ term', '- term' or ', item' (None when there is nothing to drop)."""
    depth, cut = 0, None
    for i, ch in enumerate(answer):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif depth == 0 and ch in "+-," and i > 0 and answer[i - 1] not in "^_{(,=":
            cut = i
    if cut is None or not answer[:cut].strip():
        return None
    return answer[:cut].rstrip()


def _check_all(pairs):
    outcomes = math_pool().map(_check_in_worker, pairs, timeout=20.0)
    return [o.value[0] if o.ok else None for o in outcomes]


def test_math500_gold_verifies_against_itself_through_the_parser(math500):
    golds = [gold_answer(r["answer"]) for r in math500]
    verdicts = _check_all([(g, g, False) for g in golds])  # text_shortcut off: both sides are parsed
    failures = [g for g, v in zip(golds, verdicts) if v is not True]
    assert not failures, failures


def test_math500_full_solutions_as_completions_verify(math500):
    completions = ["Let me work it out.\n</think>\n\n" + r["answer"] for r in math500]
    results = verify_math_batch(completions, [r["answer"] for r in math500], timeout=20.0)
    assert sum(r.correct is True for r in results) == 500, [r for r in results if r.correct is not True][:5]


@pytest.mark.parametrize("perturb", [_plus_one, _flip_sign, _drop_term])
def test_math500_perturbed_answers_are_rejected(math500, perturb):
    golds = [gold_answer(r["answer"]) for r in math500]
    pairs = [(g, p) for g, p in ((g, perturb(g)) for g in golds) if p is not None and p != g]
    assert len(pairs) >= (30 if perturb is _drop_term else 300)  # most answers are a single term
    verdicts = _check_all(pairs)
    rejected = sum(v is False for v in verdicts)
    accepted = [pair for pair, v in zip(pairs, verdicts) if v is not False]
    assert rejected / len(pairs) >= 0.98, accepted


def test_gsm8k_gold_answers_verify_and_perturbed_fail(shared_data):
    rows = _rows(shared_data / "gsm8k" / "test.jsonl")
    finals = [gold_answer(r["answer"]) for r in rows]
    same = verify_math_batch([f"ok</think>The answer is {f}." for f in finals], [r["answer"] for r in rows])
    assert all(r.correct is True for r in same)
    boxed = verify_math_batch([f"ok</think>\\boxed{{{f}}}" for f in finals], [r["answer"] for r in rows])
    assert all(r.correct is True for r in boxed)
    off = verify_math_batch([f"ok</think>\\boxed{{{_plus_one(f)}}}" for f in finals], [r["answer"] for r in rows])
    assert sum(r.correct is False for r in off) / len(rows) >= 0.98


@pytest.mark.parametrize("name", ["aime24", "aime25"])
def test_aime_integer_answers_are_exact(shared_data, name):
    rows = _rows(shared_data / "qwq-eval" / f"{name}.jsonl")
    golds = [str(r["answer"]) for r in rows]
    assert all(g.isdigit() for g in golds)
    right = verify_math_batch([f"x</think>\\boxed{{{g}}}" for g in golds], golds)
    assert all(r.correct is True for r in right)
    padded = verify_math_batch([f"x</think>\\boxed{{0{g}}}" for g in golds], golds)  # 070 is 70
    assert all(r.correct is True for r in padded)
    wrong = verify_math_batch([f"x</think>\\boxed{{{int(g) + d}}}" for g in golds for d in (-1, 1, 1000)],
                              [g for g in golds for _ in range(3)])
    assert all(r.correct is False for r in wrong)
    decimals = verify_math_batch([f"x</think>\\boxed{{{int(g) + 0.4}}}" for g in golds], golds)
    assert all(r.correct is False for r in decimals)
