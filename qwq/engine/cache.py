"""KV caches for the engine: paged (blocks, copy-on-write forks, prefix caching) and static (one slot per sequence).

Both implement the model's cache protocol (qwq.model.kv: `attend(layer, q, k, v)` then `advance(n)`) for a batch of
sequences that each have their own length: the engine calls `begin(seq_ids, num_new)` before a forward, which
reserves room for `num_new` tokens per row and returns their absolute positions; every layer's `attend` then writes
the new k/v into their slots and attends each row over its own prefix plus its new tokens (causally); `advance`
commits them. A forward that is not advanced leaves the committed lengths unchanged.

Storage: per layer, keys and values are one pool [num_slots, Hkv, D] where slot = block * block_size + offset.
A sequence is a list of blocks (its block table). The per-forward slot indices and the attention mask are built once
in `begin` and shared by all layers, so each layer costs one scatter and one gather per tensor plus the attention.

Packed prefill (`begin_packed`): the new tokens of several sequences go through ONE forward as one row, one
sequence after the other, so the projections and the MLP see all of them at once (several short prompts make one
matrix big enough for the dense path) while attention stays within each sequence (one attention call per sequence).

Paged (vLLM's idea, our code): `fork` shares every block of the parent (n samples of one prompt pay one prefill);
a write into a block another sequence also holds copies it first (copy-on-write). Full blocks are registered under
a hash of (hash of the previous block, its tokens), so a new prompt that starts with the same tokens reuses them
(prefix caching); freed blocks keep their contents and hash until reallocated, least recently used first.
Static: block_size = max_len and one block per sequence: contiguous per-sequence buffers, the layout a compiled or
single-stream decode wants; a fork copies the parent's slot.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from qwq.config import ModelConfig
from qwq.model.kv import CacheFullError


@dataclass
class _SeqState:
    blocks: list[int] = field(default_factory=list)
    length: int = 0  # committed tokens
    tokens: list[int] = field(default_factory=list)  # committed token ids (for prefix-cache hashing)
    hashed_blocks: int = 0  # leading full blocks already registered in the prefix cache
    chain_hash: int = 0  # hash of the last registered block (the chain so far)


class PagedKVCache:
    """Block-paged K/V storage for many sequences. `num_blocks * block_size` token slots in total."""

    def __init__(self, config: ModelConfig, num_blocks: int, block_size: int = 16, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", prefix_caching: bool = True) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(f"PagedKVCache needs num_blocks > 0 and block_size > 0, got {num_blocks}, {block_size}")
        self.config, self.num_blocks, self.block_size = config, num_blocks, block_size
        self.dtype, self.device = dtype, torch.device(device)
        self.prefix_caching = prefix_caching
        shape = (num_blocks * block_size, config.num_key_value_heads, config.dim_per_head)
        # Uninitialised on purpose: memory the cache never reaches is never touched, so a generous cache costs
        # resident memory only as it fills. Slot 0 is zeroed: it pads the gathers of shorter rows (masked out, but
        # a masked NaN would still poison the weighted sum).
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        for pool in self.keys + self.values:
            pool[0].zero_()
        self.ref_counts = [0] * num_blocks
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))  # never used, or freed without a hash
        self._cached: OrderedDict[int, int] = OrderedDict()  # hash -> block, ref count 0, LRU first
        self._block_hash: dict[int, int] = {}  # block -> hash it is registered under
        self._hash_block: dict[int, int] = {}  # hash -> block (referenced or not)
        self.seqs: dict[int, _SeqState] = {}
        self._batch: list[int] | None = None
        self._num_new = 0  # tokens the current forward feeds per row (packed: in all)
        self._row_new: list[int] = []  # tokens each listed sequence gets from the current forward
        self._segments: list | None = None  # packed forward: (offset, length, key slots, mask) per sequence
        self.prefix_hits = 0  # tokens served from the prefix cache (for stats)

    # ---- capacity ----------------------------------------------------------------------------------------------
    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size

    def free_blocks(self) -> int:
        return len(self._free) + len(self._cached)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_grow(self, seq_ids: list[int], num_new: int = 1) -> bool:
        """Whether every listed sequence can take `num_new` more tokens (worst case: no sharing)."""
        need = 0
        for sid in seq_ids:
            st = self.seqs[sid]
            need += self.blocks_needed(st.length + num_new) - len(st.blocks)
            # a shared last block that gets written must be copied first
            if st.length % self.block_size and self.ref_counts[st.blocks[-1]] > 1:
                need += 1
        return need <= self.free_blocks()

    # ---- block pool --------------------------------------------------------------------------------------------
    def _take_block(self) -> int:
        if self._free:
            block = self._free.pop()
        elif self._cached:
            digest, block = self._cached.popitem(last=False)  # evict the least recently used cached block
            del self._block_hash[block]
            del self._hash_block[digest]
        else:
            raise CacheFullError(f"KV cache full: all {self.num_blocks} blocks of {self.block_size} tokens are in use")
        self.ref_counts[block] = 1
        return block

    def _release_block(self, block: int) -> None:
        self.ref_counts[block] -= 1
        if self.ref_counts[block] > 0:
            return
        digest = self._block_hash.get(block)
        if digest is not None:
            self._cached[digest] = block  # keep the contents for a later prompt with the same prefix
        else:
            self._free.append(block)

    def _acquire_cached(self, digest: int) -> int | None:
        block = self._hash_block.get(digest)
        if block is None:
            return None
        if self.ref_counts[block] == 0:
            del self._cached[digest]
        self.ref_counts[block] += 1
        return block

    def _block_digest(self, previous: int, tokens: list[int]) -> int:
        return hash((previous, tuple(tokens)))

    # ---- sequences ---------------------------------------------------------------------------------------------
    def add_sequence(self, seq_id: int, prompt: list[int] | None = None) -> int:
        """Register a sequence; with prefix caching, attach the cached blocks that hold a prefix of `prompt`.

        Returns how many leading prompt tokens are already cached (never the whole prompt: the last token is
        always recomputed so the caller gets its logits).
        """
        if seq_id in self.seqs:
            raise ValueError(f"sequence {seq_id} is already in the KV cache")
        state = _SeqState()
        self.seqs[seq_id] = state
        if not (self.prefix_caching and prompt):
            return 0
        usable = (len(prompt) - 1) // self.block_size
        for index in range(usable):
            chunk = prompt[index * self.block_size:(index + 1) * self.block_size]
            digest = self._block_digest(state.chain_hash, chunk)
            block = self._acquire_cached(digest)
            if block is None:
                break
            state.blocks.append(block)
            state.tokens.extend(chunk)
            state.chain_hash = digest
            state.hashed_blocks += 1
        state.length = len(state.tokens)
        self.prefix_hits += state.length
        return state.length

    def fork(self, parent_id: int, child_id: int) -> None:
        """The child starts as a copy of the parent; blocks are shared until one of them writes (copy-on-write)."""
        if child_id in self.seqs:
            raise ValueError(f"sequence {child_id} is already in the KV cache")
        parent = self.seqs[parent_id]
        for block in parent.blocks:
            self.ref_counts[block] += 1
        self.seqs[child_id] = _SeqState(list(parent.blocks), parent.length, list(parent.tokens),
                                        parent.hashed_blocks, parent.chain_hash)

    def free(self, seq_id: int) -> None:
        state = self.seqs.pop(seq_id, None)
        if state is None:
            return
        for block in state.blocks:
            self._release_block(block)

    def length(self, seq_id: int) -> int:
        return self.seqs[seq_id].length

    def truncate(self, seq_id: int, length: int) -> None:
        """Forget the tokens of `seq_id` from `length` on."""
        state = self.seqs[seq_id]
        if not 0 <= length <= state.length:
            raise ValueError(f"cannot truncate sequence {seq_id} of length {state.length} to {length}")
        keep = self.blocks_needed(length)
        for block in state.blocks[keep:]:
            self._release_block(block)
        del state.blocks[keep:]
        state.length = length
        del state.tokens[length:]
        if state.hashed_blocks * self.block_size > length:
            state.hashed_blocks = length // self.block_size
            state.chain_hash = 0
            for index in range(state.hashed_blocks):
                chunk = state.tokens[index * self.block_size:(index + 1) * self.block_size]
                state.chain_hash = self._block_digest(state.chain_hash, chunk)

    def _own_block(self, state: _SeqState, index: int) -> None:
        """Make block `index` of the sequence exclusively its own (copy it if shared)."""
        block = state.blocks[index]
        if self.ref_counts[block] == 1:
            digest = self._block_hash.pop(block, None)  # about to change: no longer the cached contents
            if digest is not None:
                del self._hash_block[digest]
            return
        fresh = self._take_block()
        src = slice(block * self.block_size, (block + 1) * self.block_size)
        dst = slice(fresh * self.block_size, (fresh + 1) * self.block_size)
        for pool in self.keys + self.values:
            pool[dst] = pool[src]
        self.ref_counts[block] -= 1
        state.blocks[index] = fresh

    # ---- one forward -------------------------------------------------------------------------------------------
    def begin(self, seq_ids: list[int], num_new: int, tokens: list[list[int]] | None = None) -> torch.Tensor:
        """Reserve room for `num_new` tokens in each listed sequence; returns their positions [B, num_new].

        `tokens` (the ids being fed, per row) are remembered for prefix caching once committed.
        """
        if num_new <= 0:
            raise ValueError(f"begin: num_new must be positive, got {num_new}")
        starts = [self._reserve(sid, num_new) for sid in seq_ids]
        self._batch, self._num_new, self._row_new = list(seq_ids), num_new, [num_new] * len(seq_ids)
        self._pending_tokens, self._segments = tokens, None
        self._prepare_indices(seq_ids, starts, num_new)
        return torch.tensor(starts, device=self.device)[:, None] + torch.arange(num_new, device=self.device)

    def _reserve(self, seq_id: int, num_new: int) -> int:
        """Make room for `num_new` more tokens of a sequence; returns where they start."""
        state = self.seqs[seq_id]
        start, end = state.length, state.length + num_new
        # every existing block this forward writes into must be this sequence's alone (copy-on-write)
        for index in range(start // self.block_size, min(len(state.blocks), self.blocks_needed(end))):
            self._own_block(state, index)
        while len(state.blocks) < self.blocks_needed(end):
            state.blocks.append(self._take_block())
        return start

    def begin_packed(self, seq_ids: list[int], tokens: list[list[int]]) -> torch.Tensor:
        """Reserve room for each sequence's new `tokens[row]`, fed together as one packed row; returns their
        positions [1, total]. The forward's input is the concatenation of `tokens` in this order."""
        if len(seq_ids) != len(tokens) or any(not t for t in tokens):
            raise ValueError("begin_packed: one non-empty token list per sequence")
        starts = [self._reserve(sid, len(t)) for sid, t in zip(seq_ids, tokens)]
        lengths = [len(t) for t in tokens]
        self._batch, self._num_new, self._row_new = list(seq_ids), sum(lengths), lengths
        self._pending_tokens = tokens
        segments, new_slots, offset = [], [], 0
        for sid, start, length in zip(seq_ids, starts, lengths):
            slots = self._slots(self.seqs[sid], 0, start + length).to(self.device)
            new_slots.append(slots[start:])
            if length == 1:
                mask = None  # one query sees every key
            elif start == 0:
                mask = "causal"
            else:
                key_pos = torch.arange(start + length, device=self.device)
                mask = key_pos[None, :] <= torch.arange(start, start + length, device=self.device)[:, None]
            segments.append((offset, length, slots, mask))
            offset += length
        self._write_index = torch.cat(new_slots)
        self._segments = segments
        positions = [torch.arange(start, start + length) for start, length in zip(starts, lengths)]
        return torch.cat(positions).to(self.device)[None]

    def _slots(self, state: _SeqState, start: int, end: int) -> torch.Tensor:
        positions = torch.arange(start, end)
        table = torch.tensor(state.blocks, dtype=torch.long)
        return table[positions // self.block_size] * self.block_size + positions % self.block_size

    def _prepare_indices(self, seq_ids: list[int], starts: list[int], num_new: int) -> None:
        total = [s + num_new for s in starts]
        width = max(total)
        # All rows at once: slot = table[row, position // block_size] * block_size + position % block_size, from
        # the block tables padded to one width (a per-row loop costs more than the forward for a big batch).
        tables = [self.seqs[sid].blocks for sid in seq_ids]
        table_width = max(len(t) for t in tables)
        table = torch.tensor([t + [0] * (table_width - len(t)) for t in tables], dtype=torch.long)
        positions = torch.arange(width)
        slots = table[:, positions // self.block_size] * self.block_size + positions % self.block_size
        ends = torch.tensor(total)[:, None]
        read = slots.masked_fill(positions[None] >= ends, 0)  # slot 0 pads the shorter rows (masked out)
        new_positions = torch.tensor(starts)[:, None] + torch.arange(num_new)
        self._write_index = slots.gather(1, new_positions).reshape(-1).to(self.device)
        self._read_index = read.to(self.device)  # [B, width]
        self._width = width
        # A single row whose blocks follow each other in the pool reads its keys as a view: no gather copy (the
        # usual case for one stream, whose blocks come off the free list in order; always so for the static cache).
        self._view_start = None
        if len(seq_ids) == 1:
            blocks = self.seqs[seq_ids[0]].blocks[: self.blocks_needed(width)]
            if blocks == list(range(blocks[0], blocks[0] + len(blocks))):
                self._view_start = blocks[0] * self.block_size
        uniform = all(s == starts[0] for s in starts)
        if num_new == 1 and uniform:
            self._mask = None  # every row sees all of its `width` keys
        elif uniform and starts[0] == 0:
            self._mask = "causal"
        else:
            key_pos = torch.arange(width, device=self.device)
            query_pos = torch.tensor(starts, device=self.device)[:, None] + torch.arange(num_new, device=self.device)
            self._mask = (key_pos[None, None, :] <= query_pos[:, :, None])[:, None]  # [B, 1, T, width]

    def slot_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """For the forward `begin` prepared (not a packed one): (write slots [B * num_new], where its new k/v go, row
        by row; read slots [B, width], each row's key slots in position order, padded with slot 0 past its end).
        Kernels that read the pools themselves (qwq.engine.fused_decode) use these instead of `attend`."""
        if self._batch is None or self._segments is not None:
            raise RuntimeError("slot_indices: no unpacked forward was prepared with begin()")
        return self._write_index, self._read_index

    def _gather(self, pool: torch.Tensor, batch: int) -> torch.Tensor:
        if self._view_start is not None:
            return pool[self._view_start:self._view_start + self._width].unsqueeze(0).transpose(1, 2)
        gathered = pool.index_select(0, self._read_index.view(-1))
        return gathered.view(batch, self._width, *pool.shape[1:]).transpose(1, 2)  # [B, Hkv, width, D]

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._batch is None:
            raise RuntimeError("PagedKVCache.attend called outside begin()/advance()")
        batch, num_new = k.shape[0], k.shape[2]
        rows = 1 if self._segments is not None else len(self._batch)
        if batch != rows or num_new != self._num_new:
            raise ValueError(f"attend got {batch} rows x {num_new} tokens; begin() reserved "
                             f"{rows} x {self._num_new}")
        flat_k = k.transpose(1, 2).reshape(batch * num_new, *k.shape[1:2], k.shape[3])
        flat_v = v.transpose(1, 2).reshape(batch * num_new, *v.shape[1:2], v.shape[3])
        self.keys[layer].index_copy_(0, self._write_index, flat_k.to(self.dtype))
        self.values[layer].index_copy_(0, self._write_index, flat_v.to(self.dtype))
        out_dtype = q.dtype
        if q.dtype != self.dtype and torch.promote_types(q.dtype, self.dtype) == self.dtype:
            # a wider cache (fp32 keys under a bf16 model) attends at its own precision: it is the more exact, and on
            # CPU bf16 SDPA decode is ~3x slower than fp32 (measured: [128 x 4 x 1 x 64] queries over ~100 keys)
            q = q.to(self.dtype)
        if self._segments is not None:
            return self._attend_packed(layer, q).to(out_dtype)
        keys = self._gather(self.keys[layer], batch).to(q.dtype)
        values = self._gather(self.values[layer], batch).to(q.dtype)
        gqa = q.shape[1] != keys.shape[1]
        if self._mask is None:
            out = F.scaled_dot_product_attention(q, keys, values, enable_gqa=gqa)
        elif isinstance(self._mask, str):
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=self._mask, enable_gqa=gqa)
        return out.to(out_dtype)

    def _attend_packed(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """Each sequence's queries over its own keys (cached prefix + its new tokens), one call per sequence."""
        gqa = q.shape[1] != self.keys[layer].shape[1]
        outputs = []
        for offset, length, slots, mask in self._segments:
            keys = self.keys[layer].index_select(0, slots).transpose(0, 1)[None].to(q.dtype)  # [1, Hkv, end, D]
            values = self.values[layer].index_select(0, slots).transpose(0, 1)[None].to(q.dtype)
            query = q[:, :, offset:offset + length]
            if mask is None:
                outputs.append(F.scaled_dot_product_attention(query, keys, values, enable_gqa=gqa))
            elif isinstance(mask, str):
                outputs.append(F.scaled_dot_product_attention(query, keys, values, is_causal=True, enable_gqa=gqa))
            else:
                outputs.append(F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, enable_gqa=gqa))
        return torch.cat(outputs, dim=2)

    def advance(self, num_tokens: int | None = None) -> None:
        """Commit the tokens written by the last forward (all `num_new` of them, for every row)."""
        if self._batch is None:
            raise RuntimeError("PagedKVCache.advance called without a forward to commit")
        if num_tokens is not None and num_tokens != self._num_new:
            raise ValueError(f"advance({num_tokens}): the last forward wrote {self._num_new} tokens per row")
        for row, sid in enumerate(self._batch):
            state = self.seqs[sid]
            state.length += self._row_new[row]
            if self._pending_tokens is not None:
                state.tokens.extend(self._pending_tokens[row])
                self._register_full_blocks(state)
        self._batch, self._pending_tokens, self._segments = None, None, None

    def discard(self) -> None:
        """Drop an uncommitted forward (blocks it reserved stay with their sequences, unused)."""
        self._batch, self._pending_tokens, self._segments = None, None, None

    def _register_full_blocks(self, state: _SeqState) -> None:
        if not self.prefix_caching or len(state.tokens) != state.length:
            return
        while (state.hashed_blocks + 1) * self.block_size <= state.length:
            index = state.hashed_blocks
            chunk = state.tokens[index * self.block_size:(index + 1) * self.block_size]
            digest = self._block_digest(state.chain_hash, chunk)
            block = state.blocks[index]
            if digest not in self._hash_block and block not in self._block_hash:
                self._hash_block[digest] = block
                self._block_hash[block] = digest
            state.chain_hash = digest
            state.hashed_blocks += 1

    def reset(self) -> None:
        """Forget every sequence and every cached prefix (e.g. after the model's weights changed)."""
        for sid in list(self.seqs):
            self.free(sid)
        self._cached.clear()
        self._block_hash.clear()
        self._hash_block.clear()
        self._free = list(range(self.num_blocks - 1, -1, -1))
        self.ref_counts = [0] * self.num_blocks


class StaticKVCache(PagedKVCache):
    """One preallocated contiguous slot of `max_len` tokens per sequence, at most `max_seqs` sequences.

    A single-row forward reads its keys as a view of its slot (no gather); a fork copies the parent's slot.
    """

    def __init__(self, config: ModelConfig, max_seqs: int, max_len: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, num_blocks=max_seqs, block_size=max_len, dtype=dtype, device=device,
                         prefix_caching=False)
        self.max_len = max_len

    def add_sequence(self, seq_id: int, prompt: list[int] | None = None) -> int:
        super().add_sequence(seq_id, None)
        self.seqs[seq_id].blocks.append(self._take_block())
        return 0

    def _check_room(self, seq_id: int, num_new: int) -> None:
        end = self.seqs[seq_id].length + num_new
        if end > self.max_len:
            raise CacheFullError(f"KV cache slot full: sequence {seq_id} would reach {end} tokens, the static "
                                 f"cache holds {self.max_len} per sequence")

    def begin(self, seq_ids: list[int], num_new: int, tokens: list[list[int]] | None = None) -> torch.Tensor:
        for sid in seq_ids:
            self._check_room(sid, num_new)
        return super().begin(seq_ids, num_new, None)

    def begin_packed(self, seq_ids: list[int], tokens: list[list[int]]) -> torch.Tensor:
        for sid, new in zip(seq_ids, tokens):
            self._check_room(sid, len(new))
        positions = super().begin_packed(seq_ids, tokens)
        self._pending_tokens = None  # no prefix caching: the token ids are not kept
        return positions
