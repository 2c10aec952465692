"""Rotary position embeddings (NeoX / rotate-half layout) with the `default` and `yarn` frequency schedules.

Qwen2 rotates the first and second halves of each head together: dimension i pairs with i + head_dim/2. The
schedule only changes the inverse frequencies and a scalar `attention_scaling` that multiplies cos and sin (so
YaRN's attention temperature lands on both q and k, i.e. squared on the attention logits, as in transformers).

YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension") splits the frequency dimensions in three:
fast-rotating ones (many full turns inside the original context) are kept as they are (extrapolation), slow ones are
divided by `factor` (interpolation), and a linear ramp blends the two between the "correction" dimensions where a
frequency makes `beta_fast` and `beta_slow` turns over `original_max_position_embeddings` tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qwq.config import ModelConfig
from qwq.utils.errors import ConfigError


def _wavelength_bases(head_dim: int, theta: float) -> torch.Tensor:
    """theta^(2i/d) for i < d/2: the reciprocal of each pair's default angular frequency."""
    return theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim)


def _correction_dim(num_rotations: float, head_dim: int, theta: float, context: int) -> float:
    """The (fractional) dimension index whose frequency completes `num_rotations` turns over `context` tokens."""
    return head_dim * math.log(context / (num_rotations * 2 * math.pi)) / (2 * math.log(theta))


def yarn_correction_range(beta_fast: float, beta_slow: float, head_dim: int, theta: float,
                          original_max_position_embeddings: int, truncate: bool = True) -> tuple[float, float]:
    """Dimensions [low, high] between which YaRN ramps from extrapolation to interpolation.

    With `truncate` (the default, as in the reference implementation) the bounds are rounded outwards to integers.
    """
    low = _correction_dim(beta_fast, head_dim, theta, original_max_position_embeddings)
    high = _correction_dim(beta_slow, head_dim, theta, original_max_position_embeddings)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, head_dim - 1)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature: 0.1 * mscale * ln(factor) + 1 (1 when not stretching)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _yarn(config: ModelConfig, head_dim: int, theta: float) -> tuple[torch.Tensor, float]:
    params = config.rope_scaling or {}
    original = params.get("original_max_position_embeddings") or config.max_position_embeddings
    factor = params.get("factor")
    if factor is None:
        factor = config.max_position_embeddings / original
    if factor <= 0:
        raise ConfigError(f"config field 'rope_scaling.factor' must be positive, got {factor!r}")

    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
        else:
            attention_factor = yarn_mscale(factor)

    # A missing, null or zero beta means the paper's default.
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1
    low, high = yarn_correction_range(beta_fast, beta_slow, head_dim, theta, original,
                                      truncate=params.get("truncate", True))
    if low == high:
        high += 0.001  # a zero-width ramp would divide by zero; this makes it a step

    bases = _wavelength_bases(head_dim, theta)
    extrapolated, interpolated = 1.0 / bases, 1.0 / (factor * bases)
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1 for fast dimensions (kept as they are), 0 for slow ones (stretched by `factor`)
    inv_freq = interpolated * (1 - keep) + extrapolated * keep
    return inv_freq, float(attention_factor)


def rope_parameters(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """(inverse frequencies [head_dim/2] in fp32, scale applied to cos and sin) for the config's rope type."""
    head_dim = config.dim_per_head
    if head_dim % 2:
        raise ConfigError(f"head_dim must be even for rotary embeddings, got {head_dim}")
    theta = float(config.rope_theta)
    if config.rope_type == "default":
        return 1.0 / _wavelength_bases(head_dim, theta), 1.0
    if config.rope_type == "yarn":
        return _yarn(config, head_dim, theta)
    raise ConfigError(f"config field 'rope_scaling.type' must be 'default' or 'yarn', got {config.rope_type!r}")


class RotaryEmbedding(nn.Module):
    """Maps absolute positions [B, T] to (cos, sin) [B, T, head_dim] in fp32, already scaled by attention_scaling.

    The inverse frequencies are a non-persistent fp32 buffer (not in the state dict) that dtype casts leave in
    fp32. A model built on the meta device recomputes them on first use, on the device of `positions`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Computed on the CPU even inside a `torch.device("meta")` block: on meta, the first arithmetic goes through
        # PyTorch's reference implementations and imports TorchDynamo (~1.3 s of every model load), for a tensor
        # that would be recomputed on first use anyway.
        with torch.device("cpu"):
            inv_freq, self.attention_scaling = rope_parameters(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def reset(self, device: torch.device | str | None = None) -> None:
        """Recompute the inverse frequencies (after building on the meta device, or to move them)."""
        self.inv_freq = rope_parameters(self.config)[0].to(device if device is not None else self.inv_freq.device)

    def _apply(self, fn, recurse: bool = True):
        # `.to(bfloat16)` would round the frequencies and `.to_empty()` would wipe them: whatever moved the buffer,
        # recompute it in fp32 where it now lives.
        result = super()._apply(fn, recurse)
        self.reset()
        return result

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq.is_meta and not positions.is_meta:
            self.reset(positions.device)
        inv_freq = self.inv_freq.to(device=positions.device, dtype=torch.float32)
        angles = positions.to(torch.float32)[..., None] * inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos() * self.attention_scaling, angles.sin() * self.attention_scaling


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q [B, Hq, T, D] and k [B, Hkv, T, D] by cos/sin [B, T, D].

    The rotation is done in fp32 and cast back, so bf16 activations lose no precision to bf16 cos/sin.
    """
    cos, sin = cos[:, None].float(), sin[:, None].float()
    q32, k32 = q.float(), k.float()
    q_out = q32 * cos + _rotate_half(q32) * sin
    k_out = k32 * cos + _rotate_half(k32) * sin
    return q_out.to(q.dtype), k_out.to(k.dtype)
