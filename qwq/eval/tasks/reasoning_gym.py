"""reasoning-gym families (`rg:<dataset>`, e.g. rg:basic_arithmetic) as benchmarks, through the RL pipeline's
reasoning-gym task so RL and eval score them the same way (binarised: correct only with full credit).
Needs the optional `reasoning-gym` package."""

from __future__ import annotations

from qwq.eval.tasks.procedural import ProceduralEvalTask


class ReasoningGymEvalTask(ProceduralEvalTask):
    def __init__(self, dataset: str, count: int | None = None, seed: int | None = None):
        super().__init__(f"rg:{dataset}", count, seed)
        self.name = f"rg:{dataset}"
        self.dataset = dataset

    def unavailable(self) -> str | None:
        import importlib.util

        if not self.dataset:
            return "rg:<dataset> needs a dataset name, e.g. rg:basic_arithmetic"
        if importlib.util.find_spec("reasoning_gym") is None:
            return "the optional `reasoning-gym` package is not installed (pip install reasoning-gym)"
        if importlib.util.find_spec("qwq.rl.tasks_gym") is None:
            return "this qwq build has no reasoning-gym task (qwq.rl.tasks_gym)"
        return None
