"""Runs the model over the engine's KV cache: chunked prefill of one sequence, packed prefill of several short
ones in one forward, batched one-token decode steps.

The model is called eagerly by default. `compile=True` wraps the decode forward in `torch.compile` (dynamic shapes,
so batch size and context length changes do not recompile each step); the first steps then pay the compile time.
It does not pay on CPU today (measured on the 0.5B int4 model, one thread: 77 ms per step compiled vs 62-69 ms
eager): the quantized matmuls stay opaque kernels, which are ~85% of a step, and dynamo breaks the graph around the
cache's `attend` and specializes it per layer index, hitting its recompile limit after 8 layers.
Weights may change between calls (RL): the only thing derived from them here is the fused decoder's copy of a dense
model's weights (concatenated, packed), which it rebuilds when a weight tensor is replaced or written in place, and
after `weights_changed()`.

A Qwen2 on CPU, weight-only quantized or dense bf16/fp32, decodes through `FusedDecoder` (qwq.engine.fused_decode:
all decoder layers in one kernel call) when it fits; `compile` and every other model keep the module path.
"""

from __future__ import annotations

import torch
from torch import nn

from qwq.engine.cache import PagedKVCache
from qwq.engine.fused_decode import FusedDecoder

DEFAULT_PREFILL_CHUNK = 512


class ModelRunner:
    def __init__(self, model: nn.Module, cache: PagedKVCache, prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
                 compile: bool | str = False) -> None:
        if prefill_chunk <= 0:
            raise ValueError(f"prefill_chunk must be positive, got {prefill_chunk}")
        self.model, self.cache, self.prefill_chunk = model, cache, prefill_chunk
        self.device = cache.device
        self._decode_forward = self._forward
        self.fused_decoder = None if compile else FusedDecoder.for_model(model, cache)
        if compile:  # True: inductor; a string names the backend ("eager" traces without generating code)
            backend = "inductor" if compile is True else compile
            self._decode_forward = torch.compile(self._forward, dynamic=True, backend=backend)

    def weights_changed(self) -> None:
        """The model's weights changed (perhaps in another process, where no version counter shows it)."""
        if self.fused_decoder is not None:
            self.fused_decoder.weights_changed()

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, last_only: bool) -> torch.Tensor:
        logits = self.model(ids, positions=positions, cache=self.cache, logits_slice=1 if last_only else None)
        return logits[:, -1]

    @torch.inference_mode()
    def prefill(self, seq_id: int, tokens: list[int], start: int = 0) -> torch.Tensor:
        """Feed tokens[start:] to a sequence whose cache holds tokens[:start]; logits [1, V] of the last token."""
        if start >= len(tokens):
            raise ValueError(f"prefill: nothing to compute ({start} of {len(tokens)} tokens cached)")
        logits = None
        for begin in range(start, len(tokens), self.prefill_chunk):
            chunk = tokens[begin:begin + self.prefill_chunk]
            positions = self.cache.begin([seq_id], len(chunk), [chunk])
            ids = torch.tensor([chunk], device=self.device)
            try:
                logits = self._forward(ids, positions, last_only=True)
            except BaseException:
                self.cache.discard()
                raise
            self.cache.advance(len(chunk))
        return logits

    @torch.inference_mode()
    def prefill_packed(self, seq_ids: list[int], prompts: list[list[int]], starts: list[int]) -> torch.Tensor:
        """Feed prompts[i][starts[i]:] to sequence seq_ids[i] (whose cache holds the tokens before it), all in one
        packed forward; logits [B, V] of each prompt's last token."""
        pieces = [tokens[start:] for tokens, start in zip(prompts, starts)]
        if any(not piece for piece in pieces):
            raise ValueError("prefill_packed: every sequence needs at least one token to compute")
        positions = self.cache.begin_packed(seq_ids, pieces)
        ids = torch.tensor([[t for piece in pieces for t in piece]], device=self.device)
        ends = torch.tensor([len(p) for p in pieces]).cumsum(0) - 1
        try:
            logits = self.model(ids, positions=positions, cache=self.cache, logits_slice=ends[None].to(self.device))
        except BaseException:
            self.cache.discard()
            raise
        self.cache.advance()
        return logits.reshape(len(seq_ids), logits.shape[-1])

    @torch.inference_mode()
    def decode(self, seq_ids: list[int], tokens: list[int]) -> torch.Tensor:
        """One token per sequence; logits [B, V] of the next position of each."""
        positions = self.cache.begin(seq_ids, 1, [[t] for t in tokens])
        ids = torch.tensor(tokens, device=self.device)[:, None]
        try:
            if self.fused_decoder is not None:
                logits = self.fused_decoder(ids, positions)
            else:
                logits = self._decode_forward(ids, positions, last_only=False)
        except BaseException:
            self.cache.discard()
            raise
        self.cache.advance(1)
        return logits
