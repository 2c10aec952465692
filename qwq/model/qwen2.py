"""The Qwen2 decoder (QwQ-32B's architecture), with Hugging Face parameter names so HF weights load as they are.

Per layer: RMSNorm -> grouped-query attention (bias on q/k/v, none on o, NeoX RoPE) -> residual -> RMSNorm ->
SwiGLU MLP -> residual. A final RMSNorm, then the LM head (tied to the embedding when the config says so).

The model keeps no position state: callers pass absolute `positions` and, for incremental decoding, a KV cache
(see qwq.model.kv). Every projection is a plain `nn.Linear`, so a weight-only quantizer can swap modules in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qwq.config import ModelConfig
from qwq.model.kv import KVCache, causal_attention
from qwq.model.rope import RotaryEmbedding, apply_rotary

LogitsSlice = int | slice | torch.Tensor | None


class RMSNorm(nn.Module):
    """Normalise in fp32 (bf16 sums of squares lose too much), cast back, then scale (the order HF uses)."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.dim_per_head
        hidden, q_out, kv_out = config.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(hidden, q_out, bias=True)
        self.k_proj = nn.Linear(hidden, kv_out, bias=True)
        self.v_proj = nn.Linear(hidden, kv_out, bias=True)
        self.o_proj = nn.Linear(q_out, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, k, cos, sin)
        out = causal_attention(q, k, v) if cache is None else cache.attend(self.layer, q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.self_attn = Attention(config, layer)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


def default_positions(input_ids: torch.Tensor) -> torch.Tensor:
    batch, length = input_ids.shape
    return torch.arange(length, device=input_ids.device).expand(batch, length)


class Qwen2Model(nn.Module):
    """Embedding + decoder layers + final norm: returns the final hidden states [B, T, hidden]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        if positions is None:
            if cache is not None:
                raise ValueError("pass explicit positions when decoding with a KV cache (the model keeps no state)")
            positions = default_positions(input_ids)
        elif positions.shape != input_ids.shape:
            raise ValueError(f"positions shape {tuple(positions.shape)} != input_ids shape {tuple(input_ids.shape)}")
        else:
            positions = positions.to(input_ids.device)
        hidden = self.embed_tokens(input_ids)
        cos, sin = self.rotary_emb(positions)
        for layer in self.layers:
            hidden = layer(hidden, cos, sin, cache)
        return self.norm(hidden)


def select_positions(hidden: torch.Tensor, logits_slice: LogitsSlice) -> torch.Tensor:
    """None: all positions; int n: the last n; slice: those; LongTensor [B, K]: K chosen positions per row."""
    if logits_slice is None:
        return hidden
    if isinstance(logits_slice, bool):
        raise TypeError("logits_slice must be None, an int, a slice or a LongTensor [B, K], not a bool")
    if isinstance(logits_slice, int):
        if logits_slice <= 0:
            raise ValueError(f"logits_slice must be a positive count of last positions, got {logits_slice}")
        return hidden[:, -logits_slice:]
    if isinstance(logits_slice, slice):
        return hidden[:, logits_slice]
    if isinstance(logits_slice, torch.Tensor) and logits_slice.dim() == 2:
        index = logits_slice.to(hidden.device, torch.long)[..., None].expand(-1, -1, hidden.shape[-1])
        return hidden.gather(1, index)
    raise TypeError(f"logits_slice must be None, an int, a slice or a LongTensor [B, K], got {logits_slice!r}")


class Qwen2ForCausalLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Share the embedding with the LM head when the config ties them (call again after replacing either)."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                cache: KVCache | None = None, logits_slice: LogitsSlice = None) -> torch.Tensor:
        """Logits [B, T, V] (or [B, K, V] for the positions `logits_slice` selects), in the weights' dtype."""
        hidden = self.model(input_ids, positions=positions, cache=cache)
        return self.lm_head(select_positions(hidden, logits_slice))

    def num_parameters(self) -> int:
        """Distinct parameters (a tied head counts once); works on the meta device."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def init_weights(self, std: float = 0.02, generator: torch.Generator | None = None) -> None:
        """The usual from-scratch init: N(0, std) matrices and embeddings, zero biases, unit norm weights."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std, generator=generator)
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)


_INIT_FUNCTIONS = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                   "trunc_normal_", "zeros_", "ones_", "constant_")


def meta_model(config: ModelConfig) -> Qwen2ForCausalLM:
    """The model on the meta device (shapes only, no memory), for loaders that assign real tensors next.

    The modules' own random init is skipped: on the meta device each torch.nn.init call goes through PyTorch's
    reference implementations, and the first of those imports TorchDynamo, ~1.4 s of every model load (measured on
    the 0.5B GGUF: 4.9 s from the call to the first token). Not thread-safe while it runs (it swaps torch.nn.init's
    functions for no-ops, as transformers' no_init_weights does)."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}

    def skip(tensor, *args, **kwargs):
        return tensor

    try:
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, skip)
        with torch.device("meta"):
            return Qwen2ForCausalLM(config)
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)
