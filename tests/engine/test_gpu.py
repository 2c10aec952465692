"""The engine on a CUDA device (skipped without one): bf16 model, SDPA attention, paged cache, per-row generators."""

from __future__ import annotations

import pytest
import torch

from qwq.engine import Engine, SamplingParams
from qwq.engine.quant import QuantSpec, quantize_model

from engine_fixtures import make_model, reference_greedy

pytestmark = pytest.mark.gpu


def test_greedy_on_cuda_matches_full_forwards_and_sampling_is_batch_invariant():
    model = make_model(seed=3).to("cuda")  # fp32: exact comparison with full forwards
    engine = Engine(model, max_batch_size=8, block_size=16, kv_cache_tokens=2048)
    assert engine.device.type == "cuda" and engine.cache.keys[0].device.type == "cuda"
    prompts = [[1, 2, 3, 4], [7, 8], [9] * 11]
    results = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True))
    for prompt, result in zip(prompts, results):
        with torch.no_grad():
            want = reference_greedy(model, prompt, 8)
        assert result.samples[0].token_ids == want
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=11, ignore_eos=True)
    alone = engine.generate([prompts[0]], params)[0].samples[0].token_ids
    mixed = engine.generate(prompts, [params] * 3)[0].samples[0].token_ids
    assert alone == mixed


def test_bf16_generation_on_cuda_runs():
    model = make_model(seed=5).to("cuda", torch.bfloat16)
    engine = Engine(model, max_batch_size=4, kv_cache_tokens=1024)
    assert engine.dtype == torch.bfloat16
    result = engine.generate([[1, 2, 3]], SamplingParams(max_new_tokens=6, n=2, seed=0, ignore_eos=True))[0]
    assert [len(s.token_ids) for s in result.samples] == [6, 6]


def test_quantized_modules_run_on_cuda_through_dequantization():
    model = quantize_model(make_model(seed=4), QuantSpec("int4", 32)).to("cuda")
    x = torch.randint(0, 300, (1, 9), device="cuda")
    with torch.no_grad():
        logits = model(x)
    assert logits.device.type == "cuda" and torch.isfinite(logits).all()
