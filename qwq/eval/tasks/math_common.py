"""Math benchmarks share one scorer: the answer after `</think>` (boxed first) checked by qwq.verify.math."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qwq.eval.tasks.base import EvalItem, EvalTask, SampleScore, score_in_groups


class MathTask(EvalTask):
    kind = "math"

    def __init__(self, data_root: Path | None = None, timeout: float = 5.0):
        self.data_root = Path(data_root) if data_root is not None else None
        self.timeout = timeout

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        from qwq.verify.math import verify_math_batch
        from qwq.verify.normalize import normalize_answer_text

        def scorer(indices, flag):
            results = verify_math_batch([completions[i] for i in indices],
                                        [str(items[i].fields["answer"]) for i in indices],
                                        starts_in_reasoning=flag, timeout=self.timeout)
            return [SampleScore(r.correct, normalize_answer_text(r.pred_answer) if r.pred_answer else None,
                                r.reason, {"pred": r.pred_answer}) for r in results]

        return score_in_groups(completions, starts_in_reasoning, scorer)
