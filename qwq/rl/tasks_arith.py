"""Procedural math: multi-step arithmetic with precedence and parentheses, and symbolic linear equations.

Sized for a few-million-parameter model trained from scratch in minutes. Measured here: such a model learns
copying from the prompt quickly but arithmetic facts slowly (single-digit facts reach ~55% after 8,000 drill
examples). So arithmetic keeps every intermediate value of the correct procedure a single digit, and the algebra
is symbolic ("Solve for x: 3 * x + 5 = y." -> (y - 5) / 3): no fact tables, the whole difficulty is the procedure.
Prompts are bare ("Compute 7 - 3 * 2.") rather than carrying the benchmark suffix "Please reason step by step...":
at this scale every prompt token costs SFT time, and the boxed answer format is taught by the traces.

Each family has one characteristic slip the synthetic teacher makes at its slip rate (left-to-right instead of
precedence, dropping parentheses, moving a term without changing its sign, undoing a product with a subtraction):
common mistakes of people and of small models, each changing the final answer, so only the reward can tell the
procedures apart. A slip never writes a sibling family's correct answer (x + k = v slips to k - v, not v + k, the
answer of x - k = v): otherwise the traces of the two families have the same answers at the same rates and SFT
cannot teach the model to read the operator at all (measured: RL then settled both on v - k).
"""

from __future__ import annotations

import random
from typing import Sequence

from qwq.rl.data import Example, Task, columns, think_completion


def _answer(value: int | str) -> str:
    return f"\\boxed{{{value}}}"


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _run(steps: list[tuple[int | str, str, int | str]]) -> tuple[list[str], list[int]]:
    """Execute (left, op, right) steps ("@" = the previous result): the trace lines and every value computed."""
    lines, values, previous = [], [], 0
    for left, op, right in steps:
        lhs = previous if left == "@" else left
        rhs = previous if right == "@" else right
        previous = _apply(int(lhs), op, int(rhs))
        values.append(previous)
        lines.append(f"{lhs} {op} {rhs} = {previous}")
    return lines, values


ARITH_FAMILIES = ("a+b*c", "a-b*c", "a*b+c", "a*b-c", "a-b+c", "a*(b+c)", "(a+b)*c", "a-(b+c)", "a+b*c-d")


def _family_steps(family: str, v: dict[str, int]) -> tuple[str, list, list | None]:
    """(expression, correct steps, slipped steps or None when the family has no slip)."""
    a, b, c, d = v["a"], v["b"], v["c"], v["d"]
    if family == "a+b*c":
        return f"{a} + {b} * {c}", [(b, "*", c), (a, "+", "@")], [(a, "+", b), ("@", "*", c)]
    if family == "a-b*c":
        return f"{a} - {b} * {c}", [(b, "*", c), (a, "-", "@")], [(a, "-", b), ("@", "*", c)]
    if family == "a*b+c":
        return f"{a} * {b} + {c}", [(a, "*", b), ("@", "+", c)], None
    if family == "a*b-c":
        return f"{a} * {b} - {c}", [(a, "*", b), ("@", "-", c)], None
    if family == "a-b+c":
        return f"{a} - {b} + {c}", [(a, "-", b), ("@", "+", c)], [(b, "+", c), (a, "-", "@")]
    if family == "a*(b+c)":
        return f"{a} * ({b} + {c})", [(b, "+", c), (a, "*", "@")], [(a, "*", b), ("@", "+", c)]
    if family == "(a+b)*c":
        return f"({a} + {b}) * {c}", [(a, "+", b), ("@", "*", c)], [(b, "*", c), (a, "+", "@")]
    if family == "a-(b+c)":
        return f"{a} - ({b} + {c})", [(b, "+", c), (a, "-", "@")], [(a, "-", b), ("@", "+", c)]
    if family == "a+b*c-d":
        return (f"{a} + {b} * {c} - {d}", [(b, "*", c), (a, "+", "@"), ("@", "-", d)],
                [(a, "+", b), ("@", "*", c), ("@", "-", d)])
    raise ValueError(f"unknown arithmetic family {family!r}")


class MathTaskBase(Task):
    kind = "math"

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        from qwq.rl.rewards import math_reward

        return math_reward(completions, starts_in_reasoning=starts_in_reasoning, **columns(examples))


class ArithmeticTask(MathTaskBase):
    """Evaluate an expression of 2-3 operations, e.g. `7 - 3 * 2` or `2 * (1 + 3)`; every value the correct
    procedure computes is a single digit (the slipped procedure may leave that range, and is wrong)."""

    name = "arith"

    def __init__(self, families: Sequence[str] = ARITH_FAMILIES, heldout_fraction: float = 0.2) -> None:
        unknown = [f for f in families if f not in ARITH_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(ARITH_FAMILIES)}")
        self.families, self.heldout_fraction = tuple(families), heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        while True:
            family = rng.choice(self.families)
            values = {"a": rng.randint(1, 9), "b": rng.randint(1, 9), "c": rng.randint(1, 9), "d": rng.randint(1, 9)}
            expression, steps, slip = _family_steps(family, values)
            _, results = _run(steps)
            if all(0 <= r <= 9 for r in results) and (slip is None or _run(slip)[1][-1] != results[-1]):
                break
        return Example(self.name, expression, f"Compute {expression}.", {"answer": str(results[-1])},
                       {"family": family, "values": values})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        _, steps, slip = _family_steps(example.meta["family"], example.meta["values"])
        if slip is not None and rng.random() < slip_rate:
            steps = slip
        lines, results = _run(steps)
        return think_completion("\n".join(lines), _answer(results[-1]))


ALGEBRA_FAMILIES = ("x+k=v", "x-k=v", "k*x=v", "x/k=v", "k*x+m=v", "k*(x+m)=v")
# 12 names: the one-step families (x + k = v, ...) have only k and v to vary, and with fewer names the unique-problem
# held-out split starved them. No c, d, g, h, l, m, o, s, t: math-verify used to read those as units and drop them
# (`9 / t` matched `9 * t`; fixed in qwq.verify since, the set is kept so the recipe stays as measured); no e or i.
VARIABLES = ("y", "z", "a", "b", "n", "k", "w", "p", "q", "r", "u", "v")


def _algebra(family: str, k: int, m: int, v: str) -> tuple[str, list[str], str, list[str] | None, str | None]:
    """(equation, correct lines, answer, slipped lines, slipped answer) -- x isolated step by step."""
    if family == "x+k=v":
        return f"x + {k} = {v}", [f"x = {v} - {k}"], f"{v} - {k}", [f"x = {k} - {v}"], f"{k} - {v}"
    if family == "x-k=v":
        return f"x - {k} = {v}", [f"x = {v} + {k}"], f"{v} + {k}", [f"x = {v} - {k}"], f"{v} - {k}"
    if family == "k*x=v":
        return f"{k} * x = {v}", [f"x = {v} / {k}"], f"{v} / {k}", [f"x = {v} - {k}"], f"{v} - {k}"
    if family == "x/k=v":
        return f"x / {k} = {v}", [f"x = {k} * {v}"], f"{k} * {v}", [f"x = {k} / {v}"], f"{k} / {v}"
    if family == "k*x+m=v":
        return (f"{k} * x + {m} = {v}", [f"{k} * x = {v} - {m}", f"x = ({v} - {m}) / {k}"], f"({v} - {m}) / {k}",
                [f"{k} * x = {v} + {m}", f"x = ({v} + {m}) / {k}"], f"({v} + {m}) / {k}")
    if family == "k*(x+m)=v":
        return (f"{k} * (x + {m}) = {v}", [f"x + {m} = {v} / {k}", f"x = {v} / {k} - {m}"], f"{v} / {k} - {m}",
                [f"x + {m} = {v} / {k}", f"x = {v} / {k} + {m}"], f"{v} / {k} + {m}")
    raise ValueError(f"unknown algebra family {family!r}")


class AlgebraTask(MathTaskBase):
    """Solve a linear equation for x symbolically, e.g. `3 * x + 5 = y` -> `(y - 5) / 3` (checked by the math
    verifier up to symbolic equivalence, so `y/3 - 5/3` counts too)."""

    name = "algebra"

    def __init__(self, families: Sequence[str] = ALGEBRA_FAMILIES, heldout_fraction: float = 0.2) -> None:
        unknown = [f for f in families if f not in ALGEBRA_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(ALGEBRA_FAMILIES)}")
        self.families, self.heldout_fraction = tuple(families), heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        family = rng.choice(self.families)
        k, m, v = rng.randint(2, 9), rng.randint(1, 9), rng.choice(VARIABLES)
        equation, _, answer, _, _ = _algebra(family, k, m, v)
        return Example(self.name, equation, f"Solve for x: {equation}.", {"answer": answer},
                       {"family": family, "k": k, "m": m, "v": v})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        meta = example.meta
        _, lines, answer, slipped, slipped_answer = _algebra(meta["family"], meta["k"], meta["m"], meta["v"])
        if slipped is not None and rng.random() < slip_rate:
            lines, answer = slipped, slipped_answer
        return think_completion("\n".join(lines), _answer(answer))
