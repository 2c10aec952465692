"""Reading and writing tokenizer files: tokenizer.json, a Hugging Face directory, GGUF metadata.

Every problem becomes a TokenizerError naming the file and the field, never a bare KeyError or a Rust panic text
without context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import tokenizers

from qwq.tokenizer.bytelevel import (QWEN2_PRE_NAMES, AddedToken, backend_from_json, backend_json, check_byte_level,
                                     spell_bytes, unspell)
from qwq.utils.atomic import atomic_write_text
from qwq.utils.errors import TokenizerError

# llama.cpp token types (gguf.TokenType): what each means for the tokenizer we build.
GGUF_NORMAL, GGUF_UNKNOWN, GGUF_CONTROL, GGUF_USER_DEFINED, GGUF_UNUSED, GGUF_BYTE = 1, 2, 3, 4, 5, 6


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path}: cannot read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def read_tokenizer_json(path: Path) -> tokenizers.Tokenizer:
    document = _read_json(path)
    if not isinstance(document, dict) or "model" not in document:
        raise TokenizerError(f"{path}: not a tokenizer.json (no 'model' field)")
    check_byte_level(document, str(path))
    return backend_from_json(document, str(path))


def _token_text(value: Any, field: str, path: Path) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise TokenizerError(f"{path}: field {field!r} must be a string, got {value!r}")


def _chat_template_field(value: Any, path: Path) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):  # several named templates: the one called "default" is the chat template
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        if isinstance(named.get("default"), str):
            return named["default"]
    raise TokenizerError(f"{path}: field 'chat_template' must be a string or a list with a 'default' template")


def read_hf_dir(directory: Path) -> tuple[tokenizers.Tokenizer, dict]:
    if not directory.is_dir():
        raise TokenizerError(f"{directory}: not a directory")
    backend = read_tokenizer_json(directory / "tokenizer.json")
    kwargs: dict[str, Any] = {}
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        config = _read_json(config_path)
        if not isinstance(config, dict):
            raise TokenizerError(f"{config_path}: expected a JSON object")
        for field in ("eos_token", "pad_token", "bos_token"):
            kwargs[field] = _token_text(config.get(field), field, config_path)
        add_bos = config.get("add_bos_token", False)
        if not isinstance(add_bos, bool):
            raise TokenizerError(f"{config_path}: field 'add_bos_token' must be true or false, got {add_bos!r}")
        kwargs["add_bos"] = add_bos
        kwargs["chat_template"] = _chat_template_field(config.get("chat_template"), config_path)
        missing = _added_tokens_missing(backend, config.get("added_tokens_decoder"), config_path)
        if missing:
            document = json.loads(backend.to_str())
            add_tokens_to_document(document, missing, str(config_path))
            backend = backend_from_json(document, str(config_path))
        for field in ("eos_token", "pad_token", "bos_token"):
            if kwargs[field] is not None and backend.token_to_id(kwargs[field]) is None:
                raise TokenizerError(f"{config_path}: {field} {kwargs[field]!r} is not in the vocabulary")
    template_file = directory / "chat_template.jinja"  # transformers' newer layout keeps it beside the config
    if template_file.is_file():
        kwargs["chat_template"] = template_file.read_text(encoding="utf-8")
    generation_path = directory / "generation_config.json"
    if generation_path.is_file():
        generation = _read_json(generation_path)
        eos = generation.get("eos_token_id") if isinstance(generation, dict) else None
        eos_ids = [eos] if isinstance(eos, int) else eos or []
        if not isinstance(eos_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in eos_ids):
            raise TokenizerError(f"{generation_path}: field 'eos_token_id' must be an int or a list of ints")
        kwargs["extra_eos_ids"] = eos_ids
    return backend, kwargs


def _added_tokens_missing(backend: tokenizers.Tokenizer, decoder: Any, path: Path) -> list[AddedToken]:
    if decoder is None:
        return []
    if not isinstance(decoder, dict):
        raise TokenizerError(f"{path}: field 'added_tokens_decoder' must be an object")
    present = backend.get_added_tokens_decoder()
    missing = []
    for key, entry in decoder.items():
        try:
            token_id = int(key)
            token = AddedToken(token_id, str(entry["content"]), bool(entry.get("special", False)))
        except (ValueError, TypeError, KeyError):
            raise TokenizerError(f"{path}: bad entry {key!r} in 'added_tokens_decoder'") from None
        if token_id not in present and backend.token_to_id(token.content) != token_id:
            missing.append(token)
    return missing


def add_tokens_to_document(document: dict, tokens: list[AddedToken], source: str) -> None:
    """Put `tokens` into a tokenizer.json document at their ids, replacing added tokens with the same id/content."""
    vocab: dict[str, int] = document["model"]["vocab"]
    added: list[dict] = document.get("added_tokens") or []
    old_added = {a["content"] for a in added}
    new_ids = {t.id for t in tokens}
    new_contents = {t.content for t in tokens}
    if len(new_ids) != len(tokens) or len(new_contents) != len(tokens):
        raise TokenizerError(f"{source}: the added tokens repeat an id or a content")
    bpe_by_id = {i: c for c, i in vocab.items() if c not in old_added}
    for t in tokens:
        if not isinstance(t.id, int) or t.id < 0 or not isinstance(t.content, str) or not t.content:
            raise TokenizerError(f"{source}: invalid added token {t!r}")
        clash = bpe_by_id.get(t.id)
        if clash is not None and clash != t.content:
            raise TokenizerError(f"{source}: cannot add {t.content!r} at id {t.id}: BPE token {clash!r} has that id")
        if t.content in vocab and t.content not in old_added and vocab[t.content] != t.id:
            raise TokenizerError(f"{source}: cannot add {t.content!r} at id {t.id}: it is BPE token {vocab[t.content]}")
    kept = [a for a in added if a["id"] not in new_ids and a["content"] not in new_contents]
    for a in added:  # replaced entries may have been copied into the BPE vocabulary for a gap: take them out
        if a not in kept and vocab.get(a["content"]) == a["id"]:
            del vocab[a["content"]]
    document["added_tokens"] = sorted(kept + [t.to_json() for t in tokens], key=lambda a: a["id"])
    place_added_tokens(document, source)


def place_added_tokens(document: dict, source: str) -> None:
    """Make `tokenizers` honour the added tokens' ids.

    `tokenizers` numbers added tokens that are not in the model's vocabulary consecutively after it, ignoring the
    ids written in the file; when the ids leave a gap (e.g. a GGUF's padding entries), the tokens go into the model
    vocabulary too, where their ids are kept. BPE never produces them from merges.
    """
    vocab: dict[str, int] = document["model"]["vocab"]
    pending = sorted((a for a in document["added_tokens"] if a["content"] not in vocab), key=lambda a: a["id"])
    consistent = all(vocab[a["content"]] == a["id"] for a in document["added_tokens"] if a["content"] in vocab)
    if consistent and [a["id"] for a in pending] == list(range(len(vocab), len(vocab) + len(pending))):
        return
    taken = {i: c for c, i in vocab.items()}
    for a in document["added_tokens"]:
        if taken.get(a["id"], a["content"]) != a["content"]:
            raise TokenizerError(f"{source}: added token {a['content']!r} at id {a['id']} collides with "
                                 f"{taken[a['id']]!r}")
        vocab[a["content"]] = a["id"]


# ------------------------------------------------------------------------------------------------------- GGUF
def _reader_metadata(reader: Any) -> dict[str, Any]:
    """The tokenizer keys of an open `gguf.GGUFReader` as Python data."""
    from gguf import GGUFValueType

    def scalar(part: Any, kind: Any) -> Any:
        return str(bytes(part), encoding="utf-8") if kind == GGUFValueType.STRING else part.tolist()[0]

    metadata = {}
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or not field.types:
            continue
        if field.types[0] == GGUFValueType.ARRAY:
            metadata[key] = [scalar(field.parts[i], field.types[-1]) for i in field.data]
        else:
            metadata[key] = scalar(field.parts[-1], field.types[0])
    return metadata


def gguf_metadata(source: Any) -> tuple[dict[str, Any], str]:
    """(metadata, name) from a GGUF path (parsed by qwq.model.gguf_file, ~10x faster than GGUFReader), an open
    `gguf.GGUFReader`, or an already-read metadata mapping."""
    if isinstance(source, Mapping):
        return dict(source), "<GGUF metadata>"
    if not isinstance(source, (str, Path)):
        name = str(getattr(getattr(source, "data", None), "filename", None) or "<GGUF>")
        try:
            return _reader_metadata(source), name
        except (UnicodeDecodeError, ValueError, IndexError) as exc:
            raise TokenizerError(f"{name}: corrupt tokenizer metadata: {exc}") from exc
    path = Path(source)
    if not path.is_file():
        raise TokenizerError(f"{path}: GGUF file not found")
    from qwq.model.gguf_file import read_metadata
    from qwq.utils.errors import GGUFError

    try:
        return read_metadata(path), str(path)
    except GGUFError as exc:
        raise TokenizerError(f"not a readable GGUF file: {exc}") from exc


def _typed_list(value: Any, kind: type, key: str, name: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise TokenizerError(f"{name}: GGUF field {key!r} must be a list of {kind.__name__}")
    return value


def read_gguf(source: Any) -> tuple[tokenizers.Tokenizer, dict]:
    metadata, name = gguf_metadata(source)

    def get(key: str, required: bool = True) -> Any:
        value = metadata.get(key)
        if value is None and required:
            raise TokenizerError(f"{name}: GGUF metadata field {key!r} is missing")
        return value

    model = get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(f"{name}: tokenizer.ggml.model is {model!r}; qwq supports byte-level BPE ('gpt2') only")
    pre = get("tokenizer.ggml.pre", required=False)
    if pre not in QWEN2_PRE_NAMES:
        raise TokenizerError(f"{name}: tokenizer.ggml.pre is {pre!r}; qwq supports {sorted(QWEN2_PRE_NAMES)}")
    tokens: list[str] = _typed_list(get("tokenizer.ggml.tokens"), str, "tokenizer.ggml.tokens", name)
    types: list[int] = _typed_list(get("tokenizer.ggml.token_type", required=False) or [GGUF_NORMAL] * len(tokens),
                                   int, "tokenizer.ggml.token_type", name)
    merges: list[str] = _typed_list(get("tokenizer.ggml.merges"), str, "tokenizer.ggml.merges", name)
    if len(types) != len(tokens):
        raise TokenizerError(f"{name}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")

    vocab: dict[str, int] = {}
    added: list[AddedToken] = []
    for token_id, (token, kind) in enumerate(zip(tokens, types)):
        if kind == GGUF_UNUSED:  # padding rows of the embedding matrix: not real tokens
            continue
        if kind in (GGUF_CONTROL, GGUF_USER_DEFINED):
            added.append(AddedToken(token_id, token, kind == GGUF_CONTROL))
        elif token not in vocab:
            # Some converters store normal tokens as plain text rather than in the byte alphabet.
            vocab[token if unspell(token) is not None else spell_bytes(token.encode("utf-8"))] = token_id
    pairs = []
    for index, merge in enumerate(merges):
        parts = merge.split(" ")
        if len(parts) != 2:
            raise TokenizerError(f"{name}: tokenizer.ggml.merges[{index}] is {merge!r}, expected two tokens")
        pairs.append(parts)
    document = backend_json(vocab, pairs, [])
    document["added_tokens"] = [t.to_json() for t in added]
    place_added_tokens(document, name)
    backend = backend_from_json(document, f"{name} (tokenizer metadata)")

    def token_for(key: str) -> str | None:
        token_id = get(key, required=False)
        if token_id is None:
            return None
        if not isinstance(token_id, int) or not 0 <= token_id < len(tokens) or types[token_id] == GGUF_UNUSED:
            raise TokenizerError(f"{name}: {key} = {token_id} is not a token of the vocabulary")
        return tokens[token_id]

    eot = get("tokenizer.ggml.eot_token_id", required=False)
    template = get("tokenizer.chat_template", required=False)
    if template is not None and not isinstance(template, str):
        raise TokenizerError(f"{name}: GGUF field 'tokenizer.chat_template' must be a string")
    return backend, {
        "eos_token": token_for("tokenizer.ggml.eos_token_id"),
        "bos_token": token_for("tokenizer.ggml.bos_token_id"),
        "pad_token": token_for("tokenizer.ggml.padding_token_id"),
        "add_bos": bool(get("tokenizer.ggml.add_bos_token", required=False) or False),
        "extra_eos_ids": [] if token_for("tokenizer.ggml.eot_token_id") is None else [eot],
        "chat_template": template,
        "source": name,
    }


# ------------------------------------------------------------------------------------------------------ saving
def write_hf_files(tokenizer: Any, directory: Path) -> Path:
    """tokenizer.json + tokenizer_config.json in the layout transformers writes for Qwen2 tokenizers."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "tokenizer.json", tokenizer.backend.to_str(pretty=True))
    config = {
        "add_bos_token": tokenizer.add_bos,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(t.id): {"content": t.content, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": t.special}
            for t in tokenizer.added_tokens.values()},
        "bos_token": tokenizer.bos_token,
        "clean_up_tokenization_spaces": False,
        "eos_token": tokenizer.eos_token,
        "errors": "replace",
        "pad_token": tokenizer.pad_token,
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    if tokenizer.chat_template is not None:
        config["chat_template"] = tokenizer.chat_template
    atomic_write_text(directory / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return directory
