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


# Units. math-verify's own unit stripping (latex2sympy2_extended, NormalizationConfig(units=True)) drops any word
# of its list -- single letters such as t, m, s, g, h, l, c, d, o among them -- when it ends the answer after a digit,
# a brace or a space, so "9 / t" became 9 and "2t" became 2. Ours keeps a letter that takes part in the formula:
# - a \text / \mathrm / \mbox group at the end is a unit (a variable is never written upright), with an exponent
#   (cm^2) and joined by / or \cdot to more groups (\text{m}/\text{s}); e and i are the constants, never units;
# - a plain word is a unit only after a number: a word we know as a unit (cm, kg, mph...; glued on as in "5cm" too),
#   or any word of three letters or more set off by a space ("3 hours", "7 apples"), never a number word
#   ("5 million"); single letters only inside a compound with another unit or a slash ("3 m/s", "sq m").
# A bare single letter is always a variable: "5 m" is 5m, write "5\text{ m}" for metres.
_UNIT_GROUP = re.compile(r"\\(?:text|textrm|textnormal|mathrm|mbox)\s*\{([^{}]*)\}"
                         r"(?:\s*\^\s*(?:\{\s*-?\d\s*\}|\d))?(?:\s|\\[,;:! ]|~)*$")
_UNIT_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9 ./^\-]*")
_UNIT_JOIN = re.compile(r"(?:/|\\cdot)(?:\s|\\[,;:! ]|~)*$")
_TRAILING_SPACE = re.compile(r"(?:\s|\\[,;:! ]|\\q?quad|~)+$")
_PLAIN_WORD = r"[A-Za-z]+(?:\s*\^\s*(?:\{\s*-?\d\s*\}|\d))?"
_PLAIN_UNIT = re.compile(rf"(?<![A-Za-z\\])({_PLAIN_WORD}(?:\s*/\s*{_PLAIN_WORD}|\s+{_PLAIN_WORD})*)\s*$")
_OPERATOR_END = re.compile(r"(?:[-+*/^_=(\[{,<>|]|\\(?:cdot|times|div|pm|mp|in|le|ge|leq|geq|neq|lt|gt))$")
_KNOWN_UNITS = frozenset("""
    mm cm dm km nm um kg mg ml mL cl dl ft yd mi oz lb lbs hr hrs min mins sec secs ms mph kph kmh sq cu cc gal
    """.split())
_SI_LETTERS = frozenset("mshglLNJWKV")
_NUMBER_WORDS = frozenset("hundred hundreds thousand thousands million millions billion billions trillion trillions "
                          "dozen dozens half halves quarter quarters thirds".split())


def _is_unit_word(word: str, spaced: bool) -> bool:
    if word in _KNOWN_UNITS or (word.endswith("s") and word[:-1] in _KNOWN_UNITS):
        return True
    return spaced and len(word) >= 3 and word.lower() not in _NUMBER_WORDS


def _strip_unit_groups(text: str) -> str:
    stripped, rest = text, text
    while (m := _UNIT_GROUP.search(rest)) is not None:
        content = m.group(1).strip()
        if not _UNIT_TEXT.fullmatch(content) or content in ("e", "i"):
            break
        rest = rest[:m.start()]
        join = _UNIT_JOIN.search(rest)
        if join is not None and _UNIT_GROUP.search(rest[:join.start()]):
            rest = rest[:join.start()]  # \text{m}/\text{s}: the part before the slash is a unit too
            continue
        stripped = rest
        break
    head = _TRAILING_SPACE.sub("", stripped)
    if stripped is text or not head or _OPERATOR_END.search(head):
        return text
    return head


def _strip_plain_unit(text: str) -> str:
    m = _PLAIN_UNIT.search(text)
    if m is None:
        return text
    before = text[:m.start()]
    head = _TRAILING_SPACE.sub("", before)
    if not head or head[-1] not in "0123456789}":
        return text  # a unit follows a number; after an operator or a letter the word is part of the formula
    spaced = head != before
    words = re.findall(r"[A-Za-z]+", m.group(1))
    letters = [w for w in words if len(w) == 1]
    longer = [w for w in words if len(w) > 1]
    if not all(_is_unit_word(w, spaced) for w in longer):
        return text
    if letters:
        compound = "/" in m.group(1) or longer
        if not (spaced and compound and all(w in _SI_LETTERS for w in letters)):
            return text
    return head


def strip_units(answer: str) -> str:
    """The answer without a unit written after it ("5\\text{ cm}" -> "5", "3 m/s" -> "3"); a letter that is part
    of the formula stays ("9 / t", "2t", "5 m" are unchanged). See the rules above."""
    s = answer.strip()
    without = _strip_unit_groups(s)
    if without == s:
        without = _strip_plain_unit(s)
    return without


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
