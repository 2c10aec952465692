"""Weight-only int8/int4: formats, kernels, whole-model swaps, checkpoints on disk and streaming conversion."""

from __future__ import annotations

import json

import pytest
import torch

from qwq.engine import Engine, SamplingParams
from qwq.engine.quant import (Int4Linear, Int8Linear, QuantSpec, int4_codes_affine, int4_codes_search, pack_int4,
                              quantize_int4, quantize_model, unpack_int4)
from qwq.engine.quant_io import load_quantized_checkpoint, quantize_checkpoint, save_quantized_checkpoint
from qwq.utils.errors import CheckpointError, UsageError

from engine_fixtures import make_model, tiny_config


@pytest.mark.parametrize("rows,cols", [(64, 64), (128, 96), (896, 128), (48, 64)])
def test_int4_layout_round_trips_and_matches_the_cpu_kernel_packing(rows, cols):
    codes = torch.randint(0, 16, (rows, cols), dtype=torch.uint8, generator=torch.Generator().manual_seed(rows))
    packed = pack_int4(codes)
    assert packed.shape == (rows, cols // 2)
    assert torch.equal(unpack_int4(packed), codes)
    if rows % 64 == 0:  # the blocked layout is exactly what PyTorch's own converter produces
        assert torch.equal(packed, torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.int(), 1))


@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_quantized_linear_equals_its_dequantized_weight(cls, compute_dtype):
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 192, bias=True)
    module = cls.from_linear(linear, compute_dtype=compute_dtype) if cls is Int8Linear else \
        cls.from_linear(linear, 64, compute_dtype)
    x = torch.randn(5, 256)
    want = x @ module.dequantize().t() + linear.bias
    got = module(x)
    tol = 1e-4 if compute_dtype == torch.float32 else 0.05
    assert got.dtype == x.dtype
    assert torch.allclose(got, want, atol=tol, rtol=tol)
    # the quantization itself is close to the float layer (int8 much closer than int4)
    error = (module.dequantize() - linear.weight).abs().max() / linear.weight.abs().max()
    assert error < (0.01 if cls is Int8Linear else 0.1)


@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_many_rows_take_the_dense_path_with_the_same_result(cls):
    from qwq.engine.quant import DENSE_FROM_ROWS

    torch.manual_seed(2)
    linear = torch.nn.Linear(128, 64)
    module = cls.from_linear(linear, compute_dtype=torch.float32) if cls is Int8Linear else \
        cls.from_linear(linear, 32, torch.float32)
    x = torch.randn(DENSE_FROM_ROWS + 5, 128)
    want = x @ module.dequantize().t() + linear.bias
    assert torch.allclose(module(x), want, atol=1e-4)
    assert torch.allclose(module(x[:3]), want[:3], atol=1e-4)  # the kernel path agrees on a few rows


def test_int4_min_max_groups_reconstruct_extremes_and_search_lowers_error():
    torch.manual_seed(1)
    w = torch.randn(64, 128) * torch.rand(64, 1)
    codes, scales, zeros = int4_codes_affine(w, 32)
    deq = ((codes.float().view(64, 4, 32) - 8) * scales[..., None] + zeros[..., None]).view(64, 128)
    groups = w.view(64, 4, 32)
    assert torch.allclose(deq.view(64, 4, 32).amin(-1), groups.amin(-1), atol=1e-5)
    assert torch.allclose(deq.view(64, 4, 32).amax(-1), groups.amax(-1), atol=1e-5)
    codes2, scales2, zeros2 = int4_codes_search(w, 32, steps=8)
    deq2 = ((codes2.float().view(64, 4, 32) - 8) * scales2[..., None] + zeros2[..., None]).view(64, 128)
    assert ((deq2 - w) ** 2).sum() < 0.9 * ((deq - w) ** 2).sum()


def test_unblocked_shapes_use_the_dequantizing_path():
    linear = torch.nn.Linear(64, 40)  # 40 rows: not a multiple of the kernel's 64-row blocks
    module = Int4Linear.from_linear(linear, 32, torch.float32)
    x = torch.randn(3, 64)
    assert torch.allclose(module(x), x @ module.dequantize().t() + linear.bias, atol=1e-5)


def test_spec_validation_patterns_and_json():
    spec = QuantSpec("int4", 64, {"lm_head": "int8", "*.down_proj": "none"})
    assert spec.method_for("lm_head") == "int8"
    assert spec.method_for("model.layers.3.mlp.down_proj") == "none"
    assert spec.method_for("model.layers.3.mlp.up_proj") == "int4"
    assert QuantSpec.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(UsageError, match="group size"):
        QuantSpec("int4", 48)
    with pytest.raises(UsageError, match="method"):
        QuantSpec("int3")
    with pytest.raises(CheckpointError, match="format"):
        QuantSpec.from_dict({"method": "int4"})


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantize_save_load_round_trip_gives_identical_outputs(tmp_path, method):
    config = tiny_config()
    model = make_model(config, seed=4)
    spec = QuantSpec(method, 32, {"lm_head": "int8"})
    quantize_model(model, spec)
    prompt = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.no_grad():
        before = model(prompt)
    save_quantized_checkpoint(model, config, spec, tmp_path / "q")
    assert json.loads((tmp_path / "q" / "quantization.json").read_text())["method"] == method
    _, loaded_spec, loaded = load_quantized_checkpoint(tmp_path / "q")
    assert loaded_spec == spec
    with torch.no_grad():
        after = loaded(prompt)
    assert torch.equal(before, after)
    params = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)
    assert Engine(model, max_batch_size=1).generate([[1, 2, 3]], params)[0].samples[0].token_ids == \
        Engine(loaded, max_batch_size=1).generate([[1, 2, 3]], params)[0].samples[0].token_ids


@pytest.mark.parametrize("rows_per_chunk", [4096, 64])
def test_streaming_conversion_equals_in_memory_quantization(tmp_path, monkeypatch, rows_per_chunk):
    import qwq.engine.quant_io as quant_io
    from qwq.model.weights import save_hf_checkpoint

    monkeypatch.setattr(quant_io, "_ROWS_PER_CHUNK", rows_per_chunk)  # 64: big tensors go in several slices

    config = tiny_config()
    model = make_model(config, seed=6)
    save_hf_checkpoint(model, config, tmp_path / "float", max_shard_bytes=200_000)  # several shards
    assert len(list((tmp_path / "float").glob("*.safetensors"))) > 1
    spec = QuantSpec("int4", 32)
    quantize_checkpoint(tmp_path / "float", tmp_path / "q", spec, dtype=torch.float32, max_shard_bytes=40_000)
    assert (tmp_path / "q" / "model.safetensors.index.json").is_file()
    _, _, streamed = load_quantized_checkpoint(tmp_path / "q")
    in_memory = quantize_model(make_model(config, seed=6), spec)
    prompt = torch.tensor([[7, 7, 1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(streamed(prompt), in_memory(prompt))


def test_corrupt_quantized_checkpoints_name_the_problem(tmp_path):
    config = tiny_config()
    model = quantize_model(make_model(config), QuantSpec("int8"))
    save_quantized_checkpoint(model, config, QuantSpec("int8"), tmp_path / "q")
    spec_file = tmp_path / "q" / "quantization.json"
    spec_file.write_text(json.dumps({"format": "qwq-weight-only", "version": 1, "method": "int4", "group_size": 32,
                                     "embedding": "int8"}))
    with pytest.raises(CheckpointError, match="qweight"):
        load_quantized_checkpoint(tmp_path / "q")
    spec_file.write_text("{not json")
    with pytest.raises(CheckpointError, match="quantization.json"):
        load_quantized_checkpoint(tmp_path / "q")


def test_gptq_lowers_the_output_error_on_correlated_inputs():
    from qwq.engine.gptq import gptq_int4

    generator = torch.Generator().manual_seed(0)
    n, k = 128, 256
    weight = torch.randn(n, k, generator=generator)
    mix = torch.randn(k, k, generator=generator) / k ** 0.5 + torch.eye(k)
    calibration = torch.randn(1024, k, generator=generator) @ mix
    held_out = torch.randn(1024, k, generator=generator) @ mix

    def dequant(codes, scales, zeros):
        return ((codes.float().view(n, -1, 32) - 8) * scales[..., None] + zeros[..., None]).view(n, k)

    rtn = dequant(*int4_codes_search(weight, 32, 8))
    gptq = dequant(*gptq_int4(weight, calibration.t() @ calibration, 32))
    for x in (calibration, held_out):
        assert ((x @ gptq.t() - x @ weight.t()) ** 2).mean() < 0.8 * ((x @ rtn.t() - x @ weight.t()) ** 2).mean()


def test_gptq_quantizes_a_whole_model_closer_than_plain_rounding(tokenizer):
    from qwq.engine.calibration import calibration_token_lists
    from qwq.engine.gptq import gptq_quantize_model

    config = tiny_config(vocab_size=tokenizer.vocab_size)
    calibration = calibration_token_lists(tokenizer, max_tokens=512, sequence_length=128)
    prompts = [torch.tensor([ids]) for ids in calibration]
    spec = QuantSpec("int4", 32, {"lm_head": "int8"})
    with torch.no_grad():
        reference = [make_model(config, seed=8)(p) for p in prompts]
        gptq = gptq_quantize_model(make_model(config, seed=8), spec, calibration)
        rtn = quantize_model(make_model(config, seed=8), spec)
        gptq_error = sum(((gptq(p) - r) ** 2).mean() for p, r in zip(prompts, reference))
        rtn_error = sum(((rtn(p) - r) ** 2).mean() for p, r in zip(prompts, reference))
    assert isinstance(gptq.model.layers[0].mlp.up_proj, Int4Linear)
    assert isinstance(gptq.lm_head, Int8Linear)
    assert gptq_error < rtn_error


@pytest.mark.parametrize("spec", [QuantSpec("int4", 32), QuantSpec("int8"),
                                  QuantSpec("int4", 32, {"*.self_attn.*": "int8"})])
def test_fused_projections_give_identical_logits_and_tokens(spec):
    from qwq.engine.fusion import ProjectionSlice, fuse_projections

    config = tiny_config(num_attention_heads=2, num_key_value_heads=2)  # k/v of 64 rows: whole int4 blocks
    plain = quantize_model(make_model(config, seed=9), spec)
    fused = quantize_model(make_model(config, seed=9), spec)
    assert fuse_projections(fused) == 2 * config.num_hidden_layers
    assert isinstance(fused.model.layers[0].self_attn.k_proj, ProjectionSlice)
    prompt = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert torch.equal(plain(prompt), fused(prompt))
    params = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)
    assert Engine(plain, max_batch_size=2, fuse_projections=False).generate([[1, 2]], params)[0].samples[0].token_ids \
        == Engine(fused, max_batch_size=2).generate([[1, 2]], params)[0].samples[0].token_ids


def test_float_models_are_not_fused():
    from qwq.engine.fusion import fuse_projections

    model = make_model(tiny_config())
    assert fuse_projections(model) == 0
    assert isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)


def test_gguf_conversion_cache_keeps_one_version_per_method(tmp_path):
    from qwq.engine.loading import _prune_stale_conversions

    root = tmp_path / "converted"
    old = root / "model-int4-g32-aaaaaaaaaaaaaaaaaaaa"
    other_method = root / "model-int8-g128-bbbbbbbbbbbbbbbbbbbb"
    current = root / "model-int4-g32-cccccccccccccccccccc"
    for directory in (old, other_method, current):
        directory.mkdir(parents=True)
    _prune_stale_conversions(current)
    assert not old.exists() and other_method.exists() and current.exists()


@pytest.mark.parametrize("method", ["int8", "int4"])
@pytest.mark.parametrize("preset", ["qwq-32b", "qwen2.5-coder-0.5b", "tiny", "tiny-untied"])
def test_config_memory_accounting_is_what_the_engine_keeps_resident(preset, method):
    """`qwq info` (ModelConfig.weight_bytes) counts the engine's real modules: int8 embedding rows, quantized head."""
    from qwq.config import PRESETS
    from qwq.engine.quant_io import resident_bytes

    config = PRESETS[preset.removesuffix("-untied")]
    if preset.endswith("-untied"):
        config = config.replace(tie_word_embeddings=False)
    group = 128 if config.intermediate_size % 128 == 0 else 32
    spec = QuantSpec(method, group)
    assert resident_bytes(config, spec) == config.weight_bytes(method, "bfloat16", group)
    if preset == "qwq-32b" and method == "int4":
        assert resident_bytes(config, spec) <= 18.5e9  # issue 3's target for int4 QwQ-32B
        float_embedding = resident_bytes(config, QuantSpec(method, 128, embedding="none"))
        assert float_embedding - resident_bytes(config, spec) == config.vocab_size * (config.hidden_size - 2)


def test_int8_embedding_rows_and_model_logits_stay_close_to_float():
    from qwq.engine.quant import Int8Embedding

    config = tiny_config()
    model = make_model(config, seed=11, std=0.1)
    table = model.model.embed_tokens
    quantized = Int8Embedding.from_embedding(table)
    ids = torch.tensor([[0, 5, 17, 319, 5]])
    rows, want = quantized(ids), table(ids)
    assert rows.shape == want.shape and rows.dtype == want.dtype
    # per-row symmetric int8: each element is off by at most half a step of its row's scale
    step = table.weight.abs().amax(dim=1)[ids] / 127
    assert ((rows - want).abs() <= step[..., None] / 2 + 1e-7).all()
    prompt = torch.randint(0, config.vocab_size, (4, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(prompt)
        int8_rows = make_model(config, seed=11, std=0.1)
        int8_rows.model.embed_tokens = Int8Embedding.from_embedding(int8_rows.model.embed_tokens)
        logits = int8_rows(prompt)
        int4_model = quantize_model(make_model(config, seed=11, std=0.1), QuantSpec("int4", 32), torch.float32)
        int4_float_rows = quantize_model(make_model(config, seed=11, std=0.1),
                                         QuantSpec("int4", 32, embedding="none"), torch.float32)
        int4_logits, int4_float_logits = int4_model(prompt), int4_float_rows(prompt)
    assert isinstance(int4_model.model.embed_tokens, Int8Embedding)
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.95
    assert (logits - reference).abs().mean() < 0.02 * reference.abs().mean()
    # against the same int4 model with a float embedding: the int8 rows change the top-1 almost never
    assert (int4_logits.argmax(-1) == int4_float_logits.argmax(-1)).float().mean() >= 0.95


def test_int8_two_term_product_is_closer_than_bf16_activations_and_batch_invariant():
    from qwq.engine.quant import int8_two_term_mm

    torch.manual_seed(3)
    linear = torch.nn.Linear(320, 256, bias=False)
    module = Int8Linear.from_linear(linear)  # bf16 scales
    x = torch.randn(7, 320) * (1 + 30 * (torch.rand(320) < 0.02))  # a few outlier channels, as in real activations
    exact = x.double() @ module.dequantize(torch.float64).t()
    two_term = int8_two_term_mm(x, module.qweight, module.scales)
    weight_only = torch.ops.aten._weight_int8pack_mm(x.bfloat16(), module.qweight, module.scales).float()
    scale = exact.abs().max()
    assert (two_term.double() - exact).abs().max() / scale < 2e-4
    assert (two_term.double() - exact).abs().max() < (weight_only.double() - exact).abs().max() / 4
    for row in range(7):  # exact integer sums and per-row scales: a row alone gives bit-identical results
        assert torch.equal(int8_two_term_mm(x[row:row + 1], module.qweight, module.scales), two_term[row:row + 1])
    assert torch.equal(int8_two_term_mm(torch.zeros(2, 320), module.qweight, module.scales), torch.zeros(2, 256))


def test_large_int8_modules_use_the_two_term_product(monkeypatch):
    import qwq.engine.quant as quant

    monkeypatch.setenv("QWQ_KERNELS", "0")  # the PyTorch fallback path (qwq's own kernels: test_kernels.py)
    torch.manual_seed(4)
    module = Int8Linear.from_linear(torch.nn.Linear(128, 64, bias=True))
    x = torch.randn(3, 128)
    small = module(x)
    monkeypatch.setattr(quant, "TWO_TERM_FROM_WEIGHTS", 64 * 128)
    large = module(x)
    expected = quant.int8_two_term_mm(x, module.qweight, module.scales) + module.bias
    assert torch.equal(large, expected)
    assert not torch.equal(small, large) and torch.allclose(small, large, atol=0.05)
