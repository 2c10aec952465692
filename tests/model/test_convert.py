"""`qwq convert`: GGUF -> HF checkpoint directory that transformers loads with the same logits and tokens."""

from __future__ import annotations

import json

import pytest
import torch
from gguf.constants import GGMLQuantizationType as T
from gguf_fixtures import random_tensors, tiny_hf_config, tokenizer_metadata, write_gguf

from qwq.cli import main as cli_main
from qwq.model.convert import convert
from qwq.model.gguf import load_gguf_model
from qwq.utils.errors import UsageError


@pytest.fixture()
def tiny_gguf(tmp_path):
    hf = tiny_hf_config(vocab_size=300, num_hidden_layers=2)
    types = {"blk.0.ffn_down.weight": T.Q6_K, "blk.1.attn_q.weight": T.Q8_0, "token_embd.weight": T.Q5_0,
             "blk.1.ffn_gate.weight": T.Q4_K}
    return write_gguf(tmp_path / "tiny.gguf", hf, random_tensors(hf, tied=False), types=types,
                      extra=tokenizer_metadata(rows=300))


def test_convert_loads_in_transformers_with_same_logits_and_tokens(tiny_gguf, tmp_path, capsys):
    import transformers

    from qwq.tokenizer.tokenizer import Tokenizer

    out = tmp_path / "hf"
    assert cli_main(["convert", "-m", str(tiny_gguf), "--out", str(out), "--dtype", "float32", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source_kind"] == "gguf" and summary["dtype"] == "float32"
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(summary["files"])

    _, ours = load_gguf_model(tiny_gguf)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids) - theirs(ids).logits).abs().max().item() <= 1e-4

    text = "the thin hen in the inn <|im_end|>"
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tokenizer.encode(text) == Tokenizer.from_gguf(tiny_gguf).encode(text)
    assert hf_tokenizer.eos_token == "<|im_end|>"
    rendered = hf_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_default_dtype_is_bfloat16(tiny_gguf, tmp_path):
    summary = convert(str(tiny_gguf), tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert summary["dtype"] == "bfloat16" and config.get("torch_dtype", config.get("dtype")) == "bfloat16"


def test_refuses_to_replace_a_non_empty_directory(tiny_gguf, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli_main(["convert", "-m", str(tiny_gguf), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err
    assert (out / "notes.txt").read_text() == "keep me"
    convert(str(tiny_gguf), out, force=True)
    assert not (out / "notes.txt").exists() and (out / "config.json").is_file()


def test_refuses_to_overwrite_its_source(tiny_gguf, tmp_path):
    convert(str(tiny_gguf), tmp_path / "hf")
    with pytest.raises(UsageError, match="would replace the model"):
        convert(str(tmp_path / "hf"), tmp_path / "hf", force=True)


@pytest.mark.parametrize("argv, needle", [
    (["-m", "qwq-32b"], "only a config"),
    (["-m", "no-such-model"], "unknown model"),
])
def test_bad_sources_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    assert cli_main(["convert", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_corrupt_gguf_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    assert cli_main(["convert", "-m", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
