"""Is a predicted math answer equal to the gold one? Runs inside a verifier worker process (see pool.py).

math-verify parses the LaTeX (its normalisation of \\text, \\dfrac, thousands separators, intervals,
matrices is good); the comparison is ours, because math-verify's own comparison accepts near misses: it rounds
floats to 6 decimals and tests `(a - b).evalf(chop=True) == 0`, and chopping zeroes any difference below the
working precision, so 1/2^99 "equals" 1/2^98 and 1/2004! "equals" 1/2006!. Our order of checks:

1. exact: decimals written by the model become exact rationals (0.333333 is 333333/10^6, not 1/3), then
   structural equality, exact rational equality, or agreement to 45 significant digits at 60-digit precision
   (relative, never an absolute chop, so tiny numbers are compared as carefully as large ones);
2. expressions with variables: identical as functions (numeric identity test at random points, high precision);
3. only then a tolerance, and only for a decimal the model (or the gold) wrote: it must be the rounding or the
   truncation of the exact value at the digits written, with at least ~4 correct significant digits.

Structures (tuples, sets, intervals, unions, matrices, equations, inequalities) are compared part by part with
the same scalar rule. The entry point is `check_pair(gold, pred)`; it never raises.
"""

from __future__ import annotations

import logging
import random
from fractions import Fraction

import sympy
from sympy import Basic, Eq, Float, Interval, MatrixBase, Rational, Set, Symbol, Tuple, Union
from sympy.core.relational import Relational

from qwq.verify.normalize import (decimal_approximates, decimal_places, normalize_answer_text, split_percent,
                                  strip_units)

logging.getLogger("math_verify").setLevel(logging.CRITICAL)
logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)

_DIGITS = 60  # working precision for numeric comparisons
_AGREE = sympy.Float(10) ** -45  # relative agreement that counts as "exactly equal"
_IDENTITY_POINTS = 4


def _extraction_configs() -> list:
    from latex2sympy2_extended.math_normalization import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # math-verify's defaults, but units off: its unit list holds single letters (t, m, s, g, h, l, c, d, o), so it
    # read "9 / t" as 9 (tonnes) and "2t" as 2; strip_units drops units first, keeping letters of the formula
    normalization = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True,
                                        boxed="all", equations=False)
    return [LatexExtractionConfig(normalization_config=normalization), ExprExtractionConfig()]


def parse_answer(text: str):
    """LaTeX or plain answer text -> a sympy object, or None when it does not parse."""
    from math_verify import parse

    text = strip_units(text)
    for candidate in (f"${text}$", text):
        parsed = parse(candidate, extraction_config=_extraction_configs(), parsing_timeout=None)
        for item in parsed:
            if isinstance(item, (Basic, MatrixBase)):
                return item
    return None


def check_pair(gold: str, pred: str, text_shortcut: bool = True) -> tuple[bool | None, str]:
    """(verdict, reason): True / False, or None when the gold cannot be parsed (the verifier cannot judge).
    `text_shortcut=False` skips the same-text test, so both answers go through the parser (for tests)."""
    try:
        return _check_pair(gold, pred, text_shortcut)
    except Exception as exc:  # noqa: BLE001 - a comparison bug must cost one sample, not the batch
        return None, f"comparison failed: {type(exc).__name__}: {str(exc)[:200]}"


def _check_pair(gold: str, pred: str, text_shortcut: bool) -> tuple[bool | None, str]:
    if text_shortcut and normalize_answer_text(gold) == normalize_answer_text(pred):
        return True, "same text after normalisation"
    gold_core, gold_pct = split_percent(gold)
    pred_core, pred_pct = split_percent(pred)
    gold_expr, pred_expr = parse_answer(gold_core), parse_answer(pred_core)
    if gold_expr is None:
        return None, "the gold answer does not parse"
    if pred_expr is None:
        return False, "the predicted answer does not parse"
    gold_side = _Side(gold_expr, decimal_places(gold_core), gold_pct)
    pred_side = _Side(pred_expr, decimal_places(pred_core), pred_pct)
    for g in gold_side.variants():
        for p in pred_side.variants():
            if _equal(g, p, gold_side.places, pred_side.places):
                return True, "equivalent"
    return False, "not equivalent"


class _Side:
    def __init__(self, expr, places: int | None, percent: bool):
        self.expr, self.places, self.percent = expr, places, percent

    def variants(self):
        yield self.expr
        if self.percent and isinstance(self.expr, sympy.Expr):
            yield self.expr / 100  # "50%" may be meant as 0.5 or as 50


# ---------------------------------------------------------------- structures


def _unsorted(s) -> list:
    return list(getattr(s, "_unsorted_args", None) or s.args)


def _is_assignment(e) -> bool:
    return isinstance(e, Eq) and isinstance(e.lhs, Symbol)


def _equal(g, p, g_places=None, p_places=None) -> bool:
    if g == p:
        return True
    # "x \in [2,5)" parses as Eq(x, Interval): the set is the answer
    if isinstance(g, Eq) and isinstance(g.rhs, Set):
        g = g.rhs
    if isinstance(p, Eq) and isinstance(p.rhs, Set):
        p = p.rhs
    if _is_assignment(g) and _is_assignment(p):
        return g.lhs == p.lhs and _equal(g.rhs, p.rhs, g_places, p_places)
    if _is_assignment(g) and not _is_relation(p):
        return _equal(g.rhs, p, g_places, p_places)
    if _is_assignment(p) and not _is_relation(g):
        return _equal(g, p.rhs, g_places, p_places)
    if isinstance(g, MatrixBase) or isinstance(p, MatrixBase):
        return _matrix_equal(g, p)
    if _is_relation(g) or _is_relation(p):
        return _relation_equal(g, p)
    if isinstance(g, (Set, Tuple)) or isinstance(p, (Set, Tuple)):
        return _set_equal(g, p)
    if isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr):
        return scalar_equal(g, p, g_places, p_places)
    return False


def _matrix_equal(g, p) -> bool:
    def elements(m):
        if isinstance(m, MatrixBase):
            return m.shape, list(m)
        if isinstance(m, Tuple):  # a vector written as a tuple
            return (len(m.args), 1), list(m.args)
        return None, None

    g_shape, g_items = elements(g)
    p_shape, p_items = elements(p)
    if g_shape is None or p_shape is None or len(g_items) != len(p_items):
        return False
    vector = 1 in g_shape and 1 in p_shape
    if g_shape != p_shape and not vector:
        return False
    return all(_equal(a, b) for a, b in zip(g_items, p_items))


def _set_equal(g, p) -> bool:
    if isinstance(g, sympy.Expr) and isinstance(p, sympy.FiniteSet) and len(p) == 1:
        return _equal(g, _unsorted(p)[0])
    if isinstance(p, sympy.Expr) and isinstance(g, sympy.FiniteSet) and len(g) == 1:
        return _equal(_unsorted(g)[0], p)
    if isinstance(g, Interval) and isinstance(p, Interval):
        return (g.left_open == p.left_open and g.right_open == p.right_open
                and _equal(g.start, p.start) and _equal(g.end, p.end))
    # "(1, 2)" is both an open interval and an ordered pair: compare as a pair when the other side is one
    if isinstance(g, Interval) and g.left_open and g.right_open and isinstance(p, (Tuple, sympy.FiniteSet)):
        return _ordered_equal([g.start, g.end], _unsorted(p))
    if isinstance(p, Interval) and p.left_open and p.right_open and isinstance(g, (Tuple, sympy.FiniteSet)):
        return _ordered_equal(_unsorted(g), [p.start, p.end])
    if isinstance(g, Tuple) and isinstance(p, (Tuple, sympy.FiniteSet)):
        return _ordered_equal(list(g.args), _unsorted(p))
    if isinstance(p, Tuple) and isinstance(g, sympy.FiniteSet):
        return _ordered_equal(_unsorted(g), list(p.args))
    if isinstance(g, sympy.FiniteSet) and isinstance(p, sympy.FiniteSet):
        return _unordered_equal(_unsorted(g), _unsorted(p))
    if isinstance(g, Union) and isinstance(p, Union):
        return _unordered_equal(list(g.args), list(p.args))
    if isinstance(g, Set) and isinstance(p, Set):
        try:
            return bool(g.symmetric_difference(p).is_empty)
        except Exception:  # noqa: BLE001 - sympy cannot decide for some sets
            return False
    return False


def _ordered_equal(gs: list, ps: list) -> bool:
    return len(gs) == len(ps) and all(_equal(a, b) for a, b in zip(gs, ps))


def _unordered_equal(gs: list, ps: list) -> bool:
    if len(gs) != len(ps):
        return False
    remaining = list(ps)
    for a in gs:
        match = next((i for i, b in enumerate(remaining) if _equal(a, b)), None)
        if match is None:
            return False
        remaining.pop(match)
    return True


def _is_relation(e) -> bool:
    if isinstance(e, Relational):
        return True
    return isinstance(e, sympy.And) and all(isinstance(a, Relational) for a in e.args)


def _relation_equal(g, p) -> bool:
    if not (_is_relation(g) and _is_relation(p)):
        # an inequality in one variable against an interval or union: compare as sets
        if _is_relation(g) and isinstance(p, Set):
            g_set = _relation_as_set(g)
            return g_set is not None and _set_equal(g_set, p)
        if _is_relation(p) and isinstance(g, Set):
            p_set = _relation_as_set(p)
            return p_set is not None and _set_equal(g, p_set)
        return False
    if isinstance(g, Eq) and isinstance(p, Eq):
        return _proportional(g.lhs - g.rhs, p.lhs - p.rhs, sign=0)
    g_set, p_set = _relation_as_set(g), _relation_as_set(p)
    if g_set is not None and p_set is not None:
        return _set_equal(g_set, p_set)
    if isinstance(g, Relational) and isinstance(p, Relational):
        same = type(g) is type(p)
        flipped = type(g) is _REVERSED.get(type(p))
        if same:
            return _proportional(g.lhs - g.rhs, p.lhs - p.rhs, sign=1)
        if flipped:
            return _proportional(g.lhs - g.rhs, p.lhs - p.rhs, sign=-1)
    return False


_REVERSED = {sympy.StrictLessThan: sympy.StrictGreaterThan, sympy.StrictGreaterThan: sympy.StrictLessThan,
             sympy.LessThan: sympy.GreaterThan, sympy.GreaterThan: sympy.LessThan}


def _relation_as_set(rel):
    symbols = rel.free_symbols
    if len(symbols) != 1:
        return None
    try:
        return rel.as_set()
    except Exception:  # noqa: BLE001 - sympy raises NotImplementedError and others for hard inequalities
        return None


def _proportional(a, b, sign: int) -> bool:
    """Is a == c*b for a constant c != 0 (with the sign of c as asked: 0 = any, 1 = positive, -1 = negative)?"""
    a, b = _rationalize(a), _rationalize(b)
    if a.free_symbols != b.free_symbols:
        return False
    try:
        ratio = sympy.cancel(sympy.together(a / b))
    except Exception:  # noqa: BLE001
        return False
    if ratio.free_symbols:
        values = _values_at_points(ratio, sorted(a.free_symbols, key=str))
        if values is None or any(not _close(values[0], v) for v in values[1:]):
            return False
        constant = values[0]
    else:
        constant = sympy.N(ratio, _DIGITS)
    if constant == 0 or not constant.is_finite:
        return False
    if sign and (not constant.is_real or (constant > 0) != (sign > 0)):
        return False
    return True


# ---------------------------------------------------------------- scalars


def _rationalize(e):
    """Replace each float by the exact rational of the decimal it was written as (0.1 -> 1/10)."""
    if not isinstance(e, Basic):
        return e
    floats = e.atoms(Float)
    if not floats:
        return e
    return e.xreplace({f: Rational(str(f)) for f in floats})


def _close(a, b) -> bool:
    scale = max(abs(a), abs(b))
    if scale == 0:
        return True
    return abs(a - b) <= _AGREE * scale


def _values_at_points(expr, symbols, seed: int = 0):
    rng = random.Random(f"{seed}:{sympy.srepr(expr)[:200]}")
    values = []
    attempts = 0
    while len(values) < _IDENTITY_POINTS and attempts < 4 * _IDENTITY_POINTS:
        attempts += 1
        point = {s: Rational(rng.randint(300, 2700), 1000) for s in symbols}
        try:
            v = sympy.N(expr.subs(point), _DIGITS)
        except Exception:  # noqa: BLE001
            continue
        if v.is_finite and v.is_number and not v.has(sympy.nan):
            values.append(v)
    return values if len(values) == _IDENTITY_POINTS else None


def _same_function(g, p) -> bool:
    symbols = sorted(g.free_symbols | p.free_symbols, key=str)
    if g.free_symbols != p.free_symbols:
        return False
    try:
        if sympy.expand(g - p) == 0:
            return True
    except Exception:  # noqa: BLE001
        pass
    rng = random.Random(f"{sympy.srepr(g)[:200]}|{sympy.srepr(p)[:200]}")
    agreed = 0
    for _ in range(4 * _IDENTITY_POINTS):
        point = {s: Rational(rng.randint(300, 2700), 1000) for s in symbols}
        try:
            vg, vp = sympy.N(g.subs(point), _DIGITS), sympy.N(p.subs(point), _DIGITS)
        except Exception:  # noqa: BLE001
            continue
        if not (vg.is_number and vp.is_number and vg.is_finite and vp.is_finite):
            continue
        if not _close(vg, vp):
            return False
        agreed += 1
        if agreed >= _IDENTITY_POINTS:
            return True
    return False


def _exact_numeric_equal(g, p) -> bool:
    if g.is_Rational and p.is_Rational:
        return g == p
    if not (g.is_finite and p.is_finite):
        return g == p  # oo, -oo, zoo: structural equality only
    difference = g - p  # sympy combines like terms exactly: 2^(10^10) + 1 - 2^(10^10) is 1, not "relatively 0"
    if difference.is_Rational:
        return difference == 0
    vg, vp = sympy.N(g, _DIGITS), sympy.N(p, _DIGITS)
    if not (vg.is_number and vp.is_number):
        return False
    scale = max(abs(vg), abs(vp))
    if scale < sympy.Float(10) ** -40:
        # both look like zero (or one is a cancelling expression): decide symbolically, never by magnitude
        try:
            return bool(sympy.simplify(g - p) == 0)
        except Exception:  # noqa: BLE001
            return False
    return _close(vg, vp)


_UNEVALUATED = (sympy.Integral, sympy.Sum, sympy.Product, sympy.Limit, sympy.Derivative)


def _evaluated(e):
    """Carry out integrals, sums, limits and derivatives written in the answer (the pool's timeout guards this)."""
    if isinstance(e, Basic) and e.has(*_UNEVALUATED):
        try:
            return e.doit()
        except Exception:  # noqa: BLE001 - sympy cannot do every integral; compare the unevaluated form
            return e
    return e


def scalar_equal(g, p, g_places: int | None = None, p_places: int | None = None) -> bool:
    """Exact (symbolic or 45-digit numeric) equality; then the decimal-approximation rule (see module doc)."""
    g_exact, p_exact = _evaluated(_rationalize(g)), _evaluated(_rationalize(p))
    if g_exact == p_exact:
        return True
    if g_exact.free_symbols or p_exact.free_symbols:
        return _same_function(g_exact, p_exact)
    if _exact_numeric_equal(g_exact, p_exact):
        return True
    g_dec = g_places if _is_plain_decimal(g) else None
    p_dec = p_places if _is_plain_decimal(p) else None
    if g_dec is None and p_dec is None:
        return False
    return _decimal_approximates(g_exact, p_exact, g_dec, p_dec)


def _is_plain_decimal(e) -> bool:
    return isinstance(e, Float) or (isinstance(e, sympy.Mul) and len(e.args) == 2 and e.args[0] == -1
                                    and isinstance(e.args[1], Float))


def _as_fraction(e) -> Fraction | None:
    try:
        if e.is_Rational:
            return Fraction(int(e.p), int(e.q))
        v = sympy.N(e, _DIGITS)
        if not v.is_real:
            return None
        return Fraction(str(v))
    except Exception:  # noqa: BLE001
        return None


def _decimal_approximates(g, p, g_dec: int | None, p_dec: int | None) -> bool:
    fg, fp = _as_fraction(g), _as_fraction(p)
    if fg is None or fp is None:
        return False
    return decimal_approximates(fg, fp, g_dec, p_dec)
