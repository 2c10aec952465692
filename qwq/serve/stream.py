"""The stream router: one per generated choice. Token events in; OpenAI deltas out, split three ways:

    thinking text        -> {"reasoning_content": ...}
    answer text          -> {"content": ...}
    <tool_call> blocks   -> {"tool_calls": [{"index", "id", "type", "function": {"name", "arguments"}}]}

Text flows through the reasoning parser first (thinking is never searched for tool calls), then the answer through
the tool-call parser; both hold back a partial tag (`</thi`, `<tool_`) until the next token decides it. A block that
is not a valid call is passed on as the text the model wrote. The same router builds the non-streamed message, so
both paths agree to the character.

Token accounting: `reasoning_tokens` counts the tokens generated while the thinking is open, up to and including
`</think>` (by token id when the vocabulary has the tags, as the engine counts; else by the parser's state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwq.tokenizer.reasoning import ReasoningStreamParser
from qwq.tokenizer.toolcall import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, ContentDelta, ToolCallDone, ToolCallStreamParser


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float | None


@dataclass
class ChoiceState:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)  # OpenAI `tool_calls` entries
    tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


class ChoiceRouter:
    def __init__(self, index: int, *, starts_in_reasoning: bool, parse_tools: bool,
                 think_ids: tuple[int | None, int | None] = (None, None)) -> None:
        self.index = index
        self.reasoning_parser = ReasoningStreamParser(starts_in_reasoning=starts_in_reasoning)
        self.tool_parser = ToolCallStreamParser() if parse_tools else None
        self.think_open, self.think_close = think_ids
        self._thinking_by_id = starts_in_reasoning  # token-level state (used when the vocabulary has the tags)
        self.state = ChoiceState()
        self.finished = False

    # ---- feeding -----------------------------------------------------------------------------------------------
    def feed(self, token_id: int | None, text: str, logprob: float | None = None) -> list[dict]:
        """One token event (token_id None: the sample ended without a new token). Returns the deltas it released."""
        deltas: list[dict] = []
        if token_id is not None:
            self.state.tokens += 1
            self.state.logprobs.append(TokenLogprob(token_id, logprob))
            self._count_reasoning_by_id(token_id)
        before = self.reasoning_parser.in_reasoning
        pieces = self.reasoning_parser.feed(text) if text else []
        if token_id is not None and self.think_close is None and (before or any(p.kind == "reasoning"
                                                                              for p in pieces)):
            self.state.reasoning_tokens += 1
        self._route(pieces, deltas)
        return deltas

    def finish(self, engine_reason: str | None) -> list[dict]:
        """End of the sample: release held text, close an unterminated tool block, settle the finish reason."""
        deltas: list[dict] = []
        if self.finished:
            return deltas
        self.finished = True
        self._route(self.reasoning_parser.finish(), deltas)
        if self.tool_parser is not None:
            self._tool_events(self.tool_parser.finish(), deltas)
        reason = engine_reason or "stop"
        if reason == "stop" and self.state.tool_calls:
            reason = "tool_calls"
        self.state.finish_reason = reason
        return deltas

    def _count_reasoning_by_id(self, token_id: int) -> None:
        if self.think_close is None:
            return
        if self._thinking_by_id:
            self.state.reasoning_tokens += 1
            if token_id == self.think_close:
                self._thinking_by_id = False
        elif token_id == self.think_open:
            self._thinking_by_id = True
            self.state.reasoning_tokens += 1

    def _route(self, pieces: list, deltas: list[dict]) -> None:
        for piece in pieces:
            if piece.kind == "reasoning":
                self.state.reasoning.append(piece.text)
                _merge(deltas, "reasoning_content", piece.text)
            elif self.tool_parser is None:
                self.state.content.append(piece.text)
                _merge(deltas, "content", piece.text)
            else:
                self._tool_events(self.tool_parser.feed(piece.text), deltas)

    def _tool_events(self, events: list, deltas: list[dict]) -> None:
        for event in events:
            if isinstance(event, ContentDelta):
                self.state.content.append(event.text)
                _merge(deltas, "content", event.text)
            elif isinstance(event, ToolCallDone):
                call = event.call.to_openai()
                index = len(self.state.tool_calls)
                self.state.tool_calls.append(call)
                deltas.append({"tool_calls": [{"index": index, **call}]})
            else:  # not a valid call: show what the model wrote
                text = f"{TOOL_CALL_OPEN}{event.error.raw}{TOOL_CALL_CLOSE}"
                self.state.content.append(text)
                _merge(deltas, "content", text)

    # ---- the whole message -------------------------------------------------------------------------------------
    @property
    def reasoning_text(self) -> str | None:
        text = "".join(self.state.reasoning)
        return text or None

    @property
    def content_text(self) -> str | None:
        """None when the thinking never closed and nothing was answered (OpenAI's `content: null`)."""
        text = "".join(self.state.content)
        if not text and (self.state.tool_calls or self.reasoning_parser.in_reasoning):
            return None
        return text

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content_text}
        if self.reasoning_text is not None:
            message["reasoning_content"] = self.reasoning_text
        if self.state.tool_calls:
            message["tool_calls"] = list(self.state.tool_calls)
        return message


def _merge(deltas: list[dict], key: str, text: str) -> None:
    if not text:
        return
    if deltas and set(deltas[-1]) == {key}:
        deltas[-1][key] += text
    else:
        deltas.append({key: text})
