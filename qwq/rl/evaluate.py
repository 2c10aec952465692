"""Held-out accuracy: greedy decoding on the engine over each task's held-out split, scored by the task's verifier.

The held-out problems come from a fixed evaluation seed (not the run seed), so every run and every stage is
measured on the same problems; greedy decoding makes the number a deterministic function of the weights.
"""

from __future__ import annotations

import statistics
import time
from typing import Mapping

from qwq.rl.data import Task
from qwq.rl.rollout import starts_in_reasoning

EVAL_SEED = 12345
# Metric groups: a stage's targets are stated per group ("math" = every math task's problems pooled).
GROUP_OF_KIND = {"math": "math", "code": "code", "instruct": "instruct"}


def evaluate_heldout(engine, template, tokenizer, tasks: Mapping[str, Task], counts: Mapping[str, int],
                     max_new_tokens: int, seed: int = EVAL_SEED) -> dict:
    """{"tasks": {name: {"accuracy", "n", "mean_length", "truncated"}}, "groups": {group: accuracy}, "seconds"}."""
    from qwq.engine.sampling import SamplingParams

    started = time.perf_counter()
    params = SamplingParams(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, n=1)
    per_task, pooled = {}, {}
    thinking = starts_in_reasoning(template)
    work = []
    for name, count in counts.items():
        task = tasks[name]
        examples = task.examples("heldout", int(count), seed)
        prompts = [tokenizer.encode(template.render(task.messages(ex), add_generation_prompt=True)) for ex in examples]
        work.append((name, task, examples, prompts))
    all_prompts = [p for _, _, _, prompts in work for p in prompts]
    results = engine.generate(all_prompts, params) if all_prompts else []
    offset = 0
    for name, task, examples, prompts in work:
        samples = [r.samples[0] for r in results[offset:offset + len(prompts)]]
        offset += len(prompts)
        scores = task.reward([s.text for s in samples], examples, thinking)
        correct = [bool(s is not None and s >= 1.0) for s in scores]
        per_task[name] = {
            "accuracy": statistics.fmean(correct) if correct else 0.0,
            "n": len(correct),
            "unscorable": sum(s is None for s in scores),
            "mean_length": statistics.fmean(len(s.token_ids) for s in samples) if samples else 0.0,
            "truncated": statistics.fmean(float(s.finish_reason == "length") for s in samples) if samples else 0.0,
        }
        pooled.setdefault(GROUP_OF_KIND.get(task.kind, task.kind), []).extend(correct)
    groups = {group: statistics.fmean(values) for group, values in pooled.items() if values}
    return {"tasks": per_task, "groups": groups, "seconds": time.perf_counter() - started}


def flat_accuracies(result: dict) -> dict[str, float]:
    """task and group accuracies in one mapping (the summary's `heldout_*` fields)."""
    out = {name: round(v["accuracy"], 4) for name, v in result["tasks"].items()}
    for group, value in result["groups"].items():
        if group not in out:
            out[group] = round(value, 4)
    return out
