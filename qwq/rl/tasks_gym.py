"""reasoning-gym families as tasks (optional: `pip install reasoning-gym`), with binarised scores.

reasoning-gym's own scorers give partial credit (e.g. 0.05 for a wrong but well-formed answer); RL on partial
credit rewards formatting over correctness, so the reward here is 1 when the score reaches `threshold` (default
1.0, exact) and 0 otherwise. A dataset of `size` entries is generated from a fixed seed and split by a stable hash
of each entry's index, so the held-out entries never appear in training.

    task = build_task("rg:basic_arithmetic", {"size": 2000, "config": {"min_terms": 2, "max_terms": 3}})
"""

from __future__ import annotations

from typing import Any, Sequence

from qwq.rl.data import DatasetError, Example, Task

INSTRUCTION = "Put your final answer within \\boxed{}."


def _answer_text(completion: str, starts_in_reasoning: bool) -> str | None:
    from qwq.verify.extract import answer_region, find_boxed

    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    if not region.finished:
        return None
    boxed = find_boxed(region.text)
    return boxed[-1].strip() if boxed else region.text.strip() or None


class ReasoningGymTask(Task):
    kind = "reasoning"
    procedural = False

    def __init__(self, dataset: str, size: int = 2000, seed: int = 0, heldout_fraction: float = 0.2,
                 threshold: float = 1.0, config: dict | None = None, kind: str = "reasoning") -> None:
        try:
            import reasoning_gym
        except ImportError:
            raise DatasetError("reasoning-gym tasks need the reasoning-gym package: pip install reasoning-gym") from None
        if not dataset:
            raise DatasetError("a reasoning-gym task needs a dataset name, e.g. rg:basic_arithmetic")
        try:
            self.dataset = reasoning_gym.create_dataset(dataset, size=size, seed=seed, **(config or {}))
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"reasoning-gym dataset {dataset!r}: {exc}") from None
        self.name, self.kind = f"rg:{dataset}", kind
        self.heldout_fraction, self.threshold = heldout_fraction, threshold
        self._entries = [self.dataset[i] for i in range(size)]

    def _example(self, index: int) -> Example:
        entry = self._entries[index]
        return Example(self.name, str(index), f"{entry['question']}\n{INSTRUCTION}",
                       {"rg_index": index, "answer": str(entry.get("answer", ""))})

    def pool(self, split: str) -> list[Example]:
        return [ex for ex in (self._example(i) for i in range(len(self._entries))) if self.split_of(ex) == split]

    def examples(self, split: str, n: int, seed: int, unique: bool = True) -> list[Example]:
        import random

        pool = self.pool(split)
        if not pool:
            raise DatasetError(f"task {self.name!r} has no {split} entries")
        order = list(range(len(pool)))
        random.Random(f"{self.name}/{split}/{seed}").shuffle(order)
        chosen = [pool[i] for i in order[:n]]
        if len(chosen) < n and unique:
            raise DatasetError(f"task {self.name!r}: only {len(chosen)} {split} entries, {n} asked (raise size)")
        return chosen if len(chosen) == n else [chosen[i % len(chosen)] for i in range(n)]

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        scores: list[float | None] = []
        for completion, example in zip(completions, examples):
            answer = _answer_text(completion, starts_in_reasoning)
            if answer is None:
                scores.append(0.0)
                continue
            try:
                value: Any = self.dataset.score_answer(answer, self._entries[int(example.fields["rg_index"])])
            except Exception:  # noqa: BLE001 - a scorer crash on odd input is that sample's problem, not the batch's
                scores.append(None)
                continue
            scores.append(1.0 if float(value) >= self.threshold else 0.0)
        return scores
