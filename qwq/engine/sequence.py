"""Per-request and per-sample state inside the engine, and what happens when a sample gets a new token."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from qwq.engine.hooks import Action, Controller, ControllerFactory, SampleState, build_controllers
from qwq.engine.outputs import GenerationResult, Sample, Timings, TokenEvent
from qwq.engine.sampling import SamplingParams, make_generator
from qwq.engine.textstream import SampleText


@dataclass
class RequestState:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    controller_factories: Sequence[ControllerFactory] = ()
    arrival: float = field(default_factory=time.perf_counter)
    seqs: list["SequenceState"] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    admitted: bool = False
    aborted: bool = False
    error: BaseException | None = None  # what made the engine fail this request (its samples end with "error")
    stream_text: bool = True  # False: nobody reads the events' text deltas, the text is decoded at the end
    first_token_at: float | None = None

    @property
    def finished(self) -> bool:
        return bool(self.seqs) and all(s.finished for s in self.seqs)

    def result(self) -> GenerationResult:
        return GenerationResult(self.request_id, list(self.prompt_ids), [s.to_sample() for s in self.seqs],
                                self.timings)


class SequenceState:
    """One sample stream: its tokens, generator, text, controllers and finish state."""

    def __init__(self, seq_id: int, request: RequestState, index: int, tokenizer: Any, eos_ids: Sequence[int],
                 think_ids: tuple[int | None, int | None], device: torch.device, with_controllers: bool = True
                 ) -> None:
        params = request.params
        self.seq_id, self.request, self.index = seq_id, request, index
        self.generator, self.seed = (None, None) if params.greedy else make_generator(params.sample_seed(index), device)
        self.generated: list[int] = []
        self.logprobs: list[float] | None = [] if params.logprobs else None
        self.top_logprobs: list | None = [] if params.top_logprobs else None
        self.forced_mask: list[bool] = []
        self.text = SampleText(tokenizer, params.stop, params.include_stop_str_in_output, params.skip_special_tokens,
                               request.stream_text)
        stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            stop_ids.update(eos_ids)
        self.stop_ids = frozenset(stop_ids)
        self.forced: deque[int] = deque()
        self.token_counts: torch.Tensor | None = None  # for presence/frequency penalties, created on first use
        self.finished = False
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None
        self.think_open, self.think_close = think_ids
        self.state = SampleState(request.request_id, index, params, request.prompt_ids, self.generated,
                                 tokenizer=tokenizer, think_token_ids=think_ids,
                                 in_thinking=_prompt_ends_in_thinking(request.prompt_ids, think_ids))
        self.controllers: list[Controller] = (build_controllers(self.state, request.controller_factories)
                                              if with_controllers else [])

    # ---- choosing the next token -------------------------------------------------------------------------------
    @property
    def last_token(self) -> int:
        return self.generated[-1] if self.generated else self.request.prompt_ids[-1]

    def counts_for(self, vocab: int, device: torch.device) -> torch.Tensor | None:
        """Occurrence counts of the generated ids (None unless the request uses presence/frequency penalties)."""
        if not self.request.params.wants_penalties:
            return None
        if self.token_counts is None:
            self.token_counts = torch.zeros(vocab, dtype=torch.float32, device=device)
            ids = torch.tensor([t for t in self.generated if t < vocab], dtype=torch.long, device=device)
            self.token_counts.index_add_(0, ids, torch.ones(len(ids), device=device))
        return self.token_counts

    def before_sample(self, logits: torch.Tensor) -> tuple[torch.Tensor | None, int | None]:
        """Run the controllers' before_sample: (combined bias, forced token or None). May finish the sample."""
        if self.forced:
            return None, self.forced.popleft()
        bias = None
        for controller in self.controllers:
            action = controller.before_sample(self.state, logits)
            if action is None:
                continue
            if action.bias is not None:
                bias = action.bias if bias is None else bias + action.bias
            if action.stop is not None:
                self.finish("stop", action.stop)
                return None, None
            if action.force:
                self.forced.extend(action.force[1:])
                self.state.pending_forced = len(self.forced)
                return bias, int(action.force[0])
        return bias, None

    def accept(self, token_id: int, forced: bool, logprob: float | None, top: list | None,
               now: float) -> list[TokenEvent]:
        """Append a chosen token (after the controllers' on_token), update text and stop state; returns events."""
        tokens = [token_id]
        for controller in self.controllers:
            action: Action | None = controller.on_token(self.state, token_id, forced)
            if action is None:
                continue
            if action.replace:
                tokens = [int(t) for t in action.replace]
                self.forced.extendleft(reversed(tokens[1:]))
                tokens, forced = tokens[:1], True
                break
            if action.stop is not None:
                if action.drop_token:
                    self.finish("stop", action.stop)
                    return [self._final_event(now)]
                events = self._append(tokens[0], forced, logprob, top, now)
                if not self.finished:
                    self.finish("stop", action.stop)
                    events.append(self._final_event(now))
                return events
        events = self._append(tokens[0], forced, logprob, top, now)
        self.state.pending_forced = len(self.forced)
        return events

    def _append(self, token_id: int, forced: bool, logprob: float | None, top: list | None,
                now: float) -> list[TokenEvent]:
        request = self.request
        if request.first_token_at is None:
            request.first_token_at = now
            request.timings.time_to_first_token_s = now - request.arrival
        self.generated.append(token_id)
        self.forced_mask.append(forced)
        if self.token_counts is not None and token_id < self.token_counts.shape[0]:
            self.token_counts[token_id] += 1
        request.timings.generated_tokens += 1
        if self.logprobs is not None:
            self.logprobs.append(logprob)
        if self.top_logprobs is not None:
            self.top_logprobs.append(top)
        self._track_thinking(token_id)
        if token_id in self.stop_ids:
            self.finish("stop", token_id)
            delta = self.text.finish()
            return [TokenEvent(request.request_id, self.index, token_id, delta, True, "stop", logprob, forced)]
        delta, matched = self.text.push(token_id)
        if matched is not None:
            self.finish("stop", matched)
        elif len(self.generated) >= request.params.max_new_tokens:
            self.finish("length")
        if self.finished:
            delta += self.text.finish()
        return [TokenEvent(request.request_id, self.index, token_id, delta, self.finished, self.finish_reason,
                           logprob, forced)]

    def _track_thinking(self, token_id: int) -> None:
        state = self.state
        if state.in_thinking:
            state.thinking_tokens += 1
            if token_id == self.think_close:
                state.in_thinking = False
        else:
            if token_id == self.think_open and self.think_open is not None:
                state.in_thinking = True
            else:
                state.answer_tokens += 1

    # ---- finishing ----------------------------------------------------------------------------------------------
    def finish(self, reason: str, stop_reason: str | int | None = None) -> None:
        if not self.finished:
            self.finished, self.finish_reason, self.stop_reason = True, reason, stop_reason
            self.forced.clear()

    def finish_event(self, reason: str, now: float, stop_reason: str | int | None = None) -> TokenEvent:
        """End the sample from outside (abort, cache or context limit) and return its closing event."""
        self.finish(reason, stop_reason)
        return self._final_event(now)

    def _final_event(self, now: float) -> TokenEvent:
        error = str(self.stop_reason) if self.finish_reason == "error" else None
        return TokenEvent(self.request.request_id, self.index, None, self.text.finish(), True, self.finish_reason,
                          error=error)

    def to_sample(self) -> Sample:
        return Sample(index=self.index, token_ids=list(self.generated), text=self.text.text,
                      finish_reason=self.finish_reason or "abort", stop_reason=self.stop_reason,
                      logprobs=None if self.logprobs is None else list(self.logprobs),
                      top_logprobs=None if self.top_logprobs is None else list(self.top_logprobs),
                      forced_mask=list(self.forced_mask) if any(self.forced_mask) else None, seed=self.seed,
                      controls={c.name: c.details() for c in self.controllers})


def _prompt_ends_in_thinking(prompt: Sequence[int], think_ids: tuple[int | None, int | None]) -> bool:
    """True when the last `<think>` of the prompt is not closed (QwQ's generation prompt ends with `<think>\\n`)."""
    open_id, close_id = think_ids
    if open_id is None:
        return False
    for token in reversed(prompt):
        if token == close_id:
            return False
        if token == open_id:
            return True
    return False
