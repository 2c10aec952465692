"""The pipeline end to end at toy scale (reduced step counts): stages, summary schema, report, plots, a final model
every `-m` consumer loads; kill -9 + --resume ends with the uninterrupted run's weights; CLI errors."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Toy scale: a 2-layer 64-wide model, a few SFT steps, 2 RL steps per stage, small evals.
REDUCED = [
    "run.threads=1", "run.checkpoint_every=1", "run.progress=false",
    'model.overrides={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, '
    '"num_key_value_heads": 1}',
    'sft.tasks={"algebra": 120, "code": 40, "instruct": 60}', "sft.epochs=1",
    'rm.tasks={"instruct": 40, "algebra": 16}', "rm.heldout_pairs=12", "rm.epochs=1",
    'eval.heldout={"algebra": 8, "code": 4, "instruct": 6}', "eval.max_new_tokens=24",
]
for stage in ("stage1", "stage2"):
    REDUCED += [f"{stage}.steps=2", f"{stage}.prompts_per_step=3", f"{stage}.group_size=3",
                f"{stage}.max_new_tokens=24", f"{stage}.probe_prompts=3", f"{stage}.probe_min_solved=0",
                f"{stage}.max_refills=0"]


def test_reduced_pipeline_end_to_end(tmp_path):
    from qwq.rl.config import load_config
    from qwq.rl.pipeline import Pipeline

    config = load_config(None, REDUCED)
    run_dir = tmp_path / "run"
    summary = Pipeline(config, run_dir).run()
    assert [s["name"] for s in summary["stages"]] == ["cold_start", "stage1", "reward_model", "stage2"]
    for stage in summary["stages"]:
        assert set(stage) >= {"name", "heldout_before", "heldout_after"}
        for accs in (stage["heldout_before"], stage["heldout_after"]):
            assert all(0.0 <= v <= 1.0 for v in accs.values())
    assert set(summary["stages"][1]["heldout_after"]) == {"algebra", "code", "instruct", "math"}
    assert isinstance(summary["gate"]["passed"], bool) and summary["seconds"] > 0
    assert json.loads((run_dir / "summary.json").read_text())["gate"] == summary["gate"]
    report = (run_dir / "report.md").read_text()
    assert "Held-out accuracy" in report and "Regression gate" in report
    for plot in ("stage1", "stage2", "heldout", "losses"):
        assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 1000
    for stage in ("sft", "stage1", "stage2", "rm"):
        lines = (run_dir / stage / "metrics.jsonl").read_text().splitlines()
        assert lines and all(json.loads(line)["step"] for line in lines)
    stage1 = [json.loads(line) for line in (run_dir / "stage1" / "metrics.jsonl").read_text().splitlines()]
    assert len(stage1) == 2 and {"reward", "accuracy", "entropy", "zero_variance_fraction"} <= set(stage1[0])
    if summary["gate"]["passed"]:  # a final model loads through the shared loader (`-m run_dir`)
        from qwq.model.loading import load_model

        loaded = load_model(str(run_dir))
        assert loaded.tokenizer.token_to_id("<think>") is not None
        assert "<|im_start|>assistant\n<think>\n" in loaded.chat_template.render(
            [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    with pytest.raises(Exception, match="already holds a run"):
        Pipeline(config, run_dir).run()


def _cli(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "qwq", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, **kwargs)


def test_cli_errors_are_one_line(tmp_path):
    bad_key = _cli("pipeline", "--out", str(tmp_path / "x"), "--set", "stage1.stepz=3")
    assert bad_key.returncode == 2
    assert "unknown config key 'stage1.stepz'" in bad_key.stderr and "steps" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr
    config = tmp_path / "c.toml"
    config.write_text("[grpo]\nsteps = 1\n")
    no_model = _cli("train", "grpo", "--config", str(config), "--out", str(tmp_path / "y"))
    assert no_model.returncode == 2 and "needs a starting model: set model.init" in no_model.stderr
    config.write_text('[model]\ninit = "qwq-32b"\n[grpo]\ntasks = {gsm8k = 1.0}\n'
                      'task_options = {gsm8k = {path = "missing.jsonl"}}\n')
    missing = _cli("train", "grpo", "--config", str(config), "--out", str(tmp_path / "z"))
    assert missing.returncode == 2 and "missing.jsonl: dataset file not found" in missing.stderr
    huge = _cli("train", "grpo", "--config", str(config), "--out", str(tmp_path / "w"), "--set",
                "run.max_memory_gb=0.001", "--set", 'grpo.tasks={"arith": 1.0}')
    assert huge.returncode == 2 and "estimated peak memory" in huge.stderr


def _hash_final(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["weights_sha256"]


@pytest.mark.slow
def test_kill_minus_nine_and_resume_gives_the_same_weights(tmp_path):
    args = ["pipeline", "--no-progress", "--seed", "3", *sum((["--set", s] for s in REDUCED), [])]
    first = _cli(*args, "--out", str(tmp_path / "a"))
    assert first.returncode in (0, 1), first.stderr
    assert _cli(*args, "--out", str(tmp_path / "a2")).returncode in (0, 1)
    assert _hash_final(tmp_path / "a") == _hash_final(tmp_path / "a2")  # same seed and threads: same weights

    # kill -9 at a random point of the run, then resume until it finishes
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "qwq", *args, "--out", str(tmp_path / "b")], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = random.Random(os.getpid()).choice(["sft", "stage1", "rm", "stage2"])
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        metrics = tmp_path / "b" / target / "metrics.jsonl"
        if metrics.is_file() and metrics.read_text().strip():
            break
        time.sleep(0.2)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = _cli(*args, "--out", str(tmp_path / "b"), "--resume")
    assert resumed.returncode in (0, 1), resumed.stderr
    assert _hash_final(tmp_path / "b") == _hash_final(tmp_path / "a"), f"killed during {target}"
