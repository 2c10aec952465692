"""Rewards for the trainers: the verify registry's rewards with a verdict cache, per-task reward specs, and the
control transforms (shuffled / constant rewards) that show a gain comes from the reward signal.

`reward(completions, **fields) -> list[float | None]` throughout (the registry's convention); None = cannot score,
masked by the trainer. Code verdicts are cached by (answer text, tests): a small policy repeats itself a lot, and a
sandbox run is the most expensive reward there is. The cache is a pure memo (same program, same tests, same
verdict), so it changes speed, never results.
"""

from __future__ import annotations

import json
import random
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

from qwq.utils.errors import ConfigError

RewardFn = Callable[..., list]


class _VerdictCache:
    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, float | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def lookup(self, keys: Sequence[tuple]) -> list[tuple[bool, float | None]]:
        with self._lock:
            out = []
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    out.append((True, self._items[key]))
                else:
                    self.misses += 1
                    out.append((False, None))
            return out

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def store(self, key: tuple, value: float | None) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


_CODE_CACHE = _VerdictCache()


def clear_reward_caches() -> None:
    """Forget every cached verdict (benchmarks: each trainer starts cold, none profits from another's runs)."""
    _CODE_CACHE.clear()


def _answer_key(completion: str, starts_in_reasoning: bool) -> tuple[bool, str]:
    from qwq.verify.extract import answer_region

    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    return region.finished, region.text if region.finished else ""


def math_reward(completions: Sequence[str], answer: Sequence[str], starts_in_reasoning: bool = True,
                **_fields) -> list[float | None]:
    from qwq.verify.rewards import math_accuracy

    return math_accuracy(list(completions), answer=list(answer), starts_in_reasoning=starts_in_reasoning)


def code_reward(completions: Sequence[str], tests: Sequence[Any], starts_in_reasoning: bool = True,
                **_fields) -> list[float | None]:
    """1 when every test passes, else 0; None when the sandbox failed (not the program)."""
    from qwq.verify.code import code_tests_reward

    keys = [(_answer_key(c, starts_in_reasoning), json.dumps(t, sort_keys=True, default=str))
            for c, t in zip(completions, tests)]
    found = _CODE_CACHE.lookup(keys)
    todo = {}
    for i, (key, (hit, _)) in enumerate(zip(keys, found)):
        if not hit and key not in todo:
            todo[key] = i
    if todo:
        indices = list(todo.values())
        scores = code_tests_reward([completions[i] for i in indices], tests=[tests[i] for i in indices],
                                   starts_in_reasoning=starts_in_reasoning)
        for key, score in zip(todo, scores):
            if score is not None:  # never cache an infrastructure failure
                _CODE_CACHE.store(key, score)
            todo[key] = score
    return [value if hit else todo[key] for key, (hit, value) in zip(keys, found)]


def instruction_reward(completions: Sequence[str], instruction_id_list: Sequence[list], kwargs: Sequence[list],
                       starts_in_reasoning: bool = True, **_fields) -> list[float | None]:
    """1 when every instruction is followed (IFEval strict, prompt level), else 0."""
    from qwq.verify.rewards import ifeval_reward

    return ifeval_reward(list(completions), instruction_id_list=list(instruction_id_list), kwargs=list(kwargs),
                         starts_in_reasoning=starts_in_reasoning)


TASK_REWARDS: dict[str, RewardFn] = {"math": math_reward, "code": code_reward, "instruct": instruction_reward}


def build_reward_spec(spec: Mapping[str, float] | None, default: RewardFn) -> RewardFn:
    """A task's reward: `default` (the task's own verifier) when spec is empty, else the weighted registry rewards
    (names or dotted paths; `task` means the task's own verifier, `reward_model` the trained RM)."""
    if not spec:
        return default
    from qwq.verify.registry import resolve_reward

    parts: list[tuple[str, float, RewardFn]] = []
    for name, weight in spec.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ConfigError(f"reward {name!r}: weight must be a number, got {weight!r}")
        if name == "task" and default is None:
            raise ConfigError("reward 'task' (the task's own verifier) is not available here")
        fn = default if name == "task" else resolve_reward(name)
        parts.append((name, float(weight), fn))

    def combined(completions: Sequence[str], **fields) -> list[float | None]:
        totals: list[float | None] = [0.0] * len(completions)
        for name, weight, fn in parts:
            values = fn(list(completions), **fields)
            combined.last_scores[name] = values  # type: ignore[attr-defined]
            for i, value in enumerate(values):
                totals[i] = None if value is None or totals[i] is None else totals[i] + weight * float(value)
        return totals

    combined.last_scores = {}  # type: ignore[attr-defined]
    combined.components = [name for name, _, _ in parts]  # type: ignore[attr-defined]
    return combined


def apply_control(rewards: list[float | None], control: str, rng: random.Random,
                  group_sizes: Sequence[int] | None = None) -> list[float | None]:
    """Control experiments (the gain must come from the reward's relation to the completions):

    - `shuffle`: permute the rewards across the whole batch (same values, no relation to the completions; groups that
      were all right or all wrong now usually carry a random signal, so far more groups train than with the real
      reward);
    - `shuffle_group`: permute each group's rewards among its own completions (`group_sizes`: the groups' sizes in
      order). Every group keeps its reward multiset, so the same groups carry signal with the same advantage
      magnitudes as under the real reward: only which completion earned which reward is random;
    - `constant`: every scorable completion gets the same reward (no signal at all)."""
    if control == "none":
        return rewards
    if control == "constant":
        return [None if r is None else 1.0 for r in rewards]
    if control == "shuffle":
        return _permute_known(list(rewards), rng)
    if control == "shuffle_group":
        if group_sizes is None or sum(group_sizes) != len(rewards):
            raise ValueError("shuffle_group needs the group sizes of the batch")
        out, start = [], 0
        for size in group_sizes:
            out += _permute_known(list(rewards[start:start + size]), rng)
            start += size
        return out
    raise ConfigError(f"unknown reward control {control!r}: expected none, shuffle, shuffle_group or constant")


def _permute_known(rewards: list[float | None], rng: random.Random) -> list[float | None]:
    """The scorable rewards permuted among the scorable positions (None stays where it is)."""
    known = [i for i, r in enumerate(rewards) if r is not None]
    values = [rewards[i] for i in known]
    rng.shuffle(values)
    for i, value in zip(known, values):
        rewards[i] = value
    return rewards
