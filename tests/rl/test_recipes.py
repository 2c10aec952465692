"""The real-model recipe runs: GRPO with LoRA on Qwen2.5-Coder-0.5B (GGUF) for one step on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.weights
def test_coder_05b_lora_gsm8k_recipe_runs_a_step(real_gguf, shared_data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "qwq", "train", "grpo", "--config", str(REPO / "recipes/qwen2.5-coder-0.5b-lora-gsm8k.toml"),
           "--out", str(tmp_path / "run"), "--no-progress", "--set", "grpo.steps=1", "--set", "grpo.max_new_tokens=96",
           "--set", "grpo.probe_min_solved=0", "--set",
           f'grpo.task_options={{"gsm8k": {{"path": "{shared_data / "gsm8k" / "test.jsonl"}", "heldout_fraction": 0.2}}}}']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["steps"] == 1 and (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "final" / "config.json").is_file()
