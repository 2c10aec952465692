"""RoPE schedules against transformers' own implementation (an independent reference) and the QwQ YaRN facts."""

from __future__ import annotations

import math

import pytest
import torch

from qwq.config import QWQ_32B, QWQ_YARN, ModelConfig
from qwq.model.rope import RotaryEmbedding, apply_rotary, rope_parameters, yarn_correction_range

transformers = pytest.importorskip("transformers")
from transformers import Qwen2Config  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.qwen2 import modeling_qwen2 as hf_qwen2  # noqa: E402


def hf_rope(config: ModelConfig) -> tuple[torch.Tensor, float]:
    hf_config = Qwen2Config(**config.to_hf_dict())
    if config.rope_type == "default":
        return hf_qwen2.Qwen2RotaryEmbedding.compute_default_rope_parameters(hf_config)
    return ROPE_INIT_FUNCTIONS[config.rope_type](hf_config)


QWQ_LONG = QWQ_32B.replace(rope_scaling=dict(QWQ_YARN), max_position_embeddings=131072)


def test_qwq_yarn_correction_range_and_attention_factor():
    assert yarn_correction_range(32, 1, 128, 1e6, 32768) == (23, 40)
    inv_freq, scaling = rope_parameters(QWQ_LONG)
    assert scaling == pytest.approx(0.1 * math.log(4) + 1)
    assert round(scaling, 6) == 1.138629
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (64,)
    default = 1.0 / (1e6 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128))
    # Below dim 23 frequencies are kept, above dim 40 divided by the factor, in between blended.
    torch.testing.assert_close(inv_freq[:23].double(), default[:23], rtol=1e-6, atol=0)
    torch.testing.assert_close(inv_freq[40:].double(), default[40:] / 4, rtol=1e-6, atol=0)
    middle = inv_freq[24:40].double() / default[24:40]
    assert ((middle < 1) & (middle > 0.25)).all()


@pytest.mark.parametrize("scaling", [
    None,
    dict(QWQ_YARN),
    {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096, "beta_fast": 16, "beta_slow": 2},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "mscale": 1.0,
     "mscale_all_dim": 0.5},
    {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8192, "attention_factor": 1.5},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768, "truncate": False},
], ids=["default", "qwq-yarn", "betas", "mscale", "attention-factor", "no-truncate"])
def test_inv_freq_and_scaling_equal_transformers(scaling):
    config = QWQ_32B.replace(rope_scaling=scaling)
    ours, our_scale = rope_parameters(config)
    theirs, their_scale = hf_rope(config)
    torch.testing.assert_close(ours, theirs.float(), rtol=0, atol=0)
    assert our_scale == pytest.approx(their_scale, rel=1e-12)


def test_small_head_dim_and_theta_equal_transformers():
    config = ModelConfig(vocab_size=32, hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=3, num_key_value_heads=1, rope_theta=1e4, max_position_embeddings=256,
                         rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})
    ours, our_scale = rope_parameters(config)
    theirs, their_scale = hf_rope(config)
    torch.testing.assert_close(ours, theirs.float(), rtol=0, atol=0)
    assert our_scale == pytest.approx(their_scale)


def test_rotary_matches_transformers_for_arbitrary_positions():
    config = QWQ_LONG.replace(hidden_size=256, num_attention_heads=4, num_key_value_heads=2)  # head_dim 64
    hf_config = Qwen2Config(**config.to_hf_dict())
    positions = torch.tensor([[0, 1, 2, 3, 4], [40000, 40001, 40002, 7, 9]])
    cos, sin = RotaryEmbedding(config)(positions)
    assert cos.dtype == torch.float32 and cos.shape == (2, 5, 64)
    x = torch.zeros(1, dtype=torch.float32)
    hf_cos, hf_sin = hf_qwen2.Qwen2RotaryEmbedding(hf_config)(x, positions)
    torch.testing.assert_close(cos, hf_cos, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sin, hf_sin, rtol=1e-6, atol=1e-6)

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 64, generator=gen)
    k = torch.randn(2, 2, 5, 64, generator=gen)
    ours_q, ours_k = apply_rotary(q, k, cos, sin)
    hf_q, hf_k = hf_qwen2.apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    torch.testing.assert_close(ours_q, hf_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_k, hf_k, rtol=1e-5, atol=1e-5)


def test_rotation_preserves_norm_and_relative_position():
    config = QWQ_32B.replace(hidden_size=512, num_attention_heads=4, num_key_value_heads=4)  # head_dim 128
    rotary = RotaryEmbedding(config)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 1, 128, generator=gen), torch.randn(1, 1, 1, 128, generator=gen)

    def score(pos_q: int, pos_k: int) -> float:
        cos_q, sin_q = rotary(torch.tensor([[pos_q]]))
        cos_k, sin_k = rotary(torch.tensor([[pos_k]]))
        rq, _ = apply_rotary(q, q, cos_q, sin_q)
        rk, _ = apply_rotary(k, k, cos_k, sin_k)
        assert rq.norm().item() == pytest.approx(q.norm().item(), rel=1e-5)
        return (rq * rk).sum().item()

    assert score(10, 3) == pytest.approx(score(1007, 1000), rel=1e-3, abs=1e-3)
    assert score(10, 3) != pytest.approx(score(10, 9), rel=1e-3)


def test_meta_built_rotary_has_its_frequencies_and_materialises_them_after_a_meta_move():
    with torch.device("meta"):  # built for a loader: the frequencies are computed on the CPU all the same
        rotary = RotaryEmbedding(QWQ_LONG)
    torch.testing.assert_close(rotary.inv_freq, rope_parameters(QWQ_LONG)[0], rtol=0, atol=0)
    rotary.to("meta")  # moved there: recomputed on the device of the first positions it sees
    assert rotary.inv_freq.is_meta
    cos, _ = rotary(torch.tensor([[0, 5]]))
    assert not rotary.inv_freq.is_meta
    torch.testing.assert_close(rotary.inv_freq, rope_parameters(QWQ_LONG)[0])
    assert cos[0, 0, 0].item() == pytest.approx(rotary.attention_scaling)


def test_building_a_model_on_meta_does_not_import_dynamo():
    # On the meta device the first arithmetic goes through PyTorch's reference implementations, which import
    # TorchDynamo: ~1.3 s of every model load. A fresh interpreter, since other tests import it on purpose.
    import subprocess
    import sys

    code = ("import sys, torch; from qwq.config import preset; from qwq.model.qwen2 import meta_model; "
            "meta_model(preset('tiny')); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_frequencies_survive_dtype_casts_and_to_empty():
    rotary = RotaryEmbedding(QWQ_LONG).to(torch.bfloat16)
    assert rotary.inv_freq.dtype == torch.float32
    torch.testing.assert_close(rotary.inv_freq, rope_parameters(QWQ_LONG)[0], rtol=0, atol=0)
    with torch.device("meta"):
        rotary = RotaryEmbedding(QWQ_LONG)
    rotary.to_empty(device="cpu")
    torch.testing.assert_close(rotary.inv_freq, rope_parameters(QWQ_LONG)[0], rtol=0, atol=0)
