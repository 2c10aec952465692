"""Tokenizer behaviour on a small trained byte-level BPE carrying QwQ's added tokens (no real weights needed)."""

from __future__ import annotations

import json
import random
import unicodedata

import pytest

from qwq.tokenizer import QWQ_ADDED_TOKENS, AddedToken, Tokenizer, qwq_tokenizer, train_bpe
from qwq.utils.errors import TokenizerError
from tokenizer_samples import STRINGS



def test_qwq_added_tokens_match_the_release(shared_data):
    release = json.loads((shared_data / "qwq-32b" / "added_tokens.json").read_text())
    expected = [(t["id"], t["content"], t["special"]) for t in release["added_tokens"]]
    assert [(t.id, t.content, t.special) for t in QWQ_ADDED_TOKENS] == expected
    assert release["eos_token"] == "<|im_end|>" and release["pad_token"] == "<|endoftext|>"


@pytest.mark.parametrize("text", STRINGS)
def test_round_trip(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text)
    assert all(0 <= i < tiny_tokenizer.vocab_size for i in ids)
    assert tiny_tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


def test_nfc_normalization(tiny_tokenizer):
    decomposed = "cafe\u0301"  # e + combining acute
    assert tiny_tokenizer.encode(decomposed) == tiny_tokenizer.encode("caf\u00e9")


def test_added_tokens_are_single_ids(tiny_tokenizer):
    tok = tiny_tokenizer
    for content in ("<think>", "</think>", "<tool_call>", "</tool_call>", "<|im_start|>", "<|im_end|>"):
        token_id = tok.token_to_id(content)
        assert token_id is not None and tok.id_to_token(token_id) == content
        assert tok.encode(f"x{content}y") == tok.encode("x") + [token_id] + tok.encode("y")
    assert tok.token_to_id("<|im_end|>") in tok.special_ids
    assert tok.token_to_id("<think>") not in tok.special_ids
    # Added tokens come after the BPE, in QwQ's order.
    offsets = [tok.token_to_id(t.content) - tok.regular_vocab_size for t in QWQ_ADDED_TOKENS]
    assert offsets == list(range(len(QWQ_ADDED_TOKENS)))
    assert tok.vocab_size == tok.regular_vocab_size + len(QWQ_ADDED_TOKENS)


def test_allow_special_false_encodes_control_tokens_as_text(tiny_tokenizer):
    tok = tiny_tokenizer
    text = "hi<|im_end|><think>"
    ids = tok.encode(text, allow_special=False)
    assert tok.token_to_id("<|im_end|>") not in ids
    assert tok.token_to_id("<think>") in ids  # not special: still one token, as in transformers
    assert tok.decode(ids) == text
    assert tok.token_to_id("<|im_end|>") in tok.encode(text)  # the shared backend is left untouched


def test_decode_skip_special_tokens(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok.encode("<|im_start|>assistant\n<think>x</think>ok<|im_end|>")
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n<think>x</think>ok"
    assert tok.decode(ids, skip_special_tokens=False) == "<|im_start|>assistant\n<think>x</think>ok<|im_end|>"


def test_special_ids(tiny_tokenizer):
    tok = tiny_tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_ids == (tok.token_to_id("<|im_end|>"),
                                                                     tok.token_to_id("<|endoftext|>"))
    assert tok.pad_token_id == tok.token_to_id("<|endoftext|>")
    assert tok.bos_token_id is None and tok.add_bos is False
    assert len(tok.special_ids) == sum(t.special for t in QWQ_ADDED_TOKENS)


def test_encode_batch_matches_encode(tiny_tokenizer):
    assert tiny_tokenizer.encode_batch(STRINGS) == [tiny_tokenizer.encode(s) for s in STRINGS]


# ------------------------------------------------------------------------------------------- incremental decoding
@pytest.mark.parametrize("text", STRINGS)
def test_incremental_decoder_emits_whole_characters(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text)
    decoder = tiny_tokenizer.incremental_decoder()
    deltas = [decoder.feed(i) for i in ids]
    deltas.append(decoder.flush())
    assert "".join(deltas) == tiny_tokenizer.decode(ids)
    assert all("\ufffd" not in d for d in deltas)
    assert decoder.pending_bytes == 0


def _byte_id(tok: Tokenizer, byte: int) -> int:
    from qwq.tokenizer.bytelevel import spell_bytes

    return tok.token_to_id(spell_bytes(bytes([byte])))


def test_incremental_decoder_holds_split_characters(tiny_tokenizer):
    tok = tiny_tokenizer
    emoji = "🦙".encode()  # 4 bytes, one token each
    decoder = tok.incremental_decoder()
    deltas = [decoder.feed(_byte_id(tok, b)) for b in emoji]
    assert deltas == ["", "", "", "🦙"]
    assert decoder.pending_bytes == 0


def test_incremental_decoder_broken_utf8(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = [_byte_id(tok, b) for b in "中".encode()[:2]] + tok.encode("a") + [_byte_id(tok, "中".encode()[0])]
    decoder = tok.incremental_decoder()
    streamed = decoder.feed_many(ids)
    assert streamed == "\ufffda"  # the cut character is replaced as soon as "a" proves it broken
    assert decoder.flush() == "\ufffd"  # a dangling lead byte at the end
    assert decoder.text == tok.decode(ids) == tok.backend.decode(ids, skip_special_tokens=False)


def test_decode_matches_tokenizers_on_random_ids(tiny_tokenizer):
    tok = tiny_tokenizer
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 30))]
        for skip in (False, True):
            decoder = tok.incremental_decoder(skip_special_tokens=skip)
            streamed = decoder.feed_many(ids) + decoder.flush()
            assert streamed == tok.decode(ids, skip_special_tokens=skip) == \
                tok.backend.decode(ids, skip_special_tokens=skip)


def test_decode_rejects_unknown_ids(tiny_tokenizer):
    with pytest.raises(TokenizerError, match=str(tiny_tokenizer.vocab_size + 3)):
        tiny_tokenizer.decode([1, tiny_tokenizer.vocab_size + 3])
    with pytest.raises(TokenizerError, match="-1"):
        tiny_tokenizer.incremental_decoder().feed(-1)


def test_encode_rejects_non_strings(tiny_tokenizer):
    with pytest.raises(TokenizerError, match="bytes"):
        tiny_tokenizer.encode(b"abc")


# ------------------------------------------------------------------------------------------------- added tokens
def test_with_added_tokens_at_a_gap(tiny_tokenizer):
    gap_id = tiny_tokenizer.vocab_size + 10
    tok = tiny_tokenizer.with_added_tokens([AddedToken(gap_id, "<extra>", True)])
    assert tok.vocab_size == gap_id + 1
    assert tok.encode("a<extra>b") == tiny_tokenizer.encode("a") + [gap_id] + tiny_tokenizer.encode("b")
    assert tok.decode([gap_id]) == "<extra>" and gap_id in tok.special_ids
    assert tok.encode("<think>") == tiny_tokenizer.encode("<think>")  # existing ids unchanged
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        tok.decode([gap_id - 1])  # an id inside the gap is no token
    assert tok.eos_token_ids == tiny_tokenizer.eos_token_ids and tok.chat_template == tiny_tokenizer.chat_template


def test_with_added_tokens_replaces_and_refuses_collisions(tiny_tokenizer):
    think = tiny_tokenizer.token_to_id("<think>")
    tok = tiny_tokenizer.with_added_tokens([AddedToken(think, "<think>", True)])
    assert think in tok.special_ids and tok.vocab_size == tiny_tokenizer.vocab_size
    with pytest.raises(TokenizerError, match="BPE token"):
        tiny_tokenizer.with_added_tokens([AddedToken(5, "<new>", False)])
    with pytest.raises(TokenizerError, match="repeat"):
        tiny_tokenizer.with_added_tokens([AddedToken(9000, "<a>", False), AddedToken(9000, "<b>", False)])


def test_qwq_tokenizer_needs_the_qwen2_bpe(tiny_tokenizer):
    with pytest.raises(TokenizerError, match="not the Qwen2 BPE"):
        qwq_tokenizer(tiny_tokenizer)


# ------------------------------------------------------------------------------------------------------ training
def test_train_bpe_is_deterministic_and_sized():
    texts = ["abc abd abe " * 50, "xyz xy x " * 30, "你好你好 " * 20]
    a = train_bpe(texts, 300, ["<|endoftext|>"], added_tokens=["<think>"])
    b = train_bpe(iter(texts), 300, ["<|endoftext|>"], added_tokens=["<think>"])
    assert a.backend.to_str() == b.backend.to_str()
    assert a.vocab_size <= 300 and a.regular_vocab_size >= 256
    assert a.eos_token == "<|endoftext|>" and a.pad_token == "<|endoftext|>"
    assert a.encode("abc<think>") == a.encode("abc") + [a.token_to_id("<think>")]
    assert len(a.encode(" abc")) == 1  # a frequent word became one token


def test_train_bpe_errors():
    with pytest.raises(TokenizerError, match="too small"):
        train_bpe(["abc"], 100, ["<|endoftext|>"])
    with pytest.raises(TokenizerError, match="training text 1"):
        train_bpe(["abc", 3], 300)
    with pytest.raises(TokenizerError, match="distinct"):
        train_bpe(["abc"], 300, ["<a>", "<a>"])


# ------------------------------------------------------------------------------------- files and transformers
def test_save_loads_in_transformers_and_back(tiny_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tiny_tokenizer.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    ours = Tokenizer.from_hf_dir(tmp_path)
    messages = [{"role": "user", "content": "What is 2+2? 😀"}]
    for text in STRINGS:
        ids = tiny_tokenizer.encode(text)
        assert hf.encode(text, add_special_tokens=False) == ids == ours.encode(text)
        assert hf.decode(ids) == tiny_tokenizer.decode(ids)
        assert hf.decode(ids, skip_special_tokens=True) == tiny_tokenizer.decode(ids, skip_special_tokens=True)
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>"
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tiny_tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert ours.eos_token_ids == tiny_tokenizer.eos_token_ids and ours.chat_template == tiny_tokenizer.chat_template
    assert ours.added_tokens == tiny_tokenizer.added_tokens and ours.vocab_size == tiny_tokenizer.vocab_size


def test_hf_dir_generation_config_and_template_file(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    think = tiny_tokenizer.token_to_id("<think>")
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [think]}))
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0].content }}")
    tok = Tokenizer.from_hf_dir(tmp_path)
    assert think in tok.eos_token_ids and tok.eos_token_ids[0] == tok.eos_token_id
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == "x"
    assert tok.apply_chat_template([{"role": "user", "content": "ab"}], tokenize=True) == tok.encode("ab")


def test_hf_dir_named_chat_templates(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_hf_dir(tmp_path).chat_template == "D"


def _edit_config(directory, **changes):
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("changes, message", [
    ({"eos_token": "<nope>"}, "eos_token '<nope>' is not in the vocabulary"),
    ({"pad_token": 7}, "field 'pad_token' must be a string"),
    ({"add_bos_token": "yes"}, "add_bos_token"),
    ({"chat_template": 5}, "chat_template"),
    ({"added_tokens_decoder": {"x": {"content": "a"}}}, "added_tokens_decoder"),
])
def test_hf_dir_config_errors(tiny_tokenizer, tmp_path, changes, message):
    tiny_tokenizer.save(tmp_path)
    _edit_config(tmp_path, **changes)
    with pytest.raises(TokenizerError, match=message) as info:
        Tokenizer.from_hf_dir(tmp_path)
    assert "tokenizer_config.json" in str(info.value)


def test_file_errors(tiny_tokenizer, tmp_path):
    missing = tmp_path / "none" / "tokenizer.json"
    with pytest.raises(TokenizerError, match="file not found") as info:
        Tokenizer.from_file(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(TokenizerError, match="not a directory"):
        Tokenizer.from_hf_dir(tmp_path / "none")

    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"type": "BPE",\n "vocab": }')
    with pytest.raises(TokenizerError, match="invalid JSON at line 2"):
        Tokenizer.from_file(bad)

    document = json.loads(tiny_tokenizer.backend.to_str())
    word_level = dict(document, model={"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"})
    bad.write_text(json.dumps(word_level))
    with pytest.raises(TokenizerError, match="model.type"):
        Tokenizer.from_file(bad)

    broken = json.loads(json.dumps(document))
    broken["model"]["merges"].append(["zzzz", "qqqq"])
    bad.write_text(json.dumps(broken))
    with pytest.raises(TokenizerError, match="not a valid tokenizer definition") as info:
        Tokenizer.from_file(bad)
    assert "bad.json" in str(info.value)

    bad.write_text(json.dumps(document))
    tok = Tokenizer.from_file(bad, eos_token="<|im_end|>")
    assert tok.encode("hello <think>") == tiny_tokenizer.encode("hello <think>")
    with pytest.raises(TokenizerError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_decode_accepts_integer_types_only(tiny_tokenizer):
    import numpy as np

    ids = tiny_tokenizer.encode("hello 你好")
    assert tiny_tokenizer.decode(np.array(ids, dtype=np.int64)) == "hello 你好"
    with pytest.raises(TokenizerError, match="1.0"):
        tiny_tokenizer.decode([1.0])
    with pytest.raises(TokenizerError, match="'a'"):
        tiny_tokenizer.decode(["a"])
