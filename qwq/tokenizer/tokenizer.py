"""The tokenizer: a byte-level BPE (`tokenizers`) plus what generation needs around it.

Constructors: `Tokenizer.from_file(tokenizer.json)`, `Tokenizer.from_hf_dir(dir)`, `Tokenizer.from_gguf(path)`,
`train_bpe(...)` (training.py), and `qwq_tokenizer(base)` for QwQ-32B's token layout on top of the Qwen2 BPE.

Ids: `vocab_size` counts the real entries (regular BPE tokens + added tokens); embedding matrices are usually
padded past it (QwQ: 151,669 entries, 152,064 rows) and the engine must never sample an id >= `vocab_size`.
Decoding goes through one id -> raw bytes table, shared by `decode` and `IncrementalDecoder`, so a stream of deltas
always concatenates to exactly `decode(all_ids)`.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import tokenizers

from qwq.tokenizer.bytelevel import AddedToken, backend_from_json, unspell
from qwq.utils.errors import TokenizerError

# QwQ-32B's tokens on top of the 151,643 Qwen2 BPE tokens (tokenizer_config.json of Qwen/QwQ-32B, Apache-2.0).
QWQ_ADDED_TOKENS: tuple[AddedToken, ...] = tuple(
    AddedToken(151643 + i, content, special) for i, (content, special) in enumerate([
        ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
        ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
        ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
        ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
        ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
        ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
        ("<think>", False), ("</think>", False),
    ]))
QWEN2_BPE_SIZE = 151643

# Special tokens that end a generation whenever a vocabulary has them (llama.cpp's end-of-generation set does the
# same): Qwen's instruct models end a turn with <|im_end|> but may also emit <|endoftext|>.
END_OF_GENERATION_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>")


class Tokenizer:
    """Byte-level BPE tokenizer with added tokens, special-token ids and an optional chat template."""

    def __init__(self, backend: tokenizers.Tokenizer, *, eos_token: str | None = None, pad_token: str | None = None,
                 bos_token: str | None = None, extra_eos_ids: Iterable[int] = (), chat_template: str | None = None,
                 add_bos: bool = False, source: str = "<memory>") -> None:
        self._backend = backend
        self._split_special_backend: tokenizers.Tokenizer | None = None
        self._bytes_table: list[bytes | None] | None = None
        self._chat: object | None = None
        self.source = source
        self.added_tokens: dict[int, AddedToken] = {
            i: AddedToken(i, t.content, bool(t.special)) for i, t in sorted(backend.get_added_tokens_decoder().items())}
        self.special_ids: frozenset[int] = frozenset(i for i, t in self.added_tokens.items() if t.special)
        vocab = backend.get_vocab(with_added_tokens=True)
        if not vocab:
            raise TokenizerError(f"{source}: the vocabulary is empty")
        self.vocab_size: int = max(vocab.values()) + 1
        # Added tokens may also sit in the BPE model's vocabulary (needed for ids past a gap); they are not BPE.
        self.regular_vocab_size: int = sum(1 for i in backend.get_vocab(with_added_tokens=False).values()
                                           if i not in self.added_tokens)
        self.eos_token, self.pad_token, self.bos_token = eos_token, pad_token, bos_token
        self.eos_token_id = self._required_id(eos_token, "eos_token")
        self.pad_token_id = self._required_id(pad_token, "pad_token")
        self.bos_token_id = self._required_id(bos_token, "bos_token")
        if add_bos and self.bos_token_id is None:
            raise TokenizerError(f"{source}: add_bos is set but there is no bos_token")
        self.add_bos = add_bos
        eos: list[int] = [] if self.eos_token_id is None else [self.eos_token_id]
        for token_id in list(extra_eos_ids) + [i for i in sorted(self.special_ids)
                                               if self.added_tokens[i].content in END_OF_GENERATION_TOKENS]:
            if not 0 <= token_id < self.vocab_size:
                raise TokenizerError(f"{source}: end-of-generation id {token_id} is outside the vocabulary "
                                     f"(size {self.vocab_size})")
            if token_id not in eos:
                eos.append(token_id)
        self.eos_token_ids: tuple[int, ...] = tuple(eos)
        self.chat_template = chat_template

    def _required_id(self, token: str | None, field: str) -> int | None:
        if token is None:
            return None
        token_id = self._backend.token_to_id(token)
        if token_id is None:
            raise TokenizerError(f"{self.source}: {field} {token!r} is not in the vocabulary")
        return token_id

    # ----------------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "Tokenizer":
        """A `tokenizer.json`; eos/pad/bos tokens and the chat template come from keyword arguments."""
        from qwq.tokenizer.loaders import read_tokenizer_json

        return cls(read_tokenizer_json(Path(path)), source=str(path), **kwargs)

    @classmethod
    def from_hf_dir(cls, directory: str | Path) -> "Tokenizer":
        """A Hugging Face checkpoint directory: tokenizer.json, tokenizer_config.json, generation_config.json."""
        from qwq.tokenizer.loaders import read_hf_dir

        backend, kwargs = read_hf_dir(Path(directory))
        return cls(backend, source=str(directory), **kwargs)

    @classmethod
    def from_gguf(cls, source) -> "Tokenizer":
        """The tokenizer embedded in a GGUF file: a path, an open `gguf.GGUFReader`, or its metadata already read
        (a mapping such as `qwq.model.gguf_file.read_metadata(path)`), so a loader parses the header once."""
        from qwq.tokenizer.loaders import read_gguf

        backend, kwargs = read_gguf(source)
        return cls(backend, **kwargs)

    def with_added_tokens(self, tokens: Iterable[AddedToken], **overrides) -> "Tokenizer":
        """A copy with `tokens` added at their ids (replacing added tokens with the same id or content).

        Keyword overrides: eos_token, pad_token, bos_token, chat_template, add_bos, extra_eos_ids.
        """
        from qwq.tokenizer.loaders import add_tokens_to_document

        document = json.loads(self._backend.to_str())
        add_tokens_to_document(document, list(tokens), self.source)
        settings = {"eos_token": self.eos_token, "pad_token": self.pad_token, "bos_token": self.bos_token,
                    "chat_template": self.chat_template, "add_bos": self.add_bos,
                    "extra_eos_ids": [i for i in self.eos_token_ids if i != self.eos_token_id]}
        settings.update(overrides)
        return Tokenizer(backend_from_json(document, self.source), source=self.source, **settings)

    # ------------------------------------------------------------------------------------------------ lookups
    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer` (read-only use: qwq's settings live on this object)."""
        return self._backend

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._backend.id_to_token(int(token_id)) if 0 <= token_id < self.vocab_size else None

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"Tokenizer(source={self.source!r}, vocab_size={self.vocab_size}, "
                f"added={len(self.added_tokens)}, eos={self.eos_token!r})")

    # ------------------------------------------------------------------------------------------ encode / decode
    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Token ids of `text`. With allow_special=False, special tokens written in the text (`<|im_end|>`) are
        encoded as plain text (use it for untrusted user content); non-special added tokens still match whole."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        backend = self._backend if allow_special else self._splitting_backend()
        ids = backend.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id] + ids if self.add_bos else ids

    def encode_batch(self, texts: Sequence[str], allow_special: bool = True) -> list[list[int]]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TokenizerError(f"encode_batch: text {i} is a {type(text).__name__}, not a str")
        backend = self._backend if allow_special else self._splitting_backend()
        prefix = [self.bos_token_id] if self.add_bos else []
        return [prefix + e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]

    def _splitting_backend(self) -> tokenizers.Tokenizer:
        # A second instance, because the flag lives on the tokenizer object and flipping it is not thread-safe.
        if self._split_special_backend is None:
            clone = tokenizers.Tokenizer.from_str(self._backend.to_str())
            clone.encode_special_tokens = True
            self._split_special_backend = clone
        return self._split_special_backend

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes a token stands for (added tokens: their UTF-8 text)."""
        table = self._table()
        try:  # any integer type (numpy, torch scalars) indexes; floats and strings do not
            data = table[token_id] if 0 <= token_id < len(table) else None
        except TypeError:
            data = None
        if data is None:
            raise TokenizerError(f"token id {token_id!r} is not in the vocabulary (size {self.vocab_size})")
        return data

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD, as in `tokenizers`."""
        special = self.special_ids if skip_special_tokens else frozenset()
        return b"".join(self.token_bytes(i) for i in ids if i not in special).decode("utf-8", errors="replace")

    def incremental_decoder(self, skip_special_tokens: bool = False) -> "IncrementalDecoder":
        return IncrementalDecoder(self, skip_special_tokens=skip_special_tokens)

    def _table(self) -> list[bytes | None]:
        if self._bytes_table is None:
            table: list[bytes | None] = [None] * self.vocab_size
            for token, token_id in self._backend.get_vocab(with_added_tokens=False).items():
                spelled = unspell(token)  # a token outside the byte alphabet can only stand for its own text
                table[token_id] = token.encode("utf-8") if spelled is None else spelled
            for token_id, added in self.added_tokens.items():
                table[token_id] = added.content.encode("utf-8")
            self._bytes_table = table
        return self._bytes_table

    # ------------------------------------------------------------------------------------------- chat template
    def apply_chat_template(self, messages: Sequence[Mapping], tools: Sequence[Mapping] | None = None,
                            add_generation_prompt: bool = False, tokenize: bool = False, **kwargs) -> str | list[int]:
        """Render `messages` with this tokenizer's chat template (see chat.ChatTemplate); tokenize=True gives ids."""
        from qwq.tokenizer.chat import ChatTemplate

        if self._chat is None or self._chat.source != self.chat_template:  # type: ignore[attr-defined]
            self._chat = ChatTemplate.for_tokenizer(self)
        text = self._chat.render(messages, tools=tools, add_generation_prompt=add_generation_prompt,  # type: ignore
                                 **kwargs)
        return self.encode(text) if tokenize else text

    # -------------------------------------------------------------------------------------------------- saving
    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json + tokenizer_config.json (transformers' AutoTokenizer loads the pair)."""
        from qwq.tokenizer.loaders import write_hf_files

        return write_hf_files(self, Path(directory))


class IncrementalDecoder:
    """Turns token ids, fed one at a time, into text deltas that are always whole characters.

    Byte-level tokens often carry part of a UTF-8 character (CJK, emoji); the bytes wait in an incremental UTF-8
    decoder until the character completes. Bytes that can never form a character come out as U+FFFD as soon as
    that is certain, and `flush()` settles whatever is left at the end.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip = tokenizer.special_ids if skip_special_tokens else frozenset()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []  # joined on demand: outputs run to 32k tokens, += on an attribute is quadratic
        self.token_count = 0

    @property
    def text(self) -> str:
        """All text emitted so far."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, token_id: int) -> str:
        """Add one token; returns the newly completed text (possibly "")."""
        data = self._tokenizer.token_bytes(token_id)
        self.token_count += 1
        delta = "" if token_id in self._skip else self._utf8.decode(data)
        if delta:
            self._parts.append(delta)
        return delta

    def feed_many(self, ids: Iterable[int]) -> str:
        return "".join(self.feed(i) for i in ids)

    @property
    def pending_bytes(self) -> int:
        """Bytes held back waiting for the rest of a character."""
        return len(self._utf8.getstate()[0])

    def flush(self) -> str:
        """End of stream: incomplete characters left in the buffer become U+FFFD."""
        delta = self._utf8.decode(b"", final=True)
        if delta:
            self._parts.append(delta)
        return delta


def qwq_tokenizer(base: Tokenizer) -> Tokenizer:
    """QwQ-32B's tokenizer from any tokenizer holding the Qwen2 BPE (a Qwen2/2.5 tokenizer.json or GGUF).

    The BPE is shared across the Qwen2 family; QwQ differs in its added tokens (`<think>` = 151667 and
    `</think>` = 151668 are single tokens), its eos (`<|im_end|>`) and its chat template.
    """
    from qwq.tokenizer.chat import QWQ_TEMPLATE

    if base.regular_vocab_size != QWEN2_BPE_SIZE or base.token_to_id("Ġthe") != 279:
        raise TokenizerError(f"{base.source}: not the Qwen2 BPE ({base.regular_vocab_size} regular tokens, "
                             f"expected {QWEN2_BPE_SIZE})")
    return base.with_added_tokens(QWQ_ADDED_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token=None, add_bos=False, extra_eos_ids=(), chat_template=QWQ_TEMPLATE)
