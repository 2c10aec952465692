"""LoRA adapters (Hu et al. 2021): W x + (alpha / r) * B A x with W frozen, A [r, in], B [out, r], B = 0 at the start
(so the adapted model starts exactly equal to the base). Small and dependency-free; peft is not needed.

`apply_lora` swaps the targeted nn.Linear modules in place (the engine runs the same module tree, so rollouts see
the adapters with no extra step), `merge_lora` folds B A into W and puts plain nn.Linear back for inference, and
`save_adapter` writes PEFT's file layout (adapter_config.json + adapter_model.safetensors, PEFT tensor names).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from qwq.utils.errors import ConfigError


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if rank <= 0:
            raise ConfigError(f"lora.rank must be positive, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        dtype, device = base.weight.dtype, base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=torch.float32, device=device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=torch.float32, device=device))
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming-uniform(a=sqrt(5)) bound, as nn.Linear and PEFT use
        with torch.no_grad():
            self.lora_A.uniform_(-bound, bound, generator=generator)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.compute_dtype = dtype

    @property
    def weight(self) -> torch.Tensor:  # code that inspects `.weight` (dtype, device) keeps working
        return self.base.weight

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x).to(self.lora_A.dtype) @ self.lora_A.t()) @ self.lora_B.t()
        return self.base(x) + (update * self.scaling).to(x.dtype)

    def merged_weight(self) -> torch.Tensor:
        return (self.base.weight.float() + self.scaling * (self.lora_B @ self.lora_A)).to(self.base.weight.dtype)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def apply_lora(model: nn.Module, targets: Sequence[str], rank: int, alpha: float, dropout: float = 0.0,
               seed: int = 0) -> list[str]:
    """Freeze every parameter, wrap the Linear modules whose name ends with a target; returns the wrapped names."""
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in targets]
    names = [n for n in names if n != "lm_head"]  # a tied head shares the embedding: never adapt it
    if not names:
        raise ConfigError(f"lora.targets {list(targets)} match no Linear module of the model")
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, LoRALinear(getattr(parent, leaf), rank, alpha, dropout, generator))
    return names


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight and restore plain nn.Linear modules; returns how many."""
    merged = 0
    for name, module in list(lora_modules(model).items()):
        base = module.base
        base.weight.copy_(module.merged_weight())
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, base)
        merged += 1
    return merged


def save_adapter(model: nn.Module, directory: str | Path, base_model: str, rank: int, alpha: float,
                 dropout: float, targets: Sequence[str]) -> Path:
    """PEFT layout: tensors `base_model.model.<module>.lora_A.weight` / `lora_B.weight`."""
    from safetensors.torch import save_file

    from qwq.utils.atomic import atomic_directory

    tensors = {}
    for name, module in lora_modules(model).items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = module.lora_A.detach().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = module.lora_B.detach().contiguous()
    config = {"peft_type": "LORA", "base_model_name_or_path": base_model, "r": rank, "lora_alpha": alpha,
              "lora_dropout": dropout, "target_modules": list(targets), "bias": "none", "task_type": "CAUSAL_LM",
              "inference_mode": True}
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory


@torch.no_grad()
def load_adapter(model: nn.Module, directory: str | Path) -> int:
    """Load PEFT-layout adapter tensors into an already-wrapped model; returns the tensors loaded."""
    from safetensors.torch import load_file

    from qwq.utils.errors import CheckpointError

    path = Path(directory) / "adapter_model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no adapter_model.safetensors")
    modules = lora_modules(model)
    loaded = 0
    for key, tensor in load_file(str(path)).items():
        name = key.removeprefix("base_model.model.")
        module_name, _, kind = name.rpartition(".lora_")
        if module_name not in modules:
            raise CheckpointError(f"{path}: tensor {key!r} targets module {module_name!r}, which has no adapter")
        target = modules[module_name].lora_A if kind.startswith("A") else modules[module_name].lora_B
        if target.shape != tensor.shape:
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, expected "
                                  f"{tuple(target.shape)}")
        target.copy_(tensor)
        loaded += 1
    return loaded


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the merged model (plain HF names) without changing `model`: what a rollout worker loads."""
    wrapped = lora_modules(model)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        module_name, _, leaf = key.rpartition(".")
        if module_name in wrapped and leaf in ("lora_A", "lora_B"):
            continue
        if module_name.endswith(".base") and module_name[:-len(".base")] in wrapped:
            owner = module_name[:-len(".base")]
            out[f"{owner}.{leaf}"] = wrapped[owner].merged_weight() if leaf == "weight" else tensor
            continue
        out[key] = tensor
    return out
