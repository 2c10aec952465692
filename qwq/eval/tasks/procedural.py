"""The RL pipeline's tasks (qwq.rl.data) as benchmarks: their held-out split, scored by the task's own `reward`
(the exact function RL trains on), so a training curve and an eval number can never disagree about correctness.

`proc:<name>` is any task qwq.rl.data.build_task knows (arith, linear, code, instruct, ...); a sample is correct
when its reward is 1 (a partial reward counts as wrong; None means the task could not score it). The problems are
drawn with the pipeline's evaluation seed unless another is given, so the numbers line up with the held-out
accuracies of a `qwq pipeline` report.
"""

from __future__ import annotations

from typing import Sequence

from qwq.eval.tasks.base import EvalItem, EvalTask, SampleScore, TaskError

DEFAULT_COUNT = 200


def as_thinking_completion(completion: str, starts_in_reasoning: bool) -> str:
    """RL tasks read completions as QwQ writes them (starting inside the thinking); a model without a thinking
    prompt answered directly, so its whole text is the answer."""
    return completion if starts_in_reasoning else f"</think>\n\n{completion}"


class ProceduralEvalTask(EvalTask):
    default_n = 1

    def __init__(self, task_name: str, count: int | None = None, seed: int | None = None, split: str = "heldout"):
        if not task_name:
            raise TaskError("proc:<task> needs a task name, e.g. proc:arith")
        if seed is None:
            from qwq.rl.evaluate import EVAL_SEED

            seed = EVAL_SEED
        self.task_name, self.count, self.seed, self.split = task_name, count or DEFAULT_COUNT, seed, split
        self.name = f"proc:{task_name}"
        self.description = f"pipeline task {task_name} ({split} split, {self.count} problems, seed {seed})"
        self._task = None

    @property
    def rl_task(self):
        if self._task is None:
            from qwq.rl.data import build_task

            self._task = build_task(self.task_name)
            self.kind = {"instruct": "instruct"}.get(self._task.kind, self._task.kind or "math")
        return self._task

    def load_items(self) -> list[EvalItem]:
        task = self.rl_task
        examples = task.examples(self.split, self.count, self.seed)
        return [EvalItem(example.key, task.messages(example), {"example": example}) for example in examples]

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        from qwq.verify.extract import answer_region, extract_math_answer
        from qwq.verify.normalize import normalize_answer_text

        texts = [as_thinking_completion(c, f) for c, f in zip(completions, starts_in_reasoning, strict=True)]
        rewards = self.rl_task.reward(texts, [item.fields["example"] for item in items])
        scores = []
        for text, reward in zip(texts, rewards, strict=True):
            key = None
            if self.rl_task.kind == "math":
                region = answer_region(text, starts_in_reasoning=True)
                answer = extract_math_answer(region.text).answer if region.finished else None
                key = normalize_answer_text(answer) if answer else None
            correct = None if reward is None else reward >= 1.0
            scores.append(SampleScore(correct, key, f"reward {reward}", {"reward": reward}))
        return scores
