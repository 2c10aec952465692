"""IFEval (541 prompts with verifiable instructions, from QwQ's eval data), checked by qwq.verify.ifeval on the
answer after `</think>`. Four accuracies: prompt-level (all instructions of a prompt followed) and
instruction-level (each instruction on its own), strict and loose. The headline (`correct`) is prompt-level
strict, the number QwQ reports (83.9)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qwq.eval.tasks.base import EvalItem, EvalTask, SampleScore, TaskError, data_file, read_jsonl, user_turn


class IFEvalTask(EvalTask):
    name = "ifeval"
    kind = "instruct"
    default_n = 1
    description = "IFEval (541 prompts with verifiable instructions; strict/loose, prompt/instruction level)"
    required_files = ("qwq-eval/ifeval.jsonl",)

    def __init__(self, data_root: Path | None = None):
        self.data_root = Path(data_root) if data_root is not None else None

    def load_items(self) -> list[EvalItem]:
        from qwq.verify.ifeval import SUPPORTED_INSTRUCTIONS

        path = data_file(self.data_root, self.required_files[0], self.name)
        items = []
        for index, row in enumerate(read_jsonl(path, ("prompt", "instruction_id_list", "kwargs"), self.name)):
            ids, kwargs = list(row["instruction_id_list"]), list(row["kwargs"])
            if len(ids) != len(kwargs):
                raise TaskError(f"task {self.name}: {path}:{index + 1}: {len(ids)} instruction ids but "
                                f"{len(kwargs)} kwargs entries")
            unknown = [i for i in ids if i not in SUPPORTED_INSTRUCTIONS]
            if unknown:
                raise TaskError(f"task {self.name}: {path}:{index + 1}: unsupported instruction id(s) {unknown}")
            items.append(EvalItem(str(row.get("key", index)), user_turn(str(row["prompt"])),
                                  {"prompt": str(row["prompt"]), "instruction_id_list": ids, "kwargs": kwargs}))
        return items

    def score(self, items: Sequence[EvalItem], completions: Sequence[str],
              starts_in_reasoning: Sequence[bool]) -> list[SampleScore]:
        from qwq.verify.extract import answer_region
        from qwq.verify.ifeval import evaluate_ifeval

        scores = []
        for item, completion, flag in zip(items, completions, starts_in_reasoning, strict=True):
            ids = item.fields["instruction_id_list"]
            region = answer_region(completion or "", starts_in_reasoning=flag)
            if not region.finished:
                none = [False] * len(ids)
                scores.append(SampleScore(False, None, "the thinking never closed: no answer",
                                          {"strict": none, "loose": none}))
                continue
            result = evaluate_ifeval(region.text, ids, item.fields["kwargs"], prompt=item.fields["prompt"])
            followed = sum(result.strict)
            scores.append(SampleScore(result.prompt_strict, None,
                                      f"{followed}/{len(ids)} instructions followed (strict)",
                                      {"strict": list(result.strict), "loose": list(result.loose)}))
        return scores

    def extra_metrics(self, records: Sequence[dict]) -> dict:
        strict = [r["extra"]["strict"] for r in records if r.get("extra", {}).get("strict") is not None]
        loose = [r["extra"]["loose"] for r in records if r.get("extra", {}).get("loose") is not None]
        if not strict:
            return {}

        def prompt_level(lists):
            return sum(all(x) for x in lists) / len(lists)

        def instruction_level(lists):
            flat = [x for xs in lists for x in xs]
            return sum(flat) / len(flat) if flat else None

        return {"prompt_strict": prompt_level(strict), "prompt_loose": prompt_level(loose),
                "instruction_strict": instruction_level(strict), "instruction_loose": instruction_level(loose)}
