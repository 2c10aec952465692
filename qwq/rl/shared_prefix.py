"""Policy-gradient forwards that run each group's prompt once and pack completions by length (exact, with gradients).

A GRPO batch is G prompts x n completions. The plain way right-pads every prompt + completion to the batch's longest
sequence and runs [B, T] through the model: the prompt is computed n times and the short completions pay for the
longest one. At tiny-model scale that waste is most of the update (measured on a stage-1 batch: 16 prompts of ~28
tokens, 128 completions of 4-96 tokens; see benchmarks/bench_trl_grpo.py). Here

  1. the G prompts run once, as one right-padded batch [G, P] (causal attention: padding after a prompt changes
     nothing before it), keeping every layer's keys and values;
  2. the completions, sorted by length into micro-batches of similar lengths, run on top of their own prompt's keys
     and values (gathered per row, so gradients from all n completions flow back into the one prompt computation),
     at positions that continue their prompt;
  3. the LM head runs only on the completion tokens that carry loss.

The result equals a full forward of every prompt + completion up to float rounding (tests/rl/test_shared_prefix.py).
The model is driven through the KV-cache contract of qwq.model.kv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from qwq.model.kv import attention
from qwq.rl.modeling import head_logprobs


@dataclass
class GroupedBatch:
    """Prompts stored once; completions as rows that point at their prompt.

    prompts     [G, P] right-padded prompt ids; prompt_lengths [G]
    group       [B] the prompt row of each completion
    completions [B, C] right-padded completion ids; mask [B, C] 1 on tokens that carry loss
    advantages  [B]
    """

    prompts: torch.Tensor
    prompt_lengths: torch.Tensor
    group: torch.Tensor
    completions: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor

    @property
    def rows(self) -> int:
        return self.completions.shape[0]

    @property
    def completion_lengths(self) -> torch.Tensor:
        """Tokens each row needs: up to its last loss-carrying token (later tokens change nothing before them)."""
        positions = torch.arange(1, self.mask.shape[1] + 1).expand_as(self.mask)
        return (positions * (self.mask > 0)).amax(dim=1)

    def micro_batches(self, size: int, slack: float = 1.25) -> list[torch.Tensor]:
        """Row indices in chunks of at most `size` rows, longest completions first; a chunk also ends when padding
        it to its first (longest) row would cost more than `slack` x its real tokens, so outliers travel alone."""
        lengths = self.completion_lengths
        order = torch.argsort(lengths, descending=True, stable=True).tolist()
        chunks, current, real = [], [], 0
        for row in order:
            length = max(1, int(lengths[row]))
            if current and (len(current) >= size or
                            (len(current) + 1) * max(1, int(lengths[current[0]])) > slack * (real + length)):
                chunks.append(torch.tensor(current))
                current, real = [], 0
            current.append(row)
            real += length
        if current:
            chunks.append(torch.tensor(current))
        return chunks


def grouped_batch(prompts: Sequence[Sequence[int]], group: Sequence[int], completions: Sequence[Sequence[int]],
                  masks: Sequence[Sequence[int]], advantages: Sequence[float], pad_id: int) -> GroupedBatch:
    if not (len(group) == len(completions) == len(masks) == len(advantages)):
        raise ValueError("group, completions, masks and advantages must have one entry per row")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if any(len(c) != len(m) or not c for c, m in zip(completions, masks)):
        raise ValueError("every completion needs >= 1 token and a mask of its length")
    prompt_ids = torch.full((len(prompts), max(len(p) for p in prompts)), pad_id, dtype=torch.long)
    for row, p in enumerate(prompts):
        prompt_ids[row, :len(p)] = torch.tensor(p, dtype=torch.long)
    width = max(len(c) for c in completions)
    ids = torch.full((len(completions), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(completions), width), dtype=torch.float32)
    for row, (c, m) in enumerate(zip(completions, masks)):
        ids[row, :len(c)] = torch.tensor(c, dtype=torch.long)
        mask[row, :len(m)] = torch.tensor(m, dtype=torch.float32)
    return GroupedBatch(prompt_ids, torch.tensor([len(p) for p in prompts]), torch.tensor(list(group)), ids, mask,
                        torch.tensor(list(advantages), dtype=torch.float32))


class PromptState:
    """Every layer's keys/values and the last hidden state of the batch's prompts, computed once per update.

    With gradients on, the micro-batches use detached copies (leaves) of these tensors, so each micro-batch's
    backward stops at them and accumulates into their .grad; `backward()` then runs the prompt forward's backward
    once with those accumulated gradients. Exact, and the prompts cost one forward + one backward per update
    however the completions are chunked."""

    def __init__(self, model, batch: GroupedBatch) -> None:
        width = int(batch.prompt_lengths.max())
        recorder = _PromptKV()
        positions = torch.arange(width).expand(batch.prompts.shape[0], -1)
        hidden = model.model(batch.prompts[:, :width], positions=positions, cache=recorder)
        # the first completion token is predicted from the prompt's last position
        last = hidden[torch.arange(hidden.shape[0]), batch.prompt_lengths - 1]  # [G, H]
        self.lengths, self.width = batch.prompt_lengths, width
        self._outputs = [last] + [t for layer in sorted(recorder.prompt) for t in recorder.prompt[layer]]
        self.tracks_grad = last.requires_grad
        self._leaves = [t.detach().requires_grad_(True) if self.tracks_grad else t for t in self._outputs]
        self.last = self._leaves[0]
        self.kv = {layer: (self._leaves[1 + 2 * i], self._leaves[2 + 2 * i])
                   for i, layer in enumerate(sorted(recorder.prompt))}

    def backward(self) -> None:
        """Push the gradients the micro-batches left on the leaves through the prompt forward (once)."""
        if not self.tracks_grad:
            return
        pairs = [(out, leaf.grad) for out, leaf in zip(self._outputs, self._leaves) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


class _PromptKV:
    """KVCache for the two kinds of forward: record every layer's prompt k/v [G, Hkv, P, D] (causal over the
    prompt), or attend completion queries over (their prompt's keys up to its length) + (their own keys, causal)."""

    def __init__(self, state: PromptState | None = None, rows: torch.Tensor | None = None, tail: int = 0) -> None:
        self.prompt: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.state, self.rows = state, rows
        if state is not None:
            sees_prompt = torch.arange(state.width)[None, :] < state.lengths[rows][:, None]  # [R, P]
            causal = torch.ones(tail, tail, dtype=torch.bool).tril()  # [T, T]
            self.mask = torch.cat([sees_prompt[:, None, :].expand(-1, tail, -1),
                                   causal[None].expand(len(rows), -1, -1)], dim=2).unsqueeze(1)

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.state is None:
            self.prompt[layer] = (k, v)
            return attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])
        pk, pv = self.state.kv[layer]
        keys = torch.cat([pk.index_select(0, self.rows), k], dim=2)
        values = torch.cat([pv.index_select(0, self.rows), v], dim=2)
        return attention(q, keys, values, attn_mask=self.mask,
                                              enable_gqa=q.shape[1] != keys.shape[1])

    def advance(self, num_tokens: int) -> None:  # the contract's commit step: no capacity kept, nothing to do
        pass


def grouped_logprobs(model, batch: GroupedBatch, rows: torch.Tensor, prompts: PromptState | None = None,
                     with_entropy: bool = False, vocab_limit: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log p(completion token | prompt, earlier completion tokens) for the completion rows `rows` of `batch`:
    ([R, C'] logprobs, [R, C'] loss mask, [R, C'] entropy or None), C' = the longest of these rows.

    `prompts`: the batch's PromptState (computed here when None; with gradients, call its backward() after the
    micro-batches' backward). `vocab_limit`: normalise over the first `vocab_limit` logits only (the engine samples
    from the tokenizer's ids; embedding rows beyond them are padding), so these logprobs and the engine's agree."""
    prompts = prompts if prompts is not None else PromptState(model, batch)
    width = max(1, int(batch.completion_lengths[rows].max()))
    targets = batch.completions[rows, :width]
    mask = batch.mask[rows, :width]
    prompt_rows = batch.group[rows]
    first = prompts.last.index_select(0, prompt_rows).unsqueeze(1)  # [R, 1, H]
    if width > 1:
        tail = width - 1
        positions = prompts.lengths[prompt_rows][:, None] + torch.arange(tail)[None, :]
        rest = model.model(targets[:, :tail], positions=positions, cache=_PromptKV(prompts, prompt_rows, tail))
        hidden = torch.cat([first, rest], dim=1)
    else:
        hidden = first
    logp, entropy = head_logprobs(model, hidden, targets, mask, with_entropy, vocab_limit)
    return logp, mask, entropy
