"""Helpers shared by the engine tests: tiny configs, random models, the no-cache greedy reference."""

from __future__ import annotations

import torch

from qwq.config import ModelConfig


def tiny_config(vocab_size: int = 320, **overrides) -> ModelConfig:
    base = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32")
    base.update(overrides)
    return ModelConfig(**base)


def make_model(config: ModelConfig | None = None, seed: int = 0, std: float = 0.3):
    from qwq.model.qwen2 import Qwen2ForCausalLM

    config = config or tiny_config()
    generator = torch.Generator().manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.init_weights(std=std, generator=generator)
    return model.eval()


def reference_greedy(model, prompt: list[int], steps: int, vocab_limit: int | None = None) -> list[int]:
    """Greedy continuation by repeated full forwards (no cache): the ground truth for the engine."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids]))[0, -1]
            if vocab_limit is not None:
                logits = logits[:vocab_limit]
            ids.append(int(logits.argmax()))
    return ids[len(prompt):]
