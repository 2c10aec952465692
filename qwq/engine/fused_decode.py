"""The decode step of a Qwen2 on CPU as ONE kernel call for all decoder layers.

The module path runs ~30 PyTorch ops and ~15 Python module calls per layer. With one row they cost about as much as
the memory-bound matmuls of the small layers: measured on the 0.5B int4 mix, one thread, a decode step spent ~7 of
~27 ms outside the matmuls, all of it on one thread whatever the thread count. A small model decoding many rows
(GRPO rollouts of the tiny model: 64 rows, bf16) spent ~40% of its time there, and ~20% more gathering each row's
keys for SDPA. `decode_layers` (kernels/decode_layer.cpp) does norm, fused q/k/v, RoPE, the K/V write, attention
over the row's cached keys, o, residual, norm, fused gate/up, SiLU * up, down and residual of every layer in C++;
the embedding, final norm and LM head stay modules. The engine's decode uses it whenever `FusedDecoder.for_model`
accepts the model; prefill keeps the module path.

Two kinds of model fit: weight-only quantized ones (fused q/k/v and gate/up modules, qwq's GEMMs) and dense bf16 or
fp32 ones (plain Linear modules: bf16 on qwq's AVX512-BF16 GEMM where the CPU has it, fp32 and the rest on at::linear).
For the dense kind the decoder keeps its own copies of the weights (q/k/v and gate/up concatenated; packed for the
bf16 GEMM, the LM head too); they are rebuilt when a weight is replaced or changed in place in this process (tensor
versions), or after `weights_changed()` (the engine's, which is how a change made in another process is announced).

Numerics: the same fp32 operations as the modules, with other reduction orders (logits agree to ~1e-6 relative,
not bit for bit, with a full forward). A bf16 model keeps its residual stream in fp32 here (its modules keep it in
bf16); its matmuls still take bf16 inputs, with fp32 outputs on qwq's GEMM (bf16 on at::linear). Every decode row
of every batch takes this path and nothing in it mixes rows, so a row's tokens do not depend on the rest of the
batch wherever the GEMMs give a row the same bits in any batch (qwq's GEMMs do; oneDNN's are not promised to).
"""

from __future__ import annotations

import torch
from torch import nn

from qwq.engine.quant import INT4_ACTIVATION_TERMS, INT8_ACTIVATION_TERMS, Int4Linear, Int8Linear

DENSE_DTYPES = (torch.float32, torch.bfloat16)
_DENSE, _PACKED_BF16 = -1, -2  # the kernel's "group size" of a dense weight for at::linear / a packed bf16 weight
_NO_SCALES = torch.empty(0)


def _quantized_arguments(module: nn.Module, ops) -> tuple[list[torch.Tensor], list[int]] | None:
    """([codes, scales], [n, group (0 = int8), terms]) of a kernel-ready quantized Linear, or None."""
    if type(module) not in (Int4Linear, Int8Linear) or module._kernel() is not ops:
        return None
    if isinstance(module, Int8Linear):
        return [module.qweight, module._kernel_scales], [module.out_features, 0, INT8_ACTIVATION_TERMS]
    return [module.qweight, module.scale_zeros], [module.out_features, module.group_size, INT4_ACTIVATION_TERMS]


def _layer_kind(layer: nn.Module) -> str | None:
    """"quantized", "dense" or None (the kernel cannot run this layer) for one decoder layer."""
    from qwq.engine.fusion import FusedProjections
    from qwq.model.qwen2 import DecoderLayer, RMSNorm

    attn, mlp = layer.self_attn, layer.mlp
    if type(layer) is not DecoderLayer or any(m._forward_hooks or m._forward_pre_hooks for m in layer.modules()):
        return None
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    if any(type(n) is not RMSNorm or n.weight.dtype not in DENSE_DTYPES for n in norms):
        return None
    fused = (getattr(attn, "fused_q_k_v", None), getattr(mlp, "fused_gate_up", None))
    if all(isinstance(f, FusedProjections) for f in fused):
        projections = (fused[0].fused, attn.o_proj, fused[1].fused, mlp.down_proj)
        if any(type(m) not in (Int4Linear, Int8Linear) or not m._kernel_eligible() for m in projections):
            return None
        return "quantized" if fused[0].fused.bias is not None and all(m.bias is None for m in projections[1:]) \
            else None
    projections = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    if any(type(m) is not nn.Linear for m in projections):
        return None
    dtype = projections[0].weight.dtype
    if dtype not in DENSE_DTYPES or any(m.weight.dtype != dtype or m.weight.device.type != "cpu"
                                        for m in projections):
        return None
    biased = [m.bias is not None for m in projections]
    return "dense" if biased == [True, True, True, False, False, False, False] else None


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place write counter; None for an inference tensor (it has none: only weights_changed()
    announces its changes)."""
    return None if tensor.is_inference() else tensor._version


class FusedDecoder:
    """Decode logits [B, V] for one new token per row, over the engine's paged cache (after `cache.begin`)."""

    def __init__(self, model: nn.Module, cache, ops, kind: str) -> None:
        self.model, self.cache, self.ops, self.kind = model, cache, ops, kind
        config = model.config
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        head = model.lm_head
        self._head_dtype = head.weight.dtype if type(head) is nn.Linear else torch.float32
        # bf16 weights go through qwq's bf16 GEMM where the CPU has AVX512-BF16 (at these shapes oneDNN's per-call
        # work outweighed its multiply-adds), packed once per weight change; the LM head as well.
        self._pack_bf16 = kind == "dense" and model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16 \
            and ops.bf16_gemm_supported()
        self._packed_head = type(head) is nn.Linear and head.bias is None and head.weight.dtype == torch.bfloat16 \
            and self._pack_bf16
        self._head: torch.Tensor | None = None
        self._arguments: tuple | None = None
        # What the arguments were read from. Quantized: (a module's buffer dict, its qweight then). Dense: (a
        # module's parameter dict, the name, the tensor then, its version then).
        self._sources: list = []

    @classmethod
    def for_model(cls, model: nn.Module, cache) -> "FusedDecoder | None":
        """A decoder when the model and cache fit the kernel (every layer quantized with fused q/k/v and gate/up, or
        every layer dense bf16/fp32; fp32 KV cache on CPU; qwq's kernels loaded), else None: the caller keeps the
        module path."""
        from qwq.model.qwen2 import Qwen2ForCausalLM

        if type(model) is not Qwen2ForCausalLM or cache.device.type != "cpu" or cache.dtype != torch.float32:
            return None
        config, inner = model.config, model.model
        if config.dim_per_head % 16 or config.dim_per_head > 256 or inner.norm.weight.dtype not in DENSE_DTYPES:
            return None
        kinds = {_layer_kind(layer) for layer in inner.layers}
        if len(kinds) != 1 or None in kinds:
            return None
        if any(norm.eps != inner.norm.eps for layer in inner.layers  # the kernel takes one eps for every norm
               for norm in (layer.input_layernorm, layer.post_attention_layernorm)):
            return None
        from qwq.engine.kernels import kernel_ops

        ops = kernel_ops()
        if ops is None or not hasattr(ops, "decode_layers"):
            return None
        decoder = cls(model, cache, ops, kinds.pop())
        return decoder if decoder._build() is not None else None

    def weights_changed(self) -> None:
        """Read the weights again before the next step (they may have changed where no version counter shows it)."""
        self._arguments = None

    def _build(self) -> tuple | None:
        weights, sizes, sources = [], [], []
        for layer in self.model.model.layers:
            weights += [layer.input_layernorm.weight.detach(), layer.post_attention_layernorm.weight.detach()]
            found = self._quantized_layer(layer, sources) if self.kind == "quantized" else \
                self._dense_layer(layer, sources)
            if found is None:
                return None
            weights += found[0]
            sizes += found[1]
        self._head = None
        if self._packed_head:
            from qwq.engine.kernels.layout import pack_bf16

            head = self.model.lm_head
            self._head = pack_bf16(head.weight)
            sources.append((head._parameters, "weight", head.weight, _version(head.weight)))
        self._arguments, self._sources = (weights, sizes), sources
        return self._arguments

    def _quantized_layer(self, layer: nn.Module, sources: list) -> tuple[list, list] | None:
        attn, mlp = layer.self_attn, layer.mlp
        qkv, gate_up = attn.fused_q_k_v.fused, mlp.fused_gate_up.fused
        weights, sizes = [], []
        for index, module in enumerate((qkv, attn.o_proj, gate_up, mlp.down_proj)):
            found = _quantized_arguments(module, self.ops)
            if found is None:
                return None
            weights += found[0]
            sizes += found[1]
            if index == 0:
                weights.append(qkv.bias.detach().float().contiguous())
            sources.append((module._buffers, module.qweight))
        return weights, sizes

    @torch.no_grad()
    def _dense_layer(self, layer: nn.Module, sources: list) -> tuple[list, list]:
        attn, mlp = layer.self_attn, layer.mlp
        q_k_v, gate_up = (attn.q_proj, attn.k_proj, attn.v_proj), (mlp.gate_proj, mlp.up_proj)
        for module in (*q_k_v, attn.o_proj, *gate_up, mlp.down_proj, layer.input_layernorm,
                       layer.post_attention_layernorm):
            for name, tensor in module._parameters.items():
                if tensor is not None:
                    sources.append((module._parameters, name, tensor, _version(tensor)))
        if self._pack_bf16:
            from qwq.engine.kernels.layout import pack_bf16 as prepare

            group = _PACKED_BF16
        else:
            def prepare(weight: torch.Tensor) -> torch.Tensor:
                return weight.detach().contiguous()

            group = _DENSE
        weights, sizes = [], []
        for modules in (q_k_v, (attn.o_proj,), gate_up, (mlp.down_proj,)):
            weight = modules[0].weight if len(modules) == 1 else torch.cat([m.weight for m in modules])
            weights += [prepare(weight), _NO_SCALES]
            sizes += [sum(m.out_features for m in modules), group, 0]
            if modules is q_k_v:
                weights.append(torch.cat([m.bias for m in q_k_v]))
        return weights, sizes

    def _stale(self) -> bool:
        if self._arguments is None:
            return True
        if self.kind == "quantized":
            # Identity checks on the buffer dicts (~5 us a step; through nn.Module attribute lookup it was ~0.5 ms).
            return any(buffers["qweight"] is not qweight for buffers, qweight in self._sources)
        return any(params[name] is not tensor or _version(tensor) != version
                   for params, name, tensor, version in self._sources)

    def _current_arguments(self) -> tuple:
        if self._stale() and self._build() is None:
            raise RuntimeError("the model's layers no longer fit the fused decode kernel")
        return self._arguments

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        weights, sizes = self._current_arguments()
        inner, cache = self.model.model, self.cache
        hidden = inner.embed_tokens(ids)[:, 0].float()  # [B, 1] in, as the module path calls it (hooks see the same)
        cos, sin = inner.rotary_emb(positions[:, :1])
        write_slots, read_slots = cache.slot_indices()
        hidden = self.ops.decode_layers(hidden, weights, sizes, cos[:, 0].contiguous(), sin[:, 0].contiguous(),
                                        cache.keys, cache.values, write_slots, read_slots, positions[:, 0] + 1,
                                        inner.norm.eps, self.num_heads, self.num_kv_heads)
        if self._head is not None:
            return self.ops.bf16_gemm(inner.norm(hidden), self._head, self.model.lm_head.out_features)
        return self.model.lm_head(inner.norm(hidden).to(self._head_dtype))
