"""Tasks for RL and SFT: one object carries the examples, the prompt, `evaluate` (accuracy) and `reward`.

RL and eval score through the same `Task`, so a reward and an accuracy can never disagree about what "correct"
means. A task is either procedural (an infinite, seeded problem space with a held-out split decided by a stable
hash of each problem's canonical key, so held-out problems are never drawn for training, whatever the seed) or a
file of benchmark problems (GSM8K, MATH-500: held-out only; they are for evaluating and training bigger models).

Procedural tasks also write synthetic step-by-step traces in QwQ's format for the cold start: `teacher(example,
rng, slip_rate)` is a deliberately imperfect teacher that takes a plausible wrong turn (an operator-precedence
slip, an off-by-one bound, a forgotten constraint) with probability `slip_rate` (0.7 in the tiny recipe: the
slip is the cold start's greedy answer by a clear margin). The cold-start model inherits that mix of right and
wrong procedures, and RL has to find the right ones from the reward alone -- the setting of QwQ/R1, where RL
improves on a cold start distilled from weaker traces.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from qwq.utils.errors import ConfigError, QwqError


class DatasetError(QwqError):
    """A dataset file is missing or malformed, or a task cannot produce the examples asked for."""


SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Example:
    task: str
    key: str  # canonical problem key, unique within the task (decides the split)
    question: str  # the user message
    fields: dict = field(default_factory=dict)  # columns handed to the reward: answer, tests, instructions...
    meta: dict = field(default_factory=dict)  # generator internals the teacher uses (never shown to the model)

    @property
    def uid(self) -> str:
        return f"{self.task}:{self.key}"


def stable_fraction(text: str) -> float:
    """A deterministic number in [0, 1) from a string (independent of PYTHONHASHSEED and platform)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def think_completion(thinking: str, answer: str) -> str:
    """The text a model writes after QwQ's generation prompt (`<|im_start|>assistant\\n<think>\\n`)."""
    return f"{thinking.strip()}\n</think>\n\n{answer.strip()}"


class Task:
    """Base class: subclasses set `name`, `kind` and implement `evaluate` (+ `generate`/`teacher` if procedural)."""

    name: str = ""
    kind: str = ""  # "math" | "code" | "instruct": which group of stage metrics it counts towards
    heldout_fraction: float = 0.2
    procedural: bool = True  # False: a fixed file of problems (RL draws from its train split)

    # ---- problems -------------------------------------------------------------------------------------------
    def generate(self, rng: random.Random) -> Example:
        raise NotImplementedError(f"task {self.name!r} is not procedural")

    def split_of(self, example: Example) -> str:
        return "heldout" if stable_fraction(example.uid) < self.heldout_fraction else "train"

    def examples(self, split: str, n: int, seed: int, unique: bool = True) -> list[Example]:
        """n problems of `split`, the same list for the same arguments. `unique`: all distinct (an error when the
        space is smaller); otherwise every distinct problem found, repeated in order until there are n."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        rng = random.Random(f"{self.name}/{split}/{seed}")
        seen: dict[str, Example] = {}
        misses = 0
        while len(seen) < n:
            example = self.generate(rng)
            if example.key not in seen and self.split_of(example) == split:
                seen[example.key] = example
                misses = 0
                continue
            misses += 1
            if misses > 100 * len(seen) + 2000:  # nothing new for a long while: the space is exhausted
                if unique or not seen:
                    raise DatasetError(f"task {self.name!r}: only {len(seen)} distinct {split} problems found, {n} "
                                       f"asked (the problem space is too small)")
                found = list(seen.values())
                return [found[i % len(found)] for i in range(n)]
        return list(seen.values())

    # ---- prompt and scoring ---------------------------------------------------------------------------------
    def messages(self, example: Example) -> list[dict]:
        return [{"role": "user", "content": example.question}]

    def evaluate(self, example: Example, completion: str, starts_in_reasoning: bool = True) -> bool:
        """Is the completion correct (accuracy; what held-out metrics count)?"""
        score = self.reward([completion], [example], starts_in_reasoning)[0]
        return bool(score is not None and score >= 1.0)

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        """Scores in [0, 1]; None = cannot score (masked by the trainer, never read as 0). `starts_in_reasoning`:
        the prompt opened a thinking block (QwQ's template), so the answer is only what follows `</think>`."""
        raise NotImplementedError

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        raise NotImplementedError(f"task {self.name!r} has no synthetic teacher")


def columns(examples: Sequence[Example]) -> dict[str, list]:
    """Reward-registry calling convention: every field becomes a column (a list, one entry per completion), plus
    `prompt` (the question) for rewards that read it (reward model, IFEval checkers that quote the prompt)."""
    names: list[str] = []
    for example in examples:
        for name in example.fields:
            if name not in names:
                names.append(name)
    out = {name: [example.fields.get(name) for example in examples] for name in names}
    out.setdefault("prompt", [example.question for example in examples])
    return out


# ---- benchmark files as tasks ------------------------------------------------------------------------------------
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def read_jsonl(path: str | Path, required: Iterable[str]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: dataset file not found")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            missing = [name for name in required if name not in row]
            if missing:
                raise DatasetError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            rows.append(row)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


class FileMathTask(Task):
    """A file of math problems with gold answers (GSM8K `#### N`, MATH-500 `\\boxed{}`), scored by the math verifier.

    All problems are held out by default (benchmarks); `heldout_fraction` < 1 splits the file by a stable hash so
    a recipe can train on the rest (e.g. the 0.5B LoRA recipe on GSM8K)."""

    kind = "math"
    procedural = False

    def __init__(self, name: str, path: str | Path, gold: Callable[[dict], str], heldout_fraction: float = 1.0):
        self.name, self.path, self._gold = name, Path(path), gold
        self.heldout_fraction = heldout_fraction
        self._rows: list[Example] | None = None

    def _load(self) -> list[Example]:
        if self._rows is None:
            rows = read_jsonl(self.path, ("question", "answer"))
            examples = []
            for index, row in enumerate(rows):
                gold = self._gold(row)
                if gold is None:
                    raise DatasetError(f"{self.path}:{index + 1}: no gold answer could be extracted")
                examples.append(Example(self.name, str(index), f"{row['question']}\n{MATH_INSTRUCTION}",
                                        {"answer": gold}))
            self._rows = examples
        return self._rows

    def examples(self, split: str, n: int, seed: int) -> list[Example]:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        pool = self.pool(split)
        if not pool:
            raise DatasetError(f"task {self.name!r} ({self.path}) has no {split} problems")
        order = list(range(len(pool)))
        random.Random(f"{self.name}/{split}/{seed}").shuffle(order)
        return [pool[i] for i in order[:n]]

    def pool(self, split: str) -> list[Example]:
        """Every problem of `split`, in file order."""
        return [ex for ex in self._load() if self.split_of(ex) == split]

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        from qwq.rl.rewards import math_reward

        return math_reward(completions, starts_in_reasoning=starts_in_reasoning, **columns(examples))


def _gsm8k_gold(row: dict) -> str | None:
    from qwq.verify.extract import gsm8k_answer

    return gsm8k_answer(str(row["answer"]))


def _math500_gold(row: dict) -> str | None:
    from qwq.verify.extract import last_boxed

    return last_boxed(str(row["answer"]))


def gsm8k_task(path: str | Path, heldout_fraction: float = 1.0) -> FileMathTask:
    return FileMathTask("gsm8k", path, _gsm8k_gold, heldout_fraction)


def math500_task(path: str | Path, heldout_fraction: float = 1.0) -> FileMathTask:
    return FileMathTask("math500", path, _math500_gold, heldout_fraction)


# ---- registry ----------------------------------------------------------------------------------------------------
def build_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """A task by name; file tasks take `path` in `options`."""
    options = dict(options or {})
    from qwq.rl.tasks_arith import ArithmeticTask, AlgebraTask
    from qwq.rl.tasks_code import CodeTask
    from qwq.rl.tasks_instruct import InstructTask

    procedural: dict[str, Callable[..., Task]] = {
        "arith": ArithmeticTask, "algebra": AlgebraTask, "code": CodeTask, "instruct": InstructTask}
    files = {"gsm8k": gsm8k_task, "math500": math500_task}
    if name in procedural:
        try:
            return procedural[name](**options)
        except TypeError as exc:
            raise ConfigError(f"task {name!r}: bad options {sorted(options)} ({exc})") from None
    if name in files:
        if "path" not in options:
            raise ConfigError(f"task {name!r} needs a `path` to its JSONL file (task_options.{name}.path)")
        unknown = set(options) - {"path", "heldout_fraction"}
        if unknown:
            raise ConfigError(f"task {name!r}: unknown option(s) {', '.join(sorted(unknown))}; allowed: path, "
                              f"heldout_fraction")
        return files[name](options["path"], float(options.get("heldout_fraction", 1.0)))
    if name == "reasoning_gym" or name.startswith("rg:"):
        from qwq.rl.tasks_gym import ReasoningGymTask

        dataset = name.split(":", 1)[1] if ":" in name else options.pop("dataset", "")
        try:
            return ReasoningGymTask(dataset, **options)
        except TypeError as exc:
            raise ConfigError(f"task {name!r}: bad options {sorted(options)} ({exc})") from None
    known = sorted(procedural) + sorted(files) + ["rg:<dataset>"]
    raise ConfigError(f"unknown task {name!r}: expected one of {', '.join(known)}")
