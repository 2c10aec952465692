"""W8A8 (int8 weights, per-token int8 activations, SmoothQuant): accuracy, batch invariance, fusion, checkpoints."""

from __future__ import annotations

import pytest
import torch

from qwq.engine import Engine, SamplingParams
from qwq.engine.quant import QuantSpec, quantize_model
from qwq.engine.quant_io import load_quantized_checkpoint, save_quantized_checkpoint
from qwq.engine.quant_w8a8 import W8A8Linear, w8a8_quantize_model

from engine_fixtures import make_model, reference_greedy, tiny_config


def test_w8a8_linear_is_close_and_each_row_is_independent_of_the_batch():
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(256, 192)
    module = W8A8Linear.from_linear(linear)
    x = torch.randn(9, 256, generator=generator)
    y = module(x)
    want = linear(x)
    assert ((y - want).norm() / want.norm()) < 0.02
    alone = torch.cat([module(x[i:i + 1]) for i in range(9)])
    assert torch.equal(y, alone)  # per-row scales and exact int32 sums: bit-identical


def test_smoothing_helps_when_inputs_have_outlier_channels():
    generator = torch.Generator().manual_seed(1)
    linear = torch.nn.Linear(128, 64, bias=False)
    gains = torch.ones(128)
    gains[[3, 77]] = 60.0  # two channels much larger than the rest, as in LLM activations
    x = torch.randn(256, 128, generator=generator) * gains
    absmax = x.abs().amax(0)
    plain = W8A8Linear.from_linear(linear)
    smooth = W8A8Linear.from_smoothing(linear, absmax ** 0.5 / linear.weight.abs().amax(0) ** 0.5)
    want = linear(x)
    error = lambda m: ((m(x) - want).norm() / want.norm()).item()  # noqa: E731
    assert error(smooth) < 0.5 * error(plain)


def test_w8a8_model_engine_is_exact_and_batch_invariant(tokenizer):
    from qwq.engine.calibration import calibration_token_lists
    from qwq.engine.fusion import ProjectionSlice

    config = tiny_config(vocab_size=tokenizer.vocab_size)
    model = make_model(config, seed=12)
    w8a8_quantize_model(model, calibration_token_lists(tokenizer, 256, 64))
    engine = Engine(model, max_batch_size=8, block_size=4, kv_cache_tokens=1024)
    assert engine.fused_groups == 2 * config.num_hidden_layers  # q/k/v and gate/up share their smoothing
    assert isinstance(model.model.layers[0].mlp.up_proj, ProjectionSlice)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9] * 10]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)
    results = engine.generate(prompts, greedy)
    assert [r.samples[0].token_ids for r in results] == [reference_greedy(model, p, 8) for p in prompts]
    sampled = SamplingParams(temperature=1.0, max_new_tokens=8, seed=4, ignore_eos=True)
    alone = engine.generate([prompts[1]], sampled)[0].samples[0].token_ids
    batch = engine.generate(prompts, [sampled.replace(seed=9), sampled, sampled.replace(seed=1)])
    assert batch[1].samples[0].token_ids == alone


def test_w8a8_checkpoint_round_trip(tmp_path, tokenizer):
    from qwq.engine.calibration import calibration_token_lists

    config = tiny_config(vocab_size=tokenizer.vocab_size)
    model = w8a8_quantize_model(make_model(config, seed=13), calibration_token_lists(tokenizer, 256, 64))
    prompt = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        before = model(prompt)
    save_quantized_checkpoint(model, config, QuantSpec("w8a8", embedding="none"), tmp_path / "q")
    _, spec, loaded = load_quantized_checkpoint(tmp_path / "q")
    assert spec.method == "w8a8"
    with torch.no_grad():
        assert torch.equal(loaded(prompt), before)


def test_quantize_model_w8a8_without_calibration_runs():
    model = quantize_model(make_model(tiny_config(), seed=2), QuantSpec("w8a8"))
    assert isinstance(model.lm_head, W8A8Linear)
    assert torch.equal(model.lm_head.smooth, torch.ones(model.lm_head.in_features))
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


@pytest.mark.parametrize("rows", [1, 17])
def test_w8a8_handles_zero_rows_and_any_row_count(rows):
    module = W8A8Linear.from_linear(torch.nn.Linear(64, 32))
    x = torch.zeros(rows, 64)
    assert torch.allclose(module(x), module.bias.expand(rows, -1))
