"""A fake model whose logits follow a script, plugged into the real Engine (tests of the reasoning controls).

`ScriptedModel(script, config)` answers every forward with logits that put `script(context)` on top, where
`context` is the row's whole token sequence (prompt + everything generated, forced tokens included). The context is
read from the engine's paged KV cache: the committed token ids of each sequence of the forward (`seqs[id].tokens`)
plus the ids being fed (a packed prefill feeds several sequences in one row: `_row_new` tokens each). A script may return a token id or a {token: logit} dict (a distribution for sampling).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from qwq.config import ModelConfig

Script = Callable[[list[int]], "int | dict[int, float]"]
TOP_LOGIT = 20.0


def scripted_config(vocab_size: int, max_position_embeddings: int = 8192) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=max_position_embeddings,
                       rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32")


class ScriptedModel(nn.Module):
    def __init__(self, script: Script, config: ModelConfig) -> None:
        super().__init__()
        self.script, self.config = script, config
        self.embed = nn.Embedding(1, 1)  # gives the engine a dtype and a device; never used
        self.calls = 0

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def _contexts(self, ids: torch.Tensor, cache) -> list[list[int]]:
        batch = getattr(cache, "_batch", None)
        if batch is None or not hasattr(cache, "seqs"):
            raise RuntimeError("ScriptedModel reads the paged KV cache's sequences; the cache API changed")
        if ids.shape[0] == 1 and len(batch) > 1:  # a packed prefill: the sequences' new tokens one after another
            flat, fed = ids[0].tolist(), []
            for length in cache._row_new:
                fed, flat = fed + [flat[:length]], flat[length:]
        else:
            fed = [ids[row].tolist() for row in range(len(batch))]
        return [list(cache.seqs[sid].tokens) + fed[row] for row, sid in enumerate(batch)]

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None, cache=None,
                logits_slice: int | None = None) -> torch.Tensor:
        self.calls += 1
        contexts = self._contexts(ids, cache)
        logits = torch.zeros(len(contexts), 1, self.config.vocab_size)
        for row, context in enumerate(contexts):
            choice = self.script(context)
            if isinstance(choice, dict):
                logits[row, 0] = -1e9
                for token, value in choice.items():
                    logits[row, 0, token] = value
            else:
                logits[row, 0, int(choice)] = TOP_LOGIT
        return logits


class TextScript:
    """Thinking then answer, in token ids. While `</think>` (the id) is not in the generated tokens, emit
    thinking[i] for the i-th generated token (past its end: `</think>`); after it, the answer (then EOS)."""

    def __init__(self, prompt_len: int, thinking: Sequence[int], answer: Sequence[int], close_id: int,
                 eos_id: int) -> None:
        self.prompt_len, self.thinking, self.answer = prompt_len, list(thinking), list(answer)
        self.close_id, self.eos_id = close_id, eos_id

    def __call__(self, context: list[int]) -> int:
        generated = context[self.prompt_len:]
        if self.close_id in generated:
            after = len(generated) - 1 - generated[::-1].index(self.close_id)
            k = len(generated) - after - 1
            return self.answer[k] if k < len(self.answer) else self.eos_id
        i = len(generated)
        return self.thinking[i] if i < len(self.thinking) else self.close_id
