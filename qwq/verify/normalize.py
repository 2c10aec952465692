"""Text-level normalisation of answers and the exact decimal rules. Pure Python: no sympy, safe in any process."""

from __future__ import annotations

import re
from fractions import Fraction

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\circ|\\degree")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_DECIMAL_LITERAL = re.compile(r"(?<![\d.])\d*\.(\d+)(?![\d.])")
_PERCENT_SUFFIX = re.compile(r"(?:\\%|%|\\text\{\s*\\?%\s*\}|\s*\\?text\{\s*percent\s*\}|\s+percent)$")


def normalize_answer_text(answer: str) -> str:
    """A canonical spelling for comparing answers as text: spacing, \\left/\\right, \\dfrac, \\text{} wrappers,
    degree marks, dollar signs and a trailing period do not matter; case does."""
    s = answer.strip()
    s = s.strip("$").strip()
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING.sub("", s)
    for _ in range(3):  # nested wrappers such as \text{\textbf{x}}
        s = _TEXT_WRAPPERS.sub(r"\1", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("\\displaystyle", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    if re.fullmatch(r"\(([A-Za-z])\)", s):  # a choice letter written as (C)
        s = s[1]
    return s


def split_percent(answer: str) -> tuple[str, bool]:
    """("12.5\\%" -> ("12.5", True)); the percent sign is handled by the comparison, not by the parser."""
    s = answer.strip().rstrip(".").strip()
    stripped = _PERCENT_SUFFIX.sub("", s)
    return (stripped.strip(), True) if stripped != s else (s, False)


def plain_number(answer: str) -> Fraction | None:
    """The exact value of an answer that is just a number ("1,000", "-0.25", "$18.90"), else None."""
    s = normalize_answer_text(answer)
    s = s.replace("{,}", ",")
    if not _PLAIN_NUMBER.fullmatch(s):
        return None
    return Fraction(s.replace(",", ""))


def decimal_places(answer: str) -> int | None:
    """Digits after the point of the one decimal number written in the answer; None if there is not exactly one."""
    literals = _DECIMAL_LITERAL.findall(answer.replace("{,}", "").replace(",", ""))
    return len(literals[0]) if len(literals) == 1 else None


def _exponent_group(text: str, caret: int) -> str:
    i = caret + 1
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        depth = 0
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i + 1:j]
        return text[i + 1:]
    match = re.match(r"\\?[A-Za-z]+|\d+|.", text[i:])
    return match.group(0) if match else ""


def has_exponent_tower(answer: str) -> bool:
    """Does a numeric exponent itself hold an exponent (9^{9^{9^9}})? Such towers can make sympy compute numbers with
    hundreds of millions of digits, so a prediction with one is refused unless the gold has one too."""
    for m in re.finditer(r"\^", answer):
        exponent = _exponent_group(answer, m.start())
        if ("^" in exponent or "**" in exponent) and not re.search(r"[A-Za-z]", exponent):
            return True  # numeric towers only: e^{x^2} is a formula, not a number to evaluate
    return False


DECIMAL_REL_TOL = Fraction(2, 10**4)  # a decimal approximation needs about 4 correct significant digits


def decimal_approximates(gold: Fraction, pred: Fraction, gold_places: int | None, pred_places: int | None) -> bool:
    """May two exactly different values still count as equal because one is a written decimal approximation?

    - both written as decimals: only when they have different numbers of digits and the longer one rounds to the
      shorter one (0.1234567 vs 0.1234568 is a near miss, 3.1416 vs 3.14 is the same rounded answer);
    - one decimal against an exact value: the decimal must be the rounding or the truncation of the exact value at
      the digits written, and within 2e-4 relative (0.3333 for 1/3 passes, 0.3 or 0.33 does not).
    """
    if gold_places is not None and pred_places is not None:
        if gold_places == pred_places:
            return False
        coarse, coarse_places, fine = ((gold, gold_places, pred) if gold_places < pred_places
                                       else (pred, pred_places, gold))
        return abs(fine - coarse) <= Fraction(1, 2 * 10**coarse_places)
    if gold_places is None and pred_places is None:
        return False
    decimal, places, exact = (pred, pred_places, gold) if pred_places is not None else (gold, gold_places, pred)
    if exact == 0 or abs(decimal - exact) > DECIMAL_REL_TOL * abs(exact):
        return False
    scale = 10**places
    magnitude = abs(exact) * scale
    rounded = int(magnitude + Fraction(1, 2))
    truncated = int(magnitude)
    sign = 1 if exact > 0 else -1
    return decimal in (Fraction(sign * rounded, scale), Fraction(sign * truncated, scale))


def plain_numbers_equal(gold: str, pred: str) -> bool | None:
    """Decide two plain numbers without sympy: True / False, or None when either is not a plain number."""
    g, p = plain_number(gold), plain_number(pred)
    if g is None or p is None:
        return None
    if g == p:
        return True
    return decimal_approximates(g, p, decimal_places(gold), decimal_places(pred))
