"""Pre-flight checks before any training starts: will it fit in memory, are the datasets there.

The memory estimate is deliberately simple and pessimistic (fp32 master weights, AdamW moments, gradients only for
trainable tensors, a frozen reference copy when KL is on, activations of one micro-batch through every layer, the
selected logits, the engine's KV cache). It exists to turn "the machine swapped for an hour, then the OOM killer
came" into a one-line error naming the knobs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qwq.config import DTYPE_BYTES, ModelConfig
from qwq.utils.errors import ConfigError

GIB = 1024**3


def machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    optimizer: int
    reference: int
    activations: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.reference + self.activations + self.kv_cache

    def describe(self) -> str:
        parts = [f"{name} {getattr(self, name) / GIB:.2f}" for name in
                 ("weights", "optimizer", "reference", "activations", "kv_cache")]
        return f"{self.total / GIB:.2f} GiB ({', '.join(parts)})"


def estimate_memory(config: ModelConfig, dtype: str, trainable_params: int, micro_batch: int, sequence_length: int,
                    kv_sequences: int = 0, with_reference: bool = False) -> MemoryEstimate:
    elem = DTYPE_BYTES.get(dtype, 4)
    total_params = config.num_parameters()
    weights = total_params * elem
    optimizer = trainable_params * (4 + 4 + 4)  # grad + two AdamW moments, fp32
    reference = weights if with_reference else 0
    tokens = micro_batch * sequence_length
    # per layer and token: residual, norms, q/k/v/o, MLP up/gate/act (saved for backward) ~ 4h + 3i floats
    per_token_layer = (4 * config.hidden_size + 3 * config.intermediate_size) * 4
    activations = tokens * per_token_layer * config.num_hidden_layers + tokens * config.vocab_size * 4 * 2
    kv_cache = kv_sequences * sequence_length * config.kv_bytes_per_token(dtype)
    return MemoryEstimate(weights, optimizer, reference, activations, kv_cache)


def check_memory(estimate: MemoryEstimate, limit_gb: float, what: str) -> None:
    limit = int(limit_gb * GIB) if limit_gb else int(0.8 * machine_memory_bytes())
    if limit and estimate.total > limit:
        raise ConfigError(f"{what}: estimated peak memory {estimate.describe()} exceeds the {limit / GIB:.1f} GiB "
                          f"allowed (run.max_memory_gb, default 80% of RAM); lower micro_batch / max_new_tokens / "
                          f"group_size, enable LoRA, or use a smaller model")
