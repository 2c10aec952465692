"""Units against variables: a unit written after a number is dropped ("5\\text{ cm}" is 5), a letter used in the
formula is kept ("9 / t" is 9/t, not 9 tonnes). Decided in-process by check_pair (both sides parsed)."""

import string

import pytest

from qwq.verify.math import verify_math_batch
from qwq.verify.math_equiv import check_pair
from qwq.verify.normalize import strip_units

LETTERS = list(string.ascii_lowercase)  # e and i too: as the constants e and i, 9/L and 9*L still differ


def _same(gold: str, pred: str) -> bool | None:
    return check_pair(gold, pred, text_shortcut=False)[0]


@pytest.mark.parametrize("letter", LETTERS)
def test_a_single_letter_is_a_variable_not_a_unit(letter):
    L = letter
    assert _same(f"9 * {L}", f"9 / {L}") is False
    assert _same(f"9 / {L}", f"9 * {L}") is False
    assert _same(f"({L} - 5) / 3", f"({L} - 5) / 3") is True
    assert _same(f"{L} + 5", f"{L} - 5") is False
    assert _same(f"2{L}", "2") is False
    assert _same(f"3 * {L}", "3") is False


@pytest.mark.parametrize("gold, pred, expected", [
    ("9 * t", "9t", True), ("t - 5", "-5 + t", True), ("(t - 5) / 3", "\\frac{t - 5}{3}", True),
    ("(t - 5) / 3", "\\frac{t}{3} - \\frac{5}{3}", True), ("(t - 5) / 3", "(t + 5) / 3", False),
    ("3 * m", "3m", True), ("2m + 1", "1 + 2m", True), ("2m + 1", "2m", False), ("\\frac{s}{2}", "s / 2", True),
    ("\\frac{s}{2}", "\\frac{1}{2}", False), ("x + t", "t + x", True), ("x + t", "x", False),
    ("2ab", "2", False), ("2ab", "2ba", True), ("2 ab", "2", False), ("\\frac{1}{2}bc", "\\frac{1}{2}", False),
    ("9t \\text{ dollars}", "9t", True), ("9t \\text{ dollars}", "9", False),
    ("3 + 4\\mathrm{i}", "7", False), ("2\\mathrm{e}", "2", False), ("2\\mathbf{v}", "2", False),
])
def test_letters_in_formulas_are_kept(gold, pred, expected):
    assert _same(gold, pred) is expected


@pytest.mark.parametrize("with_unit, number", [
    ("5 cm", "5"), ("5cm", "5"), ("5\\text{ cm}", "5"), ("5 \\text{cm}", "5"), ("10 \\mathrm{m}", "10"),
    ("12 \\mathrm{kg}", "12"), ("12 \\text{ cm}", "12"), ("3 hours", "3"), ("1 hour", "1"), ("7 apples", "7"),
    ("4 \\mbox{ inches}", "4"), ("864 \\mbox{ inches}^2", "864"), ("15\\mbox{ cm}^2", "15"),
    ("5 \\text{ cm}^{2}", "5"), ("3 \\, \\text{cm}^2", "3"), ("5 cm^2", "5"), ("5.4 \\text{ cents}", "5.4"),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"), ("\\frac{1}{2} cup", "\\frac{1}{2}"),
    ("2\\sqrt{3} cm", "2\\sqrt{3}"), ("18 \\text{ dollars}", "18"), ("3 m/s", "3"), ("3\\text{ m/s}", "3"),
    ("60 km/h", "60"), ("9.8 m/s^2", "9.8"), ("100\\text{ km/h}", "100"), ("2 \\text{m}/\\text{s}", "2"),
    ("x = 5 \\text{ cm}", "5"), ("20 \\text{ cm}", "\\frac{40}{2}"),
])
def test_units_after_a_number_are_dropped(with_unit, number):
    assert _same(with_unit, number) is True
    assert _same(number, with_unit) is True
    assert _same(with_unit, f"{number} + 1") is False


@pytest.mark.parametrize("gold, pred", [
    ("5 m", "5"),  # a bare single letter is a variable even after a number: write \text{ m} for metres
    ("5 million", "5"), ("3 dozen", "3"),  # number words are not units
    ("5 cm", "6"), ("5\\text{ cm}", "6 \\text{ cm}"),
])
def test_not_units(gold, pred):
    assert _same(gold, pred) is False


@pytest.mark.parametrize("text, stripped", [
    ("5\\text{ cm}", "5"), ("5 cm", "5"), ("3 m/s", "3"), ("864 \\mbox{ inches}^2", "864"), ("x = 5 cm", "x = 5"),
    ("9 / t", "9 / t"), ("2t", "2t"), ("5 m", "5 m"), ("2ab", "2ab"), ("x + \\text{cm}", "x + \\text{cm}"),
    ("\\text{Evelyn}", "\\text{Evelyn}"), ("Evelyn", "Evelyn"), ("3 + 4\\mathrm{i}", "3 + 4\\mathrm{i}"),
    ("2 \\pi", "2 \\pi"), ("x \\in", "x \\in"), ("5 million", "5 million"), ("", ""),
])
def test_strip_units_text(text, stripped):
    assert strip_units(text) == stripped


def test_the_reported_reward_bug_through_the_pool():
    results = verify_math_batch(["x</think>\n\n\\boxed{9 / t}", "x</think>\n\n\\boxed{9t}"], ["9 * t", "9 * t"])
    assert [r.correct for r in results] == [False, True]
