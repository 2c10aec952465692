"""The math verifier against a table of (prediction, gold, expected) cases, through the worker pool."""

from collections import Counter

from qwq.verify.math import compare_math_answers

from .math_cases import CASES


def test_table_is_big_and_covers_tricky_equivalences_and_near_misses():
    kinds = Counter(kind for *_, kind in CASES)
    assert len(CASES) >= 150
    assert kinds["tricky"] >= 20 and kinds["near_miss"] >= 20


def test_every_table_case():
    preds = [p for p, _, _, _ in CASES]
    golds = [g for _, g, _, _ in CASES]
    results = compare_math_answers(preds, golds, timeout=20.0)
    wrong = [(kind, p, g, expected, r.correct, r.reason)
             for (p, g, expected, kind), r in zip(CASES, results) if r.correct is not expected]
    assert not wrong, "\n".join(map(str, wrong))
