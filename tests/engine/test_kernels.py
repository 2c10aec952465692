"""qwq's own CPU weight-only GEMM kernels (qwq/engine/kernels): parity with the dequantized weight, bitwise batch
invariance, the packed layout round trip, and the fallbacks (switched off, unsupported CPU, failed build)."""

from __future__ import annotations

import warnings

import pytest
import torch

from qwq.engine import kernels
from qwq.engine.kernels import layout
from qwq.engine.quant import Int4Linear, Int8Linear, quantize_model

from engine_fixtures import make_model, tiny_config

needs_kernels = pytest.mark.skipif(kernels.unsupported_reason() is not None or kernels.kernel_ops() is None,
                                   reason="qwq's CPU kernels are not available here")


def _module(cls, n: int, k: int, group: int = 32, seed: int = 0, bias: bool = True):
    torch.manual_seed(seed)
    linear = torch.nn.Linear(k, n, bias=bias)
    return Int8Linear.from_linear(linear) if cls is Int8Linear else Int4Linear.from_linear(linear, group)


def _activations(m: int, k: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    outliers = 1 + 30 * (torch.rand(k, generator=generator) < 0.02)  # a few large channels, as in real activations
    return torch.randn(m, k, generator=generator) * outliers


@needs_kernels
@pytest.mark.parametrize("cls,n,k,group", [(Int8Linear, 100, 256, 32), (Int8Linear, 40, 96, 32),
                                           (Int4Linear, 100, 256, 32), (Int4Linear, 72, 256, 128),
                                           (Int4Linear, 24, 192, 64)])
@pytest.mark.parametrize("m", [1, 2, 7, 16, 33])
def test_kernel_matches_the_dequantized_weight_on_odd_shapes(cls, n, k, group, m):
    module = _module(cls, n, k, group)
    x = _activations(m, k)
    want = x.double() @ module.dequantize(torch.float64).t() + module.bias.double()
    got = module(x)
    assert module._packed and got.dtype == torch.float32 and got.shape == (m, n)
    # two int8 activation terms per group of 32: error ~1e-5 of the row's scale (bf16 activations give ~1e-3)
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < 5e-4


@needs_kernels
@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_a_rows_output_is_bitwise_the_same_in_any_batch(cls):
    module = _module(cls, 200, 320 if cls is Int8Linear else 256, seed=3)
    x = _activations(70, module.in_features, seed=4)  # 70 rows: past one 64-row panel
    batched = module(x)
    for row in (0, 5, 33, 69):
        assert torch.equal(module(x[row:row + 1]), batched[row:row + 1])
    order = torch.randperm(70, generator=torch.Generator().manual_seed(5))
    assert torch.equal(module(x[order]), batched[order])
    assert torch.equal(module(x[:16]), batched[:16])
    assert torch.equal(module(x.view(7, 10, -1)), batched.view(7, 10, -1))
    assert torch.equal(module(torch.zeros(3, module.in_features)), module.bias.expand(3, -1))


@needs_kernels
@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_packing_in_place_keeps_the_stored_format_for_saving_and_loading(cls):
    module = _module(cls, 72, 128, seed=6)
    stored = {name: t.clone() for name, t in module.state_dict().items()}
    dense = module.dequantize()
    module(torch.randn(2, 128))  # packs the buffers
    assert module._packed
    assert stored.keys() == module.state_dict().keys()
    assert all(torch.equal(stored[name], t) for name, t in module.state_dict().items())
    assert torch.equal(module.dequantize(), dense)
    other = _module(cls, 72, 128, seed=7)
    other(torch.randn(1, 128))
    other.load_state_dict(stored)  # loading into a packed module restores the stored layout first
    assert not other._packed and torch.equal(other.dequantize(), dense)
    x = torch.randn(3, 128)
    assert torch.equal(other(x), module(x))


def test_packed_layouts_round_trip_exactly():
    generator = torch.Generator().manual_seed(8)
    qweight = torch.randint(-128, 128, (37, 64), dtype=torch.int8, generator=generator)
    codes, scales = layout.pack_int8(qweight, torch.rand(37).bfloat16())
    assert codes.shape == (3, 16, 16, 4) and scales.shape == (48,) and scales[37:].eq(0).all()
    assert torch.equal(layout.unpack_int8(codes, 37), qweight)
    nibbles = torch.randint(0, 16, (40, 96), dtype=torch.uint8, generator=generator)
    scale_zeros = torch.randn(3, 40, 2).bfloat16()
    packed, packed_sz = layout.pack_int4(nibbles, scale_zeros)
    assert packed.shape == (3, 12, 16, 4) and packed_sz.shape == (3, 3, 2, 16)
    back_codes, back_sz = layout.unpack_int4(packed, packed_sz, 40)
    assert torch.equal(back_codes, nibbles) and torch.equal(back_sz, scale_zeros)


@needs_kernels
@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantized_engine_samples_the_same_tokens_alone_or_in_a_batch(method):
    from qwq.engine import Engine, QuantSpec, SamplingParams

    model = quantize_model(make_model(tiny_config(vocab_size=320, hidden_size=128, intermediate_size=256)),
                           QuantSpec(method, 32))
    engine = Engine(model, max_batch_size=9, block_size=8, kv_cache_tokens=2048)
    target = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=12, seed=21, ignore_eos=True)
    prompt = [5, 17, 99, 3, 250, 11]
    alone = engine.generate([prompt], target)[0].samples[0].token_ids
    others = [[(13 * i + j) % 300 for j in range(2 + 2 * i)] for i in range(8)]
    params = [SamplingParams(temperature=1.0, max_new_tokens=4 + i, seed=i, ignore_eos=True) for i in range(8)]
    mixed = engine.generate(others[:3] + [prompt] + others[3:], params[:3] + [target] + params[3:])
    assert mixed[3].samples[0].token_ids == alone
    assert any(isinstance(m, Int4Linear if method == "int4" else Int8Linear) and m._packed for m in model.modules())


@pytest.fixture
def fresh_kernel_state():
    kernels.reset_for_tests()
    yield
    kernels.reset_for_tests()


def _fallback_result(module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, Int8Linear):
        y = torch.ops.aten._weight_int8pack_mm(x.bfloat16(), module.qweight, module.scales)
    else:
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.bfloat16(), module.qweight, module.group_size,
                                                       module.scale_zeros)
    return y.float() + module.bias


@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_switched_off_kernels_fall_back_to_pytorch_and_unpack(cls, monkeypatch):
    module = _module(cls, 64, 128, seed=9)
    x = torch.randn(4, 128)
    module(x)  # packed when the kernels are available
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # switching them off is not worth a warning
        got = module(x)
    assert not module._packed
    assert torch.equal(got, _fallback_result(module, x))


def test_an_unsupported_cpu_falls_back_with_one_warning(monkeypatch, fresh_kernel_state):
    monkeypatch.delenv(kernels.ENV_SWITCH, raising=False)
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"sse2", "avx2"})
    module = _module(Int4Linear, 64, 128, seed=10)
    x = torch.randn(2, 128)
    with pytest.warns(RuntimeWarning, match="lacks avx512f"):
        got = module(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided once per process
        module(x)
    assert not module._packed and torch.equal(got, _fallback_result(module, x))


def test_a_failed_build_falls_back_cleanly(monkeypatch, tmp_path, fresh_kernel_state):
    if kernels.unsupported_reason() is not None:
        pytest.skip(kernels.unsupported_reason())
    broken = tmp_path / "wo_gemm.cpp"
    broken.write_text("#error this source does not compile\n")
    monkeypatch.delenv(kernels.ENV_SWITCH, raising=False)
    monkeypatch.setenv("QWQ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "SOURCE", broken)
    module = _module(Int8Linear, 64, 128, seed=11)
    x = torch.randn(2, 128)
    with pytest.warns(RuntimeWarning, match="building wo_gemm.cpp .* failed"):
        got = module(x)
    assert not module._packed and torch.equal(got, _fallback_result(module, x))
    assert kernels.kernel_ops() is None


needs_bf16 = pytest.mark.skipif(kernels.kernel_ops() is None or not kernels.kernel_ops().bf16_gemm_supported(),
                                reason="qwq's bf16 GEMM needs AVX512-BF16")


@needs_bf16
@pytest.mark.parametrize("n,k,m", [(512, 256, 64), (100, 38, 7), (17, 2, 1), (1408, 704, 13), (1152, 256, 70)])
def test_bf16_gemm_matches_the_bf16_product_in_fp32(n, k, m):
    generator = torch.Generator().manual_seed(n * 31 + k)
    x = torch.randn(m, k, generator=generator)
    weight = torch.randn(n, k, generator=generator).to(torch.bfloat16)
    y = kernels.kernel_ops().bf16_gemm(x, layout.pack_bf16(weight), n)
    # The reference rounds x to bf16 as the kernel does, then multiplies exactly: only fp32 accumulation differs.
    reference = x.to(torch.bfloat16).double() @ weight.double().T
    assert y.dtype == torch.float32 and y.shape == (m, n)
    assert (y.double() - reference).abs().max() <= 1e-5 * reference.abs().max()


@needs_bf16
def test_bf16_gemm_gives_a_row_the_same_bits_in_any_batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(70, 256, generator=generator)
    packed = layout.pack_bf16(torch.randn(200, 256, generator=generator))
    ops = kernels.kernel_ops()
    whole = ops.bf16_gemm(x, packed, 200)
    for rows in (slice(0, 1), slice(5, 12), slice(63, 70), slice(3, 4)):  # other tiles, panels and positions
        assert torch.equal(ops.bf16_gemm(x[rows], packed, 200), whole[rows])


@needs_bf16
def test_bf16_gemm_rejects_what_it_cannot_multiply():
    ops = kernels.kernel_ops()
    packed = layout.pack_bf16(torch.randn(32, 64))
    with pytest.raises(RuntimeError, match="must be \\[M, 64\\]"):
        ops.bf16_gemm(torch.randn(2, 63), packed, 32)
    with pytest.raises(RuntimeError, match="does not fit"):
        ops.bf16_gemm(torch.randn(2, 64), packed, 33)
    with pytest.raises(RuntimeError, match="packed bf16"):
        ops.bf16_gemm(torch.randn(2, 64), torch.randn(32, 64), 32)
    with pytest.raises(ValueError, match="K must be even"):
        layout.pack_bf16(torch.randn(4, 5))
