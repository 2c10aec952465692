"""Metrics against hand-computed values."""

import math

import pytest

from qwq.eval import metrics
from qwq.eval.metrics import (ProblemScores, accuracy_stats, cost_usd, maj_at_k, majority_vote, pass_at_k,
                              summarize)
from qwq.eval.signals import is_looping, mixes_language


@pytest.mark.parametrize("n,c,k,expected", [
    (5, 2, 1, 0.4),            # 1 - C(3,1)/C(5,1) = 1 - 3/5
    (5, 2, 2, 0.7),            # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 4, 1.0),            # fewer than k wrong samples: some k-subset always holds a right one
    (10, 3, 3, 1 - 35 / 120),  # 1 - C(7,3)/C(10,3)
    (4, 0, 2, 0.0),
    (4, 4, 1, 1.0),
    (64, 16, 1, 0.25),         # pass@1 is the plain fraction
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_product_form():
    # Chen et al.'s numerically stable form: 1 - prod_{i=n-c+1}^{n} (1 - k/i)
    for n, c, k in [(16, 5, 3), (64, 10, 8), (8, 1, 8)]:
        product = 1.0
        for i in range(n - c + 1, n + 1):
            product *= 1 - k / i
        assert pass_at_k(n, c, k) == pytest.approx(1 - product, abs=1e-12)


@pytest.mark.parametrize("args", [(3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


@pytest.mark.parametrize("answers,correct,expected", [
    (["5", "5", "7"], [True, True, False], 1.0),
    (["5", "7", "7"], [True, False, False], 0.0),
    (["5", "7"], [True, False], 0.5),                        # two-way tie: expected value of a coin flip
    (["5", "7", "9"], [True, False, False], 1 / 3),          # three-way tie
    (["7", "8", "8", "5"], [False, False, False, True], 0.0),
    ([None, None, "7"], [False, False, False], 0.0),        # samples without an answer do not vote
    ([None, None, "5"], [False, False, True], 1.0),
    (["1/2", "0.5", "3", "3"], [True, True, False, False], 0.5),  # right answers are one answer, any spelling
    (["1/2", "0.5", "3"], [True, True, False], 1.0),
    ([None, None], [False, False], 0.0),
    (["5", "5", "7", "7"], [True, None, False, False], 0.0),  # an unscorable sample does not vote either
])
def test_majority_vote_and_ties(answers, correct, expected):
    assert majority_vote(answers, correct) == pytest.approx(expected)


def test_maj_at_k_averages_disjoint_groups():
    answers, correct = ["5", "7", "5", "5"], [True, False, True, True]
    assert maj_at_k(answers, correct, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert maj_at_k(answers, correct, 4) == 1.0
    assert maj_at_k(answers, correct, 3) == 1.0  # one group of 3; the 4th sample is left out
    assert maj_at_k(answers, correct, 1) == pytest.approx(3 / 4)  # maj@1 = pass@1
    with pytest.raises(ValueError):
        maj_at_k(answers, correct, 5)


def test_accuracy_stats_hand_computed():
    problems = [ProblemScores(str(i), tuple(c), ("x",) * 4) for i, c in enumerate([
        [True, True, True, False], [True, True, False, False], [True, False, False, False], [False, True, False, True]])]
    stats = accuracy_stats(problems)
    assert stats["mean"] == pytest.approx(0.5)
    se = math.sqrt(0.125 / 3) / 2  # sample sd of (.75, .5, .25, .5) over sqrt(4)
    assert stats["stderr"] == pytest.approx(se)
    assert stats["ci95"] == pytest.approx([0.5 - 1.959963984540054 * se, 0.5 + 1.959963984540054 * se])
    # conditional on the problems: sqrt(sum_i p_i (1 - p_i) / (n_i - 1)) / P
    assert stats["sampling_stderr"] == pytest.approx(math.sqrt(0.1875 / 3 * 2 + 0.25 / 3 * 2) / 4)
    assert problems[0].variance == pytest.approx(0.1875)


def test_unscorable_samples_are_left_out_not_wrong():
    problem = ProblemScores("a", (True, None, False, None), ("1", None, "2", None))
    assert (problem.n, problem.c, problem.accuracy) == (2, 1, 0.5)


def test_summarize_rates_tokens_and_cost():
    records = [
        {"item_id": "a", "sample": 0, "correct": True, "answer_key": "1", "finish_reason": "stop",
         "prompt_tokens": 1000, "completion_tokens": 3000, "reasoning_tokens": 2500, "answer_tokens": 500,
         "looped": False, "language_mixed": False},
        {"item_id": "a", "sample": 1, "correct": False, "answer_key": None, "finish_reason": "length",
         "prompt_tokens": 1000, "completion_tokens": 3000, "reasoning_tokens": 3000, "answer_tokens": 0,
         "looped": True, "language_mixed": True},
        {"item_id": "b", "sample": 0, "correct": False, "answer_key": "3", "finish_reason": "stop",
         "prompt_tokens": 500, "completion_tokens": 1000, "reasoning_tokens": 900, "answer_tokens": 100,
         "looped": False, "language_mixed": None},
        {"item_id": "b", "sample": 1, "correct": True, "answer_key": "4", "finish_reason": "stop",
         "prompt_tokens": 500, "completion_tokens": 1000, "reasoning_tokens": 800, "answer_tokens": 200,
         "looped": False, "language_mixed": False},
    ]
    s = summarize(records)
    assert s["problems"] == 2 and s["samples"] == 4
    assert s["pass@1"] == pytest.approx(0.5)
    assert s["pass@k"] == {"1": pytest.approx(0.5), "2": pytest.approx(1.0)}
    assert s["maj@k"]["2"] == pytest.approx((1.0 + 0.5) / 2)  # a: only "1" votes; b: tie "3"/"4"
    assert s["truncation_rate"] == pytest.approx(0.25)
    assert s["loop_rate"] == pytest.approx(0.25)
    assert s["language_mixing_rate"] == pytest.approx(1 / 3)  # the unknown one does not count
    assert s["tokens"]["mean_reasoning_tokens"] == pytest.approx((2500 + 3000 + 900 + 800) / 4)
    assert s["tokens"]["max_completion_tokens"] == 3000
    assert s["input_tokens"] == 3000 and s["output_tokens"] == 8000
    assert s["cost_usd"] == pytest.approx(3000 / 1e6 * 0.66 + 8000 / 1e6 * 1.00)
    assert cost_usd(1_000_000, 1_000_000) == pytest.approx(1.66)
    assert cost_usd(2_000_000, 500_000, price_in=0.5, price_out=2.0) == pytest.approx(2.0)


def test_default_ks():
    assert metrics.default_ks(1) == [1]
    assert metrics.default_ks(8) == [1, 2, 4, 8]
    assert metrics.default_ks(6) == [1, 2, 4, 6]


def test_loop_signal():
    paragraph = "Let me check the sum again. Adding the numbers gives twelve, so the total is twelve. "
    assert is_looping("Some reasoning first. " * 3 + paragraph * 30)
    prose = " ".join(f"step {i}: multiply {i} by {i + 3} to get {i * (i + 3)} and carry on." for i in range(120))
    assert not is_looping(prose)
    assert not is_looping("short answer")


def test_language_mixing_signal():
    english = "We need to find the value of x. Since x squared equals four, x is two. " * 5
    assert not mixes_language(english, "latin")
    assert mixes_language(english + "所以答案是二，这个问题很简单。", "latin")
    assert not mixes_language(english + " Let θ and α be angles with α + β = π.", "latin")  # math Greek
    assert not mixes_language("我们需要求出x的值。答案是二。", "han")
    assert not mixes_language(english + " 二", "latin")  # a stray symbol is not a mixed language
