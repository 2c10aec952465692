"""Train a small byte-level BPE with the same layout as Qwen2's (the RL pipeline's tiny model uses it).

Same normalizer (NFC), split regex and byte alphabet as Qwen2; BPE tokens first, then the added tokens in the
order given (special ones, then the non-special ones such as `<think>`), so the QwQ chat template and the
reasoning/tool parsers work unchanged on the tiny model.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Sequence

import tokenizers
from tokenizers import normalizers, pre_tokenizers, trainers

from qwq.tokenizer.bytelevel import QWEN2_SPLIT_PATTERN, AddedToken, backend_from_json, backend_json
from qwq.tokenizer.tokenizer import Tokenizer
from qwq.utils.errors import TokenizerError


def train_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = (), *,
              added_tokens: Sequence[str] = (), eos_token: str | None = None, pad_token: str | None = None,
              chat_template: str | None = None, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE of `vocab_size` entries in total (256 bytes + merges + added tokens).

    `special_tokens` are control tokens (`<|im_start|>`, skipped by decode(skip_special_tokens=True));
    `added_tokens` are matched whole but are ordinary text (`<think>`, `<tool_call>`). Neither is ever merged
    with neighbouring text. eos defaults to `<|im_end|>` (or `<|endoftext|>`) when present, pad to `<|endoftext|>`.
    """
    extra = [(t, True) for t in special_tokens] + [(t, False) for t in added_tokens]
    names = [t for t, _ in extra]
    if any(not isinstance(t, str) or not t for t in names) or len(set(names)) != len(names):
        raise TokenizerError(f"added tokens must be distinct non-empty strings, got {names!r}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(extra):
        raise TokenizerError(f"vocab_size {vocab_size} is too small: need at least {len(alphabet)} byte tokens "
                             f"+ {len(extra)} added tokens")
    backend = tokenizers.Tokenizer(tokenizers.models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(extra), min_frequency=min_frequency,
                                  initial_alphabet=alphabet, special_tokens=[], show_progress=False)
    backend.train_from_iterator(_pieces(texts, names), trainer=trainer)

    model = json.loads(backend.to_str())["model"]
    vocab = model["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerError("BPE training returned non-contiguous ids")  # the layout below relies on it
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    added = [AddedToken(len(vocab) + k, t, special) for k, (t, special) in enumerate(extra)]
    document = backend_json(vocab, merges, added)
    if eos_token is None:
        eos_token = next((t for t in ("<|im_end|>", "<|endoftext|>") if t in names), None)
    if pad_token is None and "<|endoftext|>" in names:
        pad_token = "<|endoftext|>"
    return Tokenizer(backend_from_json(document, "trained BPE"), eos_token=eos_token, pad_token=pad_token,
                     chat_template=chat_template, source="trained BPE")


def _pieces(texts: Iterable[str], added: Sequence[str]) -> Iterable[str]:
    """Training text cut at the added tokens, as encode() cuts it: BPE never learns merges into or across them."""
    splitter = re.compile("|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))) if added else None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TokenizerError(f"training text {i} is a {type(text).__name__}, not a str")
        if splitter is None:
            yield text
        else:
            yield from (piece for piece in splitter.split(text) if piece)
