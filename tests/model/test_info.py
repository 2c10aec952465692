"""`qwq info`: exact counts from a meta-device model, memory figures, and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

from qwq.cli import main as qwq_main
from qwq.config import QWQ_32B, TINY


def run_info(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwq", "info", *args], capture_output=True, text=True, timeout=300)


def test_qwq_32b_json_reports_exact_count_memory_and_kv():
    out = run_info("-m", "qwq-32b", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["num_parameters"] == 32_763_876_352
    assert info["kv_bytes_per_token"] == 262_144 and info["kv_dtype"] == "bfloat16"
    assert info["weight_bytes"]["bfloat16"] == 2 * 32_763_876_352
    assert info["weight_bytes"]["float32"] == 4 * 32_763_876_352
    assert info["weight_bytes"]["int8"] == QWQ_32B.weight_bytes("int8")
    assert info["weight_bytes"]["int4"] == QWQ_32B.weight_bytes("int4")
    assert info["weight_bytes"]["int4"] < info["weight_bytes"]["int8"] < info["weight_bytes"]["bfloat16"]
    assert info["config"]["hidden_size"] == 5120 and info["config"]["num_key_value_heads"] == 8


def test_hf_directory_and_table_output(tmp_path, capsys):
    config = TINY.replace(num_hidden_layers=3, tie_word_embeddings=False)
    config.save_hf(tmp_path)
    assert qwq_main(["info", "-m", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_parameters"] == config.num_parameters()
    assert qwq_main(["info", "-m", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert f"{config.num_parameters():,}" in table
    assert "KV cache per token" in table


def test_missing_model_exits_2_with_one_line():
    out = run_info("-m", "/nonexistent")
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent" in lines[0]
    assert "Traceback" not in out.stderr


def test_directory_without_config_exits_2(tmp_path, capsys):
    assert qwq_main(["info", "-m", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "config.json" in err
