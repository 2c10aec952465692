"""The grouped policy forward (prompts once, completions packed by length) equals the plain padded forward:
log-probs, masks, entropies and parameter gradients, for GQA models, ragged prompts and any chunking."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from qwq.config import preset
from qwq.rl.modeling import continuation_logprobs, new_model, pad_batch
from qwq.rl.shared_prefix import PromptState, grouped_batch, grouped_logprobs

PAD = 0


@pytest.fixture(scope="module")
def model():
    config = preset("tiny").replace(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2)
    return new_model(config, seed=0)


def _ragged(seed: int, groups: int = 5, per_group: int = 4):
    rng = random.Random(seed)
    prompts = [[rng.randrange(1, 128) for _ in range(rng.randint(1, 20))] for _ in range(groups)]
    group, completions, masks, advantages = [], [], [], []
    for g in range(groups):
        for _ in range(per_group):
            c = [rng.randrange(1, 128) for _ in range(rng.randint(1, 18))]
            group.append(g)
            completions.append(c)
            masks.append([int(rng.random() > 0.25) for _ in c])
            advantages.append(rng.uniform(-1, 1))
    return prompts, group, completions, masks, advantages


def _plain(prompts, group, completions, masks):
    sequences = [prompts[g] + c for g, c in zip(group, completions)]
    full_masks = [[0] * len(prompts[g]) + m for g, m in zip(group, masks)]
    return pad_batch(sequences, full_masks, PAD)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_logprobs_entropy_and_mask_match_the_plain_forward(model, chunk):
    prompts, group, completions, masks, advantages = _ragged(1)
    batch = grouped_batch(prompts, group, completions, masks, advantages, PAD)
    ids, mask = _plain(prompts, group, completions, masks)
    with torch.no_grad():
        want, want_mask, want_entropy = continuation_logprobs(model, ids, mask, with_entropy=True)
        state = PromptState(model, batch)
        seen = []
        for rows in batch.micro_batches(chunk):
            got, got_mask, got_entropy = grouped_logprobs(model, batch, rows, state, with_entropy=True)
            for i, row in enumerate(rows.tolist()):
                start, n = len(prompts[group[row]]) - 1, min(len(completions[row]), got.shape[1])
                assert not want_mask[row, start + n:].any()  # only tokens past the last loss token are cut
                assert torch.equal(got_mask[i, :n] > 0, want_mask[row, start:start + n] > 0)
                assert not got_mask[i, n:].any()
                torch.testing.assert_close(got[i, :n], want[row, start:start + n], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(got_entropy[i, :n], want_entropy[row, start:start + n], atol=1e-5,
                                           rtol=1e-5)
                seen.append(row)
    assert sorted(seen) == list(range(len(completions)))


def test_gradients_match_the_plain_forward(model):
    prompts, group, completions, masks, advantages = _ragged(2)
    batch = grouped_batch(prompts, group, completions, masks, advantages, PAD)
    ids, mask = _plain(prompts, group, completions, masks)
    plain, grouped = copy.deepcopy(model), copy.deepcopy(model)
    logp, shifted, _ = continuation_logprobs(plain, ids, mask)
    (logp * shifted * torch.tensor(advantages)[:, None]).sum().backward()
    state = PromptState(grouped, batch)
    for rows in batch.micro_batches(3):
        logp, m, _ = grouped_logprobs(grouped, batch, rows, state)
        (logp * m * batch.advantages[rows][:, None]).sum().backward()
    state.backward()
    for (name, a), b in zip(plain.named_parameters(), grouped.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_prompt_gradients_need_the_state_backward(model):
    """The micro-batches' backward stops at the prompt state; only PromptState.backward() completes the gradient
    (the contract the trainer relies on): before it the prompt-only token's embedding gradient is incomplete."""
    prompts, group, completions, masks, advantages = [[5, 6, 7]], [0, 0], [[9, 10], [11]], [[1, 1], [1]], [1.0, -1]
    batch = grouped_batch(prompts, group, completions, masks, advantages, PAD)
    ids, mask = _plain(prompts, group, completions, masks)
    plain, grouped = copy.deepcopy(model), copy.deepcopy(model)
    logp, shifted, _ = continuation_logprobs(plain, ids, mask)
    (logp * shifted).sum().backward()
    state = PromptState(grouped, batch)
    for rows in batch.micro_batches(8):
        logp, m, _ = grouped_logprobs(grouped, batch, rows, state)
        (logp * m).sum().backward()
    want, got = plain.model.embed_tokens.weight.grad[5], grouped.model.embed_tokens.weight.grad[5]
    assert not torch.allclose(got, want, atol=1e-6)
    state.backward()
    torch.testing.assert_close(grouped.model.embed_tokens.weight.grad[5], want, atol=1e-6, rtol=1e-4)


def test_micro_batches_sort_by_length_and_isolate_outliers():
    completions = [[1] * n for n in (3, 40, 4, 5, 3, 4)]
    batch = grouped_batch([[1, 2]], [0] * 6, completions, [[1] * len(c) for c in completions], [0.0] * 6, PAD)
    chunks = [c.tolist() for c in batch.micro_batches(4)]
    assert chunks[0] == [1]  # the 40-token completion would triple the padding of any chunk it joined
    assert sorted(r for c in chunks for r in c) == list(range(6))
    assert all(len(c) <= 4 for c in chunks)
    lengths = [len(completions[r]) for c in chunks for r in c]
    assert lengths == sorted(lengths, reverse=True)


def test_completion_lengths_stop_at_the_last_loss_token():
    batch = grouped_batch([[1]], [0, 0], [[4, 5, 6, 7], [4, 5]], [[1, 1, 0, 0], [0, 1]], [0.0, 0.0], PAD)
    assert batch.completion_lengths.tolist() == [2, 2]


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match="one entry per row"):
        grouped_batch([[1]], [0], [[2], [3]], [[1], [1]], [0.0, 0.0], PAD)
    with pytest.raises(ValueError, match="mask of its length"):
        grouped_batch([[1]], [0], [[2, 3]], [[1]], [0.0], PAD)
    with pytest.raises(ValueError, match="at least one token"):
        grouped_batch([[]], [0], [[2]], [[1]], [0.0], PAD)
