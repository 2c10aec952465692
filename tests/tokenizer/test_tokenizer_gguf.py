"""Tokenizers from GGUF metadata, on small GGUF files written here (the real file: test_tokenizer_real.py)."""

from __future__ import annotations

import pytest

from qwq.tokenizer import Tokenizer
from qwq.utils.errors import TokenizerError

from tokenizer_samples import STRINGS


@pytest.fixture(scope="module")
def tiny_gguf(tiny_tokenizer, write_gguf, tmp_path_factory):
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_tokenizer, padding=37)


def test_gguf_tokenizer_equals_the_source(tiny_tokenizer, tiny_gguf):
    tok = Tokenizer.from_gguf(tiny_gguf)
    assert tok.vocab_size == tiny_tokenizer.vocab_size  # the 37 padding entries are not tokens
    assert tok.added_tokens == tiny_tokenizer.added_tokens and tok.special_ids == tiny_tokenizer.special_ids
    assert tok.eos_token_ids == tiny_tokenizer.eos_token_ids and tok.pad_token == "<|endoftext|>"
    assert tok.chat_template == tiny_tokenizer.chat_template and tok.add_bos is False
    for text in STRINGS:
        assert tok.encode(text) == tiny_tokenizer.encode(text)
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        tok.decode([tok.vocab_size])  # a padding row


def test_gguf_accepts_an_open_reader(tiny_gguf):
    from gguf import GGUFReader

    tok = Tokenizer.from_gguf(GGUFReader(tiny_gguf))
    assert tok.encode("<think>hi") == Tokenizer.from_gguf(tiny_gguf).encode("<think>hi")
    assert "tiny.gguf" in tok.source


def test_gguf_matches_transformers(tiny_gguf):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    ours = Tokenizer.from_gguf(tiny_gguf)
    for text in STRINGS:  # NFC text: transformers' GGUF path skips the NFC step, so only NFC text is comparable
        ids = ours.encode(text)
        assert hf.encode(text, add_special_tokens=False) == ids, text
        assert hf.decode(ids) == ours.decode(ids)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "llama"}, "tokenizer.ggml.model is 'llama'"),
    ({"pre": "llama-bpe"}, "tokenizer.ggml.pre is 'llama-bpe'"),
    ({"drop": ("merges",)}, "'tokenizer.ggml.merges' is missing"),
    ({"drop": ("tokens",)}, "'tokenizer.ggml.tokens' is missing"),
])
def test_gguf_metadata_errors(tiny_tokenizer, write_gguf, tmp_path, kwargs, message):
    path = write_gguf(tmp_path / "bad.gguf", tiny_tokenizer, **kwargs)
    with pytest.raises(TokenizerError, match=message) as info:
        Tokenizer.from_gguf(path)
    assert "bad.gguf" in str(info.value)


def test_gguf_special_id_pointing_at_padding(tiny_tokenizer, write_gguf, tmp_path):
    from gguf import GGUFReader

    path = write_gguf(tmp_path / "pad.gguf", tiny_tokenizer, padding=3)
    reader = GGUFReader(path, "r+")
    reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0] = tiny_tokenizer.vocab_size + 1
    del reader
    with pytest.raises(TokenizerError, match="eos_token_id"):
        Tokenizer.from_gguf(path)


def test_gguf_file_errors(tiny_gguf, tmp_path):
    with pytest.raises(TokenizerError, match="GGUF file not found"):
        Tokenizer.from_gguf(tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(TokenizerError, match="not a readable GGUF file") as info:
        Tokenizer.from_gguf(garbage)
    assert "garbage.gguf" in str(info.value)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:5000])
    with pytest.raises(TokenizerError, match="truncated.gguf"):
        Tokenizer.from_gguf(truncated)


def test_gguf_from_metadata_mapping(tiny_tokenizer, tiny_gguf):
    from qwq.model.gguf_file import read_metadata

    metadata = read_metadata(tiny_gguf)
    tok = Tokenizer.from_gguf(metadata)
    assert tok.encode("<|im_start|>hi") == tiny_tokenizer.encode("<|im_start|>hi")
    # without token types every entry is a plain BPE token: added tokens are then not matched whole
    plain = {k: v for k, v in metadata.items() if k != "tokenizer.ggml.token_type"}
    plain["tokenizer.ggml.tokens"] = plain["tokenizer.ggml.tokens"][:tiny_tokenizer.regular_vocab_size]
    plain = {k: v for k, v in plain.items() if not k.endswith("_token_id")}
    bare = Tokenizer.from_gguf(plain)
    assert bare.vocab_size == tiny_tokenizer.regular_vocab_size and bare.added_tokens == {}
    assert bare.encode("hello") == tiny_tokenizer.encode("hello")


@pytest.mark.parametrize("key, value, message", [
    ("tokenizer.ggml.tokens", "abc", "must be a list of str"),
    ("tokenizer.ggml.token_type", [1, "x"], "must be a list of int"),
    ("tokenizer.ggml.merges", ["a b c"], r"merges\[0\]"),
    ("tokenizer.ggml.eot_token_id", 10 ** 9, "eot_token_id"),
    ("tokenizer.chat_template", 3, "chat_template"),
])
def test_gguf_bad_metadata_values(tiny_gguf, key, value, message):
    from qwq.model.gguf_file import read_metadata

    metadata = read_metadata(tiny_gguf)
    metadata[key] = value
    with pytest.raises(TokenizerError, match=message):
        Tokenizer.from_gguf(metadata)


def test_loading_a_gguf_tokenizer_imports_no_torch(tiny_gguf):
    import subprocess
    import sys

    code = ("import sys\nfrom qwq.tokenizer import Tokenizer, ReasoningStreamParser, parse_tool_calls\n"
            f"tok = Tokenizer.from_gguf({str(tiny_gguf)!r})\n"
            "tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], add_generation_prompt=True, tokenize=True)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
