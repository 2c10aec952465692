"""The KV-cache contract between the model and whoever drives it (the engine, a test, a plain generate loop).

The model keeps no position state. Each forward is given absolute `positions` [B, T] (for RoPE) and, optionally,
a cache. In every layer the attention module projects and rotates q/k/v for the T new tokens and hands them to

    cache.attend(layer, q, k, v) -> output

    q       [B, Hq,  T, D]   rotated queries of the new tokens
    k, v    [B, Hkv, T, D]   rotated keys / values of the new tokens (Hq is a multiple of Hkv: grouped-query)
    output  [B, Hq,  T, D]   softmax(q K^T / sqrt(D)) V over the cached prefix plus the new tokens, causal

The cache stores k/v wherever it likes (dense buffers, pages, quantized...) and is free to pick the attention kernel.
All layers of one forward see the same prefix: writing the new tokens does not make them part of the prefix until the
caller calls `cache.advance(T)` after the forward. So a forward that is thrown away (e.g. rejected speculative
tokens) is undone by not advancing, and `truncate(n)` rolls back committed tokens.

Without a cache the model runs plain causal attention over the T tokens.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from qwq.config import ModelConfig
from qwq.utils.errors import QwqError


class CacheFullError(QwqError):
    """A forward would write past the cache's capacity (names the lengths)."""


@runtime_checkable
class KVCache(Protocol):
    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Store the new k/v of `layer` after the committed prefix and attend q over prefix + new tokens."""
        ...

    def advance(self, num_tokens: int) -> None:
        """Commit the `num_tokens` tokens written by the last forward as part of the prefix."""
        ...


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options) -> torch.Tensor:
    """F.scaled_dot_product_attention, except that a bf16 attention on CPU that will be differentiated runs in fp32.

    PyTorch's CPU attention backward is 2-6x slower in bf16 than in fp32 at training sizes (torch 2.13 on an
    AVX-512 BF16 CPU: fwd+bwd of [32 x 4 heads x 128 tokens] causal 110 vs 63 ms, [16 x 30] 9.4 vs 1.6 ms), and
    bf16 autocast would otherwise run it there. Inference keeps bf16 (its forward is the faster one)."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_grad_enabled() and \
            (q.requires_grad or k.requires_grad or v.requires_grad):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **options).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **options)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_len: int = 0) -> torch.Tensor:
    """Scaled dot-product attention where query t (absolute position prefix_len + t) sees keys 0..prefix_len + t.

    q [B, Hq, T, D]; k, v [B, Hkv, prefix_len + T, D].
    """
    num_new, num_keys = q.shape[2], k.shape[2]
    if num_keys != prefix_len + num_new:
        raise ValueError(f"causal_attention: {num_keys} keys for a prefix of {prefix_len} and {num_new} new tokens")
    gqa = q.shape[1] != k.shape[1]
    if prefix_len == 0:
        return attention(q, k, v, is_causal=num_new > 1, enable_gqa=gqa)
    if num_new == 1:  # a single new token sees everything
        return attention(q, k, v, enable_gqa=gqa)
    rows = torch.arange(num_new, device=q.device)[:, None] + prefix_len
    mask = torch.arange(num_keys, device=q.device)[None, :] <= rows
    return attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


class DenseKVCache:
    """Preallocated per-layer K/V buffers [B, Hkv, max_len, D]; all rows of the batch share one length.

    Rows of different prompt lengths are the engine's business (its own static/paged caches); this one is the
    reference implementation and what a plain generate loop uses.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        if batch_size <= 0 or max_len <= 0:
            raise ValueError(f"DenseKVCache needs batch_size > 0 and max_len > 0, got {batch_size} and {max_len}")
        shape = (batch_size, config.num_key_value_heads, max_len, config.dim_per_head)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.batch_size, self.max_len = batch_size, max_len
        self.length = 0  # committed tokens
        self._pending = 0  # tokens written by the current forward, not yet committed

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        num_new = k.shape[2]
        if k.shape[0] != self.batch_size:
            raise ValueError(f"DenseKVCache: batch of {k.shape[0]} rows, cache was built for {self.batch_size}")
        end = self.length + num_new
        if end > self.max_len:
            raise CacheFullError(f"KV cache full: {self.length} cached + {num_new} new tokens exceed max_len "
                                 f"{self.max_len}")
        self._pending = num_new
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        keys = self.keys[layer][:, :, :end].to(q.dtype)
        values = self.values[layer][:, :, :end].to(q.dtype)
        return causal_attention(q, keys, values, prefix_len=self.length)

    def advance(self, num_tokens: int) -> None:
        if not 0 <= num_tokens <= self._pending:
            raise ValueError(f"advance({num_tokens}): the last forward wrote {self._pending} uncommitted tokens")
        self.length += num_tokens
        self._pending = 0

    def truncate(self, length: int) -> None:
        """Forget every token from `length` on (roll back)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a KV cache of length {self.length} to {length}")
        self.length = length
        self._pending = 0

    def reset(self) -> None:
        self.truncate(0)
