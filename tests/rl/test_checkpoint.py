"""Checkpoints: atomic, keep-last-k, full state; a resumed trainer ends with the uninterrupted trainer's weights."""

import copy
import os

import pytest
import torch

from qwq.rl.checkpoint import TrainerState, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from qwq.rl.config import RunConfig, SFTConfig
from qwq.rl.grpo import GRPOTrainer
from qwq.rl.modeling import make_engine, weights_hash
from qwq.rl.rollout import TaskSlot
from qwq.rl.sft import make_optimizer, train_sft
from qwq.utils.errors import CheckpointError

from .conftest import toy_grpo_config


def test_roundtrip_and_keep_last(toy_world, tmp_path):
    model = toy_world["fresh_model"](1)
    optimizer = make_optimizer(model.parameters(), 1e-3, 0.0)
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    optimizer.step()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, model, toy_world["config"], optimizer,
                        TrainerState(step, step * 10, [{"step": step}], {"x": step}), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert (latest_checkpoint(tmp_path) / "model" / "config.json").is_file()  # loadable with -m
    other = toy_world["fresh_model"](2)
    other_opt = make_optimizer(other.parameters(), 1e-3, 0.0)
    state = load_checkpoint(latest_checkpoint(tmp_path), other, other_opt)
    assert (state.step, state.cursor, state.extra) == (3, 30, {"x": 3})
    assert weights_hash(other) == weights_hash(model)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_a_crash_while_saving_leaves_the_previous_checkpoint(toy_world, tmp_path, monkeypatch):
    model = toy_world["fresh_model"](1)
    save_checkpoint(tmp_path, model, toy_world["config"], None, TrainerState(1))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("qwq.model.weights.save_hf_checkpoint", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, model, toy_world["config"], None, TrainerState(2))
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_corrupt_checkpoint_is_a_clear_error(toy_world, tmp_path):
    model = toy_world["fresh_model"](1)
    path = save_checkpoint(tmp_path, model, toy_world["config"], None, TrainerState(1))
    (path / "trainer.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="trainer.pt: cannot read"):
        load_checkpoint(path, model, None)


def test_sft_resume_matches_uninterrupted(toy_world, tmp_path):
    torch.set_num_threads(1)
    cfg = SFTConfig(epochs=1, batch_size=32, lr=3e-3, warmup_steps=2)  # 7 steps
    pad = toy_world["tokenizer"].pad_token_id
    full = toy_world["fresh_model"](0)
    train_sft(full, toy_world["config"], toy_world["items"], cfg, RunConfig(checkpoint_every=0), tmp_path / "a", pad)
    interrupted = toy_world["fresh_model"](0)
    train_sft(interrupted, toy_world["config"], toy_world["items"], cfg, RunConfig(checkpoint_every=3),
              tmp_path / "b", pad)
    last = latest_checkpoint(tmp_path / "b")
    os.rename(last, last.with_name("gone"))  # as if killed after step 6: resume from the step-6 checkpoint
    resumed = toy_world["fresh_model"](9)  # another init: everything must come from the checkpoint
    records = train_sft(resumed, toy_world["config"], toy_world["items"], cfg, RunConfig(checkpoint_every=3),
                        tmp_path / "b", pad, resume=True)
    assert [r["step"] for r in records] == list(range(1, 8))
    assert weights_hash(resumed) == weights_hash(full) == weights_hash(interrupted)


def test_grpo_resume_matches_uninterrupted(toy_world, toy_sft_model, tmp_path):
    torch.set_num_threads(1)
    world = toy_world

    def run(directory, steps, resume, model):
        trainer = GRPOTrainer(model, world["config"], world["tokenizer"], world["template"],
                              [TaskSlot(world["task"], 1.0, None)], toy_grpo_config(steps=steps),
                              RunConfig(checkpoint_every=2, progress=False), "test", directory,
                              lambda m: make_engine(m, world["tokenizer"], world["config"], world["template"], 128,
                                                    256))
        return trainer.train(resume=resume)

    full = copy.deepcopy(toy_sft_model)
    run(tmp_path / "full", 4, False, full)
    part = copy.deepcopy(toy_sft_model)
    run(tmp_path / "part", 3, False, part)  # checkpoints at steps 2 and 3 (end)
    last = latest_checkpoint(tmp_path / "part")
    os.rename(last, last.with_name("gone"))  # as if killed during step 3: resume from step 2
    resumed = copy.deepcopy(toy_sft_model)
    records, _ = run(tmp_path / "part", 4, True, resumed)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert weights_hash(resumed) == weights_hash(full)
