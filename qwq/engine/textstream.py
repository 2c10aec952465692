"""One sample's text while it is generated: incremental decoding, stop strings across tokens, safe streaming.

The visible text never contains a character that a later token could still turn into part of a stop string: a
suffix that is a prefix of some stop string is held back until the next token decides it (as vLLM and tinygrad's
stream router do). When a stop string completes, the text is cut before it (or after it, if asked) and the sample
ends.
"""

from __future__ import annotations

from typing import Any, Sequence


def held_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `stops`."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best


class SampleText:
    """Incremental text of one sample. `push(token)` returns (visible delta, matched stop string or None)."""

    def __init__(self, tokenizer: Any | None, stop: Sequence[str] = (), include_stop: bool = False,
                 skip_special_tokens: bool = True, stream: bool = True) -> None:
        self._decoder = tokenizer.incremental_decoder(skip_special_tokens=skip_special_tokens) if tokenizer else None
        # Without stop strings and with nobody reading the deltas (Engine.generate), tokens wait undecoded until
        # the text is asked for: the same decoder, fed the same tokens, later and in one go.
        self._deferred: list[int] | None = [] if not stream and not stop and self._decoder is not None else None
        self.stop = tuple(stop)
        self.include_stop = include_stop
        self._longest_stop = max((len(s) for s in self.stop), default=0)
        self._parts: list[str] = []  # decoded text (joined lazily; long outputs must not copy on every token)
        self._length = 0  # characters decoded so far
        self._tail = ""  # the last characters decoded, enough to find a stop string spanning tokens
        self._emitted = 0  # characters handed out as deltas
        self._cut: int | None = None  # the final length once a stop string matched

    def _decode_deferred(self) -> None:
        if self._deferred:
            pieces = [self._decoder.feed(token) for token in self._deferred]
            self._deferred.clear()
            self._append("".join(pieces))

    @property
    def text(self) -> str:
        """The text so far: everything decoded, or the final text once a stop string matched."""
        self._decode_deferred()
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        full = self._parts[0] if self._parts else ""
        return full if self._cut is None else full[: self._cut]

    @property
    def visible_text(self) -> str:
        return self.text[: self._emitted]

    def _append(self, piece: str) -> str | None:
        """Add decoded characters; returns a matched stop string, if one now appears."""
        if not piece:
            return None
        start = self._length - len(self._tail)  # absolute offset of self._tail
        self._parts.append(piece)
        self._length += len(piece)
        window = self._tail + piece
        found: tuple[int, str] | None = None
        if self.stop:
            for stop in self.stop:
                pos = window.find(stop)
                if pos >= 0 and (found is None or pos < found[0]):
                    found = (pos, stop)
        keep = max(self._longest_stop - 1, 0)
        self._tail = window[-keep:] if keep else ""
        if found is not None:
            pos, stop = found
            self._cut = start + pos + (len(stop) if self.include_stop else 0)
            return stop
        return None

    def _delta(self, final: bool) -> str:
        if self._cut is not None:
            end = self._cut
        elif final or not self.stop:
            end = self._length
        else:
            end = self._length - held_prefix_length(self._tail, self.stop)
        if end <= self._emitted:
            return ""
        text = self.text
        delta = text[self._emitted:end]
        self._emitted = end
        return delta

    def push(self, token_id: int) -> tuple[str, str | None]:
        if self._cut is not None:
            raise RuntimeError("SampleText.push after a stop string ended the sample")
        if self._deferred is not None:
            self._deferred.append(token_id)
            return "", None
        piece = self._decoder.feed(token_id) if self._decoder is not None else ""
        matched = self._append(piece)
        return self._delta(final=False), matched

    def finish(self) -> str:
        """End of the sample: settle incomplete characters and release any held-back text."""
        self._decode_deferred()
        if self._cut is None and self._decoder is not None:
            self._append(self._decoder.flush())
        return self._delta(final=True)
