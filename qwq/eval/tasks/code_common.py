"""Code benchmarks share one scorer: the last fenced program of the answer, judged by qwq.verify.code in the
sandbox. A benchmark may define a trusted prefix put before the program (the imports its judge always supplied:
HumanEval's prompt, LiveCodeBench's import header), as the original judges did."""

from __future__ import annotations

from typing import Any, Sequence

from qwq.eval.tasks.base import EvalItem, EvalTask, SampleScore, score_in_groups


def with_program_prefix(completion: str, starts_in_reasoning: bool, prefix: str) -> tuple[str, bool]:
    """The completion with `prefix` put before its program, as a plain answer; unchanged when it has no program
    (the verifier then says why)."""
    from qwq.verify.code import extract_code
    from qwq.verify.extract import answer_region

    if not prefix:
        return completion, starts_in_reasoning
    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    if not region.finished:
        return completion, starts_in_reasoning
    code = extract_code(region.text, "python")
    if code is None:
        return completion, starts_in_reasoning
    return f"```python\n{prefix.rstrip()}\n\n{code}\n```", False


class CodeTask(EvalTask):
    kind = "code"
    limits: Any = None  # qwq.sandbox.verdicts.Limits, None = the sandbox default

    def program_prefix(self, item: EvalItem) -> str:
        return ""

    def tests_for(self, items: Sequence[EvalItem]) -> list:
        """Test specs (see qwq.verify.code.parse_test_spec), one per item."""
        return [item.fields["tests"] for item in items]

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        from qwq.verify.code import verify_code_batch

        unique: dict[str, EvalItem] = {item.id: item for item in items}
        specs = dict(zip(unique, self.tests_for(list(unique.values()))))
        prepared = [with_program_prefix(c, f, self.program_prefix(item))
                    for item, c, f in zip(items, completions, starts_in_reasoning, strict=True)]
        texts = [p[0] for p in prepared]

        def scorer(indices, flag):
            results = verify_code_batch([texts[i] for i in indices], [specs[items[i].id] for i in indices],
                                        starts_in_reasoning=flag, limits=self.limits)
            return [SampleScore(r.correct, None, r.reason[:500],
                                {"verdict": r.verdict, "passed": r.passed, "total": r.total}) for r in results]

        return score_in_groups(texts, [p[1] for p in prepared], scorer)
