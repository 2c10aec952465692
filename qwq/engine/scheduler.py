"""Continuous batching: requests join and leave the running batch between decode steps.

Each `step()`:
  1. drops aborted requests (their cache blocks are freed at once);
  2. admits waiting requests while the batch has rows, the cache has blocks and the step's prompt-token budget
     lasts (at least one request per step): each prompt is prefilled once, reusing cached prefix blocks, the short
     ones of a step packed into shared forwards and the long ones in chunks (qwq.engine.prefill); a request's n
     samples fork that prefill and each picks its first token;
  3. runs one decode step over every running sample (one new token per row), each row sampled with its own
     parameters and generator.
When the cache cannot hold one more token for every running sample, the most recently admitted request is preempted:
its blocks are freed and it waits at the head of the queue; when it comes back its samples are recomputed from
prompt + generated tokens (prefix caching makes the shared prompt cheap) and continue exactly where they were.

Failures are contained to the requests they concern: an exception while prefilling a request, in one of its
controllers or while sampling its row fails that request alone; a decode forward that raises fails the requests
of that batch. A failed request's samples end with finish_reason "error" (the closing event carries the message),
its cache blocks are freed, the error is logged, and the scheduler goes on serving the others.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Any, Sequence

import torch

from qwq.engine.cache import PagedKVCache
from qwq.model.kv import CacheFullError
from qwq.engine.outputs import TokenEvent
from qwq.engine.prefill import DEFAULT_PREFILL_BUDGET, plan_packs, split_waves
from qwq.engine.runner import ModelRunner
from qwq.engine.sampling import RowSampling, sample_batch
from qwq.engine.sequence import RequestState, SequenceState
from qwq.utils.errors import UsageError

log = logging.getLogger("qwq.engine")


class Scheduler:
    def __init__(self, runner: ModelRunner, cache: PagedKVCache, tokenizer: Any, eos_ids: Sequence[int],
                 vocab_limit: int, max_batch_size: int, max_model_len: int,
                 think_ids: tuple[int | None, int | None] = (None, None),
                 prefill_budget: int = DEFAULT_PREFILL_BUDGET) -> None:
        self.runner, self.cache, self.tokenizer = runner, cache, tokenizer
        self.prefill_budget = prefill_budget
        self.eos_ids, self.vocab_limit = tuple(eos_ids), vocab_limit
        self.max_batch_size, self.max_model_len = max_batch_size, max_model_len
        self.think_ids = think_ids
        self.waiting: deque[RequestState] = deque()
        self.running: list[RequestState] = []
        self.requests: dict[str, RequestState] = {}
        self._seq_ids = itertools.count()
        self.preemptions = 0

    # ---- requests ------------------------------------------------------------------------------------------------
    def add(self, request: RequestState) -> None:
        self.validate(request)
        if request.request_id in self.requests:
            raise UsageError(f"request id {request.request_id!r} is already in use")
        request.timings.prompt_tokens = len(request.prompt_ids)
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def validate(self, request: RequestState) -> None:
        """UsageError for a request this engine can never serve (reads only fixed settings: thread-safe)."""
        prompt = request.prompt_ids
        if not prompt:
            raise UsageError("the prompt is empty: give at least one token")
        bad = [t for t in prompt if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.vocab_limit]
        if bad:
            raise UsageError(f"prompt token id {bad[0]!r} is outside the vocabulary (0..{self.vocab_limit - 1})")
        if len(prompt) >= self.max_model_len:
            raise UsageError(f"the prompt has {len(prompt)} tokens; the model context is {self.max_model_len} "
                             f"(at least one token must remain to generate)")
        if request.params.n > self.max_batch_size:
            raise UsageError(f"n={request.params.n} samples exceed the engine's max_batch_size "
                             f"({self.max_batch_size})")
        if self.cache.blocks_needed(len(prompt) + 1) + request.params.n > self.cache.num_blocks:
            raise UsageError(f"the prompt ({len(prompt)} tokens, n={request.params.n}) does not fit the KV cache "
                             f"({self.cache.capacity_tokens} tokens)")

    def abort(self, request_id: str) -> None:
        request = self.requests.get(request_id)
        if request is not None:
            request.aborted = True

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _running_seqs(self) -> list[SequenceState]:
        return [s for r in self.running for s in r.seqs if not s.finished]

    def _release(self, request: RequestState) -> None:
        for seq in request.seqs:
            self.cache.free(seq.seq_id)

    def _retire_finished(self) -> None:
        for request in list(self.running):
            for seq in request.seqs:
                if seq.finished and seq.seq_id in self.cache.seqs:
                    self.cache.free(seq.seq_id)
            if request.finished:
                self.running.remove(request)
                self.requests.pop(request.request_id, None)

    def fail(self, request: RequestState, exc: BaseException, events: list[TokenEvent], during: str) -> None:
        """End `request` because processing it raised `exc`: its open samples finish with reason "error", its cache
        blocks are freed and it leaves the queues. The other requests are not touched."""
        if request.error is None:
            request.error = exc
            log.error("request %s failed during %s: %s: %s", request.request_id, during, type(exc).__name__, exc,
                      exc_info=exc)
        self.waiting = deque(r for r in self.waiting if r is not request)
        self.running = [r for r in self.running if r is not request]
        self._release(request)
        if not request.seqs:  # failed before its samples existed (e.g. a controller factory raised)
            self._create_seqs(request, with_controllers=False)
        message = f"{type(exc).__name__}: {exc}"
        now = time.perf_counter()
        for seq in request.seqs:
            if not seq.finished:
                events.append(seq.finish_event("error", now, message))
        self.requests.pop(request.request_id, None)

    def fail_all(self, exc: BaseException) -> list[TokenEvent]:
        """Last resort after a failure outside any one request (a bug in the bookkeeping): fail every request in
        flight and start again from an empty cache. Returns their closing events."""
        events: list[TokenEvent] = []
        for request in list(self.waiting) + list(self.running):
            self.fail(request, exc, events, "an engine step")
        self.requests.clear()
        self.cache.discard()
        self.cache.reset()
        return events

    # ---- the loop ----------------------------------------------------------------------------------------------
    def step(self) -> list[TokenEvent]:
        events: list[TokenEvent] = []
        self._drop_aborted(events)
        self._admit(events)
        self._retire_finished()
        if self.running:
            self._decode(events)
            self._retire_finished()
        return events

    def _drop_aborted(self, events: list[TokenEvent]) -> None:
        now = time.perf_counter()
        for request in [r for r in list(self.waiting) + self.running if r.aborted]:
            if request in self.waiting:
                self.waiting.remove(request)
            else:
                self.running.remove(request)
            self._release(request)
            if not request.seqs:  # never admitted: one closing event per sample
                self._create_seqs(request)
            for seq in request.seqs:
                if not seq.finished:
                    events.append(seq.finish_event("abort", now))
            self.requests.pop(request.request_id, None)

    def _create_seqs(self, request: RequestState, with_controllers: bool = True) -> None:
        device = self.runner.device
        request.seqs = [SequenceState(next(self._seq_ids), request, i, self.tokenizer, self.eos_ids, self.think_ids,
                                      device, with_controllers) for i in range(request.params.n)]

    def _rows_in_use(self) -> int:
        return len(self._running_seqs())

    def _admit(self, events: list[TokenEvent]) -> None:
        rows_used, free_blocks = self._rows_in_use(), self.cache.free_blocks()
        admitted, spent, new = 0, 0, []
        while self.waiting:
            request = self.waiting[0]
            live = [s for s in request.seqs if not s.finished] if request.seqs else None
            rows = len(live) if live is not None else request.params.n
            busy = bool(self.running or new)
            if busy and rows_used + rows > self.max_batch_size:
                break
            tokens_needed = len(request.prompt_ids) + (max(len(s.generated) for s in live) if live else 0)
            blocks = self.cache.blocks_needed(tokens_needed + 1) + rows
            if busy and blocks > free_blocks:
                break
            if admitted and spent + tokens_needed > self.prefill_budget:
                break
            self.waiting.popleft()
            request.timings.queued_s += time.perf_counter() - request.arrival if not request.admitted else 0.0
            rows_used, free_blocks, spent, admitted = rows_used + rows, free_blocks - blocks, spent + tokens_needed, \
                admitted + 1
            if live is None:
                new.append(request)
                continue
            try:
                self._resume(request, live, events)
            except Exception as exc:  # noqa: BLE001 - contained to this request
                self.fail(request, exc, events, "prefill")
                continue
            self.running.append(request)
        if new:
            self._start(new, events)

    def _start(self, requests: list[RequestState], events: list[TokenEvent]) -> None:
        """Prefill new prompts (packed where short, see qwq.engine.prefill), fork each for its n samples and pick
        each sample's first token."""
        for wave in split_waves(requests, self.cache.block_size, self.cache.prefix_caching):
            ready = []
            for request in wave:
                request.admitted = True
                try:
                    self._create_seqs(request)
                    cached = self.cache.add_sequence(request.seqs[0].seq_id, request.prompt_ids)
                except Exception as exc:  # noqa: BLE001
                    self.fail(request, exc, events, "prefill")
                    continue
                request.timings.cached_prompt_tokens = cached
                ready.append((request, cached))
            logits = self._prefill(ready, events)
            forked: list[RequestState] = []
            for request, _ in ready:
                if request.error is not None:
                    continue
                try:
                    first = request.seqs[0]
                    for seq in request.seqs[1:]:
                        self.cache.fork(first.seq_id, seq.seq_id)
                except Exception as exc:  # noqa: BLE001
                    self.fail(request, exc, events, "prefill")
                    continue
                forked.append(request)
            if forked:  # every sample of the wave picks its first token in one batch
                seqs = [seq for request in forked for seq in request.seqs]
                rows = torch.cat([logits[r.request_id].expand(len(r.seqs), -1) for r in forked])
                self._choose(seqs, rows, events)
            self.running.extend(r for r in forked if r.error is None)

    def _prefill(self, ready: list[tuple[RequestState, int]], events: list[TokenEvent]) -> dict[str, torch.Tensor]:
        """Logits [1, V] of each prompt's last token, by request id. A packed forward that raises is retried one
        prompt at a time, so only the prompts that fail alone fail."""
        logits: dict[str, torch.Tensor] = {}
        packs = plan_packs([len(r.prompt_ids) - cached for r, cached in ready], self.runner.prefill_chunk)
        for pack in packs:
            members = [ready[i] for i in pack]
            if len(members) == 1:
                self._prefill_alone(*members[0], logits, events)
                continue
            start = time.perf_counter()
            try:
                rows = self.runner.prefill_packed([r.seqs[0].seq_id for r, _ in members],
                                                  [r.prompt_ids for r, _ in members], [c for _, c in members])
            except Exception:  # noqa: BLE001 - find out whose prompt it was
                for request, cached in members:
                    self._prefill_alone(request, cached, logits, events)
                continue
            elapsed = time.perf_counter() - start
            for j, (request, _) in enumerate(members):
                request.timings.prefill_s += elapsed
                logits[request.request_id] = rows[j:j + 1]
        return logits

    def _prefill_alone(self, request: RequestState, cached: int, logits: dict, events: list[TokenEvent]) -> None:
        start = time.perf_counter()
        try:
            logits[request.request_id] = self.runner.prefill(request.seqs[0].seq_id, request.prompt_ids, cached)
        except Exception as exc:  # noqa: BLE001
            self.fail(request, exc, events, "prefill")
        request.timings.prefill_s += time.perf_counter() - start

    def _resume(self, request: RequestState, live: list[SequenceState], events: list[TokenEvent]) -> None:
        """Recompute the cache of preempted samples (everything but their last, not yet fed token). A sample whose
        context no longer fits the whole cache ends with reason "length"."""
        start = time.perf_counter()
        for seq in live:
            context = request.prompt_ids + seq.generated[:-1]
            try:
                cached = self.cache.add_sequence(seq.seq_id, context)
                self.runner.prefill(seq.seq_id, context, cached)
            except CacheFullError:
                self.cache.free(seq.seq_id)
                events.append(seq.finish_event("length", time.perf_counter(), "kv_cache_full"))
        request.timings.prefill_s += time.perf_counter() - start

    def _preempt_for_decode(self, events: list[TokenEvent]) -> None:
        while self.running and not self.cache.can_grow([s.seq_id for s in self._running_seqs()], 1):
            victim = self.running[-1]
            if len(self.running) == 1:  # alone and still out of room: nothing to wait for
                now = time.perf_counter()
                for seq in victim.seqs:
                    if not seq.finished:
                        events.append(seq.finish_event("length", now, "kv_cache_full"))
                return
            self.running.pop()
            self._release(victim)
            self.waiting.appendleft(victim)
            self.preemptions += 1

    def _decode(self, events: list[TokenEvent]) -> None:
        now = time.perf_counter()
        for seq in self._running_seqs():  # a sample at the context limit cannot take another token
            if len(seq.request.prompt_ids) + len(seq.generated) >= self.max_model_len:
                events.append(seq.finish_event("length", now, "max_model_len"))
        self._retire_finished()
        self._preempt_for_decode(events)
        self._retire_finished()
        seqs = self._running_seqs()
        if not seqs:
            return
        start = time.perf_counter()
        try:
            logits = self.runner.decode([s.seq_id for s in seqs], [s.last_token for s in seqs])
        except Exception as exc:  # noqa: BLE001 - every request of the batch was in this forward
            for request in {id(s.request): s.request for s in seqs}.values():
                self.fail(request, exc, events, "a decode step")
            return
        elapsed = time.perf_counter() - start
        for request in {id(s.request): s.request for s in seqs}.values():
            request.timings.decode_s += elapsed
        self._choose(seqs, logits, events)

    def _choose(self, seqs: list[SequenceState], logits: torch.Tensor, events: list[TokenEvent]) -> None:
        """Controllers, then sampling, then appending, for each row of `logits` [B, V]. A controller or a row's
        sampling that raises fails that row's request only."""
        rows, sampled_rows, forced = [], [], {}
        for row, seq in enumerate(seqs):
            if seq.finished:
                continue
            try:
                bias, token = seq.before_sample(logits[row]) if (seq.controllers or seq.forced) else (None, None)
            except Exception as exc:  # noqa: BLE001
                self.fail(seq.request, exc, events, "a controller's before_sample")
                continue
            if seq.finished:  # a controller stopped it
                events.append(seq._final_event(time.perf_counter()))
                continue
            if token is not None:
                forced[row] = token
            else:
                sampled_rows.append(row)
                rows.append(RowSampling(seq.request.params, seq.generator, seq.generated, bias,
                                        seq.counts_for(logits.shape[-1], logits.device)))
        picks = self._sample(seqs, logits, sampled_rows, rows, events) if sampled_rows else {}
        want_logprobs = any(s.request.params.logprobs or s.request.params.top_logprobs for s in seqs)
        if forced and want_logprobs:
            log_probs = torch.log_softmax(logits[list(forced)].float()[:, : self.vocab_limit], dim=-1)
            for j, (row, token) in enumerate(forced.items()):
                value = float(log_probs[j, token]) if token < self.vocab_limit else float("-inf")
                picks[row] = (token, value, None)
        now = time.perf_counter()
        for row, seq in enumerate(seqs):
            if seq.finished or (row not in forced and row not in picks):
                continue  # done before this step, or its request failed during it
            try:
                if row in forced:
                    token, logprob, top = picks.get(row, (forced[row], None, None))
                    events.extend(seq.accept(token, True, logprob, top, now))
                else:
                    token, logprob, top = picks[row]
                    events.extend(seq.accept(token, False, logprob, top, now))
            except Exception as exc:  # noqa: BLE001
                self.fail(seq.request, exc, events, "a controller's on_token")

    def _sample(self, seqs: list[SequenceState], logits: torch.Tensor, sampled_rows: list[int],
                rows: list[RowSampling], events: list[TokenEvent]) -> dict[int, tuple]:
        """{row: (token, logprob, top logprobs)} for the sampled rows, all in one batch. If the batch raises (one
        row's controllers masked every token, say), each row is sampled alone; sample_batch checks every row before
        any generator draws, so the rows that can be sampled get exactly the tokens the batch would have given them."""
        batch = logits if len(sampled_rows) == logits.shape[0] else logits[sampled_rows]
        try:
            out = sample_batch(batch, rows, self.vocab_limit)
            return {row: (out.token_ids[j], out.logprobs[j] if out.logprobs else None,
                          out.top_logprobs[j] if out.top_logprobs else None) for j, row in enumerate(sampled_rows)}
        except Exception:  # noqa: BLE001 - find the row(s) it came from
            pass
        picks = {}
        for j, row in enumerate(sampled_rows):
            if seqs[row].finished:
                continue
            try:
                out = sample_batch(logits[row:row + 1], [rows[j]], self.vocab_limit)
            except Exception as exc:  # noqa: BLE001
                self.fail(seqs[row].request, exc, events, "sampling")
                continue
            picks[row] = (out.token_ids[0], out.logprobs[0] if out.logprobs else None,
                          out.top_logprobs[0] if out.top_logprobs else None)
        return picks
