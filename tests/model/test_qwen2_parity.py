"""Our Qwen2 against transformers' Qwen2ForCausalLM (random weights, saved with save_pretrained, loaded by OUR loader).

Weights are re-drawn with a large spread (and non-zero biases / non-unit norms) so that every parameter and every
detail of attention / RoPE moves the logits well above the tolerance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qwq.config import PRESETS, QWQ_32B, QWQ_YARN
from qwq.model.kv import CacheFullError, DenseKVCache
from qwq.model.qwen2 import Qwen2ForCausalLM
from qwq.model.weights import load_hf_checkpoint

transformers = pytest.importorskip("transformers")

VOCAB = 128
YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}


def randomise(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.3 * noise)
            elif name.endswith("bias"):
                param.copy_(0.3 * noise)
            else:
                param.copy_(noise / param.shape[-1] ** 0.5)


def hf_config(tied: bool, yarn: bool, **overrides):
    config = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=tied, rope_scaling=dict(YARN) if yarn else None)
    config.update(overrides)
    return transformers.Qwen2Config(**config)


def hf_and_ours(tmp_path, tied=False, yarn=False, dtype=torch.float32, seed=0, **overrides):
    hf = transformers.Qwen2ForCausalLM(hf_config(tied, yarn, **overrides)).eval()
    randomise(hf, seed)
    hf = hf.to(dtype)
    hf.save_pretrained(tmp_path / "hf")
    config, ours = load_hf_checkpoint(tmp_path / "hf")
    return hf, config, ours


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("yarn", [False, True], ids=["default-rope", "yarn"])
def test_fp32_logits_match_transformers(tmp_path, tied, yarn):
    hf, config, ours = hf_and_ours(tmp_path, tied=tied, yarn=yarn)
    assert config.tie_word_embeddings is tied and (config.rope_type == "yarn") is yarn
    assert next(ours.parameters()).dtype == torch.float32
    ids = tokens(2, 150)  # beyond original_max_position_embeddings, where YaRN changes things
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    assert got.shape == (2, 150, VOCAB)
    assert expected.abs().max() > 1.0  # the comparison is not between near-zero numbers
    assert (got - expected).abs().max().item() <= 1e-4
    if tied:
        assert ours.lm_head.weight is ours.model.embed_tokens.weight


def test_state_dict_names_are_transformers_names(tmp_path):
    for tied in (False, True):
        hf = transformers.Qwen2ForCausalLM(hf_config(tied, False))
        ours = Qwen2ForCausalLM(hf_and_ours_config(tied))
        assert set(ours.state_dict()) == set(hf.state_dict())
        for name, tensor in hf.state_dict().items():
            assert ours.state_dict()[name].shape == tensor.shape, name
    ours = Qwen2ForCausalLM(hf_and_ours_config(False))
    linear = [name for name, m in ours.named_modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 7 * 2 + 1  # q k v o gate up down per layer, plus lm_head: all swappable nn.Linear


def hf_and_ours_config(tied: bool):
    from qwq.config import ModelConfig

    return ModelConfig.from_dict({**hf_config(tied, False).to_dict(), "dtype": "float32"})


def test_bf16_logits_close_to_transformers(tmp_path):
    hf, _, ours = hf_and_ours(tmp_path, yarn=True, dtype=torch.bfloat16)
    assert next(ours.parameters()).dtype == torch.bfloat16
    ids = tokens(2, 100, seed=1)
    with torch.no_grad():
        expected = hf(ids).logits.float()
        got = ours(ids).float()
    assert got.dtype == torch.float32
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 0.05 * scale
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.9


def test_hidden_states_and_explicit_positions_match_transformers(tmp_path):
    hf, _, ours = hf_and_ours(tmp_path, yarn=True, seed=3)
    ids = tokens(2, 20, seed=3)
    # Row 0 starts at an offset (RoPE is relative: same output), row 1 is spread out (different distances).
    positions = torch.stack([torch.arange(20) + 100, torch.arange(20) * 3])
    with torch.no_grad():
        expected = hf.model(ids, position_ids=positions).last_hidden_state
        got = ours.model(ids, positions=positions)
        logits = ours(ids, positions=positions)
        expected_logits = hf(ids, position_ids=positions).logits
        default = ours(ids)
    assert (got - expected).abs().max().item() <= 1e-4
    assert (logits - expected_logits).abs().max().item() <= 1e-4
    assert (logits[0] - default[0]).abs().max() <= 1e-4
    assert (logits[1] - default[1]).abs().max() > 1e-2


def test_logits_slice(tmp_path):
    _, _, ours = hf_and_ours(tmp_path)
    ids = tokens(2, 12)
    with torch.no_grad():
        full = ours(ids)
        torch.testing.assert_close(ours(ids, logits_slice=1), full[:, -1:])
        torch.testing.assert_close(ours(ids, logits_slice=slice(2, 5)), full[:, 2:5])
        picks = torch.tensor([[11, 3], [4, 0]])
        torch.testing.assert_close(ours(ids, logits_slice=picks), torch.stack([full[0, [11, 3]], full[1, [4, 0]]]))
    with pytest.raises(ValueError):
        ours(ids, logits_slice=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, None)], ids=["fp32", "bf16"])
def test_incremental_decode_equals_full_forward(tmp_path, dtype, tol):
    _, config, ours = hf_and_ours(tmp_path, yarn=True, dtype=dtype, seed=5)
    ids = tokens(3, 90, seed=5)
    with torch.no_grad():
        full = ours(ids).float()
        cache = DenseKVCache(config, batch_size=3, max_len=96, dtype=dtype)
        pieces, start = [], 0
        for size in (17, 1, 1, 1, 5, 1, 64):  # prefill, single tokens, multi-token chunks
            positions = torch.arange(start, start + size).expand(3, size)
            pieces.append(ours(ids[:, start:start + size], positions=positions, cache=cache).float())
            cache.advance(size)
            start += size
    assert start == 90 and cache.length == 90
    incremental = torch.cat(pieces, dim=1)
    if tol is None:  # bf16: same rounding path is not guaranteed across chunkings; compare against the scale
        tol = 0.05 * full.abs().max().item()
        assert (incremental.argmax(-1) == full.argmax(-1)).float().mean() > 0.9
    assert (incremental - full).abs().max().item() <= tol


def test_cache_rollback_and_overflow(tmp_path):
    _, config, ours = hf_and_ours(tmp_path)
    ids = tokens(1, 10)
    cache = DenseKVCache(config, batch_size=1, max_len=10)
    with torch.no_grad():
        ours(ids[:, :6], positions=torch.arange(6)[None], cache=cache)
        cache.advance(6)
        # A forward that is not committed does not change what later tokens see.
        ours(ids[:, 6:8].flip(1), positions=torch.arange(6, 8)[None], cache=cache)
        redo = ours(ids[:, 6:8], positions=torch.arange(6, 8)[None], cache=cache)
        torch.testing.assert_close(redo, ours(ids[:, :8])[:, 6:8], rtol=1e-4, atol=1e-4)
        cache.advance(2)
        cache.truncate(6)
        again = ours(ids[:, 6:8], positions=torch.arange(6, 8)[None], cache=cache)
        torch.testing.assert_close(again, redo)
        cache.advance(2)
        with pytest.raises(CacheFullError, match="max_len 10"):
            ours(ids[:, :3], positions=torch.arange(8, 11)[None], cache=cache)
        with pytest.raises(ValueError):
            cache.advance(5)
        with pytest.raises(ValueError, match="positions"):
            ours(ids[:, :1], cache=cache)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_meta_device_parameter_count_equals_config(name):
    config = PRESETS[name]
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) == config.num_parameters()


def test_qwq_32b_exact_parameter_count_on_meta():
    for config in (QWQ_32B, QWQ_32B.replace(rope_scaling=dict(QWQ_YARN))):
        with torch.device("meta"):
            model = Qwen2ForCausalLM(config)
        assert model.num_parameters() == 32_763_876_352
        assert all(p.is_meta for p in model.parameters())


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu_fp32(tmp_path):
    _, config, ours = hf_and_ours(tmp_path, yarn=True, seed=7)
    ids = tokens(2, 40, seed=7)
    with torch.no_grad():
        reference = ours(ids)
        _, gpu = load_hf_checkpoint(tmp_path / "hf", dtype=torch.bfloat16, device="cuda")
        got = gpu(ids.cuda()).float().cpu()
        cache = DenseKVCache(config, 2, 40, dtype=torch.bfloat16, device="cuda")
        first = gpu(ids[:, :30].cuda(), positions=torch.arange(30, device="cuda").expand(2, 30), cache=cache)
        cache.advance(30)
        rest = gpu(ids[:, 30:].cuda(), positions=torch.arange(30, 40, device="cuda").expand(2, 10), cache=cache)
    tol = 0.05 * reference.abs().max().item()
    assert (got - reference).abs().max().item() <= tol
    assert (torch.cat([first, rest], 1).float().cpu() - reference).abs().max().item() <= tol
