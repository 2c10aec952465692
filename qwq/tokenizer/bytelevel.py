"""Byte-level BPE building blocks shared by every way qwq makes a tokenizer (tokenizer.json, GGUF, training).

A byte-level BPE spells every byte as one printable character (GPT-2's reversible byte <-> unicode table), so the
vocabulary is plain text while any byte string stays encodable. Qwen2 splits text with its own regex before BPE
(digits one at a time, letters with one leading non-letter, runs of whitespace), then NFC-normalizes: Qwen2's
reference tokenizer normalizes to NFC, so qwq does too (transformers' GGUF path skips it; on NFC text, which is
nearly all text, the two agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

import tokenizers

from qwq.utils.errors import TokenizerError

# The pre-tokenizer split of Qwen2 (also used by QwQ, Qwen2.5, DeepSeek-R1-Distill-Qwen).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# llama.cpp's `tokenizer.ggml.pre` names whose vocabularies were learned with the Qwen2 split.
QWEN2_PRE_NAMES = frozenset({"qwen2", "deepseek-r1-qwen"})


@dataclass(frozen=True)
class AddedToken:
    """A token matched whole in the text before BPE. `special` ones are skipped by decode(skip_special_tokens=True)
    and are only recognized in encode(allow_special=True); non-special ones (`<think>`, `<tool_call>`) always are."""

    id: int
    content: str
    special: bool

    def to_json(self) -> dict:
        return {"id": self.id, "content": self.content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": self.special}


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """GPT-2's table: printable Latin-1 bytes spell themselves, the other 68 bytes map to U+0100 onwards."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def spell_bytes(data: bytes) -> str:
    """The byte-level spelling of raw bytes."""
    table = byte_to_char()
    return "".join(table[b] for b in data)


def unspell(token: str) -> bytes | None:
    """Raw bytes of a byte-level token, or None if it uses characters outside the byte alphabet."""
    table = char_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return None


def pre_tokenizer_json(split_pattern: str = QWEN2_SPLIT_PATTERN) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": split_pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    ]}


def backend_json(vocab: Mapping[str, int], merges: Iterable[Sequence[str]], added: Iterable[AddedToken]) -> dict:
    """The tokenizer.json document of a Qwen2-style byte-level BPE with added tokens at fixed ids."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [t.to_json() for t in sorted(added, key=lambda t: t.id)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": pre_tokenizer_json(),
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": dict(vocab), "merges": [list(m) for m in merges]},
    }


def backend_from_json(document: dict | str, source: str) -> tokenizers.Tokenizer:
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    try:
        return tokenizers.Tokenizer.from_str(text)
    except Exception as exc:  # the Rust side raises plain Exception subclasses with its parse message
        raise TokenizerError(f"{source}: not a valid tokenizer definition: {exc}") from exc


def check_byte_level(document: dict, source: str) -> None:
    """qwq's decoders (incremental UTF-8 decoding) assume a byte-level BPE: refuse anything else by name."""
    model = document.get("model") or {}
    if model.get("type") != "BPE":
        raise TokenizerError(f"{source}: field 'model.type' is {model.get('type')!r}; qwq supports byte-level BPE only")
    decoder = document.get("decoder") or {}
    kinds = [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders", []) or []]
    if "ByteLevel" not in kinds:
        raise TokenizerError(f"{source}: field 'decoder' is not ByteLevel ({decoder.get('type')!r}); "
                             "qwq supports byte-level BPE only")
