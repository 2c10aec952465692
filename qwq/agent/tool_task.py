"""Tiny-preset RL tasks that need a tool to be solved: `tool_mod` (the default) and `tool_arith`.

`tool_mod`: the remainder of a product of two 3-digit numbers divided by 7 ("What is the remainder when 347 * 812
is divided by 7?"). Neither operand is a multiple of 7, so the answer is uniform over 1-6 and no constant answer
scores above 1/6: without the tool a model this size is at chance (it would have to divide a 5-6 digit product by 7
in its head). With the tool it needs only a short, fixed habit: copy the two operands into `print(a * b % 7)` and
copy the ONE printed digit into `\\boxed{}`. The earlier `tool_arith` (multiply two 4-5 digit numbers exactly) needs
the same call but then a copy of an 8-10 digit product, which the tiny models never learned within a CPU budget
(the cold start called the tool in ~100% of episodes and still scored 0/64): copying a long number, not using the
tool, was the bottleneck. Keeping the printed result to one token moves the difficulty to where the tool is.

The baseline is the same question with no tools passed (QwQ's template then writes no tools section). Reward: 1.0
when the last `\\boxed{}` of the final answer holds the exact integer, else 0.0 (always scorable). The teacher writes
the intended two-turn trace (call, then copy), with a probability `slip_rate` of a plausible mistake for a cold start
RL then improves on: skip the tool and guess, call it with the wrong operation, or miscopy an operand digit.
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

from qwq.agent.calculator import calculator_tool
from qwq.agent.python_tool import python_tool
from qwq.agent.tools import Tool
from qwq.rl.data import MATH_INSTRUCTION, Example, Task, think_completion
from qwq.tokenizer.reasoning import split_reasoning
from qwq.tokenizer.toolcall import format_tool_call

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
SLIPS = ("guess", "no_tool", "wrong_op")  # tool_arith's teacher mistakes
MOD_SLIPS = ("guess", "wrong_op", "miscopy")  # tool_mod's
# the teacher's thought before the call; with think_variants > 1 one of the first k at random, so the distance from
# the question's operands to the call varies and only a copy by content (not by a fixed offset) works every time
MOD_THOUGHTS = ("Dividing a product by {m} in my head is error-prone. I will use the {tool} tool.",
                "I will use the {tool} tool.",
                "This needs a product of two large numbers and then a remainder by {m}: error-prone by hand, so I will "
                "ask the {tool} tool.",
                "The {tool} tool can do this exactly.")
MOD_STYLES = ("expression", "words")  # tool_mod's question: "What is (a * b) % m?" | "What is the remainder when ..."


def boxed_integer(completion: str) -> int | None:
    """The integer in the last \\boxed{} of the answer part (after `</think>`), or None."""
    split = split_reasoning(completion, starts_in_reasoning=True)
    if not split.finished:
        return None
    found = _BOXED.findall(split.answer)
    if not found:
        return None
    digits = re.sub(r"[,\s_]", "", found[-1])
    return int(digits) if re.fullmatch(r"-?\d+", digits) else None


class ToolTask(Task):
    """What the tool tasks share: the question with or without tools, the tool (python in the sandbox or the
    calculator), exact-integer reward on the last `\\boxed{}`, the call and copy turns of the teacher."""

    kind = "math"
    slips: tuple[str, ...] = ()

    def __init__(self, tool: str = "python", heldout_fraction: float = 0.2, sandbox_client: Any = None):
        if tool not in ("python", "calculator"):
            raise ValueError(f"tool must be 'python' or 'calculator', got {tool!r}")
        self.tool, self.heldout_fraction, self.sandbox_client = tool, heldout_fraction, sandbox_client

    def messages(self, example: Example, with_tools: bool = True) -> list[dict]:
        """The user turn: the same question with or without tools; whether the tool is offered is decided only by
        the tool list passed with it (the system turn QwQ's template writes from `tools()`)."""
        return [{"role": "user", "content": example.question}]

    def tools(self) -> list[Tool]:
        if self.tool == "calculator":
            return [calculator_tool()]
        return [python_tool(self.sandbox_client)]

    def reward(self, completions: Sequence[str], examples: Sequence[Example]) -> list[float | None]:
        out: list[float | None] = []
        for text, ex in zip(completions, examples):
            got = boxed_integer(text)
            out.append(1.0 if got is not None and str(got) == ex.fields["answer"] else 0.0)
        return out

    def _call(self, expression: str) -> str:
        if self.tool == "calculator":
            return format_tool_call("calculator", {"expression": expression})
        return format_tool_call("python", {"code": f"print({expression})"})

    def _slip(self, rng: random.Random, slip_rate: float, slips: Sequence[str]) -> str | None:
        unknown = set(slips) - set(self.slips)
        if unknown or not slips:
            raise ValueError(f"slips must be a non-empty subset of {self.slips}, got {tuple(slips)}")
        if rng.random() >= slip_rate:
            return None
        return slips[0] if len(slips) == 1 else rng.choice(list(slips))

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        raise NotImplementedError(f"{self.name} demonstrations are multi-turn: use teacher_turns() with run_episode()")


class ToolModTask(ToolTask):
    """`tool_mod` (see the module docstring): (a * b) mod `modulus` for `digits`-digit operands, neither a multiple
    of the modulus. Fixed-length operands keep every copy the model makes at a fixed distance."""

    name = "tool_mod"
    slips = MOD_SLIPS

    def __init__(self, digits: int = 3, modulus: int = 7, tool: str = "python", heldout_fraction: float = 0.2,
                 sandbox_client: Any = None, style: str = "expression", think_variants: int = 1):
        super().__init__(tool, heldout_fraction, sandbox_client)
        if not 2 <= digits <= 9:
            raise ValueError(f"digits must be in 2..9, got {digits}")
        if style not in MOD_STYLES:
            raise ValueError(f"style must be one of {', '.join(MOD_STYLES)}, got {style!r}")
        if not 1 <= think_variants <= len(MOD_THOUGHTS):
            raise ValueError(f"think_variants must be in 1..{len(MOD_THOUGHTS)}, got {think_variants}")
        self.style, self.think_variants = style, think_variants
        if modulus not in (3, 5, 7):  # prime: a product of non-multiples is never 0 and its remainder is uniform
            raise ValueError(f"modulus must be 3, 5 or 7 (a prime with a one-digit remainder), got {modulus}")
        self.digits, self.modulus = digits, modulus
        self.chance_accuracy = 1.0 / (modulus - 1)  # the best a model that cannot compute the remainder can do

    def _operand(self, rng: random.Random) -> int:
        while True:
            n = rng.randint(10 ** (self.digits - 1), 10 ** self.digits - 1)
            if n % self.modulus:
                return n

    def generate(self, rng: random.Random) -> Example:
        a, b = self._operand(rng), self._operand(rng)
        m = self.modulus
        if self.style == "words":
            question = f"What is the remainder when {a} * {b} is divided by {m}?\n{MATH_INSTRUCTION}"
        else:
            question = f"What is ({a} * {b}) % {m}?\n{MATH_INSTRUCTION}"
        return Example(self.name, f"{a}*{b}%{m}", question, {"answer": str(a * b % m)}, {"a": a, "b": b, "m": m})

    def teacher_turns(self, example: Example, rng: random.Random, slip_rate: float = 0.0,
                      slips: Sequence[str] = MOD_SLIPS) -> list[str]:
        """The model turns of a demonstration episode (run them through `run_episode` with `scripted_generate`, so
        the tool really runs and the turn after it reads its real output). A slip, at `slip_rate`, is one of
        `slips`: "guess" (no tool, a remainder guessed), "wrong_op" (the tool called with a + b) or "miscopy" (one
        operand digit changed in the call)."""
        a, b, m = example.meta["a"], example.meta["b"], example.meta["m"]
        kind = self._slip(rng, slip_rate, slips)
        if kind == "guess":
            return [self.direct_turn(example, rng.randint(1, m - 1))]
        if kind == "miscopy":
            text = str(a)
            k = rng.randrange(len(text))
            digit = rng.choice([d for d in "0123456789" if d != text[k] and (k or d != "0")])
            a = int(text[:k] + digit + text[k + 1:])
        op = "+" if kind == "wrong_op" else "*"
        if self.style == "words":
            call = self._call(f"({a} + {b}) % {m}" if kind == "wrong_op" else f"{a} * {b} % {m}")
        else:
            call = self._expression_call(f"({a} {op} {b}) % {m}")
        thought = MOD_THOUGHTS[rng.randrange(self.think_variants) if self.think_variants > 1 else 0]
        first = think_completion(thought.format(m=m, tool=self.tool), call)
        return [first, _copy_turn]

    def _expression_call(self, expression: str) -> str:
        """The call of the "expression" style: the question's `(a * b) % m` written into it verbatim. The python code
        is `r = (a * b) % m` then `print(r)` rather than `print((a * b) % m)`, because the byte-level BPE splits
        ` (` the same way in both places but would read `((` as one token: the call then repeats the question's
        tokens exactly, which is the plain copy (an induction head) a tiny model learns soonest."""
        if self.tool == "calculator":
            return format_tool_call("calculator", {"expression": expression})
        return format_tool_call("python", {"code": f"r = {expression}\nprint(r)"})

    def direct_turn(self, example: Example, value: int | None = None) -> str:
        """A demonstration for the no-tool prompt: the remainder stated outright (`value`, default the right one),
        so the no-tool baseline is a trained behaviour too, not an untrained prompt."""
        value = example.fields["answer"] if value is None else value
        return think_completion("I work out the remainder in my head.", f"\\boxed{{{value}}}")


class ToolArithmeticTask(ToolTask):
    """`tool_arith`: multiply two 4-5 digit numbers exactly (digits and a lower bound `min_operand` are options).
    The call is the same as tool_mod's, but the answer is a copy of the 8-10 digit product."""

    name = "tool_arith"
    slips = SLIPS

    def __init__(self, min_digits: int = 4, max_digits: int = 5, tool: str = "python", heldout_fraction: float = 0.2,
                 sandbox_client: Any = None, min_operand: int = 0):
        super().__init__(tool, heldout_fraction, sandbox_client)
        if not 1 <= min_digits <= max_digits <= 12:
            raise ValueError(f"digits must satisfy 1 <= min_digits <= max_digits <= 12, got {min_digits}, {max_digits}")
        if min_operand > 10 ** max_digits - 1:
            raise ValueError(f"min_operand {min_operand} has more than max_digits={max_digits} digits")
        self.min_digits, self.max_digits = min_digits, max_digits
        self.min_operand = min_operand  # e.g. 5 digits from 31623: every product has exactly 10 digits
        self.chance_accuracy = 0.0  # (a guess of a 7+ digit product is right too rarely to count)

    def _number(self, rng: random.Random) -> int:
        low_digits = max(self.min_digits, len(str(max(1, self.min_operand))))
        d = rng.randint(low_digits, self.max_digits)
        return rng.randint(max(10 ** (d - 1), self.min_operand), 10 ** d - 1)

    def generate(self, rng: random.Random) -> Example:
        a, b = self._number(rng), self._number(rng)
        question = f"Compute {a} * {b} exactly.\n{MATH_INSTRUCTION}"
        return Example(self.name, f"{a}*{b}", question, {"answer": str(a * b)}, {"a": a, "b": b})

    def teacher_turns(self, example: Example, rng: random.Random, slip_rate: float = 0.0,
                      slips: Sequence[str] = SLIPS) -> list[str]:
        """The model turns of a demonstration episode (see ToolModTask.teacher_turns). A slip is one of `slips`:
        "guess" (no tool, an estimate), "no_tool" (no tool, the product left unevaluated as `a * b`) or
        "wrong_op" (the tool called with a + b)."""
        a, b = example.meta["a"], example.meta["b"]
        kind = self._slip(rng, slip_rate, slips)
        if kind == "guess":  # skip the tool and guess
            guess = a * b + rng.choice([-1, 1]) * rng.randint(1, 9) * 10 ** rng.randint(0, 3)
            return [think_completion(f"Multiplying {a} by {b} in my head gives about {guess}.", f"\\boxed{{{guess}}}")]
        if kind == "no_tool":  # skip the tool and leave the product uncomputed
            return [think_completion(f"Multiplying {a} by {b} in my head is slow, so I leave it as a product.",
                                     f"\\boxed{{{a} * {b}}}")]
        expression = f"{a} + {b}" if kind == "wrong_op" else f"{a} * {b}"
        first = think_completion(f"Multiplying {a} by {b} by hand is error-prone. I will use the {self.tool} tool.",
                                 self._call(expression))
        return [first, _copy_turn]

    def direct_turn(self, example: Example) -> str:
        """A demonstration for the no-tool prompt (`messages(example, with_tools=False)`): the exact product stated
        outright, in the same frame as the tool traces ("Multiplying a by b ..."). Trained on these, the same model
        gives the no-tool baseline its best chance: it must produce the product's digits itself."""
        a, b = example.meta["a"], example.meta["b"]
        return think_completion(f"Multiplying {a} by {b} gives {a * b}.", f"\\boxed{{{a * b}}}")


TASKS = {"tool_mod": ToolModTask, "tool_arith": ToolArithmeticTask}


def _copy_turn(context: str) -> str:
    """The second teacher turn: copy the number the tool printed (in the last `<tool_response>` of the context)."""
    responses = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", context, re.DOTALL)
    last = responses[-1] if responses else ""
    numbers = re.findall(r"-?\d+", last.split("stdout:", 1)[-1])
    value = numbers[0] if numbers else "0"
    return think_completion(f"The tool printed {value}.", f"\\boxed{{{value}}}")
