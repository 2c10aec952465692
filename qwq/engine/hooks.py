"""The per-sample controller hook: how reasoning controls (thinking budget, budget forcing, loop breaker, language
guard... see qwq.engine.controls) steer generation without the engine knowing about any of them.

A controller is created for each sample of a request (from a factory: a registered name in
`SamplingParams.controls`, or a callable passed to `Engine.generate(..., controllers=[...])`). At every step of its
sample the engine calls, in order:

  before_sample(state, logits) -> Action | None
        `logits` [V] are the raw logits of the next position (read-only). The controller may add a `bias` ([V],
        -inf masks a token), `force` a token sequence (the first replaces this step's sample, the rest are fed
        one per step, each still seeing `before_sample`), or `stop` the sample with a reason.
  on_token(state, token_id, forced) -> Action | None
        After a token is chosen, before it is appended. `replace` swaps it for a sequence of tokens (e.g. `</think>`
        -> "Wait"), `stop` ends the sample (the token is appended first unless `drop_token`).

Several controllers on one sample run in their given order; biases add up, the first force/replace/stop wins.
`details()` is copied into `Sample.controls[name]` when the sample ends. `state` is a live `SampleState`; treat it
as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from qwq.engine.sampling import SamplingParams


@dataclass
class Action:
    bias: "torch.Tensor | None" = None  # [V] added to the logits before sampling
    force: Sequence[int] | None = None  # tokens to emit instead of sampling
    replace: Sequence[int] | None = None  # (on_token) tokens to emit instead of the chosen one
    stop: str | None = None  # end the sample; the reason lands in Sample.stop_reason
    drop_token: bool = False  # with stop in on_token: do not append the chosen token


@dataclass
class SampleState:
    """What a controller can see about its sample (kept up to date by the engine)."""

    request_id: str
    sample_index: int
    params: "SamplingParams"
    prompt_ids: list[int]
    generated_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded generated text so far (complete characters only)
    in_thinking: bool = False  # inside <think> ... </think> after the last appended token
    thinking_tokens: int = 0  # generated tokens spent inside thinking
    answer_tokens: int = 0  # generated tokens after the thinking closed
    pending_forced: int = 0  # forced tokens still queued
    tokenizer: Any = None  # encode / decode for controllers that insert text
    think_token_ids: tuple[int | None, int | None] = (None, None)  # (<think>, </think>) ids if the vocab has them

    @property
    def num_generated(self) -> int:
        return len(self.generated_ids)


@runtime_checkable
class Controller(Protocol):
    name: str

    def before_sample(self, state: SampleState, logits: "torch.Tensor") -> Action | None: ...

    def on_token(self, state: SampleState, token_id: int, forced: bool) -> Action | None: ...

    def details(self) -> dict: ...


class BaseController:
    """Convenience base: every hook does nothing."""

    name = "controller"

    def before_sample(self, state: SampleState, logits: "torch.Tensor") -> Action | None:
        return None

    def on_token(self, state: SampleState, token_id: int, forced: bool) -> Action | None:
        return None

    def details(self) -> dict:
        return {}


# A factory builds one controller for one sample: factory(setting from SamplingParams.controls, state).
ControllerFactory = Callable[[Any, SampleState], Controller]
_REGISTRY: dict[str, ControllerFactory] = {}


def register_controller(name: str, factory: ControllerFactory) -> None:
    """Make `SamplingParams(controls={name: setting})` build a controller with `factory(setting, state)`."""
    _REGISTRY[name] = factory


def registered_controllers() -> dict[str, ControllerFactory]:
    _load_builtin_controls()
    return dict(_REGISTRY)


def _load_builtin_controls() -> None:
    """The reasoning controls register themselves when their module is imported (if it exists yet)."""
    import importlib.util

    if importlib.util.find_spec("qwq.engine.controls") is not None:
        import qwq.engine.controls  # noqa: F401


def build_controllers(state: SampleState, extra: Sequence[ControllerFactory] = ()) -> list[Controller]:
    from qwq.utils.errors import UsageError

    controllers: list[Controller] = []
    controls = state.params.controls
    if controls:
        registry = registered_controllers()
        for name, setting in controls.items():
            if setting is None or setting is False:
                continue
            if name not in registry:
                known = ", ".join(sorted(registry)) or "none registered"
                raise UsageError(f"unknown control {name!r} in sampling parameters (known: {known})")
            controllers.append(registry[name](setting, state))
    for factory in extra:
        controllers.append(factory(None, state))
    return controllers
