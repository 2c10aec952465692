"""`tool_arith`: a tiny-preset RL task that needs the python tool to be solved.

Multiply two 4-5 digit numbers exactly (digits and a lower bound `min_operand` are options). A few-million-parameter
model cannot do that in its head (the answer has 8-10 digits and one wrong digit scores 0), but it can learn a
short, fixed habit: call the python tool with `print(a * b)` and copy the printed number into `\\boxed{}`. So
accuracy with the tool offered should rise far above accuracy without it, which is what the RL run measures: the
baseline is the same question with no tools passed (QwQ's template then writes no tools section).

Reward: 1.0 when the last `\\boxed{}` of the final answer holds the exact integer, else 0.0 (always scorable).
The teacher writes the intended two-turn trace (call, then copy), with a probability `slip_rate` of a plausible
mistake (no tool and a guessed or uncomputed answer, or code with the wrong operation), for a cold start RL then
improves on.
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
SLIPS = ("guess", "no_tool", "wrong_op")


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


class ToolArithmeticTask(Task):
    name = "tool_arith"
    kind = "math"

    def __init__(self, min_digits: int = 4, max_digits: int = 5, tool: str = "python", heldout_fraction: float = 0.2,
                 sandbox_client: Any = None, min_operand: int = 0):
        if not 1 <= min_digits <= max_digits <= 12:
            raise ValueError(f"digits must satisfy 1 <= min_digits <= max_digits <= 12, got {min_digits}, {max_digits}")
        if tool not in ("python", "calculator"):
            raise ValueError(f"tool must be 'python' or 'calculator', got {tool!r}")
        if min_operand > 10 ** max_digits - 1:
            raise ValueError(f"min_operand {min_operand} has more than max_digits={max_digits} digits")
        self.min_digits, self.max_digits, self.tool = min_digits, max_digits, tool
        self.min_operand = min_operand  # e.g. 5 digits from 31623: every product has exactly 10 digits
        self.heldout_fraction = heldout_fraction
        self.sandbox_client = sandbox_client

    def _number(self, rng: random.Random) -> int:
        low_digits = max(self.min_digits, len(str(max(1, self.min_operand))))
        d = rng.randint(low_digits, self.max_digits)
        return rng.randint(max(10 ** (d - 1), self.min_operand), 10 ** d - 1)

    def generate(self, rng: random.Random) -> Example:
        a, b = self._number(rng), self._number(rng)
        question = f"Compute {a} * {b} exactly.\n{MATH_INSTRUCTION}"
        return Example(self.name, f"{a}*{b}", question, {"answer": str(a * b)}, {"a": a, "b": b})

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

    def teacher_turns(self, example: Example, rng: random.Random, slip_rate: float = 0.0,
                      slips: Sequence[str] = SLIPS) -> list[str]:
        """The model turns of a demonstration episode (run them through `run_episode` with `scripted_generate`, so
        the tool really runs and the turns after it read its real output). A slip, at `slip_rate`, is one of
        `slips`: "guess" (no tool, an estimate), "no_tool" (no tool, the product left unevaluated as `a * b`) or
        "wrong_op" (the tool called with a + b)."""
        unknown = set(slips) - set(SLIPS)
        if unknown or not slips:
            raise ValueError(f"slips must be a non-empty subset of {SLIPS}, got {tuple(slips)}")
        a, b = example.meta["a"], example.meta["b"]
        slip = rng.random() < slip_rate
        kind = (slips[0] if len(slips) == 1 else rng.choice(list(slips))) if slip else None
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

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        raise NotImplementedError("tool_arith demonstrations are multi-turn: use teacher_turns() with run_episode()")


def _copy_turn(context: str) -> str:
    """The second teacher turn: copy the number the tool printed (in the last `<tool_response>` of the context)."""
    responses = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", context, re.DOTALL)
    last = responses[-1] if responses else ""
    numbers = re.findall(r"-?\d+", last.split("stdout:", 1)[-1])
    value = numbers[0] if numbers else "0"
    return think_completion(f"The tool printed {value}.", f"\\boxed{{{value}}}")
