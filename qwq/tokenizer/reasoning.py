"""Split a reasoning model's output into its thinking and its answer, for whole texts and for streams.

QwQ's generation prompt ends with `<|im_start|>assistant\\n<think>\\n`, so its output starts INSIDE the thinking and
usually has no opening tag: pass `starts_in_reasoning=True` (the default) for such prompts. Rules, identical for
`split_reasoning` and `ReasoningStreamParser` (the former runs the latter):

- `</think>` inside reasoning ends it; `<think>` outside reasoning (re)opens it. Tags are never emitted.
- An explicit `<think>` before any reasoning text is the opening tag and is accepted in either mode.
- A nested `<think>` inside reasoning text and a stray `</think>` in the answer (a duplicated closing tag) are
  dropped and change nothing: text after a second `</think>` stays in the answer.
- Newlines at the start of each reasoning or answer segment are dropped (they separate the tag from the text;
  the QwQ template strips them the same way when it re-renders earlier turns). Other text is kept verbatim.
- `finished` is False when the text ends inside reasoning (e.g. `</think>` never came before max tokens).
- Streaming holds back a possible partial tag (`</thi`) until the next delta decides it; `finish()` releases it
  as plain text of the current segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

REASONING: Literal["reasoning"] = "reasoning"
CONTENT: Literal["content"] = "content"


def held_suffix_length(text: str, tags: Iterable[str]) -> int:
    """Length of the longest end of `text` that is a proper beginning of one of `tags` (a tag maybe in progress)."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest


@dataclass(frozen=True)
class ReasoningDelta:
    kind: Literal["reasoning", "content"]
    text: str


@dataclass(frozen=True)
class ReasoningSplit:
    reasoning: str
    answer: str
    finished: bool


class ReasoningStreamParser:
    """Feed text deltas, get reasoning/content deltas. One parser per generated sequence."""

    def __init__(self, starts_in_reasoning: bool = True, open_tag: str = THINK_OPEN,
                 close_tag: str = THINK_CLOSE) -> None:
        self.open_tag, self.close_tag = open_tag, close_tag
        self.in_reasoning = starts_in_reasoning
        self._parts: dict[str, list[str]] = {REASONING: [], CONTENT: []}
        self.closed_count = 0  # how many times reasoning was closed by a tag
        self._held = ""
        self._segment_started = False  # has the current segment emitted text yet?
        self._finished = False

    @property
    def reasoning(self) -> str:
        """All reasoning text so far."""
        return self._joined(REASONING)

    @property
    def content(self) -> str:
        """All answer text so far."""
        return self._joined(CONTENT)

    def _joined(self, kind: str) -> str:
        parts = self._parts[kind]
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def finished(self) -> bool:
        """True when the text so far does not end inside reasoning."""
        return not self.in_reasoning

    def feed(self, delta: str) -> list[ReasoningDelta]:
        if self._finished:
            raise RuntimeError("ReasoningStreamParser.feed() after finish()")
        text = self._held + delta
        self._held = ""
        out: list[ReasoningDelta] = []
        while text:
            at_open, at_close = text.find(self.open_tag), text.find(self.close_tag)
            hits = [(pos, tag) for pos, tag in ((at_open, self.open_tag), (at_close, self.close_tag)) if pos >= 0]
            if not hits:
                keep = held_suffix_length(text, (self.open_tag, self.close_tag))
                self._emit(text[:len(text) - keep], out)
                self._held = text[len(text) - keep:]
                break
            pos, tag = min(hits)
            self._emit(text[:pos], out)
            text = text[pos + len(tag):]
            self._apply(tag)
        return out

    def finish(self) -> list[ReasoningDelta]:
        """End of stream: a held partial tag is plain text. `finished` then tells whether reasoning ended."""
        out: list[ReasoningDelta] = []
        if not self._finished:
            self._emit(self._held, out)
            self._held = ""
            self._finished = True
        return out

    def _apply(self, tag: str) -> None:
        if tag == self.open_tag:
            # Opening tag: leaves the answer, or is the explicit opening before any reasoning text.
            if not self.in_reasoning or not self._segment_started:
                self.in_reasoning = True
                self._segment_started = False
        elif self.in_reasoning:
            self.in_reasoning = False
            self._segment_started = False
            self.closed_count += 1

    def _emit(self, text: str, out: list[ReasoningDelta]) -> None:
        if not self._segment_started:
            text = text.lstrip("\n")
        if not text:
            return
        self._segment_started = True
        kind = REASONING if self.in_reasoning else CONTENT
        self._parts[kind].append(text)
        if out and out[-1].kind == kind:
            out[-1] = ReasoningDelta(kind, out[-1].text + text)
        else:
            out.append(ReasoningDelta(kind, text))


def prompt_starts_in_reasoning(prompt: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE,
                               turn_end: str = "<|im_end|>") -> bool:
    """Does generation continue inside a thinking block? True when the prompt's last `<think>` is not closed and
    lies in the final, unterminated turn (QwQ's generation prompt ends with `<think>\n`); a literal `<think>`
    quoted in an earlier, finished turn does not count."""
    opened = prompt.rfind(open_tag)
    return opened >= 0 and prompt.find(close_tag, opened) < 0 and prompt.find(turn_end, opened) < 0


def split_reasoning(text: str, starts_in_reasoning: bool = True) -> ReasoningSplit:
    """Reasoning and answer of a complete output (same rules as the stream parser)."""
    parser = ReasoningStreamParser(starts_in_reasoning=starts_in_reasoning)
    parser.feed(text)
    parser.finish()
    return ReasoningSplit(reasoning=parser.reasoning, answer=parser.content, finished=parser.finished)
