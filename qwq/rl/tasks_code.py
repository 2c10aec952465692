"""Procedural code: write a small Python function from a one-line spec; the sandbox judges it against tests.

Every spec has a boundary the tests probe (an inclusive range end, strict vs non-strict comparison, a product over
a sum, multiples starting at 1): the synthetic teacher's slip is the classic off-by-one or boundary mistake, which
runs fine and fails exactly the boundary tests.
"""

from __future__ import annotations

import random
from typing import Sequence

from qwq.rl.data import Example, Task, columns, think_completion

CODE_FAMILIES = ("sum_range", "count_cmp", "filter_cmp", "scale_sum", "affine", "multiples")
COMPARISONS = {"greater than": (">", ">="), "at least": (">=", ">"), "less than": ("<", "<="),
               "at most": ("<=", "<")}
NAMES = {
    "sum_range": ("total", "sum_to", "range_sum", "add_up"),
    "count_cmp": ("count", "how_many", "tally", "count_items"),
    "filter_cmp": ("keep", "select", "filter_list", "pick"),
    "scale_sum": ("scale", "grow", "shift_scale", "stretch"),
    "affine": ("line", "affine", "calc", "value"),
    "multiples": ("multiples", "steps", "table", "times_list"),
}
# sum_range and multiples name their argument with one of these letters: with only a name and k in 2..9 they had 32
# distinct problems each, so the unique-problem splits starved them (6 of 150 held-out problems, 26 of 700 SFT
# examples) and held-out accuracy mostly measured the other families. (Wider k was tried: the model then has to
# copy two-digit numbers, which it cannot yet do.)
ARG_NAMES = ("n", "m", "t", "p", "q", "a", "b", "c")
ARG_FAMILIES = ("sum_range", "multiples")
_LISTS = ([1, 4, 6, 9], [2, 5, 5, 8, 3], [7, 1, 9, 4, 6, 2], [3, 3, 8], [9, 2, 6, 5, 7])


def _code(name: str, args: str, body: str) -> str:
    return f"```python\ndef {name}({args}):\n    return {body}\n```"


def _spec(family: str, name: str, k: int, m: int, relation: str, arg: str = "n"
          ) -> tuple[str, str, str, str | None, str, str]:
    """(question, args, correct body, slipped body or None, correct thought, slipped thought)."""
    if family == "sum_range":
        q = f"the sum of the integers from {k} to {arg}, including {arg}"
        return (q, arg, f"sum(range({k}, {arg} + 1))", f"sum(range({k}, {arg}))",
                f"Sum from {k} to {arg}. {arg} is included, so the range stops at {arg} + 1.",
                f"Sum from {k} to {arg}. The range stops at {arg}.")
    if family in ("count_cmp", "filter_cmp"):
        good, bad = COMPARISONS[relation]
        if family == "count_cmp":
            q = f"how many numbers in the list xs are {relation} {k}"
            body = "sum(1 for x in xs if x {} " + str(k) + ")"
        else:
            q = f"the numbers in the list xs that are {relation} {k}, in order"
            body = "[x for x in xs if x {} " + str(k) + "]"
        return (q, "xs", body.format(good), body.format(bad), f"{relation.capitalize()} {k} means x {good} {k}.",
                f"{relation.capitalize()} {k} means x {bad} {k}.")
    if family == "scale_sum":
        q = f"{k} times the sum of n and {m}"
        return (q, "n", f"{k} * (n + {m})", f"{k} * n + {m}",
                f"Add {m} to n first, then multiply by {k}.", f"Multiply n by {k}, then add {m}.")
    if family == "affine":
        q = f"n times {k}, plus {m}"
        return q, "n", f"n * {k} + {m}", None, f"Multiply n by {k}, then add {m}.", ""
    if family == "multiples":
        q = f"the list of the first {arg} positive multiples of {k}"
        return (q, arg, f"[{k} * i for i in range(1, {arg} + 1)]", f"[{k} * i for i in range({arg})]",
                f"Positive multiples start at {k} * 1, so i runs from 1 to {arg}.",
                f"The multiples are {k} * i for i below {arg}.")
    raise ValueError(f"unknown code family {family!r}")


def _test_inputs(family: str, k: int) -> list[str]:
    if family == "sum_range":
        return [str(k + d) for d in (0, 1, 3, 6)]
    if family in ("count_cmp", "filter_cmp"):
        return [repr([*lst[:2], k, *lst[2:]]) for lst in _LISTS[:3]] + [repr([k, k + 1, k - 1])]
    if family in ("scale_sum", "affine"):
        return ["0", "1", "3", "7"]
    return ["1", "2", "4"]


class CodeTask(Task):
    """`Write a Python function name(args) that returns <spec>.` judged by the sandbox on 3-4 assert tests."""

    name = "code"
    kind = "code"

    def __init__(self, families: Sequence[str] = CODE_FAMILIES, heldout_fraction: float = 0.2) -> None:
        unknown = [f for f in families if f not in CODE_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(CODE_FAMILIES)}")
        self.families, self.heldout_fraction = tuple(families), heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        family = rng.choice(self.families)
        name = rng.choice(NAMES[family])
        k, m = rng.randint(2, 9), rng.randint(1, 9)
        relation = rng.choice(sorted(COMPARISONS))
        if family not in ("count_cmp", "filter_cmp"):
            relation = ""
        if family not in ("scale_sum", "affine"):
            m = 0
        variable = rng.choice(ARG_NAMES) if family in ARG_FAMILIES else "n"
        spec, args, body, _, _, _ = _spec(family, name, k, m, relation, variable)
        question = f"Write a Python function `{name}({args})` that returns {spec}."
        reference = f"def {name}({args}):\n    return {body}\n"
        namespace: dict = {}
        exec(reference, namespace)  # our own reference solution computes the expected outputs
        cases = []
        for arg in _test_inputs(family, k):
            value = eval(arg)  # noqa: S307 - literals we wrote ourselves
            cases.append({"args": [value], "expected": namespace[name](value)})
        key = f"{family}|{name}|{k}|{m}|{relation}|{variable}"
        return Example(self.name, key, question, {"tests": {"entry_point": name, "cases": cases}},
                       {"family": family, "name": name, "k": k, "m": m, "relation": relation, "arg": variable})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        m = example.meta
        spec, args, body, slipped, thought, slipped_thought = _spec(m["family"], m["name"], m["k"], m["m"],
                                                                    m["relation"], m.get("arg", "n"))
        if slipped is not None and rng.random() < slip_rate:
            body, thought = slipped, slipped_thought
        return think_completion(thought, _code(m["name"], args, body))

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        from qwq.rl.rewards import code_reward

        return code_reward(completions, starts_in_reasoning=starts_in_reasoning, **columns(examples))
