"""GRPO on the engine with the toy yes/no task: reward rises, controls do not learn, the probe refuses hopeless
starts, metrics are complete, loss variants all train."""

import copy

import pytest
import torch

from qwq.rl.config import RunConfig
from qwq.rl.grpo import GRPOTrainer, LearnabilityError
from qwq.rl.modeling import make_engine, weights_hash
from qwq.rl.rollout import TaskSlot

from .conftest import YesNoTask, toy_grpo_config


def _trainer(world, model, tmp_path, task=None, run=None, processes=1, **changes):
    cfg = toy_grpo_config(**changes)
    slot = TaskSlot(task or world["task"], 1.0, None)
    return GRPOTrainer(model, world["config"], world["tokenizer"], world["template"], [slot], cfg,
                       run or RunConfig(checkpoint_every=0, progress=False), "test", tmp_path,
                       lambda m: make_engine(m, world["tokenizer"], world["config"], world["template"], 128, 256,
                                             processes))


def test_grpo_raises_the_reward(toy_world, toy_sft_model, tmp_path):
    model = copy.deepcopy(toy_sft_model)
    records, extra = _trainer(toy_world, model, tmp_path, steps=10).train()
    assert extra["probe"]["solved_prompts"] >= 1
    first, last = records[0]["accuracy"], sum(r["accuracy"] for r in records[-2:]) / 2
    assert 0.1 < first < 0.9  # the cold start answers both ways
    assert last > first + 0.2, [r["accuracy"] for r in records]
    for key in ("reward", "accuracy", "zero_variance_fraction", "truncated_fraction", "response_length", "entropy",
                "kl", "clip_low", "clip_high", "loss", "grad_norm", "reward/yesno", "accuracy/yesno", "generate_s"):
        assert key in records[-1], key
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == len(records)


@pytest.mark.parametrize("loss", ["grpo", "dr_grpo", "bnpo"])
def test_loss_variants_train(toy_world, toy_sft_model, tmp_path, loss):
    model = copy.deepcopy(toy_sft_model)
    records, _ = _trainer(toy_world, model, tmp_path, steps=2, loss=loss, updates_per_batch=2, kl_coef=0.05,
                          dynamic_sampling=False).train()
    assert weights_hash(model) != weights_hash(toy_sft_model)
    assert records[-1]["kl"] >= 0 and records[-1]["clip_low"] >= 0


def test_constant_reward_does_not_move_the_weights(toy_world, toy_sft_model, tmp_path):
    model = copy.deepcopy(toy_sft_model)
    records, _ = _trainer(toy_world, model, tmp_path, steps=2, reward_control="constant").train()
    assert weights_hash(model) == weights_hash(toy_sft_model)  # every group is zero-variance: nothing to learn
    assert all(r["groups_trained"] == 0 for r in records)


def test_probe_refuses_a_task_nothing_solves(toy_world, toy_sft_model, tmp_path):
    with pytest.raises(LearnabilityError, match=r"solved 0 of 8 probe problems .* no reward signal"):
        _trainer(toy_world, copy.deepcopy(toy_sft_model), tmp_path, task=YesNoTask(reward_value=0.0)).train()


def test_same_seed_same_weights(toy_world, toy_sft_model, tmp_path):
    hashes = []
    for run in range(2):
        torch.set_num_threads(1)
        model = copy.deepcopy(toy_sft_model)
        _trainer(toy_world, model, tmp_path / str(run), steps=2).train()
        hashes.append(weights_hash(model))
    assert hashes[0] == hashes[1]


def test_bf16_rollout_copy_follows_the_master_weights(toy_world, toy_sft_model, tmp_path):
    model = copy.deepcopy(toy_sft_model)
    run = RunConfig(checkpoint_every=0, progress=False, autocast="off", rollout_dtype="bfloat16")
    trainer = _trainer(toy_world, model, tmp_path, run=run, steps=2)
    assert trainer.rollout_model is not model and trainer.engine.model is trainer.rollout_model
    assert {p.dtype for p in trainer.rollout_model.parameters()} == {torch.bfloat16}
    assert trainer.engine.cache.dtype == torch.float32  # bf16 weights, fp32 keys/values: attention in fp32
    before = copy.deepcopy(model.state_dict())
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    for (name, master), (_, rollout) in zip(model.named_parameters(), trainer.rollout_model.named_parameters()):
        assert torch.equal(rollout, master.detach().to(torch.bfloat16)), name
    fp32 = _trainer(toy_world, copy.deepcopy(toy_sft_model), tmp_path / "fp32",
                    run=RunConfig(checkpoint_every=0, progress=False, rollout_dtype="float32"))
    assert fp32.rollout_model is fp32.model


def test_two_rollout_processes_give_the_same_weights(toy_world, toy_sft_model, tmp_path):
    """Requests split over two one-thread processes sample exactly the tokens one process samples."""
    hashes, lengths = [], []
    for processes in (1, 2):
        torch.set_num_threads(1)
        model = copy.deepcopy(toy_sft_model)
        records, _ = _trainer(toy_world, model, tmp_path / str(processes), processes=processes, steps=2).train()
        hashes.append(weights_hash(model))
        lengths.append([r["response_length"] for r in records])
    assert lengths[0] == lengths[1]
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("loss", ["dapo", "grpo", "dr_grpo"])
def test_zero_advantage_rows_are_left_out_without_changing_the_step(toy_world, toy_sft_model, tmp_path, loss):
    """Rows whose advantage is 0 (zero-variance groups) add nothing to the gradient: leaving them out of the forward
    gives the same update, as long as the loss still normalises by the whole batch."""
    from qwq.rl.rollout import Completion, Group

    tokenizer = toy_world["tokenizer"]
    prompt = tokenizer.encode("question")
    texts = ["yes", "no", "yes yes", "no no no", "maybe", "yes", "no", "yes"]

    def group(rewards):
        completions = [Completion(tokenizer.encode(t), t, "stop", [False] * len(tokenizer.encode(t)), reward=r)
                       for t, r in zip(texts, rewards)]
        return Group("yesno", None, prompt, completions)

    groups = [group([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]), group([1.0] * 8), group([0.0] * 8),
              group([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])]
    grads, losses = [], []
    for skip in (True, False):
        model = copy.deepcopy(toy_sft_model)
        trainer = _trainer(toy_world, model, tmp_path / str(skip), loss=loss, dynamic_sampling=False)
        trainer._skips_zero_advantage = lambda skip=skip: skip
        trainer.run = RunConfig(checkpoint_every=0, progress=False, autocast="off")  # fp32: rounding, not bf16
        batch = trainer._batch(groups)
        assert batch.sequences == 32 and batch.rollouts.rows == (16 if skip else 32)
        assert batch.rollouts.prompts.shape[0] == (2 if skip else 4)
        seen = {}
        trainer.optimizer.step = lambda seen=seen, model=model: seen.update(
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        losses.append(trainer._update(batch)["loss"])
        grads.append(seen)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    scale = max(float(g.abs().max()) for g in grads[1].values())
    assert scale > 0
    for name, value in grads[0].items():  # (Adam's first step would magnify rounding in near-zero entries)
        torch.testing.assert_close(value, grads[1][name], rtol=1e-5, atol=1e-6 * scale, msg=name)
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)  # on-policy: ~ -mean(advantage) = 0


def test_bnpo_and_kl_keep_every_row(toy_world, toy_sft_model, tmp_path):
    assert not _trainer(toy_world, copy.deepcopy(toy_sft_model), tmp_path / "b", loss="bnpo")._skips_zero_advantage()
    assert not _trainer(toy_world, copy.deepcopy(toy_sft_model), tmp_path / "k", kl_coef=0.1)._skips_zero_advantage()
    assert _trainer(toy_world, copy.deepcopy(toy_sft_model), tmp_path / "d", loss="dapo")._skips_zero_advantage()
