"""Rewards by name or dotted path, with weights, combined into one reward function.

A reward follows TRL's convention: `reward(completions, **example_fields) -> list[float | None]`, one value per
completion; None means "cannot score" and is masked downstream (never counted as 0). `completions` are strings
or chat messages (`[{"role": "assistant", "content": ...}]`); example fields are per-sample lists (dataset
columns), e.g. `answer=[...]`. Extra fields a reward does not use are ignored.

    reward = build_reward([{"name": "math_accuracy", "weight": 1.0},
                           {"name": "format", "weight": 0.2, "params": {"require_boxed": True}},
                           {"name": "my_pkg.rewards:brevity", "weight": 0.1}])
    scores = reward(completions, answer=golds)

A spec is a registered name (see `registered_rewards()`) or a dotted path `package.module:function` (or
`package.module.function`) to any function with the reward signature; `params` are bound as keyword arguments.
Other layers add names with `@register_reward("name")` (the trained reward model registers itself that way).
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from qwq.utils.errors import QwqError

RewardFunction = Callable[..., list]

_REGISTRY: dict[str, RewardFunction] = {}


class RewardError(QwqError):
    """A reward spec cannot be resolved, or a reward returned something that is not one value per completion."""


def register_reward(name: str) -> Callable[[RewardFunction], RewardFunction]:
    def decorator(fn: RewardFunction) -> RewardFunction:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise RewardError(f"a reward named {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def registered_rewards() -> dict[str, RewardFunction]:
    _load_builtins()
    return dict(_REGISTRY)


@functools.lru_cache(maxsize=1)
def _load_builtins() -> None:
    importlib.import_module("qwq.verify.rewards")
    importlib.import_module("qwq.verify.code")  # code_tests (imports the sandbox client, so only on demand)


def resolve_reward(spec: str | RewardFunction, params: Mapping[str, Any] | None = None) -> RewardFunction:
    """A registered name, a dotted path or a callable -> the reward function with `params` bound."""
    if callable(spec):
        fn = spec
    else:
        _load_builtins()
        if spec in _REGISTRY:
            fn = _REGISTRY[spec]
        elif "." in spec or ":" in spec:
            module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise RewardError(f"reward {spec!r}: cannot import module {module_name!r} ({exc})") from None
            fn = getattr(module, attr, None)
            if not callable(fn):
                raise RewardError(f"reward {spec!r}: {module_name} has no callable {attr!r}")
        else:
            raise RewardError(f"unknown reward {spec!r} (registered: {', '.join(sorted(_REGISTRY))}; "
                              "or give a dotted path package.module:function)")
    return functools.partial(fn, **params) if params else fn


def completion_texts(completions: Sequence[Any]) -> list[str]:
    """Strings, or TRL conversational completions (lists of messages): the assistant text of each."""
    texts = []
    for i, c in enumerate(completions):
        if isinstance(c, str):
            texts.append(c)
        elif isinstance(c, Mapping) and "content" in c:
            texts.append(str(c["content"] or ""))
        elif isinstance(c, Sequence) and all(isinstance(m, Mapping) for m in c):
            texts.append("".join(str(m.get("content") or "") for m in c if m.get("role", "assistant") == "assistant"))
        else:
            raise RewardError(f"completion {i} is neither a string nor a list of chat messages: {type(c).__name__}")
    return texts


def field_values(fields: Mapping[str, Any], name: str, n: int, *, required: bool = True,
                 default: Any = None) -> list:
    """The per-sample values of example field `name` (a list of length n)."""
    if name not in fields or fields[name] is None:
        if required:
            raise RewardError(f"this reward needs the example field {name!r} (one value per completion)")
        return [default] * n
    values = fields[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
        raise RewardError(f"example field {name!r} must be a list with one value per completion ({n}), "
                          f"got {type(values).__name__}" + (f" of length {len(values)}" if hasattr(values, '__len__')
                                                             else ""))
    return list(values)


@dataclass
class WeightedReward:
    name: str
    fn: RewardFunction
    weight: float = 1.0


@dataclass
class CombinedReward:
    """The weighted sum of several rewards. `none_policy`: "mask" makes the sum None when any component cannot
    score; "skip" sums the components that could (None only when none could)."""

    components: list[WeightedReward]
    none_policy: str = "mask"
    last_scores: dict[str, list] = field(default_factory=dict, repr=False)  # per component, for logging

    def __post_init__(self):
        if self.none_policy not in ("mask", "skip"):
            raise RewardError(f"none_policy must be 'mask' or 'skip', got {self.none_policy!r}")
        if not self.components:
            raise RewardError("a combined reward needs at least one component")

    @property
    def __name__(self) -> str:  # TRL logs reward functions by __name__
        return "+".join(c.name for c in self.components)

    def __call__(self, completions: Sequence[Any], **fields) -> list[float | None]:
        n = len(completions)
        per_component = {}
        for component in self.components:
            values = component.fn(completions, **fields)
            per_component[component.name] = _checked(component.name, values, n)
        self.last_scores = per_component
        totals: list[float | None] = []
        for i in range(n):
            parts = [(c.weight, per_component[c.name][i]) for c in self.components]
            known = [w * v for w, v in parts if v is not None]
            if not known or (self.none_policy == "mask" and len(known) < len(parts)):
                totals.append(None)
            else:
                totals.append(float(sum(known)))
        return totals


def _checked(name: str, values: Any, n: int) -> list[float | None]:
    if not isinstance(values, Sequence) or len(values) != n:
        raise RewardError(f"reward {name!r} returned {type(values).__name__} "
                          f"{'of length ' + str(len(values)) if hasattr(values, '__len__') else ''}, "
                          f"expected a list of {n} values")
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            raise RewardError(f"reward {name!r} returned {v}; use None for a sample it cannot score")
        out.append(v)
    return out


def _name_and_weight(part: str) -> dict:
    """"format:0.2" -> format with weight 0.2; "pkg.mod:fn" (no number after the last colon) -> weight 1."""
    name, sep, tail = part.rpartition(":")
    if sep:
        try:
            return {"name": name.strip(), "weight": float(tail)}
        except ValueError:
            pass
    return {"name": part, "weight": 1.0}


def build_reward(config: str | Mapping[str, float] | Sequence[Mapping[str, Any] | str],
                 none_policy: str = "mask") -> CombinedReward:
    """From "math_accuracy:1,format:0.2", {"math_accuracy": 1.0}, or [{"name", "weight", "params"}, ...]."""
    items: list[Mapping[str, Any]] = []
    if isinstance(config, str):
        for part in filter(None, (p.strip() for p in config.split(","))):
            items.append(_name_and_weight(part))
    elif isinstance(config, Mapping):
        items = [{"name": k, "weight": v} for k, v in config.items()]
    else:
        items = [{"name": c} if isinstance(c, str) else c for c in config]
    components = []
    for item in items:
        unknown = set(item) - {"name", "weight", "params"}
        if "name" not in item or unknown:
            raise RewardError(f"a reward entry needs 'name' (and optionally 'weight', 'params'); got {dict(item)}")
        try:
            weight = float(item.get("weight", 1.0))
        except (TypeError, ValueError):
            raise RewardError(f"reward {item['name']!r}: weight {item.get('weight')!r} is not a number") from None
        components.append(WeightedReward(str(item["name"]), resolve_reward(item["name"], item.get("params")), weight))
    names = [c.name for c in components]
    if len(set(names)) != len(names):
        raise RewardError(f"a reward appears twice in {names}")
    return CombinedReward(components, none_policy=none_policy)
