"""Benchmark metrics from scored samples. Pure functions of plain data (no model, no I/O).

- pass@1 is the mean accuracy over the n samples of each problem, averaged over problems (QwQ's protocol).
- pass@k uses the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) per problem.
- maj@k (self-consistency) votes over the extracted answers of k samples; samples without an answer do not
  vote. A tie between the top answers scores the expected accuracy of breaking it at random (the share of the
  tied answers that are right), so the metric does not depend on the order samples came back in. With n > k
  the n samples are cut into n // k disjoint groups of k (in sample order) and the votes are averaged.
- Confidence: problems are the unit of sampling, so the standard error is the spread of the per-problem
  accuracies over sqrt(#problems) (a clustered standard error); the sampling error conditional on the problem
  set (what more samples per problem would remove) is reported next to it.
- Samples the verifier cannot score (`correct` None: a sandbox failure, a verifier timeout) are left out of
  every accuracy and counted apart, never read as wrong.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile
DEFAULT_PRICE_IN = 0.66  # $ per 1M input tokens (the seed's QwQ pricing)
DEFAULT_PRICE_OUT = 1.00  # $ per 1M output tokens


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c are correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool | None]) -> float:
    """Accuracy of the majority answer among one group of samples (ties: expected accuracy over the tied answers).

    `answers` are comparable answer keys (None: the sample gave no answer and does not vote); `correct[i]` says
    whether answer i is right. Every right answer equals the gold, so right answers are one answer whatever their
    spelling; wrong ones are grouped by key."""
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers for {len(correct)} verdicts")
    votes: Counter = Counter()
    right_keys: set = set()
    for answer, ok in zip(answers, correct):
        if answer is None or ok is None:
            continue
        key = ("correct",) if ok else ("wrong", answer)
        votes[key] += 1
        if ok:
            right_keys.add(key)
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [key for key, count in votes.items() if count == top]
    return sum(key in right_keys for key in tied) / len(tied)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool | None], k: int) -> float:
    """maj@k of one problem: the mean majority-vote accuracy over the n // k disjoint groups of k samples."""
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    groups = n // k
    return sum(majority_vote(answers[g * k:(g + 1) * k], correct[g * k:(g + 1) * k]) for g in range(groups)) / groups


@dataclass(frozen=True)
class ProblemScores:
    """The scored samples of one problem, in sample order."""

    item_id: str
    correct: tuple[bool | None, ...]
    answers: tuple[str | None, ...]

    @property
    def scored(self) -> list[bool]:
        return [c for c in self.correct if c is not None]

    @property
    def n(self) -> int:
        return len(self.scored)

    @property
    def c(self) -> int:
        return sum(self.scored)

    @property
    def accuracy(self) -> float | None:
        return self.c / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Bernoulli variance p(1-p) of one sample of this problem."""
        p = self.accuracy
        return None if p is None else p * (1 - p)


def group_problems(records: Iterable[Mapping]) -> list[ProblemScores]:
    """Sample records (item_id, sample, correct, answer_key) -> one ProblemScores per item, in first-seen order."""
    by_item: dict[str, list[Mapping]] = defaultdict(list)
    for record in records:
        by_item[str(record["item_id"])].append(record)
    problems = []
    for item_id, rows in by_item.items():
        rows.sort(key=lambda r: int(r.get("sample", 0)))
        problems.append(ProblemScores(item_id, tuple(r.get("correct") for r in rows),
                                      tuple(r.get("answer_key") for r in rows)))
    return problems


def accuracy_stats(problems: Sequence[ProblemScores]) -> dict:
    """pass@1 over problems with its clustered standard error, 95% interval (normal, clipped to [0, 1]) and the
    sampling error conditional on the problem set."""
    accs = [p.accuracy for p in problems if p.accuracy is not None]
    if not accs:
        return {"mean": None, "stderr": None, "ci95": None, "sampling_stderr": None, "problems": 0}
    mean = sum(accs) / len(accs)
    stderr = statistics.stdev(accs) / math.sqrt(len(accs)) if len(accs) > 1 else None
    # var(mean of p_hat_i | problems) = sum_i p_i (1 - p_i) / (n_i - 1) / P^2, with the unbiased within-problem
    # variance estimate; problems with one sample carry no information about it.
    within = [p.variance * p.n / (p.n - 1) / p.n for p in problems if p.n > 1]
    sampling = math.sqrt(sum(within)) / len(accs) if within else None
    ci = [max(0.0, mean - Z95 * stderr), min(1.0, mean + Z95 * stderr)] if stderr is not None else None
    return {"mean": mean, "stderr": stderr, "ci95": ci, "sampling_stderr": sampling, "problems": len(accs)}


def pass_at_k_mean(problems: Sequence[ProblemScores], k: int) -> float | None:
    """Mean unbiased pass@k over the problems with at least k scored samples (None if there are none)."""
    values = [pass_at_k(p.n, p.c, k) for p in problems if p.n >= k]
    return sum(values) / len(values) if values else None


def maj_at_k_mean(problems: Sequence[ProblemScores], k: int) -> float | None:
    values = []
    for p in problems:
        if len(p.correct) >= k and any(a is not None for a in p.answers):
            values.append(maj_at_k(p.answers, p.correct, k))
        elif len(p.correct) >= k:
            values.append(0.0)  # no sample gave an answer: the vote has nothing to pick
    return sum(values) / len(values) if values else None


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    if n >= 1:
        ks.append(n)
    return ks


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def token_stats(records: Sequence[Mapping]) -> dict:
    """Means (and maxima) of prompt, reasoning, answer and completion tokens per sample."""
    out = {}
    for name in ("prompt_tokens", "reasoning_tokens", "answer_tokens", "completion_tokens"):
        values = [r[name] for r in records if r.get(name) is not None]
        out[f"mean_{name}"] = mean(values)
        out[f"max_{name}"] = max(values) if values else None
    return out


def rate(records: Sequence[Mapping], flag: str) -> float | None:
    """Share of samples whose boolean `flag` is true (samples where it is None do not count)."""
    values = [bool(r[flag]) for r in records if r.get(flag) is not None]
    return mean([float(v) for v in values])


def cost_usd(input_tokens: int, output_tokens: int, price_in: float = DEFAULT_PRICE_IN,
             price_out: float = DEFAULT_PRICE_OUT) -> float:
    """Dollars for the tokens at $ per 1M input / output tokens."""
    return input_tokens / 1e6 * price_in + output_tokens / 1e6 * price_out


def summarize(records: Sequence[Mapping], *, ks: Sequence[int] | None = None, price_in: float = DEFAULT_PRICE_IN,
              price_out: float = DEFAULT_PRICE_OUT, wall_seconds: float | None = None) -> dict:
    """Every metric of one task from its scored sample records."""
    problems = group_problems(records)
    n_max = max((len(p.correct) for p in problems), default=0)
    ks = list(ks) if ks is not None else default_ks(n_max)
    accuracy = accuracy_stats(problems)
    input_tokens = sum(int(r.get("prompt_tokens") or 0) for r in records)
    output_tokens = sum(int(r.get("completion_tokens") or 0) for r in records)
    summary = {
        "problems": len(problems),
        "samples": len(records),
        "unscored": sum(1 for r in records if r.get("correct") is None),
        "pass@1": accuracy["mean"],
        "accuracy": accuracy,
        "pass@k": {str(k): pass_at_k_mean(problems, k) for k in ks if k <= n_max},
        "maj@k": {str(k): maj_at_k_mean(problems, k) for k in ks if k <= n_max},
        "per_problem": {p.item_id: {"n": p.n, "correct": p.c, "accuracy": p.accuracy, "variance": p.variance}
                        for p in problems},
        "truncation_rate": mean([float(r.get("finish_reason") == "length") for r in records]),
        "loop_rate": rate(records, "looped"),
        "language_mixing_rate": rate(records, "language_mixed"),
        "tokens": token_stats(records),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd(input_tokens, output_tokens, price_in, price_out),
        "price_per_1m": {"input": price_in, "output": price_out},
        "wall_seconds": wall_seconds,
    }
    if not any(r.get("answer_key") is not None for r in records):
        summary["maj@k"] = {}  # nothing to vote on (code, instruction following)
    return summary
