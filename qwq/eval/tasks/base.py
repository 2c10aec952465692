"""What every benchmark provides: its items (prompt as chat messages + the fields scoring needs) and a scorer that
goes through qwq.verify, the same code RL rewards use.

The official QwQ protocol lives here too: the model-card prompts and the sampling defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from qwq.utils.errors import QwqError

# Model card, "Standardize Output Format".
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = 'Please show your choice in the `answer` field with only the choice letter, e.g., `"answer": "C"`.'

# Model card sampling: temperature 0.6, top_p 0.95, top_k 40 (20-40), min_p 0, no repetition penalty.
PROTOCOL_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 40, "min_p": 0.0, "max_tokens": 32768}


class TaskError(QwqError):
    """A benchmark cannot be built or loaded (names the task and the file or package)."""


class TaskUnavailable(TaskError):
    """A benchmark cannot run here (data or package missing); the message says why and how to fix it."""


@dataclass(frozen=True)
class EvalItem:
    """One problem: `messages` is exactly what the model is asked; `fields` is what scoring needs (gold
    answers, tests, instruction ids) and is never shown to the model."""

    id: str
    messages: list[dict]
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SampleScore:
    """`correct` None: the verifier could not score (left out of accuracies). `answer_key`: the extracted answer,
    for majority voting (None when there is none or voting makes no sense, as for code)."""

    correct: bool | None
    answer_key: str | None = None
    reason: str = ""
    extra: dict = field(default_factory=dict)


class EvalTask:
    """Subclasses set `name`, `kind`, `default_n` and implement `load_items` and `score`."""

    name: str = ""
    kind: str = ""  # "math" | "code" | "instruct" | "choice"
    default_n: int = 1
    description: str = ""
    data_root: Path | None = None
    required_files: tuple[str, ...] = ()  # relative to data_root

    def unavailable(self) -> str | None:
        """Why this task cannot run here (None when it can)."""
        for relative in self.required_files:
            reason = missing_data_reason(self.data_root, relative)
            if reason:
                return reason
        return None

    def load_items(self) -> list[EvalItem]:
        raise NotImplementedError

    def items(self, limit: int | None = None) -> list[EvalItem]:
        reason = self.unavailable()
        if reason:
            raise TaskUnavailable(f"task {self.name}: {reason}")
        items = self.load_items()
        if not items:
            raise TaskError(f"task {self.name}: no items")
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise TaskError(f"task {self.name}: item ids are not unique")
        return items[:limit] if limit is not None else items

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        """One score per completion; items[i] is the problem completion i answers."""
        raise NotImplementedError

    def extra_metrics(self, records: Sequence[dict]) -> dict:
        """Task-specific metrics from the scored sample records (IFEval's four accuracies)."""
        return {}

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default_n": self.default_n, "description": self.description}


def grouped_by_flag(starts_in_reasoning: Sequence[bool]) -> dict[bool, list[int]]:
    """Indices grouped by their `starts_in_reasoning` flag, so each verifier batch gets one flag."""
    groups: dict[bool, list[int]] = {}
    for i, flag in enumerate(starts_in_reasoning):
        groups.setdefault(bool(flag), []).append(i)
    return groups


def score_in_groups(completions: Sequence[str], starts_in_reasoning: Sequence[bool], scorer) -> list:
    """Call `scorer(indices, flag)` per flag group and put the results back in completion order."""
    if len(completions) != len(starts_in_reasoning):
        raise ValueError(f"{len(completions)} completions for {len(starts_in_reasoning)} flags")
    out: list = [None] * len(completions)
    for flag, indices in grouped_by_flag(starts_in_reasoning).items():
        for i, result in zip(indices, scorer(indices, flag)):
            out[i] = result
    return out


def user_turn(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


# ---------------------------------------------------------------- data files

def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """Where benchmark files live: `explicit` (--data-dir), else $QWQ_DATA, else a `shared/data` directory next to
    the source checkout. None when none exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get("QWQ_DATA"):
        return Path(os.environ["QWQ_DATA"])
    here = Path(__file__).resolve()
    repo = here.parents[3]  # qwq/eval/tasks/base.py -> checkout root
    for candidate in (repo.parent / "shared" / "data", repo / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def missing_data_reason(root: Path | None, relative: str) -> str | None:
    if root is None:
        return f"no benchmark data directory; pass --data-dir DIR (holding {relative}) or set QWQ_DATA"
    if not (root / relative).is_file():
        return f"{root / relative} not found (pass --data-dir DIR holding {relative})"
    return None


def data_file(root: Path | None, relative: str, task: str) -> Path:
    reason = missing_data_reason(root, relative)
    if reason:
        raise TaskUnavailable(f"task {task}: {reason}")
    return root / relative  # type: ignore[operator]


def read_jsonl(path: Path, required: Iterable[str], task: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(f"task {task}: {path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TaskError(f"task {task}: {path}:{number}: expected a JSON object")
            missing = [name for name in required if name not in row]
            if missing:
                raise TaskError(f"task {task}: {path}:{number}: missing field(s) {', '.join(missing)}")
            rows.append(row)
    return rows
