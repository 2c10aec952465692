"""`qwq generate`, `qwq quantize`, `qwq chat` and `qwq bench` end to end on a tiny checkpoint directory."""

from __future__ import annotations

import io
import json

import pytest
import torch

from qwq.cli import main

from engine_fixtures import make_model, tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    from qwq.model.weights import save_hf_checkpoint
    from qwq.tokenizer import QWQ_TEMPLATE

    directory = tmp_path_factory.mktemp("tiny") / "model"
    config = tiny_config(vocab_size=tokenizer.vocab_size + 12, eos_token_id=tokenizer.eos_token_id)
    save_hf_checkpoint(make_model(config, seed=21), config, directory)
    tokenizer.chat_template = QWQ_TEMPLATE
    tokenizer.save(directory)
    return directory


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_json_samples(checkpoint, capsys):
    code, out, err = run(capsys, "generate", "-m", str(checkpoint), "--prompt", "The quick brown", "--n", "3",
                         "--max-new-tokens", "6", "--seed", "5", "--json", "--temperature", "0.8")
    assert code == 0, err
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["sample_index"] for r in records] == [0, 1, 2]
    for record in records:
        assert set(record) >= {"prompt_token_ids", "token_ids", "text", "reasoning", "answer", "finish_reason",
                               "timings"}
        assert len(record["token_ids"]) <= 6
        assert record["timings"]["prompt_tokens"] == len(record["prompt_token_ids"])
    again = run(capsys, "generate", "-m", str(checkpoint), "--prompt", "The quick brown", "--n", "3",
                "--max-new-tokens", "6", "--seed", "5", "--json", "--temperature", "0.8")[1]
    assert [json.loads(x)["token_ids"] for x in again.strip().splitlines()] == [r["token_ids"] for r in records]


def test_generate_chat_mode_streams_text(checkpoint, capsys):
    code, out, err = run(capsys, "generate", "-m", str(checkpoint), "--prompt", "hi", "--chat",
                         "--max-new-tokens", "5", "--temperature", "0")
    assert code == 0, err
    assert out.endswith("\n")


@pytest.mark.parametrize("argv,message", [
    (["--temperature", "-1"], "temperature"), (["--max-new-tokens", "0"], "max_new_tokens"),
    (["--top-p", "2"], "top_p"), (["--n", "0"], "--n"), (["--quant", "int4", "--group-size", "48"], "group size"),
    (["--system", "x"], "--system needs --chat"),
])
def test_generate_bad_arguments_exit_2_with_one_line(checkpoint, capsys, argv, message):
    code, out, err = run(capsys, "generate", "-m", str(checkpoint), "--prompt", "x", "--max-new-tokens", "2", *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_generate_missing_model_and_prompt_file(tmp_path, capsys):
    code, _, err = run(capsys, "generate", "-m", str(tmp_path / "nope.gguf"), "--prompt", "x")
    assert code == 2 and "nope.gguf" in err
    code, _, err = run(capsys, "generate", "--prompt-file", str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt" in err


@pytest.mark.parametrize("method", ["int8", "int4", "w8a8"])
def test_quantize_then_generate_from_the_quantized_checkpoint(checkpoint, tmp_path, capsys, method):
    out_dir = tmp_path / method
    code, out, err = run(capsys, "quantize", "-m", str(checkpoint), "--method", method, "--group-size", "32",
                         "--dtype", "float32", "--out", str(out_dir))
    assert code == 0, err
    assert json.loads((out_dir / "quantization.json").read_text())["method"] == method
    args = ["--prompt", "The quick", "--max-new-tokens", "5", "--temperature", "0", "--json"]
    code, quantized, err = run(capsys, "generate", "-m", str(out_dir), *args)
    assert code == 0, err
    on_the_fly = run(capsys, "generate", "-m", str(checkpoint), "--quant", method, "--group-size", "32",
                     "--dtype", "float32", *args)[1]
    assert json.loads(quantized)["token_ids"] == json.loads(on_the_fly)["token_ids"]


def test_chat_session_with_commands(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/think\n/last\nsecond turn\n/reset\n/bogus\n/exit\n"))
    code, out, err = run(capsys, "chat", "-m", str(checkpoint), "--max-new-tokens", "4", "--temperature", "0")
    assert code == 0, err
    assert "thinking collapsed" in out and "conversation cleared" in out and "unknown command /bogus" in out
    assert out.count("qwq>") == 2


def test_bench_reports_speeds(checkpoint, capsys):
    code, out, err = run(capsys, "bench", "-m", str(checkpoint), "--tokens", "4", "--batch", "2",
                         "--prefill-tokens", "40", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["single_stream_tokens_per_s"] > 0 and report["batch"] == 2
    assert report["long_prefill_tokens"] == 40 and report["long_prefill_tokens_per_s"] > 0
    assert 0 < report["weight_bytes_per_token"] < 10 ** 7
