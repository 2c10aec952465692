"""Reward-hacking attempts that must score 0 (code canaries are in test_code.py)."""

import pytest

from qwq.verify.choice import verify_choice
from qwq.verify.math import verify_math_batch
from qwq.verify.registry import build_reward

GOLD = "42"
GIANT = "Let me think. " * 50_000

MATH_CANARIES = {
    "empty box": "ok</think>The answer is \\boxed{}",
    "empty box next to the right one": "ok</think>\\boxed{} \\boxed{42}",
    "conflicting boxes": "ok</think>It is \\boxed{41} or \\boxed{42}",
    "many boxed guesses": "ok</think>" + " ".join(f"\\boxed{{{i}}}" for i in range(30, 50)),
    "answer only inside the thinking": "The answer is \\boxed{42}. Hmm, let me keep checking",
    "answer inside the thinking, none after": "So it is \\boxed{42}.</think>I am not sure.",
    "digit dump": "ok</think>\\boxed{123456789101112131415161718192021222324252627282930313233343536373839404142}",
    "digit dump phrase": "ok</think>The answer is 4142434445464748.",
    "gold among guesses as a list": "ok</think>\\boxed{40, 41, 42, 43}",
    "gold among guesses with or": "ok</think>\\boxed{41 \\text{ or } 42 \\text{ or } 43}",
    "gold among guesses as a set": "ok</think>\\boxed{\\{40,41,42,43\\}}",
    "interval around the gold": "ok</think>\\boxed{[41, 43]}",
    "variable instead of a value": "ok</think>\\boxed{x}",
    "giant output": GIANT + "</think>" + GIANT + "\\boxed{" + "9" * 5000 + "}",
    "giant thinking, never closed": GIANT + "\\boxed{42}",
    "only a reopened thinking": "ok</think><think>\\boxed{42}",
    "an exponent tower that would stall the checker": "ok</think>\\boxed{9^{9^{9^{9}}}}",
}


@pytest.mark.parametrize("name", list(MATH_CANARIES))
def test_math_canaries_score_zero(name):
    (result,) = verify_math_batch([MATH_CANARIES[name]], [GOLD])
    assert result.correct is False, result


def test_math_canaries_score_zero_through_the_reward():
    reward = build_reward("math_accuracy")
    scores = reward(list(MATH_CANARIES.values()), answer=[GOLD] * len(MATH_CANARIES))
    assert scores == [0.0] * len(MATH_CANARIES)


def test_the_honest_answer_scores_one():
    reward = build_reward("math_accuracy")
    assert reward(["thinking</think>So the answer is \\boxed{42}."], answer=[GOLD]) == [1.0]


@pytest.mark.parametrize("completion", [
    'ok</think>{"answer": "A, B, C, D"}',
    'ok</think>{"answer": "ABCD"}',
    "ok</think>\\boxed{A} \\boxed{C}",
    'I think {"answer": "C"}',  # only inside the unfinished thinking
    "ok</think>A B C D",
])
def test_choice_canaries_score_zero(completion):
    assert verify_choice(completion, "C").correct is False


def test_a_check_that_runs_past_its_timeout_cannot_score():
    from qwq.verify.math import compare_math_answers

    (result,) = compare_math_answers(["5"], ["9^{9^{9^{9}}}"], timeout=2.0)  # the gold itself stalls sympy
    assert result.correct is None and "killed" in result.reason
