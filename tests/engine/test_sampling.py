"""The sampler: filter order and semantics, penalties, padding mask, per-row generators, logprobs."""

from __future__ import annotations

import math

import pytest
import torch

from qwq.engine.sampling import RowSampling, SamplingParams, make_generator, sample_batch


def row(params: SamplingParams, seed: int = 0, generated=()) -> RowSampling:
    return RowSampling(params, None if params.greedy else make_generator(seed)[0], list(generated))


def draw(logits: torch.Tensor, params: SamplingParams, count: int = 400, seed: int = 0) -> list[int]:
    generator = make_generator(seed)[0]
    rows = [RowSampling(params, generator)]
    return [sample_batch(logits[None], rows).token_ids[0] for _ in range(count)]


LOGITS = torch.log(torch.tensor([0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02]))


def test_greedy_is_argmax_and_ignores_the_generator():
    logits = torch.randn(3, 50)
    out = sample_batch(logits, [row(SamplingParams(temperature=0.0)) for _ in range(3)])
    assert out.token_ids == logits.argmax(-1).tolist()


def test_top_k_keeps_only_the_k_best():
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=2, top_p=1.0))) == {0, 1}


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    # 0.40 + 0.25 = 0.65 < 0.7, so the nucleus needs the third token too
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=0, top_p=0.7))) == {0, 1, 2}
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=0, top_p=0.65))) == {0, 1}
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=0, top_p=0.01))) == {0}


def test_top_p_is_computed_after_top_k_on_renormalised_probabilities():
    # after top_k=3: 0.40/0.80=0.5, 0.25/0.8=0.3125 -> top_p 0.8 needs 2 tokens (0.8125 >= 0.8)
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=3, top_p=0.8))) == {0, 1}


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    # threshold 0.3 * 0.40 = 0.12: tokens 0, 1, 2 survive
    assert set(draw(LOGITS, SamplingParams(temperature=5.0, top_k=0, top_p=1.0, min_p=0.3))) == {0, 1, 2}


def test_temperature_reshapes_only_the_survivors():
    cold = draw(LOGITS, SamplingParams(temperature=0.05, top_k=0, top_p=1.0), count=200)
    assert cold.count(0) > 190
    hot = draw(LOGITS, SamplingParams(temperature=3.0, top_k=0, top_p=1.0), count=2000)
    assert len(set(hot)) == 7
    # at temperature 1 the empirical frequencies follow the probabilities
    plain = draw(LOGITS, SamplingParams(temperature=1.0, top_k=0, top_p=1.0), count=4000, seed=3)
    assert plain.count(0) / 4000 == pytest.approx(0.40, abs=0.03)


def test_wide_vocab_without_top_k_falls_back_to_the_exact_sort():
    torch.manual_seed(0)
    flat = torch.zeros(5000)  # uniform: the 0.95 nucleus needs 4750 tokens, beyond the candidate shortcut
    tokens = draw(flat, SamplingParams(temperature=1.0, top_k=0, top_p=0.95), count=300)
    assert max(tokens) > 1024


def test_penalties_apply_to_generated_tokens_only():
    logits = torch.tensor([[2.0, 1.9, 0.0]])
    base = SamplingParams(temperature=0.0)
    assert sample_batch(logits, [row(base, generated=[0])]).token_ids == [0]
    presence = base.replace(presence_penalty=0.5)
    assert sample_batch(logits, [row(presence, generated=[0])]).token_ids == [1]
    frequency = base.replace(frequency_penalty=0.06)
    assert sample_batch(logits, [row(frequency, generated=[0, 0])]).token_ids == [1]  # 2.0 - 0.12 < 1.9
    assert sample_batch(logits, [row(frequency, generated=[0])]).token_ids == [0]  # 1.94 > 1.9


def test_padding_ids_beyond_the_vocab_limit_are_never_picked():
    logits = torch.tensor([[0.0, 1.0, 50.0, 60.0]])
    assert sample_batch(logits, [row(SamplingParams(temperature=0.0))], vocab_limit=2).token_ids == [1]
    hot = SamplingParams(temperature=100.0, top_k=0, top_p=1.0)
    picks = {sample_batch(logits, [row(hot, seed=s)], vocab_limit=2).token_ids[0] for s in range(50)}
    assert picks == {0, 1}


def test_each_row_draws_from_its_own_generator():
    torch.manual_seed(0)
    logits = torch.randn(6, 300)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
    batch = sample_batch(logits, [row(params, seed=i) for i in range(6)]).token_ids
    alone = [sample_batch(logits[i:i + 1], [row(params, seed=i)]).token_ids[0] for i in range(6)]
    assert batch == alone


def test_bias_masks_tokens():
    logits = torch.tensor([[5.0, 1.0, 0.0]])
    bias = torch.tensor([float("-inf"), 0.0, 0.0])
    params = SamplingParams(temperature=0.0)
    assert sample_batch(logits, [RowSampling(params, None, (), bias)]).token_ids == [1]
    with pytest.raises(ValueError, match="masked"):
        hot = SamplingParams(temperature=1.0)
        sample_batch(logits, [RowSampling(hot, make_generator(0)[0], (), torch.full((3,), float("-inf")))])


def test_logprobs_are_the_raw_distribution_even_with_filters_and_penalties():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    params = SamplingParams(temperature=0.3, top_k=2, presence_penalty=1.0, logprobs=True, top_logprobs=2)
    out = sample_batch(logits, [row(params, seed=1, generated=[0])])
    token = out.token_ids[0]
    assert out.logprobs[0] == pytest.approx(torch.log_softmax(logits[0], -1)[token].item(), abs=1e-6)
    assert [t for t, _ in out.top_logprobs[0]] == [0, 1]
    assert math.exp(out.top_logprobs[0][0][1]) == pytest.approx(torch.softmax(logits[0], -1)[0].item(), abs=1e-6)


def test_sample_seeds_differ_per_sample_and_between_requests():
    p = SamplingParams(seed=5)
    seeds = {p.sample_seed(i) for i in range(100)}
    assert len(seeds) == 100
    assert SamplingParams(seed=6).sample_seed(0) not in seeds
    assert SamplingParams().sample_seed(0) is None


def test_a_mixed_batch_gives_each_row_the_token_it_gets_alone():
    # rows with and without cuts, vocabulary wider than the top-k-less candidate shortcut: every path of the
    # batched sampler (no cut, candidates, exact sort) in one batch, each row still on its own generator
    torch.manual_seed(1)
    logits = torch.randn(6, 3000) * 2
    logits[5] = 0.0  # flat: its 0.9 nucleus lies beyond the best 1024 candidates
    params = [SamplingParams(temperature=1.0, top_k=0, top_p=1.0), SamplingParams(temperature=0.7, top_k=40),
              SamplingParams(temperature=1.3, top_k=0, top_p=0.8), SamplingParams(temperature=0.5, top_k=5, top_p=0.5),
              SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1),
              SamplingParams(temperature=1.0, top_k=0, top_p=0.9)]
    for seed in range(20):
        batch = sample_batch(logits, [row(p, seed=seed * 10 + i) for i, p in enumerate(params)]).token_ids
        alone = [sample_batch(logits[i:i + 1], [row(p, seed=seed * 10 + i)]).token_ids[0]
                 for i, p in enumerate(params)]
        assert batch == alone
        assert batch[1] in logits[1].topk(40).indices.tolist()
        assert batch[3] in logits[3].topk(5).indices.tolist()


def test_sampled_frequencies_follow_the_filtered_tempered_distribution():
    logits = torch.log(torch.tensor([0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02]))
    params = SamplingParams(temperature=0.7, top_k=4, top_p=1.0)
    expected = torch.softmax(logits[:4] / 0.7, dim=-1).tolist()
    # many rows at once, each with its own generator: one batched draw per row
    rows = [row(params, seed=s) for s in range(6000)]
    picks = sample_batch(logits.expand(6000, -1), rows).token_ids
    for token, p in enumerate(expected):
        assert picks.count(token) / 6000 == pytest.approx(p, abs=0.02)
    assert set(picks) <= {0, 1, 2, 3}
