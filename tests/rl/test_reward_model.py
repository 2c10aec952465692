"""Reward model: Bradley-Terry training separates chosen from rejected on held-out pairs, scores are batched and
survive a save/load, and the registry serves it once activated."""

import pytest
import torch

from qwq.rl.config import RMConfig
from qwq.rl.reward_model import (Pair, RewardModel, RewardModelScorer, activate, load_reward_model, save_reward_model,
                                 train_reward_model)
from qwq.verify.registry import RewardError, resolve_reward


def _pairs(world, split, n):
    task = world["task"]
    out = []
    for example in task.examples(split, n, seed=1):
        out.append(Pair(task.messages(example), "Let me check.\n</think>\n\nyes", "Let me check.\n</think>\n\nno",
                        "yesno"))
    return out


def test_bt_training_learns_the_preference(toy_world, tmp_path):
    torch.set_num_threads(1)
    rm = RewardModel(toy_world["config"], toy_world["fresh_model"](0).model)
    train, heldout = _pairs(toy_world, "train", 64), _pairs(toy_world, "heldout", 16)
    cfg = RMConfig(epochs=4, batch_size=16, lr=3e-3)
    result = train_reward_model(rm, toy_world["tokenizer"], toy_world["template"], train, heldout, cfg, 0, tmp_path)
    assert result["heldout_pair_accuracy_before"] == 0.5  # a zero head ties every pair
    assert result["heldout_pair_accuracy"] == 1.0
    scorer = RewardModelScorer(rm, toy_world["tokenizer"], toy_world["template"], batch_size=5)
    messages = [p.messages for p in heldout]
    chosen = scorer.scores(messages, [p.chosen for p in heldout])
    assert chosen == pytest.approx(RewardModelScorer(rm, toy_world["tokenizer"], toy_world["template"],
                                                     batch_size=64).scores(messages, [p.chosen for p in heldout]),
                                   abs=1e-5)  # batching does not change scores

    save_reward_model(rm, toy_world["tokenizer"], tmp_path / "rm")
    loaded, tokenizer = load_reward_model(tmp_path / "rm")
    again = RewardModelScorer(loaded, tokenizer, toy_world["template"]).scores(messages, [p.chosen for p in heldout])
    assert again == pytest.approx(chosen, abs=1e-5)

    reward = resolve_reward("reward_model")
    activate(None)
    with pytest.raises(RewardError, match="no reward model is loaded"):
        reward(["x"], prompt=["q"])
    activate(scorer)
    try:
        values = reward(["Let me check.\n</think>\n\nyes", "Let me check.\n</think>\n\nno"],
                        prompt=[heldout[0].messages[0]["content"]] * 2)
    finally:
        activate(None)
    assert 0 <= values[1] < values[0] <= 1


def test_default_recipe_draws_its_instruct_pairs_from_a_small_problem_space():
    # the tiny recipe asks 1,200 instruct pairs (x3 candidates) from a space of ~700 train problems: problems repeat
    # with fresh teacher wording instead of the run failing after the cold start
    from qwq.rl.config import PipelineConfig
    from qwq.rl.reward_model import task_pairs

    count = PipelineConfig().rm.tasks["instruct"]
    pairs = task_pairs({"instruct": count}, {}, "train", 0)
    assert len(pairs) == count
    assert len({(p.chosen, p.rejected) for p in pairs}) > count // 2
