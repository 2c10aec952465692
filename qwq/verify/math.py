"""Math accuracy: extract the final answer of a completion and check it against the gold answer.

    verify_math(completion, gold) -> MathResult            # one sample
    verify_math_batch(completions, golds) -> [MathResult]  # many, checks spread over the worker pool
    compare_math_answers(preds, golds) -> [MathResult]     # already-extracted answers (no thinking handling)

`MathResult.correct` is True / False, or None when the verifier cannot judge (the gold does not parse, or the
check ran past its timeout and was killed). Trivial pairs (same text, two plain numbers) are decided in this
process; everything that needs sympy runs in the killable worker pool (pool.py), never here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from qwq.verify.extract import answer_region, extract_math_answer, gold_answer
from qwq.verify.normalize import has_exponent_tower, normalize_answer_text, plain_numbers_equal
from qwq.verify.pool import OK, TIMEOUT, SubprocessPool, shared_pool

DEFAULT_TIMEOUT_S = 5.0
_WORKER_MODULES = ("qwq.verify.math_equiv",)


@dataclass(frozen=True)
class MathResult:
    correct: bool | None
    pred_answer: str | None
    gold_answer: str | None
    reason: str

    @property
    def score(self) -> float | None:
        """1.0 / 0.0, or None (cannot score: masked downstream, never counted as wrong)."""
        return None if self.correct is None else float(self.correct)

    def to_dict(self) -> dict:
        return asdict(self)


def math_pool(timeout: float = DEFAULT_TIMEOUT_S, workers: int | None = None) -> SubprocessPool:
    """The process-wide pool of math workers (sympy and math-verify preloaded)."""
    return shared_pool(preload=_WORKER_MODULES, workers=workers, timeout=timeout)


def _check_in_worker(gold: str, pred: str, text_shortcut: bool = True):
    from qwq.verify.math_equiv import check_pair

    return check_pair(gold, pred, text_shortcut)


def _decide_locally(gold: str, pred: str) -> tuple[bool, str] | None:
    if normalize_answer_text(gold) == normalize_answer_text(pred):
        return True, "same text after normalisation"
    verdict = plain_numbers_equal(gold, pred)
    if verdict is not None:
        return verdict, "equal numbers" if verdict else "different numbers"
    if has_exponent_tower(pred) and not has_exponent_tower(gold):
        return False, "the answer is an exponent tower (the gold is not): refused, it could stall the checker"
    return None


def _compare_pairs(pairs: Sequence[tuple[str, str]], timeout: float,
                   pool: SubprocessPool | None) -> list[tuple[bool | None, str]]:
    """(gold, pred) answer pairs -> (verdict, reason), identical pairs checked once."""
    verdicts: dict[tuple[str, str], tuple[bool | None, str]] = {}
    remote: list[tuple[str, str]] = []
    for pair in dict.fromkeys(pairs):
        local = _decide_locally(*pair)
        if local is not None:
            verdicts[pair] = local
        else:
            remote.append(pair)
    if remote:
        pool = pool or math_pool(timeout)
        for pair, outcome in zip(remote, pool.map(_check_in_worker, remote, timeout=timeout)):
            if outcome.status == OK:
                verdicts[pair] = tuple(outcome.value)
            elif outcome.status == TIMEOUT:
                verdicts[pair] = (None, f"the check ran past {timeout:g}s and was killed")
            else:
                verdicts[pair] = (None, f"the check failed ({outcome.status}): {outcome.error}")
    return [verdicts[p] for p in pairs]


def compare_math_answers(preds: Sequence[str | None], golds: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S,
                         pool: SubprocessPool | None = None) -> list[MathResult]:
    """Check already-extracted answers (one candidate each; None = no answer, scores False)."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} gold answers")
    pairs = [(g, p) for p, g in zip(preds, golds) if p]
    verdicts = iter(_compare_pairs(pairs, timeout, pool))
    results = []
    for p, g in zip(preds, golds):
        if not p:
            results.append(MathResult(False, None, g, "no answer"))
        else:
            correct, reason = next(verdicts)
            results.append(MathResult(correct, p, g, reason))
    return results


def verify_math_batch(completions: Sequence[str], golds: Sequence[str], *, starts_in_reasoning: bool = True,
                      timeout: float = DEFAULT_TIMEOUT_S, pool: SubprocessPool | None = None) -> list[MathResult]:
    """Extract each completion's answer (after `</think>`) and check it against its gold (an answer, or a full
    solution whose last `\\boxed{}` / `####` is the answer). Several distinct boxed answers must all be right."""
    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions for {len(golds)} gold answers")
    plans = []  # per sample: (gold answer, extraction or a final result)
    pairs: list[tuple[str, str]] = []
    for completion, gold in zip(completions, golds):
        gold_ans = gold_answer(gold) if gold else ""
        region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
        if not gold_ans:
            plans.append(MathResult(None, None, None, "no gold answer"))
        elif not region.finished:
            plans.append(MathResult(False, None, gold_ans, "the thinking never closed: no answer"))
        else:
            extraction = extract_math_answer(region.text)
            if not extraction.answers:
                plans.append(MathResult(False, None, gold_ans, extraction.reason or "no answer"))
            else:
                plans.append((gold_ans, extraction))
                pairs.extend((gold_ans, candidate) for candidate in extraction.distinct)
    verdicts = dict(zip(pairs, _compare_pairs(pairs, timeout, pool)))
    results = []
    for plan in plans:
        if isinstance(plan, MathResult):
            results.append(plan)
            continue
        gold_ans, extraction = plan
        checks = [verdicts[(gold_ans, c)] for c in extraction.distinct]
        final = extraction.answer
        if len(checks) == 1:
            results.append(MathResult(checks[0][0], final, gold_ans, checks[0][1]))
        elif any(v is False for v, _ in checks):
            results.append(MathResult(False, final, gold_ans,
                                      f"{len(checks)} different boxed answers and not all of them are right"))
        elif any(v is None for v, _ in checks):
            results.append(MathResult(None, final, gold_ans, "; ".join(r for v, r in checks if v is None)))
        else:
            results.append(MathResult(True, final, gold_ans, f"{len(checks)} boxed answers, all equivalent"))
    return results


def verify_math(completion: str, gold: str, *, starts_in_reasoning: bool = True,
                timeout: float = DEFAULT_TIMEOUT_S, pool: SubprocessPool | None = None) -> MathResult:
    return verify_math_batch([completion], [gold], starts_in_reasoning=starts_in_reasoning, timeout=timeout,
                             pool=pool)[0]
