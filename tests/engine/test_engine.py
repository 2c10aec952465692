"""Engine behaviour on a tiny random model: exactness against full forwards, batch invariance, stops, streaming."""

from __future__ import annotations

import pytest
import torch

from qwq.engine import Engine, SamplingParams
from qwq.utils.errors import UsageError

from engine_fixtures import make_model, reference_greedy, tiny_config

PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [9, 8, 7], [5] * 13, [42, 17, 99, 3, 250, 11, 64, 8, 1, 200, 33]]


def greedy(max_new_tokens: int = 10, **kw) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, ignore_eos=True, **kw)


@pytest.mark.parametrize("cache,block_size", [("paged", 4), ("paged", 16), ("static", 16)])
def test_greedy_equals_repeated_full_forwards_batched_and_alone(tiny_model, cache, block_size):
    engine = Engine(tiny_model, max_batch_size=8, cache=cache, block_size=block_size, kv_cache_tokens=1024)
    expected = [reference_greedy(tiny_model, p, 10) for p in PROMPTS]
    batched = engine.generate(PROMPTS, greedy())
    assert [r.samples[0].token_ids for r in batched] == expected
    for prompt, want in zip(PROMPTS, expected):
        alone = engine.generate([prompt], greedy())[0]
        assert alone.samples[0].token_ids == want
        assert alone.samples[0].finish_reason == "length"


def test_prefill_in_chunks_and_prefix_cache_hits_give_the_same_tokens(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=512, prefill_chunk=3)
    prompt = list(range(10, 40))
    want = reference_greedy(tiny_model, prompt, 8)
    first = engine.generate([prompt], greedy(8))[0]
    again = engine.generate([prompt + [7]], greedy(8))[0]  # shares the 28-token prefix (7 full blocks)
    assert first.samples[0].token_ids == want
    assert again.timings.cached_prompt_tokens == 28
    assert again.samples[0].token_ids == reference_greedy(tiny_model, prompt + [7], 8)


def test_sampled_tokens_do_not_depend_on_the_batch(tiny_model):
    engine = Engine(tiny_model, max_batch_size=16, block_size=8, kv_cache_tokens=2048)
    target = SamplingParams(temperature=0.9, top_p=0.9, top_k=50, max_new_tokens=12, seed=1234, ignore_eos=True)
    alone = engine.generate([PROMPTS[0]], target)[0].samples[0].token_ids
    others = [[(7 * i + j) % 300 for j in range(3 + i)] for i in range(8)]
    params = [SamplingParams(temperature=1.0 + 0.1 * i, max_new_tokens=5 + i, seed=i, ignore_eos=True)
              for i in range(8)]
    mixed = engine.generate(others[:4] + [PROMPTS[0]] + others[4:], params[:4] + [target] + params[4:])
    assert mixed[4].samples[0].token_ids == alone
    # same seed, same tokens; another seed, other tokens
    assert engine.generate([PROMPTS[0]], target)[0].samples[0].token_ids == alone
    other = engine.generate([PROMPTS[0]], target.replace(seed=99))[0].samples[0].token_ids
    assert other != alone


def test_n_samples_share_one_prefill_and_match_separate_requests(tiny_model):
    engine = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=512, prefix_caching=False)
    params = SamplingParams(temperature=1.0, max_new_tokens=6, n=4, seed=7, ignore_eos=True)
    result = engine.generate([PROMPTS[3]], params)[0]
    assert len(result.samples) == 4
    assert result.timings.prompt_tokens == len(PROMPTS[3])
    assert len({tuple(s.token_ids) for s in result.samples}) > 1
    # sample i of a request equals a fresh run that draws with that sample's seed
    again = engine.generate([PROMPTS[3]], params)[0]
    assert [s.token_ids for s in again.samples] == [s.token_ids for s in result.samples]
    assert engine.cache.free_blocks() == engine.cache.num_blocks  # everything released


def test_preemption_under_a_small_cache_keeps_outputs_exact(tiny_model):
    small = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=64)
    big = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=2048)
    prompts = [[i + 1, i + 2, i + 3, i + 4, i + 5] for i in range(4)]
    params = SamplingParams(temperature=0.7, max_new_tokens=14, seed=3, ignore_eos=True)
    got = small.generate(prompts, params)
    want = big.generate(prompts, params)
    assert [r.samples[0].token_ids for r in got] == [r.samples[0].token_ids for r in want]
    assert small.scheduler.preemptions > 0


def test_logprobs_are_raw_model_log_softmax(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    result = engine.generate([PROMPTS[1]], greedy(5, logprobs=True, top_logprobs=3))[0]
    sample = result.samples[0]
    ids = PROMPTS[1] + sample.token_ids
    with torch.no_grad():
        full = torch.log_softmax(tiny_model(torch.tensor([ids]))[0].float(), dim=-1)
    for i, token in enumerate(sample.token_ids):
        position = len(PROMPTS[1]) - 1 + i
        assert sample.logprobs[i] == pytest.approx(full[position, token].item(), abs=1e-4)
        assert sample.top_logprobs[i][0][0] == token  # greedy picks the most likely token
        assert len(sample.top_logprobs[i]) == 3


def test_eos_and_stop_token_ids_end_a_sample(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    free = reference_greedy(tiny_model, PROMPTS[0], 6)
    stop_at = free[3]
    result = engine.generate([PROMPTS[0]], greedy(6, stop_token_ids=[stop_at]))[0].samples[0]
    cut = free.index(stop_at)
    assert result.token_ids == free[: cut + 1]
    assert (result.finish_reason, result.stop_reason) == ("stop", stop_at)


def test_vocab_padding_rows_are_never_sampled(tokenizer):
    config = tiny_config(vocab_size=tokenizer.vocab_size + 40)
    model = make_model(config, seed=5)
    with torch.no_grad():  # make the padding rows the most likely tokens
        model.lm_head.weight[tokenizer.vocab_size:] = model.lm_head.weight[:40] * 50
    engine = Engine(model, tokenizer, config, max_batch_size=2, kv_cache_tokens=256)
    for params in (greedy(20), SamplingParams(temperature=2.0, top_k=0, top_p=1.0, max_new_tokens=20, seed=0,
                                              ignore_eos=True)):
        tokens = engine.generate([[1, 2, 3]], params)[0].samples[0].token_ids
        assert max(tokens) < tokenizer.vocab_size


def test_max_model_len_ends_with_length(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256, max_model_len=12)
    sample = engine.generate([PROMPTS[0]], greedy(50))[0].samples[0]
    assert len(PROMPTS[0]) + len(sample.token_ids) == 12
    assert (sample.finish_reason, sample.stop_reason) == ("length", "max_model_len")
    with pytest.raises(UsageError, match="context"):
        engine.generate([list(range(12))], greedy(2))


def test_stream_yields_every_token_and_closing_early_aborts(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, block_size=4, kv_cache_tokens=256)
    events = list(engine.stream(PROMPTS[1], greedy(7)))
    assert [e.token_id for e in events] == reference_greedy(tiny_model, PROMPTS[1], 7)
    assert events[-1].finished and events[-1].finish_reason == "length"
    stream = engine.stream(PROMPTS[1], greedy(100), request_id="cancel-me")
    for _ in range(3):
        next(stream)
    stream.close()  # the consumer went away mid-stream
    assert not engine.has_work()
    assert not engine.cache.seqs  # nothing left allocated to a sequence
    assert sum(engine.cache.ref_counts) == 0


def test_abort_mid_generation_frees_the_cache(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    rid = engine.submit(PROMPTS[0], greedy(100))
    keep = engine.submit(PROMPTS[1], greedy(5))
    for _ in range(3):
        engine.step()
    engine.abort(rid)
    finished = {}
    while engine.has_work():
        for event in engine.step():
            if event.finished:
                finished[(event.request_id, event.sample_index)] = event.finish_reason
    assert finished[(rid, 0)] == "abort"
    assert finished[(keep, 0)] == "length"
    assert not engine.cache.seqs


@pytest.mark.parametrize("bad", [
    dict(temperature=-0.1), dict(temperature=float("nan")), dict(temperature=1e9), dict(top_p=0.0), dict(top_p=1.5),
    dict(top_k=-1), dict(min_p=2.0), dict(max_new_tokens=0), dict(max_new_tokens=-5), dict(max_new_tokens=10**9),
    dict(n=0), dict(n=100000), dict(seed=-1), dict(presence_penalty=5.0), dict(stop=[""]), dict(stop=[3]),
    dict(stop_token_ids=[-1]), dict(top_logprobs=100), dict(temperature="hot"), dict(max_new_tokens=True),
])
def test_bad_sampling_parameters_are_usage_errors(bad):
    with pytest.raises(UsageError) as info:
        SamplingParams(**bad)
    assert next(iter(bad)) in str(info.value)


def test_bad_requests_are_usage_errors(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=128)
    with pytest.raises(UsageError, match="empty"):
        engine.generate([[]], greedy())
    with pytest.raises(UsageError, match="outside the vocabulary"):
        engine.generate([[1, 10**6]], greedy())
    with pytest.raises(UsageError, match="max_batch_size"):
        engine.generate([[1, 2]], greedy(n=3))
    with pytest.raises(UsageError, match="list of prompts"):
        engine.generate([1, 2, 3], greedy())
    with pytest.raises(UsageError, match="token ids"):
        engine.stream("hello", greedy()).__next__()
    with pytest.raises(UsageError, match="max_batch_size"):
        Engine(tiny_model, max_batch_size=0)
    with pytest.raises(UsageError, match="unknown engine option"):
        Engine(tiny_model, max_batchsize=4)
    assert not engine.has_work()


def test_new_weights_are_used_and_stale_prefix_blocks_dropped():
    model = make_model(seed=1)
    engine = Engine(model, max_batch_size=2, block_size=4, kv_cache_tokens=256)
    prompt = list(range(1, 20))
    before = engine.generate([prompt], greedy(6))[0].samples[0].token_ids
    other = make_model(seed=2)
    engine.load_weights(other.state_dict())
    after = engine.generate([prompt], greedy(6))[0]
    assert after.timings.cached_prompt_tokens == 0
    assert after.samples[0].token_ids == reference_greedy(other, prompt, 6)
    assert after.samples[0].token_ids != before


def test_load_weights_refuses_quantized_engines():
    from qwq.engine.quant import QuantSpec, quantize_model

    model = quantize_model(make_model(seed=1), QuantSpec(method="int8"))
    engine = Engine(model, max_batch_size=2, block_size=4, kv_cache_tokens=256)
    with pytest.raises(UsageError, match=r"load_weights: module '.*' is .*build a new engine from the new weights"):
        engine.load_weights(make_model(seed=2).state_dict())


def test_compiled_decode_step_gives_the_same_tokens(tiny_model):
    # "eager" runs the TorchDynamo capture (graph breaks, guards, dynamic shapes) without inductor's C++ codegen,
    # which takes minutes on two cores; `compile=True` uses inductor.
    engine = Engine(tiny_model, max_batch_size=2, block_size=4, kv_cache_tokens=256, compile="eager")
    results = engine.generate(PROMPTS[:2], greedy(6))
    assert [r.samples[0].token_ids for r in results] == [reference_greedy(tiny_model, p, 6) for p in PROMPTS[:2]]


def test_penalties_in_the_engine_match_a_reference_loop(tiny_model):
    """Greedy with presence/frequency penalties == argmax of penalised full-forward logits, step by step."""
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    prompt = [3, 3, 4]
    params = greedy(12, presence_penalty=0.7, frequency_penalty=0.4)
    got = engine.generate([prompt], params)[0].samples[0].token_ids
    ids, generated = list(prompt), []
    with torch.no_grad():
        for _ in range(12):
            logits = tiny_model(torch.tensor([ids]))[0, -1].clone()
            for token in set(generated):
                logits[token] -= 0.7 + 0.4 * generated.count(token)
            token = int(logits.argmax())
            ids.append(token)
            generated.append(token)
    assert got == generated
    assert got != reference_greedy(tiny_model, prompt, 12)  # the penalties changed something


def test_bf16_kv_cache_for_an_fp32_model_stays_close(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256, kv_dtype="bfloat16")
    assert engine.cache.keys[0].dtype == torch.bfloat16 and engine.dtype == torch.float32
    result = engine.generate([PROMPTS[0]], greedy(10, logprobs=True))[0].samples[0]
    exact = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256).generate(
        [PROMPTS[0]], greedy(10, logprobs=True))[0].samples[0]
    assert result.token_ids[:3] == exact.token_ids[:3]
    assert abs(result.logprobs[0] - exact.logprobs[0]) < 0.05
