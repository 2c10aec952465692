"""Run sibling projections that read the same input as one quantized matmul (q/k/v; gate/up).

A decode step is dominated by small weight-only matmuls; q, k and v (and gate and up) read the same activation, so
concatenating their weights turns 3 + 2 kernel calls per layer into 1 + 1: fewer dispatches, and k/v's narrow
outputs (128 rows for Qwen2.5-0.5B) stop being separate inefficient calls. The model code is unchanged: each original
attribute becomes a `ProjectionSlice` that returns its part of the shared output, computed once per input tensor.

Applies to quantized modules only (their weights are fixed; a float model stays as it is so that its parameters can
be trained or reloaded). The fused model's state dict differs from the checkpoint format: fuse at run time, never
before saving.
"""

from __future__ import annotations

import torch
from torch import nn

from qwq.engine.quant import INT4_BLOCK_N, Int4Linear, Int8Linear

GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj"), "mlp": ("gate_proj", "up_proj")}


class FusedProjections(nn.Module):
    """One quantized Linear whose output rows are the concatenation of several projections."""

    def __init__(self, fused: nn.Module, sizes: list[int]) -> None:
        super().__init__()
        self.fused, self.sizes = fused, sizes
        # Per-forward state lives in a plain list: nn.Module.__setattr__ costs microseconds per assignment, paid
        # several times per layer per decode step. [input, outputs, parts not yet read]
        self._state: list = [None, (), 0]

    def output(self, x: torch.Tensor, index: int) -> torch.Tensor:
        state = self._state
        if x is not state[0] or state[2] == 0:
            state[0], state[1], state[2] = x, torch.split(self.fused(x), self.sizes, dim=-1), len(self.sizes)
        out = state[1][index]
        state[2] -= 1
        if state[2] == 0:  # every part was read: do not keep the activations alive
            state[0], state[1] = None, ()
        return out


class ProjectionSlice(nn.Module):
    def __init__(self, owner: FusedProjections, index: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.index = in_features, out_features, index
        object.__setattr__(self, "_owner", owner)  # not a submodule: the owner is registered once, on the parent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._owner.output(x, self.index)

    def extra_repr(self) -> str:
        return f"part {self.index} of a fused projection, out_features={self.out_features}"


def _fusable(modules: list[nn.Module]) -> bool:
    from qwq.engine.quant_w8a8 import W8A8Linear

    first = modules[0]
    if not all(type(m) is type(first) for m in modules) or \
            not isinstance(first, (Int4Linear, Int8Linear, W8A8Linear)):
        return False
    if any((m.bias is None) != (first.bias is None) for m in modules):
        return False
    if isinstance(first, Int4Linear):
        return all(m.group_size == first.group_size and m.out_features % INT4_BLOCK_N == 0
                   and m.scale_zeros.dtype == first.scale_zeros.dtype for m in modules)
    if isinstance(first, W8A8Linear):  # one input, one smoothing: only then is the fused product the same
        return all(torch.equal(m.smooth, first.smooth) for m in modules)
    return all(m.scales.dtype == first.scales.dtype for m in modules)


@torch.no_grad()
def _concatenate(modules: list[nn.Module]) -> nn.Module:
    from qwq.engine.quant_w8a8 import W8A8Linear

    for m in modules:  # concatenation works on the stored layout (not the qwq kernels' packed one)
        if hasattr(m, "to_stored_layout"):
            m.to_stored_layout()
    first = modules[0]
    out_features = sum(m.out_features for m in modules)
    bias = first.bias is not None
    if isinstance(first, W8A8Linear):
        fused = W8A8Linear(first.in_features, out_features, bias)
        fused.qweight = torch.cat([m.qweight for m in modules])
        fused.scales = torch.cat([m.scales for m in modules])
        fused.smooth = first.smooth.clone()
    elif isinstance(first, Int4Linear):
        fused = Int4Linear(first.in_features, out_features, bias, first.group_size, first.scale_zeros.dtype)
        fused.qweight = torch.cat([m.qweight for m in modules])  # whole 64-row blocks: the layout concatenates
        fused.scale_zeros = torch.cat([m.scale_zeros for m in modules], dim=1)
    else:
        fused = Int8Linear(first.in_features, out_features, bias, first.scales.dtype)
        fused.qweight = torch.cat([m.qweight for m in modules])
        fused.scales = torch.cat([m.scales for m in modules])
    if bias:
        fused.bias = nn.Parameter(torch.cat([m.bias for m in modules]), requires_grad=False)
    return fused


def fuse_projections(model: nn.Module) -> int:
    """Fuse q/k/v and gate/up of every layer where they are quantized alike; returns how many groups were fused."""
    count = 0
    for layer in getattr(getattr(model, "model", None), "layers", []):
        for block_name, names in GROUPS.items():
            block = getattr(layer, block_name, None)
            parts = [getattr(block, n, None) for n in names]
            if block is None or any(p is None for p in parts) or not _fusable(parts):
                continue
            owner = FusedProjections(_concatenate(parts), [p.out_features for p in parts])
            block.add_module("fused_" + "_".join(n.split("_")[0] for n in names), owner)
            for index, (name, part) in enumerate(zip(names, parts)):
                setattr(block, name, ProjectionSlice(owner, index, part.in_features, part.out_features))
            count += 1
    return count
