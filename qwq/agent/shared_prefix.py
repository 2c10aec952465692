"""Training forwards that compute a prompt prefix shared by many sequences once (exact, with gradients).

Tool-use episodes all start with the same long system turn (the tool schemas in QwQ's template) and the same
question frame; at tiny-model scale that prefix is most of every sequence. Here the rows of a batch are grouped by
their first tokens, each group's longest common prefix runs once as a batch of one, and the rest of every row runs
on top of its keys and values (broadcast, so gradients from every row flow back into the one prefix computation).
The result equals a full forward of every row up to float rounding; the cost falls by about the shared fraction.

The model is driven through the KV-cache contract of qwq.model.kv: a cache object whose `attend` first records
the prefix's keys/values, then attends the suffix queries over prefix + suffix.
"""

from __future__ import annotations

from typing import Sequence

import torch

from qwq.model.kv import causal_attention
from qwq.rl.modeling import head_logprobs

GROUP_KEY_TOKENS = 16  # rows whose first tokens agree this far share one prefix computation


class _PrefixKV:
    """KVCache for one group: `record` keeps the prefix's k/v per layer; afterwards suffixes attend over them."""

    def __init__(self) -> None:
        self.prefix: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.recording = True

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.recording:
            self.prefix[layer] = (k, v)
            return causal_attention(q, k, v)
        pk, pv = self.prefix[layer]
        rows = q.shape[0]
        keys = torch.cat([pk.expand(rows, -1, -1, -1), k], dim=2)
        values = torch.cat([pv.expand(rows, -1, -1, -1), v], dim=2)
        return causal_attention(q, keys, values, prefix_len=pk.shape[2])

    def advance(self, num_tokens: int) -> None:  # the contract's commit step: nothing to do, no capacity kept
        pass


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for i in range(n):
        token = first[i]
        if any(r[i] != token for r in rows):
            return i
    return n


def group_rows(ids: torch.Tensor, lengths: Sequence[int]) -> list[list[int]]:
    """Row indices grouped by their first GROUP_KEY_TOKENS tokens (rows shorter than that form their own key)."""
    groups: dict[tuple, list[int]] = {}
    for row, length in enumerate(lengths):
        key = tuple(ids[row, :min(length, GROUP_KEY_TOKENS)].tolist())
        groups.setdefault(key, []).append(row)
    return list(groups.values())


def _group_hidden(decoder, ids: torch.Tensor, prefix: int) -> torch.Tensor:
    """Final hidden states [R, T, H] of the rows `ids` [R, T], which share their first `prefix` tokens."""
    length = ids.shape[1]
    if prefix < 2 or ids.shape[0] == 1 or prefix >= length:
        return decoder(ids)
    cache = _PrefixKV()
    head = decoder(ids[:1, :prefix], positions=torch.arange(prefix).unsqueeze(0), cache=cache)
    cache.recording = False
    positions = torch.arange(prefix, length).unsqueeze(0).expand(ids.shape[0], -1)
    tail = decoder(ids[:, prefix:], positions=positions, cache=cache)
    return torch.cat([head.expand(ids.shape[0], -1, -1), tail], dim=1)


def shared_prefix_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, with_entropy: bool = False,
                           vocab_limit: int | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Same contract as qwq.rl.modeling.continuation_logprobs (log p(ids[t] | ids[<t]) where the mask is set:
    [B, T-1] logprobs, [B, T-1] shifted mask, entropy or None), computed with shared prefixes run once. Each row
    runs only up to its last masked token (attention is causal: later tokens change nothing before them).

    `vocab_limit`: normalise over the first `vocab_limit` logits only, as the engine does when it samples (the
    embedding's padding rows beyond the tokenizer are never sampled), so these logprobs and the engine's agree."""
    inputs = ids[:, :-1]
    targets, shifted = ids[:, 1:], mask[:, 1:]
    lengths = [int(m.nonzero().max()) + 1 if m.any() else 1 for m in shifted]  # input tokens each row needs
    hidden = None
    for rows in group_rows(inputs, lengths):
        longest = max(lengths[r] for r in rows)
        sub = inputs[rows, :longest]
        prefix = common_prefix_length([sub[i, :lengths[r]].tolist() for i, r in enumerate(rows)])
        part = _group_hidden(model.model, sub, prefix)
        if hidden is None:
            hidden = part.new_zeros(inputs.shape[0], inputs.shape[1], part.shape[-1])
        hidden = hidden.index_put((torch.tensor(rows).unsqueeze(1), torch.arange(longest).unsqueeze(0)), part)
    logp, entropy = head_logprobs(model, hidden, targets, shifted, with_entropy, vocab_limit)
    return logp, shifted, entropy
