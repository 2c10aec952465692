"""From an API request to what the engine runs: prompt ids, SamplingParams and per-sample controllers.

Everything a client can get wrong is checked here, before any token is generated or any byte of a stream is sent,
so it comes back as a 4xx in OpenAI's shape: unknown model, a prompt longer than the context, max_tokens past it,
tool_choice naming no offered tool, unknown or malformed reasoning controls, token ids outside the vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from qwq.engine.hooks import Action, BaseController, SampleState, registered_controllers
from qwq.engine.sampling import SamplingParams
from qwq.engine.sequence import RequestState
from qwq.serve.errors import bad_request
from qwq.serve.protocol import ChatCompletionRequest, SamplingFields
from qwq.tokenizer.reasoning import THINK_CLOSE, prompt_starts_in_reasoning
from qwq.utils.errors import QwqError

CONTROL_FIELDS = ("thinking_budget", "min_thinking_tokens", "loop_breaker", "language_guard", "early_exit",
                  "self_consistency", "starts_in_thinking")
SEED_SPACE = 1 << 63


@dataclass
class Prepared:
    prompt_ids: list[int]
    params: SamplingParams
    controllers: list = field(default_factory=list)
    starts_in_reasoning: bool = False
    parse_tools: bool = False
    self_consistency: Any = None  # qwq.engine.self_consistency.SelfConsistencySettings
    messages: list[dict] = field(default_factory=list)  # the conversation as rendered (for the input guard)


# ---- messages -----------------------------------------------------------------------------------------------------
def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def without_thinking(text: str) -> str:
    """An earlier assistant turn as it goes back into the prompt: only the answer after the last `</think>`."""
    return text.split(THINK_CLOSE)[-1].lstrip("\n") if THINK_CLOSE in text else text


def plain_messages(request: ChatCompletionRequest) -> list[dict]:
    """Template-ready messages: text parts joined, `developer` read as `system`, thinking stripped from history."""
    out = []
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        entry: dict[str, Any] = {"role": role}
        if role == "assistant":
            entry["content"] = without_thinking(_text(message.content))
            if message.tool_calls:
                entry["tool_calls"] = [{"id": c.id, "type": "function",
                                        "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                       for c in message.tool_calls]
        else:
            entry["content"] = _text(message.content)
        if role == "tool":
            entry["tool_call_id"] = message.tool_call_id
        out.append(entry)
    return out


def _check_tool_arguments(request: ChatCompletionRequest) -> None:
    for i, message in enumerate(request.messages):
        for j, call in enumerate(getattr(message, "tool_calls", None) or []):
            try:
                value = json.loads(call.function.arguments)
            except json.JSONDecodeError as exc:
                raise bad_request(f"messages.{i}.tool_calls.{j}.function.arguments is not valid JSON: {exc.msg}",
                                  f"messages.{i}.tool_calls.{j}.function.arguments") from None
            if not isinstance(value, dict):
                raise bad_request(f"messages.{i}.tool_calls.{j}.function.arguments must encode a JSON object",
                                  f"messages.{i}.tool_calls.{j}.function.arguments")


def tool_setup(request: ChatCompletionRequest) -> tuple[list[dict] | None, str | None]:
    """(tools to render, tool-call prefix to force after the thinking or None)."""
    choice = request.tool_choice
    tools = [t.model_dump(exclude_none=True) for t in request.tools] if request.tools else None
    if choice is not None and not tools and choice != "none":
        raise bad_request("tool_choice is set but no tools are given", "tool_choice")
    if choice == "none" or not tools:
        return None, None
    if choice == "required":
        return tools, '<tool_call>\n{"name": "'
    if choice is not None and not isinstance(choice, str):
        names = [t["function"]["name"] for t in tools]
        if choice.function.name not in names:
            raise bad_request(f"tool_choice names {choice.function.name!r}, which is not among the tools "
                              f"({', '.join(names)})", "tool_choice")
        # no trailing space: BPE merges it with the next character (` {"`), so the model writes it itself
        return tools, f'<tool_call>\n{{"name": "{choice.function.name}", "arguments":'
    return tools, None


# ---- controllers ----------------------------------------------------------------------------------------------------
class LogitBias(BaseController):
    """OpenAI's logit_bias: a fixed bias on chosen token ids at every step."""

    name = "logit_bias"

    def __init__(self, biases: dict[int, float]) -> None:
        self.biases = biases
        self._tensor = None

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        if self._tensor is None or self._tensor.shape != logits.shape or self._tensor.device != logits.device:
            import torch

            tensor = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
            for token, bias in self.biases.items():
                if token < tensor.shape[-1]:
                    tensor[token] = bias
            self._tensor = tensor
        return Action(bias=self._tensor)


class ForcedPrefix(BaseController):
    """tool_choice "required" or a named function: once the thinking is over, the answer starts with a tool call.
    After thinking, the call is preceded by the blank line a QwQ model writes after `</think>` (so the model
    continues from a context it knows)."""

    name = "tool_choice"

    def __init__(self, prefix_ids: Sequence[int], after_thinking_ids: Sequence[int]) -> None:
        self.prefix_ids, self.after_thinking_ids = list(prefix_ids), list(after_thinking_ids)
        self.fired = False

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        if self.fired or state.in_thinking or state.pending_forced:
            return None
        self.fired = True
        return Action(force=self.after_thinking_ids if state.thinking_tokens else self.prefix_ids)

    def details(self) -> dict:
        return {"forced": self.fired}


def _fixed(controller_factory):
    return lambda setting, state: controller_factory()


def reasoning_controls(fields: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Request fields -> (SamplingParams.controls, self-consistency settings or None), validated by
    qwq.engine.controls: a bad setting is a 400 naming it."""
    from qwq.engine.controls import controls_from_request, self_consistency_from_request

    try:
        return controls_from_request(fields), self_consistency_from_request(fields)
    except (QwqError, ValueError, TypeError) as exc:
        field = next((name for name in fields if f"'{name}'" in str(exc)), None)
        raise bad_request(f"reasoning controls: {exc}", field) from None


def check_controls(controls: dict[str, Any], params: SamplingParams, prompt_ids: list[int], engine: Any) -> None:
    """Build each control once on a probe state: an unknown name or a bad setting is the client's 400 here, not an
    error inside the engine loop."""
    if not controls:
        return
    registry = registered_controllers()
    for name, setting in controls.items():
        if setting is None or setting is False:
            continue
        if name not in registry:
            raise bad_request(f"reasoning control {name!r} is not available in this server "
                              f"(available: {', '.join(sorted(registry)) or 'none'})", name)
        state = SampleState("probe", 0, params, list(prompt_ids), tokenizer=engine.tokenizer,
                            think_token_ids=engine.think_token_ids)
        try:
            registry[name](setting, state)
        except (QwqError, ValueError, TypeError, KeyError) as exc:
            raise bad_request(f"{name}: {exc}", name) from None


# ---- sampling -----------------------------------------------------------------------------------------------------
def sampling_params(request: SamplingFields, defaults: dict, *, max_new_tokens: int, logprobs: bool = False,
                    top_logprobs: int = 0, controls: dict | None = None) -> SamplingParams:
    def pick(name: str, fallback: Any) -> Any:
        value = getattr(request, name)
        return value if value is not None else defaults.get(name, fallback)

    base = SamplingParams()
    top_k = pick("top_k", base.top_k)
    stop = request.stop
    stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    try:
        return SamplingParams(
            temperature=float(pick("temperature", base.temperature)), top_p=float(pick("top_p", base.top_p)),
            top_k=0 if top_k is None or top_k < 0 else int(top_k), min_p=float(pick("min_p", base.min_p)),
            presence_penalty=float(pick("presence_penalty", 0.0)),
            frequency_penalty=float(pick("frequency_penalty", 0.0)), max_new_tokens=max_new_tokens, n=request.n,
            seed=None if request.seed is None else request.seed % SEED_SPACE, stop=stop, logprobs=logprobs,
            top_logprobs=top_logprobs, controls=dict(controls or {}))
    except QwqError as exc:
        raise bad_request(str(exc)) from None


def logit_bias_controller(request: SamplingFields, vocab_limit: int) -> Any:
    if not request.logit_bias:
        return None
    biases = {}
    for key, value in request.logit_bias.items():
        try:
            token = int(key)
        except ValueError:
            raise bad_request(f"logit_bias key {key!r} is not a token id", "logit_bias") from None
        if not 0 <= token < vocab_limit:
            raise bad_request(f"logit_bias token id {token} is outside the vocabulary (0..{vocab_limit - 1})",
                              "logit_bias")
        biases[token] = float(value)
    return _fixed(lambda: LogitBias(biases))


def max_new_tokens(requested: int | None, prompt_len: int, context: int, default_cap: int) -> int:
    if prompt_len >= context:
        raise bad_request(f"This model's maximum context length is {context} tokens. However, your messages "
                          f"resulted in {prompt_len} tokens. Please reduce the length of the messages.",
                          "messages", "context_length_exceeded")
    room = context - prompt_len
    if requested is None:
        return max(1, min(default_cap, room))
    if requested > room:
        raise bad_request(f"This model's maximum context length is {context} tokens. However, you requested "
                          f"{prompt_len + requested} tokens ({prompt_len} in the messages, {requested} in the "
                          f"completion). Please reduce the length of the messages or completion.",
                          "max_tokens", "context_length_exceeded")
    return requested


def check_engine_fit(engine: Any, prompt_ids: list[int], params: SamplingParams) -> None:
    """The engine's own admission checks (vocabulary, n vs batch size, KV cache room), as a 400."""
    try:
        engine.scheduler.validate(RequestState("validate", list(prompt_ids), params))
    except QwqError as exc:
        message = str(exc)
        code = "context_length_exceeded" if "does not fit" in message or "context" in message else None
        raise bad_request(message, code=code) from None


# ---- chat ---------------------------------------------------------------------------------------------------------
def prepare_chat(request: ChatCompletionRequest, ctx: Any) -> Prepared:
    engine = ctx.engine
    if request.top_logprobs and not request.logprobs:
        raise bad_request("top_logprobs requires logprobs=true", "top_logprobs")
    if request.stream and request.top_logprobs:
        raise bad_request("top_logprobs is not supported with stream=true (logprobs=true is)", "top_logprobs")
    _check_tool_arguments(request)
    messages = plain_messages(request)
    tools, forced_prefix = tool_setup(request)
    try:
        text = ctx.template.render(messages, tools=tools, add_generation_prompt=True)
    except QwqError as exc:
        raise bad_request(f"the conversation cannot be rendered: {exc}", "messages") from None
    prompt_ids = ctx.tokenizer.encode(text)
    requested = request.max_completion_tokens or request.max_tokens
    max_new = max_new_tokens(requested, len(prompt_ids), ctx.max_model_len, ctx.default_max_tokens)
    controls, voting = reasoning_controls({name: getattr(request, name) for name in CONTROL_FIELDS})
    if voting is not None and (request.stream or request.n != 1):
        raise bad_request("self_consistency returns one voted answer: use it without stream and with n=1",
                          "self_consistency")
    params = sampling_params(request, ctx.sampling_defaults, max_new_tokens=max_new, logprobs=request.logprobs,
                             top_logprobs=request.top_logprobs or 0, controls=controls)
    check_controls(controls, params, prompt_ids, engine)
    check_engine_fit(engine, prompt_ids, params)
    controllers = []
    bias = logit_bias_controller(request, engine.vocab_limit)
    if bias is not None:
        controllers.append(bias)
    if forced_prefix is not None:
        prefix_ids = ctx.tokenizer.encode(forced_prefix)
        after_thinking = ctx.tokenizer.encode("\n\n" + forced_prefix)
        controllers.append(_fixed(lambda: ForcedPrefix(prefix_ids, after_thinking)))
    if voting is not None:
        params = params.replace(n=voting.n, logprobs=True)
        check_engine_fit(engine, prompt_ids, params)
    starts = request.starts_in_thinking if request.starts_in_thinking is not None else \
        prompt_starts_in_reasoning(text)
    return Prepared(prompt_ids, params, controllers, starts_in_reasoning=starts, parse_tools=tools is not None,
                    messages=messages, self_consistency=voting)
