"""Rollouts: prompts from the task mixture -> n samples each on the engine (one shared prefill per prompt) ->
rewards from each task's reward function -> groups ready for advantages.

Every random choice is seeded from (seed, stage, step, round): which problems, and the engine's per-request
sampling seeds, so a step can be replayed exactly (resume, determinism tests).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from qwq.rl.data import Example, Task, columns

RewardFn = Callable[..., list]


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    finish_reason: str
    forced: list[bool]  # tokens a controller inserted (not sampled: no policy gradient through them)
    reward: float | None = None
    correct: bool = False  # the task's own verifier (accuracy), independent of the reward spec
    components: dict = field(default_factory=dict)


@dataclass
class Group:
    task: str
    example: Example
    prompt_ids: list[int]
    completions: list[Completion]

    @property
    def rewards(self) -> list[float | None]:
        return [c.reward for c in self.completions]

    def has_signal(self) -> bool:
        """At least two scorable completions with different rewards (else every advantage is zero)."""
        known = [r for r in self.rewards if r is not None]
        return len(known) >= 2 and max(known) > min(known)


@dataclass
class TaskSlot:
    """A task in the RL mixture: the task, its sampling weight and its reward function."""

    task: Task
    weight: float
    reward: RewardFn
    train_pool: list[Example] | None = None  # file tasks: the train split, drawn from at random


def draw_examples(slots: Sequence[TaskSlot], count: int, rng: random.Random) -> list[tuple[TaskSlot, Example]]:
    """`count` training problems: a task by weight, then a fresh train-split problem of it."""
    weights = [s.weight for s in slots]
    chosen = []
    for _ in range(count):
        slot = rng.choices(slots, weights=weights)[0]
        if slot.train_pool is not None:
            chosen.append((slot, rng.choice(slot.train_pool)))
            continue
        for _attempt in range(10_000):
            example = slot.task.generate(rng)
            if slot.task.split_of(example) == "train":
                break
        chosen.append((slot, example))
    return chosen


def sampling_params(cfg, n: int, seed: int, loop_breaker: bool):
    from qwq.engine.sampling import SamplingParams

    controls = {"loop_breaker": True} if loop_breaker else {}
    return SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                          n=n, seed=seed, controls=controls)


def starts_in_reasoning(template) -> bool:
    """Does this chat template's generation prompt open a thinking block (QwQ: `<think>\\n`)?"""
    from qwq.tokenizer.reasoning import prompt_starts_in_reasoning

    return prompt_starts_in_reasoning(template.render([{"role": "user", "content": "?"}], add_generation_prompt=True))


def loop_breaker_available() -> bool:
    from qwq.engine.hooks import registered_controllers

    return "loop_breaker" in registered_controllers()


def generate_groups(engine, template, tokenizer, picks: Sequence[tuple[TaskSlot, Example]], params_for: Callable,
                    ) -> tuple[list[Group], float]:
    """Sample every prompt `params.n` times on the engine; returns the groups (unscored) and the seconds taken."""
    started = time.perf_counter()
    prompts = [tokenizer.encode(template.render(slot.task.messages(ex), add_generation_prompt=True))
               for slot, ex in picks]
    results = engine.generate(prompts, [params_for(i) for i in range(len(picks))])
    groups = []
    for (slot, example), prompt, result in zip(picks, prompts, results):
        completions = [Completion(list(s.token_ids), s.text, s.finish_reason,
                                  list(s.forced_mask) if s.forced_mask else [False] * len(s.token_ids))
                       for s in result.samples]
        groups.append(Group(slot.task.name, example, prompt, completions))
    return groups, time.perf_counter() - started


def score_groups(groups: Sequence[Group], slots: Sequence[TaskSlot], starts_in_reasoning: bool = True) -> float:
    """Fill in rewards (the slot's reward spec) and correctness (the task's verifier), batched per task."""
    started = time.perf_counter()
    by_task: dict[str, list[Group]] = {}
    for group in groups:
        by_task.setdefault(group.task, []).append(group)
    slot_of = {s.task.name: s for s in slots}
    for name, task_groups in by_task.items():
        slot = slot_of[name]
        flat = [(g.example, c) for g in task_groups for c in g.completions]
        texts = [c.text for _, c in flat]
        examples = [ex for ex, _ in flat]
        fields = columns(examples)
        verdicts = slot.task.reward(texts, examples, starts_in_reasoning)
        rewards = verdicts if slot.reward is None else slot.reward(texts, starts_in_reasoning=starts_in_reasoning,
                                                                   **fields)
        parts = getattr(slot.reward, "last_scores", {}) if slot.reward is not None else {}
        for i, (_, completion) in enumerate(flat):
            completion.correct = bool(verdicts[i] is not None and verdicts[i] >= 1.0)
            completion.reward = None if rewards[i] is None else float(rewards[i])
            completion.components = {k: v[i] for k, v in parts.items()}
    return time.perf_counter() - started
