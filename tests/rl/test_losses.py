"""Losses against hand-computed values."""

import math

import pytest
import torch

from qwq.rl.losses import (Normalizer, aggregate, bradley_terry_loss, group_advantages, k3_kl, masked_cross_entropy,
                           policy_loss, token_entropy, token_logprobs)


def test_group_advantages_centre_and_scale():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert group_advantages(rewards, 2, scale=False).tolist() == [0.5, -0.5, 0.0, 0.0, 0.0, 0.0]
    scaled = group_advantages(rewards, 2, scale=True, eps=0.0)
    assert scaled[:2].tolist() == pytest.approx([0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5)])
    assert scaled[2:].tolist() == [0.0, 0.0, 0.0, 0.0]  # equal rewards: no signal, no NaN
    with pytest.raises(ValueError):
        group_advantages(torch.ones(5), 2)


MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])
ADV = torch.tensor([1.0, -3.0])


@pytest.mark.parametrize("loss_type, expected", [
    ("grpo", (-1.0 + 3.0) / 2),       # per-sequence means -1 and 3, averaged
    ("dapo", (-2.0 + 3.0) / 3),       # token sum over all 3 tokens
    ("dr_grpo", (-2.0 + 3.0) / 6),    # 2 sequences x max length 3
    ("bnpo", (-2.0 + 3.0) / 3),
])
def test_on_policy_loss_normalisations(loss_type, expected):
    logp = torch.zeros(2, 3, requires_grad=True)
    norm = Normalizer(loss_type, total_sequences=2, total_tokens=3, max_completion_length=3)
    loss, stats = policy_loss(logp, logp.detach(), ADV, MASK, norm)
    assert loss.item() == pytest.approx(expected)
    assert stats.ratio_mean == pytest.approx(1.0) and stats.clip_low_fraction == 0 == stats.clip_high_fraction
    loss.backward()  # on policy the gradient is -A / normaliser on each completion token, 0 elsewhere
    assert logp.grad[1, 1:].tolist() == [0.0, 0.0] and logp.grad[0, 2].item() == 0.0
    assert logp.grad[1, 0].item() == pytest.approx(3.0 / {"grpo": 2, "dapo": 3, "dr_grpo": 6, "bnpo": 3}[loss_type])


def test_micro_batches_sum_to_the_full_batch_loss():
    torch.manual_seed(0)
    logp, old = torch.randn(4, 5) * 0.1, torch.randn(4, 5) * 0.1
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    adv = torch.tensor([0.5, -1.0, 2.0, -0.3])
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        norm = Normalizer(loss_type, 4, int(mask.sum()), 5)
        full, _ = policy_loss(logp, old, adv, mask, norm)
        parts = sum(policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], norm)[0] for i in (0, 2))
        assert parts.item() == pytest.approx(full.item(), abs=1e-6)


def test_clip_higher_is_asymmetric():
    norm = Normalizer("dapo", 2, 2, 1)
    mask = torch.ones(2, 1)
    old = torch.zeros(2, 1)
    logp = torch.log(torch.tensor([[1.5], [0.5]]))  # ratios 1.5 (A=+1) and 0.5 (A=-1)
    loss, stats = policy_loss(logp, old, torch.tensor([1.0, -1.0]), mask, norm, clip_low=0.2, clip_high=0.28)
    # token 0: -min(1.5, 1.28) = -1.28 ; token 1: -min(-0.5, -0.8) = 0.8 ; dapo mean over 2 tokens
    assert loss.item() == pytest.approx((-1.28 + 0.8) / 2)
    assert stats.clip_high_fraction == pytest.approx(0.5) and stats.clip_low_fraction == pytest.approx(0.5)
    # a ratio inside the band is not clipped: 1.25 < 1.28 with clip_high but > 1.2 with symmetric clipping
    logp = torch.log(torch.tensor([[1.25], [1.0]]))
    assert policy_loss(logp, old, torch.tensor([1.0, 0.0]), mask, norm, 0.2, 0.28)[0].item() == pytest.approx(-0.625)
    assert policy_loss(logp, old, torch.tensor([1.0, 0.0]), mask, norm, 0.2, 0.2)[0].item() == pytest.approx(-0.6)


def test_k3_kl_values_and_loss_term():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    assert k3_kl(logp, ref).item() == pytest.approx(0.5 + math.log(2) - 1)
    assert k3_kl(ref, ref).item() == 0.0
    norm = Normalizer("dapo", 1, 1, 1)
    loss, stats = policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 1), norm, ref_logp=ref, kl_coef=0.1)
    assert loss.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1))
    assert stats.kl == pytest.approx(0.5 + math.log(2) - 1)


def test_token_logprobs_entropy_and_bt():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.25))
    assert token_entropy(logits).item() == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    assert bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(
        math.log(1 + math.exp(-2.0)))
    assert bradley_terry_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])).item() == pytest.approx(math.log(2))


def test_masked_cross_entropy_counts_only_masked_tokens():
    logits = torch.zeros(1, 3, 4)  # uniform: every token costs log 4
    total, count = masked_cross_entropy(logits, torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
    assert count.item() == 2 and total.item() == pytest.approx(2 * math.log(4))


def test_aggregate_rejects_unknown_type():
    with pytest.raises(ValueError):
        Normalizer("ppo", 1, 1, 1)
    assert aggregate(torch.ones(1, 2), torch.ones(1, 2), Normalizer("bnpo", 1, 2, 2, micro_batches=2)).item() == 0.5
