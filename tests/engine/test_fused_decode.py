"""The fused decode kernel (qwq.engine.fused_decode): the engine uses it for quantized and dense bf16/fp32 models on
CPU, its logits match the module path's over a paged cache with rows of different lengths, it follows weight changes,
and every other model keeps the module path."""

from __future__ import annotations

import pytest
import torch

from qwq.engine import kernels
from qwq.engine.quant import QuantSpec, quantize_model

from engine_fixtures import make_model, tiny_config

needs_kernels = pytest.mark.skipif(kernels.unsupported_reason() is not None or kernels.kernel_ops() is None,
                                   reason="qwq's CPU kernels are not available here")


def _dense(**overrides):
    config = tiny_config(**{"vocab_size": 320, "hidden_size": 128, "intermediate_size": 256, **overrides})
    model = make_model(config, seed=3)
    generator = torch.Generator().manual_seed(4)
    for layer in model.model.layers:  # non-zero biases, so a missing or misplaced bias shows
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            proj.bias.data.normal_(0, 0.5, generator=generator)
    return model


def _quantized(method: str, **overrides):
    return quantize_model(_dense(**overrides), QuantSpec(method, 32))


def _model(method: str, **overrides):
    if method == "fp32":
        return _dense(**overrides)
    if method == "bf16":
        return _dense(**overrides).to(torch.bfloat16)
    return _quantized(method, **overrides)


@needs_kernels
@pytest.mark.parametrize("method,cache,shape", [
    ("int8", "paged", {}), ("int4", "paged", {}), ("int4", "static", {}),  # head_dim 32
    ("int4", "paged", {"hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 1}),  # 64, 4 per KV
    ("int8", "paged", {"hidden_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1}),  # 128 (QwQ-32B's)
    ("fp32", "paged", {}), ("fp32", "paged", {"hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 1}),
    ("bf16", "paged", {}), ("bf16-linear", "paged", {}),  # qwq's bf16 GEMM; at::linear (CPUs without AVX512-BF16)
])
def test_fused_decode_logits_match_the_module_path(method, cache, shape):
    from qwq.engine import Engine

    engine = Engine(_model(method.split("-")[0], **shape), max_batch_size=4, block_size=4, kv_cache_tokens=512,
                    cache=cache, kv_dtype=torch.float32)
    runner, cache = engine.runner, engine.cache
    assert runner.fused_decoder is not None
    if method == "bf16-linear":
        runner.fused_decoder._pack_bf16 = runner.fused_decoder._packed_head = False
        runner.fused_decoder.weights_changed()
    # 1, 4 and 5 tiles of 16 keys (one and two tiles of 64 values) by the end
    prompts = [[(7 * i + 3) % 300 for i in range(70)], [1, 2], [40, 41, 42, 43, 44]]
    for seq_id, prompt in enumerate(prompts):
        cache.add_sequence(seq_id)
        runner.prefill(seq_id, prompt)
    tokens, seq_ids = [p[-1] for p in prompts], list(range(len(prompts)))
    with torch.inference_mode():
        for step in range(7):  # the rows grow one block at a time, interleaved: their keys are scattered slots
            active = seq_ids if step % 3 else seq_ids[:2]  # and sometimes a row sits a step out
            positions = cache.begin(active, 1, [[tokens[i]] for i in active])
            ids = torch.tensor([tokens[i] for i in active])[:, None]
            fused = runner.fused_decoder(ids, positions).float()
            reference = runner._forward(ids, positions, last_only=False).float()  # rewrites the same slots
            cache.advance(1)
            assert fused.shape == reference.shape == (len(active), 320)
            # Not bit for bit: other float orders, and an input that differs by an ulp can round a quantized
            # activation the other way (~1/64,000 of its group's absmax). These random models amplify that: nudging
            # the module path's own embeddings by 1e-7 moves its logits by 1e-4 of the largest; measured here
            # <= 4e-4 (fp32: ~1e-6). The bf16 model's modules round their residual stream to bf16 (the kernel
            # keeps it fp32): measured <= 2.5e-2. A wrong bias, rotation, slot or head gives O(1).
            scale, tolerance = reference.abs().max(), 5e-2 if method.startswith("bf16") else 1e-3
            assert (fused - reference).abs().max() <= tolerance * scale, (step, (fused - reference).abs().max(), scale)
            for row, i in enumerate(active):
                tokens[i] = int(reference[row].argmax())


@needs_kernels
def test_a_rows_fused_logits_are_bitwise_the_same_in_any_batch():
    from qwq.engine import Engine

    results = []
    for others in (0, 3):
        engine = Engine(_quantized("int4"), max_batch_size=4, block_size=4, kv_cache_tokens=256)
        runner, cache = engine.runner, engine.cache
        prompts = [[9, 8, 7, 6, 5]] + [[(11 * i + j) % 300 for j in range(3 + i)] for i in range(others)]
        for seq_id, prompt in enumerate(prompts):
            cache.add_sequence(seq_id)
            runner.prefill(seq_id, prompt)
        logits = runner.decode(list(range(len(prompts))), [p[-1] for p in prompts])
        results.append(logits[0])
    assert torch.equal(results[0], results[1])


@needs_kernels
def test_models_the_kernel_does_not_cover_keep_the_module_path(monkeypatch):
    from qwq.engine import Engine, SamplingParams

    assert Engine(make_model(tiny_config()), max_batch_size=2).runner.fused_decoder.kind == "dense"
    assert Engine(make_model(tiny_config()).half(), max_batch_size=2).runner.fused_decoder is None  # fp16 weights
    assert Engine(make_model(tiny_config()).to(torch.bfloat16), max_batch_size=2).runner.fused_decoder is None  # bf16
    hooked = make_model(tiny_config())  # (its KV cache follows the weights: the kernel wants fp32 pools)
    hooked.model.layers[1].mlp.register_forward_hook(lambda module, inputs, output: output * 2)
    assert Engine(hooked, max_batch_size=2).runner.fused_decoder is None
    unbiased = make_model(tiny_config())
    unbiased.model.layers[0].self_attn.k_proj.bias = None
    assert Engine(unbiased, max_batch_size=2).runner.fused_decoder is None
    other_eps = make_model(tiny_config())  # the kernel normalises every layer with the final norm's eps
    other_eps.model.layers[1].post_attention_layernorm.eps = 1e-3
    assert Engine(other_eps, max_batch_size=2).runner.fused_decoder is None
    assert Engine(_quantized("int4"), max_batch_size=2, kv_dtype="bfloat16").runner.fused_decoder is None
    assert Engine(_quantized("int4"), max_batch_size=2, fuse_projections=False).runner.fused_decoder is None
    assert Engine(_quantized("int8", hidden_size=96), max_batch_size=2).runner.fused_decoder is None  # head_dim 24
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    engine = Engine(_quantized("int4"), max_batch_size=2)
    assert engine.runner.fused_decoder is None
    out = engine.generate([[1, 2, 3]], SamplingParams(temperature=0.0, max_new_tokens=3, ignore_eos=True))
    assert len(out[0].samples[0].token_ids) == 3


@needs_kernels
def test_replaced_weight_tensors_are_read_again():
    from qwq.engine import Engine, SamplingParams

    model = _quantized("int4")
    engine = Engine(model, max_batch_size=2)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True)
    before = engine.generate([[3, 1, 4, 1, 5]], greedy)[0].samples[0].token_ids
    down = model.model.layers[1].mlp.down_proj
    down.to_stored_layout()  # new tensors in the stored format (a load does this): the kernel must not keep the old
    down.qweight = down.qweight.clone()
    assert engine.generate([[3, 1, 4, 1, 5]], greedy)[0].samples[0].token_ids == before
    assert down._packed
    with torch.inference_mode():  # (packed during a decode step: inference tensors)
        down.scale_zeros.zero_()  # changed in place after the re-pack: seen as well
        down.qweight.zero_()
    assert engine.generate([[3, 1, 4, 1, 5]], greedy)[0].samples[0].token_ids != before


@needs_kernels
def test_dense_weight_changes_are_seen_in_place_and_after_weights_changed():
    from qwq.engine import Engine, SamplingParams

    model = _dense()
    engine = Engine(model, max_batch_size=2)
    assert engine.runner.fused_decoder.kind == "dense"
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)
    prompt = [3, 1, 4, 1, 5]

    def tokens(on: Engine) -> list[int]:
        return on.generate([prompt], greedy)[0].samples[0].token_ids

    before = tokens(engine)
    layer = model.model.layers[0]
    with torch.no_grad():  # in place (version counters move): the concatenated q/k/v and gate/up are rebuilt
        layer.self_attn.k_proj.weight.mul_(-3.0)
        layer.mlp.up_proj.weight.mul_(2.0)
    engine.cache.reset()  # (the prompt's cached blocks came from the old weights)
    after = tokens(engine)
    assert after != before and after == tokens(Engine(model, max_batch_size=2))
    # Written where no version counter shows it (as a change from another process through shared memory would be):
    # weights_changed() is the announcement.
    layer.self_attn.q_proj.bias.data.add_(3.0)
    layer.mlp.gate_proj.weight.data.mul_(-1.0)
    engine.weights_changed()
    assert tokens(engine) == tokens(Engine(model, max_batch_size=2)) != after
