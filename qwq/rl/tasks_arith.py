"""Procedural math: multi-step arithmetic with operator precedence and parentheses, and linear equations.

Numbers stay small (factors 2..5, terms 1..9, every intermediate result below 50) so a few-million-parameter
model can execute every step after two minutes of SFT; the difficulty is in choosing the right procedure. Prompts
are bare ("Compute 7 + 3 * 4.") rather than carrying the benchmark suffix "Please reason step by step...": at
this scale every prompt token costs SFT time, and the boxed answer format is taught by the traces. Each family has one characteristic
slip the synthetic teacher makes at its slip rate (left-to-right instead of precedence, dropping parentheses,
moving a term without changing its sign, undoing a product with a subtraction) -- common mistakes of people and
of small models, and each one changes the final answer, so only the reward can tell the procedures apart.
"""

from __future__ import annotations

import random
from typing import Sequence

from qwq.rl.data import Example, Task, columns, think_completion


def _answer(value: int) -> str:
    return f"\\boxed{{{value}}}"


# Each arithmetic family: (template, correct steps, slipped steps or None). Steps are (left, op, right) in order;
# a step's operand "@" is the previous step's result.
def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _run(steps: list[tuple[int | str, str, int | str]]) -> tuple[list[str], int]:
    lines, previous = [], 0
    for left, op, right in steps:
        lhs = previous if left == "@" else left
        rhs = previous if right == "@" else right
        previous = _apply(int(lhs), op, int(rhs))
        lines.append(f"{lhs} {op} {rhs} = {previous}")
    return lines, previous


ARITH_FAMILIES = ("a+b*c", "a*b+c", "a*b-c", "a-b+c", "a*(b+c)", "(a+b)*c", "a-(b+c)", "a+b*c-d")


def _family_steps(family: str, v: dict[str, int]) -> tuple[str, list, list | None]:
    a, b, c, d = v["a"], v["b"], v["c"], v["d"]
    if family == "a+b*c":
        return f"{a} + {b} * {c}", [(b, "*", c), (a, "+", "@")], [(a, "+", b), ("@", "*", c)]
    if family == "a*b+c":
        return f"{a} * {b} + {c}", [(a, "*", b), ("@", "+", c)], None
    if family == "a*b-c":
        return f"{a} * {b} - {c}", [(a, "*", b), ("@", "-", c)], None
    if family == "a-b+c":
        slip = [(b, "+", c), (a, "-", "@")] if a >= b + c else None
        return f"{a} - {b} + {c}", [(a, "-", b), ("@", "+", c)], slip
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


def _draw_values(family: str, rng: random.Random, term: int, factor: int) -> dict[str, int]:
    """Operands for a family: factors 2..`factor`, terms 1..`term`, inner sums of a product 1..4 each, and no
    negative intermediate results."""
    def t() -> int:
        return rng.randint(1, term)

    def f() -> int:
        return rng.randint(2, factor)

    def small() -> int:
        return rng.randint(1, 3)

    if family == "a+b*c":
        return {"a": t(), "b": f(), "c": f(), "d": 0}
    if family in ("a*b+c", "a*b-c"):
        a, b = f(), f()
        return {"a": a, "b": b, "c": rng.randint(1, min(term, a * b)), "d": 0}
    if family == "a-b+c":
        b, c = t(), t()
        return {"a": rng.randint(b, b + term), "b": b, "c": c, "d": 0}
    if family == "a*(b+c)":
        return {"a": f(), "b": small(), "c": small(), "d": 0}
    if family == "(a+b)*c":
        return {"a": small(), "b": small(), "c": f(), "d": 0}
    if family == "a-(b+c)":
        b, c = small(), small()
        return {"a": rng.randint(b + c, b + c + term), "b": b, "c": c, "d": 0}
    if family == "a+b*c-d":
        a, b, c = t(), f(), f()
        return {"a": a, "b": b, "c": c, "d": rng.randint(1, min(term, a + b * c))}
    raise ValueError(f"unknown arithmetic family {family!r}")


class MathTaskBase(Task):
    kind = "math"

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        from qwq.rl.rewards import math_reward

        return math_reward(completions, starts_in_reasoning=starts_in_reasoning, **columns(examples))


class ArithmeticTask(MathTaskBase):
    """Evaluate an expression of 2-3 operations, e.g. `7 + 3 * 4` or `9 - (2 + 5)`."""

    name = "arith"

    def __init__(self, families: Sequence[str] = ARITH_FAMILIES, term: int = 6, factor: int = 4,
                 heldout_fraction: float = 0.2) -> None:
        unknown = [f for f in families if f not in ARITH_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(ARITH_FAMILIES)}")
        self.families, self.term, self.factor = tuple(families), term, factor
        self.heldout_fraction = heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        family = rng.choice(self.families)
        values = _draw_values(family, rng, self.term, self.factor)
        expression, steps, _ = _family_steps(family, values)
        _, result = _run(steps)
        return Example(self.name, expression, f"Compute {expression}.", {"answer": str(result)},
                       {"family": family, "values": values})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        _, steps, slip = _family_steps(example.meta["family"], example.meta["values"])
        if slip is not None and rng.random() < slip_rate:
            steps = slip
        lines, result = _run(steps)
        return think_completion("\n".join(lines), _answer(result))


LINEAR_FAMILIES = ("x+a=b", "x-a=b", "a*x=b", "a*x+b=c")


class LinearEquationTask(MathTaskBase):
    """Solve a one-step or two-step linear equation, e.g. `x + 7 = 12` or `3 * x + 2 = 17`."""

    name = "linear"

    def __init__(self, families: Sequence[str] = LINEAR_FAMILIES, heldout_fraction: float = 0.2) -> None:
        unknown = [f for f in families if f not in LINEAR_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(LINEAR_FAMILIES)}")
        self.families, self.heldout_fraction = tuple(families), heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        family = rng.choice(self.families)
        a = rng.randint(2, 4) if "*" in family else rng.randint(1, 6)
        x = rng.randint(1, 9)
        b = rng.randint(1, 6)
        if family == "x+a=b":
            equation = f"x + {a} = {x + a}"
        elif family == "x-a=b":
            x = max(x, a + 1)
            equation = f"x - {a} = {x - a}"
        elif family == "a*x=b":
            equation = f"{a} * x = {a * x}"
        else:
            equation = f"{a} * x + {b} = {a * x + b}"
        question = f"Solve for x: {equation}."
        return Example(self.name, equation, question, {"answer": str(x)},
                       {"family": family, "a": a, "b": b, "x": x})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        m = example.meta
        family, a, b, x = m["family"], m["a"], m["b"], m["x"]
        slip = rng.random() < slip_rate
        if family == "x+a=b":
            rhs = x + a
            lines = [f"x = {rhs} + {a}", f"x = {rhs + a}"] if slip else [f"x = {rhs} - {a}", f"x = {x}"]
            result = rhs + a if slip else x
        elif family == "x-a=b":
            rhs = x - a
            if slip and rhs >= a:
                lines, result = [f"x = {rhs} - {a}", f"x = {rhs - a}"], rhs - a
            else:
                lines, result = [f"x = {rhs} + {a}", f"x = {x}"], x
        elif family == "a*x=b":
            rhs = a * x
            if slip and rhs >= a:
                lines, result = [f"x = {rhs} - {a}", f"x = {rhs - a}"], rhs - a
            else:
                lines, result = [f"x = {rhs} / {a}", f"x = {x}"], x
        else:
            rhs = a * x + b
            slip = slip and (rhs + b) % a == 0  # the teacher only slips where its wrong move still divides
            moved = rhs + b if slip else rhs - b
            result = moved // a
            lines = [f"{a} * x = {rhs} {'+' if slip else '-'} {b}", f"{a} * x = {moved}",
                     f"x = {moved} / {a}", f"x = {result}"]
        return think_completion("\n".join(lines), _answer(result))
