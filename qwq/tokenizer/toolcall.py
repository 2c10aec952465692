"""Hermes/QwQ-style tool calls: `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` in the answer text.

Parsing never raises on model output: a block that is not a valid call becomes a `ToolCallError` (with its raw
text), the rest still parses. Rules, identical for `parse_tool_calls` and `ToolCallStreamParser` (the former runs
the latter):

- content is the text outside the blocks, minus the whitespace right before a `<tool_call>` and right after a
  `</tool_call>` (the separators the model writes between text and calls);
- a block's JSON must be an object with a non-empty string "name" and an object "arguments" (a JSON string holding
  an object is accepted, as some models double-encode; "parameters" is accepted for "arguments"; missing
  arguments mean {});
- a `<tool_call>` never closed by the end of the text is an error ("unterminated");
- a stray `</tool_call>` outside a block is ordinary content.
Feed only the answer (after reasoning is split off): tool calls written while thinking are not calls.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from qwq.tokenizer.reasoning import held_suffix_length

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict
    id: str = field(default_factory=new_call_id)

    def to_openai(self) -> dict:
        """The OpenAI `tool_calls` entry (arguments as a JSON string)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}


@dataclass(frozen=True)
class ToolCallError:
    index: int  # position of the block among all blocks in the text
    raw: str  # the text inside the block (to the end of the text if unterminated)
    message: str


@dataclass(frozen=True)
class ToolCallParse:
    content: str
    tool_calls: list[ToolCall]
    errors: list[ToolCallError]


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDone:
    call: ToolCall


@dataclass(frozen=True)
class ToolCallFailed:
    error: ToolCallError


ToolStreamEvent = Union[ContentDelta, ToolCallDone, ToolCallFailed]


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """A tool call as the QwQ chat template renders it into an assistant turn."""
    return (f'{TOOL_CALL_OPEN}\n{{"name": "{name}", "arguments": '
            f"{json.dumps(dict(arguments), ensure_ascii=False)}}}\n{TOOL_CALL_CLOSE}")


def parse_call_json(raw: str, index: int = 0,
                    id_factory: Callable[[], str] = new_call_id) -> ToolCall | ToolCallError:
    """One block's inner text -> a ToolCall, or a ToolCallError saying what is wrong."""

    def error(message: str) -> ToolCallError:
        return ToolCallError(index=index, raw=raw, message=message)

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return error(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return error("invalid JSON: nested too deeply")
    if not isinstance(data, dict):
        return error(f"expected a JSON object, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        return error(f"'name' must be a non-empty string, got {name!r}")
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return error(f"'arguments' is a string that is not JSON: {exc.msg}")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return error(f"'arguments' must be a JSON object, got {type(arguments).__name__}")
    return ToolCall(name=name, arguments=arguments, id=id_factory())


class ToolCallStreamParser:
    """Feed answer-text deltas; get content deltas, completed tool calls and per-block errors."""

    def __init__(self, id_factory: Callable[[], str] = new_call_id) -> None:
        self._id_factory = id_factory
        self._held = ""  # partial tag or whitespace whose fate is not decided yet
        self._inside = False
        self._block = ""
        self._after_block = False  # drop whitespace right after a </tool_call>
        self._blocks = 0
        self._finished = False
        self._content: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.errors: list[ToolCallError] = []

    @property
    def content(self) -> str:
        """All content emitted so far."""
        if len(self._content) > 1:
            self._content[:] = ["".join(self._content)]
        return self._content[0] if self._content else ""

    def feed(self, delta: str) -> list[ToolStreamEvent]:
        if self._finished:
            raise RuntimeError("ToolCallStreamParser.feed() after finish()")
        text = self._held + delta
        self._held = ""
        out: list[ToolStreamEvent] = []
        while text:
            if self._inside:
                end = text.find(TOOL_CALL_CLOSE)
                if end < 0:
                    keep = held_suffix_length(text, (TOOL_CALL_CLOSE,))
                    self._block += text[:len(text) - keep]
                    self._held = text[len(text) - keep:]
                    break
                self._block += text[:end]
                text = text[end + len(TOOL_CALL_CLOSE):]
                out.append(self._close_block(self._block.strip()))
                continue
            start = text.find(TOOL_CALL_OPEN)
            if start >= 0:
                self._emit(text[:start].rstrip(), out)
                text = text[start + len(TOOL_CALL_OPEN):]
                self._inside, self._block = True, ""
                continue
            keep = held_suffix_length(text, (TOOL_CALL_OPEN,))
            body = text[:len(text) - keep]
            # Trailing whitespace waits: it is dropped if a <tool_call> follows.
            stripped = body.rstrip()
            self._emit(stripped, out)
            self._held = body[len(stripped):] + text[len(text) - keep:]
            break
        return out

    def finish(self) -> list[ToolStreamEvent]:
        """End of text: an open block is an error; held text is content."""
        out: list[ToolStreamEvent] = []
        if self._finished:
            return out
        self._finished = True
        if self._inside:
            self._block += self._held
            error = ToolCallError(self._blocks, self._block, "unterminated <tool_call> block (no </tool_call>)")
            self._blocks += 1
            self.errors.append(error)
            out.append(ToolCallFailed(error))
        else:
            self._emit(self._held, out)
        self._held = ""
        return out

    def _close_block(self, raw: str) -> ToolStreamEvent:
        self._inside = False
        self._after_block = True
        result = parse_call_json(raw, self._blocks, self._id_factory)
        self._blocks += 1
        if isinstance(result, ToolCall):
            self.tool_calls.append(result)
            return ToolCallDone(result)
        self.errors.append(result)
        return ToolCallFailed(result)

    def _emit(self, text: str, out: list[ToolStreamEvent]) -> None:
        if self._after_block:
            text = text.lstrip()
        if not text:
            return
        self._after_block = False
        self._content.append(text)
        if out and isinstance(out[-1], ContentDelta):
            out[-1] = ContentDelta(out[-1].text + text)
        else:
            out.append(ContentDelta(text))


def parse_tool_calls(text: str, id_factory: Callable[[], str] = new_call_id) -> ToolCallParse:
    """All tool calls in a complete answer, the remaining content and the blocks that failed to parse."""
    parser = ToolCallStreamParser(id_factory=id_factory)
    parser.feed(text)
    parser.finish()
    return ToolCallParse(content=parser.content, tool_calls=parser.tool_calls, errors=parser.errors)
