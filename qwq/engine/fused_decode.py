"""The decode step of a weight-only quantized Qwen2 on CPU as ONE kernel call for all decoder layers.

The module path runs ~30 PyTorch ops and ~15 Python module calls per layer. With one row they cost about as much as
the memory-bound matmuls of the small layers: measured on the 0.5B int4 mix, one thread, a decode step spent ~7 of
~27 ms outside the matmuls, all of it on one thread whatever the thread count. `decode_layers` (kernels/
decode_layer.cpp) does norm, fused q/k/v, RoPE, the K/V write, attention over the row's cached keys, o, residual,
norm, fused gate/up, SiLU * up, down and residual of every layer in C++, the GEMMs on qwq's kernels; the embedding,
final norm and LM head stay modules. The engine's decode uses it whenever `FusedDecoder.for_model` accepts the
model; prefill keeps the module path.

Numerics: the same fp32 operations as the modules, with other reduction orders (logits agree to ~1e-6 relative,
not bit for bit, with a full forward). Every decode row of every batch takes this path and nothing in it mixes
rows, so a row's tokens still do not depend on the rest of the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from qwq.engine.quant import INT4_ACTIVATION_TERMS, INT8_ACTIVATION_TERMS, Int4Linear, Int8Linear


def _linear_arguments(module: nn.Module, ops) -> tuple[list[torch.Tensor], list[int]] | None:
    """([codes, scales], [n, group (0 = int8), terms]) of a kernel-ready quantized Linear, or None."""
    if type(module) not in (Int4Linear, Int8Linear) or module._kernel() is not ops:
        return None
    if isinstance(module, Int8Linear):
        return [module.qweight, module._kernel_scales], [module.out_features, 0, INT8_ACTIVATION_TERMS]
    return [module.qweight, module.scale_zeros], [module.out_features, module.group_size, INT4_ACTIVATION_TERMS]


class FusedDecoder:
    """Decode logits [B, V] for one new token per row, over the engine's paged cache (after `cache.begin`)."""

    def __init__(self, model: nn.Module, cache, ops) -> None:
        self.model, self.cache, self.ops = model, cache, ops
        config = model.config
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self._arguments: tuple | None = None
        self._sources: list = []  # (a module's buffer dict, its qweight then): the arguments were read from these

    @classmethod
    def for_model(cls, model: nn.Module, cache) -> "FusedDecoder | None":
        """A decoder when the model and cache fit the kernel (fused quantized q/k/v and gate/up, fp32 activations
        and KV cache on CPU, qwq's kernels loaded), else None: the caller keeps the module path."""
        from qwq.engine.fusion import FusedProjections
        from qwq.model.qwen2 import DecoderLayer, Qwen2ForCausalLM, RMSNorm

        if type(model) is not Qwen2ForCausalLM or cache.device.type != "cpu" or cache.dtype != torch.float32:
            return None
        config, inner = model.config, model.model
        if config.dim_per_head % 16 or inner.norm.weight.dtype != torch.float32:
            return None
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            fused = (getattr(attn, "fused_q_k_v", None), getattr(mlp, "fused_gate_up", None))
            if type(layer) is not DecoderLayer or not all(isinstance(f, FusedProjections) for f in fused):
                return None
            if fused[0].fused.bias is None or any(m.bias is not None for m in (fused[1].fused, attn.o_proj,
                                                                                mlp.down_proj)):
                return None
            norms = (layer.input_layernorm, layer.post_attention_layernorm)
            if any(type(n) is not RMSNorm or n.weight.dtype != torch.float32 or n.eps != inner.norm.eps
                   for n in norms):
                return None
            if any(m._forward_hooks or m._forward_pre_hooks for m in layer.modules()):
                return None
            if any(type(m) not in (Int4Linear, Int8Linear) or not m._kernel_eligible()
                   for m in (fused[0].fused, attn.o_proj, fused[1].fused, mlp.down_proj)):
                return None
        from qwq.engine.kernels import kernel_ops

        ops = kernel_ops()
        if ops is None or not hasattr(ops, "decode_layers"):
            return None
        decoder = cls(model, cache, ops)
        return decoder if decoder._build() is not None else None

    def _build(self) -> tuple | None:
        weights, sizes, sources = [], [], []
        for layer in self.model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv, gate_up = attn.fused_q_k_v.fused, mlp.fused_gate_up.fused
            weights += [layer.input_layernorm.weight.detach(), layer.post_attention_layernorm.weight.detach()]
            for index, module in enumerate((qkv, attn.o_proj, gate_up, mlp.down_proj)):
                found = _linear_arguments(module, self.ops)
                if found is None:
                    return None
                weights += found[0]
                sizes += found[1]
                if index == 0:
                    weights.append(qkv.bias.detach().float().contiguous())
                sources.append((module._buffers, module.qweight))
        self._arguments, self._sources = (weights, sizes), sources
        return self._arguments

    def _current_arguments(self) -> tuple:
        # Weights replaced since the last step (a load, a re-pack): read them again. Identity checks on the buffer
        # dicts (~5 us a step; through nn.Module attribute lookup it was ~0.5 ms).
        if any(buffers["qweight"] is not qweight for buffers, qweight in self._sources):
            if self._build() is None:
                raise RuntimeError("the model's quantized layers no longer fit the fused decode kernel")
        return self._arguments

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        weights, sizes = self._current_arguments()
        inner, cache = self.model.model, self.cache
        hidden = inner.embed_tokens(ids[:, 0]).float()
        cos, sin = inner.rotary_emb(positions[:, :1])
        write_slots, read_slots = cache.slot_indices()
        hidden = self.ops.decode_layers(hidden, weights, sizes, cos[:, 0].contiguous(), sin[:, 0].contiguous(),
                                        cache.keys, cache.values, write_slots, read_slots, positions[:, 0] + 1,
                                        inner.norm.eps, self.num_heads, self.num_kv_heads)
        return self.model.lm_head(inner.norm(hidden))
