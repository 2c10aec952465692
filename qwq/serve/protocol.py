"""Request and response models of the OpenAI-compatible API (the OpenAPI schema is generated from these).

Requests are strict: an unknown field is a 400 naming it (as OpenAI does), values out of range are 400s naming the
field. Fields qwq does not act on but OpenAI clients send routinely (user, metadata, store, parallel_tool_calls,
service_tier) are accepted and ignored. Extensions beyond OpenAI: top_k, min_p, the reasoning controls
(thinking_budget, min_thinking_tokens, loop_breaker, language_guard, early_exit, self_consistency,
starts_in_thinking; see qwq.engine.controls) and, in responses, `reasoning_content` (the thinking, also streamed as
deltas), `usage.completion_tokens_details.reasoning_tokens`, `stop_reason`, and `self_consistency` (the vote).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

MAX_N = 128
MAX_STOP = 16
MAX_TOKENS_LIMIT = 1 << 20
SEED_MIN, SEED_MAX = -(1 << 63), (1 << 63) - 1

Float = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]
TokenId = Annotated[int, Field(ge=0)]
Settings = dict[str, Any]


def _check_unicode(value: Any, where: str = "body") -> None:
    """Strings with lone surrogates (legal in JSON escapes, not in UTF-8) cannot be tokenized: reject them early."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} holds a string that is not valid Unicode (a lone surrogate escape)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, where)
            _check_unicode(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_unicode(item, f"{where}[{i}]")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestBody(Strict):
    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        _check_unicode(data)
        return data


# ---- messages ----------------------------------------------------------------------------------------------------
class TextPart(Strict):
    type: Literal["text"] = "text"
    text: str


Content = Union[str, list[TextPart]]


class SystemMessage(Strict):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(Strict):
    role: Literal["user"]
    content: Content
    name: str | None = None


class FunctionCall(Strict):
    name: str = Field(min_length=1)
    arguments: str = Field(description="the arguments as a JSON object, encoded as a string")


class ToolCall(Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(Strict):
    role: Literal["assistant"]
    content: Content | None = None
    reasoning_content: str | None = Field(None, description="accepted and dropped: earlier thinking never "
                                                            "goes back into the prompt")
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _content_or_calls(self) -> "AssistantMessage":
        if self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolMessage(Strict):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


Message = Annotated[Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage], Field(discriminator="role")]


# ---- tools -------------------------------------------------------------------------------------------------------
class FunctionDefinition(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(Strict):
    include_usage: bool = False


class ResponseFormat(Strict):
    type: Literal["text"] = Field(description="only plain text is supported")


# ---- shared sampling fields ----------------------------------------------------------------------------------------
class SamplingFields(RequestBody):
    model: str = Field(description="the id from GET /v1/models")
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Float | None = Field(None, ge=0.0, le=2.0, description="0 is greedy; default: the model's "
                                                                       "generation config or 0.6")
    top_p: Float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1, le=1 << 20, description="extension; 0 or -1 disable the cut")
    min_p: Float | None = Field(None, ge=0.0, le=1.0, description="extension")
    presence_penalty: Float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: Float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(None, max_length=MAX_STOP)
    logit_bias: dict[str, Annotated[Float, Field(ge=-100.0, le=100.0)]] | None = Field(
        None, description="token id (as a string) -> bias added to its logit")
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value:
            raise ValueError("a stop string must not be empty")
        return value


class ReasoningControls(BaseModel):
    """Extensions steering the thinking (qwq.engine.controls documents each setting's object form)."""

    thinking_budget: Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS_LIMIT)] | Settings | None = Field(
        None, description="cap on thinking tokens, then the model wraps up and answers; or "
                          '{"max_thinking_tokens", "answer_tokens", "wrap_up"}')
    min_thinking_tokens: Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS_LIMIT)] | Settings | None = Field(
        None, description="budget forcing: an early `</think>` becomes 'Wait'; or "
                          '{"min_tokens", "max_extensions", "wait"}')
    loop_breaker: StrictBool | Literal["answer", "stop"] | Settings | None = Field(
        None, description="cut a repetition loop in the thinking: answer (true, 'answer') or stop ('stop')")
    language_guard: StrictBool | Literal["report", "penalize", "mask"] | Settings | None = Field(
        None, description="keep the thinking in the user's script: report, penalize or mask other scripts")
    early_exit: StrictBool | Settings | None = Field(
        None, description="answer-stabilisation early exit: stop thinking once the answer stops changing")
    self_consistency: Annotated[StrictInt, Field(ge=1, le=MAX_N)] | Settings | None = Field(
        None, description="sample this many answers, vote, return the winner (the vote table comes in the "
                          "response's `self_consistency` field); not with stream or n > 1")
    starts_in_thinking: StrictBool | None = Field(
        None, description="whether the output starts inside `<think>` (default: read from the prompt)")


class ChatCompletionRequest(SamplingFields, ReasoningControls):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT, description="deprecated alias of "
                                                                               "max_completion_tokens")
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None


class CompletionRequest(SamplingFields):
    prompt: Text | list[Text] | list[TokenId] | list[Annotated[list[TokenId], Field(min_length=1)]] = Field(
        description="text, a list of texts, token ids, or a list of token-id lists", min_length=1)
    max_tokens: int | None = Field(16, ge=1, le=MAX_TOKENS_LIMIT)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5, description="return this many alternatives per token")

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("prompt is an empty list")
        return value


# ---- responses ---------------------------------------------------------------------------------------------------
class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TopLogprob(Open):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(Open):
    content: list[TokenLogprob] | None = None


class ResponseMessage(Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "abort"]


class ChatChoice(Open):
    index: int
    message: ResponseMessage
    finish_reason: FinishReason | None
    logprobs: ChoiceLogprobs | None = None
    stop_reason: str | int | None = Field(None, description="the stop string or token id that ended the sample, or "
                                                            "the control that stopped it")


class CompletionTokensDetails(Open):
    reasoning_tokens: int = 0


class PromptTokensDetails(Open):
    cached_tokens: int = 0


class Usage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletion(Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    self_consistency: dict[str, Any] | None = Field(None, description="with self_consistency: the winning "
                                                                      "answer, the vote table, early stop")


class DeltaFunction(Open):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(Open):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction | None = None


class Delta(Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(Open):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(Open):
    """One server-sent event of a streamed chat completion (`data: {...}`); the stream ends with `data: [DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(Open):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int]


class CompletionChoice(Open):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: CompletionLogprobs | None = None
    stop_reason: str | int | None = None


class Completion(Open):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(Open):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qwq"
    max_model_len: int | None = None


class ModelList(Open):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "error"]
    model: str
    engine: str = Field(description="'running' or the error that stopped the engine")
