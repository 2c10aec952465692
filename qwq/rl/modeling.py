"""Models for training: the from-scratch tiny model with its trained tokenizer, or a loaded checkpoint; saving a
model directory that every `-m` consumer loads (HF weights + config + tokenizer files + QwQ chat template).

Also the two tensor helpers every trainer shares: right-padded batches of token sequences (causal attention needs no
mask when padding only follows the real tokens) and per-token log-probabilities of given continuations.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import torch

from qwq.config import ModelConfig, preset
from qwq.utils.errors import ConfigError

# Vocabulary rows are padded to a multiple of this (ids >= the tokenizer size are never sampled).
VOCAB_ROW_MULTIPLE = 64


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A byte-level BPE on `texts` that carries QwQ's added tokens (same contents, same special flags, same order)
    and QwQ's chat template, so the tiny model reads and writes exactly QwQ's format."""
    from qwq.tokenizer import QWQ_ADDED_TOKENS, QWQ_TEMPLATE, train_bpe

    special = [t.content for t in QWQ_ADDED_TOKENS if t.special]
    added = [t.content for t in QWQ_ADDED_TOKENS if not t.special]
    return train_bpe(texts, vocab_size, special, added_tokens=added, eos_token="<|im_end|>",
                     pad_token="<|endoftext|>", chat_template=QWQ_TEMPLATE, min_frequency=min_frequency)


def tiny_config(tokenizer, base: str = "tiny", overrides: dict | None = None) -> ModelConfig:
    """The preset architecture with the vocabulary and special ids of `tokenizer`."""
    rows = -(-len(tokenizer) // VOCAB_ROW_MULTIPLE) * VOCAB_ROW_MULTIPLE
    config = preset(base).replace(vocab_size=rows, eos_token_id=tokenizer.token_to_id("<|im_end|>"),
                                  pad_token_id=tokenizer.token_to_id("<|endoftext|>"), bos_token_id=None,
                                  generation={"temperature": 0.6, "top_p": 0.95, "top_k": 40, "max_new_tokens": 256,
                                              "do_sample": True})
    if overrides:
        try:
            config = config.replace(**overrides)
        except TypeError as exc:
            raise ConfigError(f"model.overrides: {exc}") from None
    return config


def new_model(config: ModelConfig, seed: int, dtype: torch.dtype = torch.float32):
    """A from-scratch model: N(0, 0.02) weights, with the projections that write into the residual stream (o_proj,
    down_proj) scaled by 1/sqrt(2 * layers) as in GPT-2, which makes the first hundred SFT steps markedly faster
    at this size (measured: arithmetic-fact accuracy after 250 steps 0.15 -> 0.45 with warmup + scaling)."""
    import math

    from qwq.model.qwen2 import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(config).to(dtype)
    model.init_weights(generator=torch.Generator().manual_seed(seed))
    scale = 1.0 / math.sqrt(2 * config.num_hidden_layers)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(scale)
    return model


def save_model_dir(model, config: ModelConfig, tokenizer, directory: str | Path) -> Path:
    """HF checkpoint + tokenizer files: what `-m DIR` (chat, serve, eval, generate) loads."""
    from qwq.model.weights import save_hf_checkpoint

    directory = Path(directory)
    save_hf_checkpoint(model, config, directory)
    tokenizer.save(directory)
    return directory


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (the determinism fingerprint)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def pad_batch(sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists to one length: ids [B, T] and the loss mask [B, T] (0 on padding)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.float32)
    for row, (seq, m) in enumerate(zip(sequences, masks)):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(m)] = torch.tensor(m, dtype=torch.float32)
    return ids, mask


def continuation_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, with_entropy: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log p(ids[t] | ids[<t]) where the mask is set: ([B, T-1] logprobs, [B, T-1] shifted mask, entropy or None).

    The LM head runs only on the masked positions, so a 152k-row vocabulary costs [completion tokens, V], not
    [B, T, V].
    """
    hidden = model.model(ids[:, :-1])
    targets, shifted = ids[:, 1:], mask[:, 1:]
    logp, entropy = head_logprobs(model, hidden, targets, shifted, with_entropy)
    return logp, shifted, entropy


def head_logprobs(model, hidden: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, with_entropy: bool = False,
                  vocab_limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(targets) from final hidden states [B, T, H] where `mask` [B, T] is set (0 elsewhere), and the entropy
    there (no gradient) when asked. The LM head runs on the masked positions only. `vocab_limit`: normalise over
    the first `vocab_limit` logits (the engine never samples the embedding's padding rows)."""
    import torch.nn.functional as F

    selected = mask > 0
    logits = model.lm_head(hidden[selected]).float()
    if vocab_limit is not None and vocab_limit < logits.shape[-1]:
        logits = logits[:, :vocab_limit]
    log_probs = F.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets[selected].unsqueeze(-1)).squeeze(-1)
    logp = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device).masked_scatter(selected, picked)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            values = -(log_probs.exp() * log_probs).sum(-1)
            entropy = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device).masked_scatter(
                selected, values)
    return logp, entropy


def make_engine(model, tokenizer, config: ModelConfig, template, batch: int, max_tokens: int, processes: int = 1):
    """An engine over `model` itself (the training model, or its rollout copy: rollouts always see the current
    weights). A bf16 model on CPU keeps its KV cache in fp32, so attention runs in fp32 (see PagedKVCache.attend).
    `processes` > 1: the requests of each call are split over that many one-thread processes sharing the model's
    memory (qwq.engine.workers; close() the engine when done)."""
    from qwq.engine.engine import Engine

    length = min(config.max_position_embeddings, max_tokens)
    param = next(iter(model.parameters()))
    kv_dtype = torch.float32 if param.dtype == torch.bfloat16 and param.device.type == "cpu" else None
    options = dict(max_batch_size=batch, max_model_len=length, kv_cache_tokens=batch * length, prefix_caching=True,
                   kv_dtype=kv_dtype)
    if processes > 1:
        from qwq.engine.workers import ProcessEngines

        return ProcessEngines(model, tokenizer, config, processes=processes, chat_template=template, **options)
    return Engine(model, tokenizer, config, chat_template=template, **options)


def rollout_processes(run, model) -> int:
    """How many one-thread processes sample GRPO rollouts: run.rollout_processes, where 0 means run.threads for a
    CPU model (each process one thread: measured 1.4x faster rollouts on two cores than one process with two
    threads) and 1 elsewhere."""
    from qwq.rl.config import check_rollout_settings

    check_rollout_settings(run)
    setting = run.rollout_processes
    if setting:
        return setting
    return max(1, run.threads) if next(iter(model.parameters())).device.type == "cpu" else 1
