"""Model-spec resolution: names, checkpoint dirs, run dirs, GGUF files, and clear errors for everything else."""

import json
import subprocess
import sys

import pytest

from qwq.config import QWQ_32B
from qwq.model.loading import resolve, resolve_config
from qwq.utils.errors import ModelNotFoundError


def test_config_only_name():
    resolved = resolve("qwq-32b")
    assert resolved.kind == "config" and not resolved.has_weights
    assert resolve_config("qwq-32b") == QWQ_32B


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b"):
        resolve("no-such-model")


def test_missing_path_is_named():
    with pytest.raises(ModelNotFoundError, match="nowhere/model.gguf"):
        resolve("/nowhere/model.gguf")


def test_non_gguf_file_is_rejected(tmp_path):
    bogus = tmp_path / "weights.gguf"
    bogus.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(ModelNotFoundError, match="not a GGUF file"):
        resolve(str(bogus))


def test_hf_dir_and_run_dir(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    QWQ_32B.save_hf(hf)
    assert resolve(str(hf)).kind == "hf" and resolve(str(hf)).path == hf
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"pipeline": "tiny"}))  # the run's own config, not a model's
    QWQ_32B.save_hf(run / "final")
    assert resolve(str(run)).path == run / "final"
    assert resolve_config(str(run)) == QWQ_32B.replace(generation=QWQ_32B.generation)


def test_dir_without_checkpoint(tmp_path):
    with pytest.raises(ModelNotFoundError, match="without config.json"):
        resolve(str(tmp_path))


def test_cli_reports_unknown_model_in_one_line():
    out = subprocess.run([sys.executable, "-m", "qwq", "info", "-m", "no-such-model"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "no-such-model" in out.stderr
