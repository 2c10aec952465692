"""The local backend: qwq.engine, every sample one request (n = 1, its own seed), all submitted at once so the
engine's continuous-batching scheduler keeps its batch full; samples are handed back as they finish.

The prompt is the model's own chat template with the generation prompt (QwQ's ends with `<think>\\n`, so the
model starts inside the thinking); whether it does is read from the rendered prompt, not assumed. A thinking
budget goes to the engine's `thinking_budget` control.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from qwq.eval.backends import Backend, Completion, OnResult, Request, SamplingConfig, split_token_counts
from qwq.utils.errors import QwqError, UsageError


class PromptRenderer:
    """Chat messages -> (prompt text, prompt ids, starts_in_reasoning) with a model's template and tokenizer."""

    def __init__(self, chat_template: Any, tokenizer: Any = None):
        if chat_template is None:
            raise UsageError("the model has no chat template: qwq eval needs one to build prompts")
        self.chat_template, self.tokenizer = chat_template, tokenizer

    def text(self, messages: Sequence[dict]) -> str:
        return self.chat_template.render(messages, add_generation_prompt=True)

    def render(self, messages: Sequence[dict]) -> tuple[str, list[int], bool]:
        from qwq.tokenizer.reasoning import prompt_starts_in_reasoning

        text = self.text(messages)
        ids = self.tokenizer.encode(text) if self.tokenizer is not None else []
        return text, ids, prompt_starts_in_reasoning(text)


class LocalEngineBackend(Backend):
    """Over an engine, or over a model spec loaded on the first `generate` (a rerun that only rescores or
    rebuilds the report never loads the model)."""

    def __init__(self, engine: Any = None, *, description: dict | None = None, loader: Any = None):
        if engine is None and loader is None:
            raise UsageError("LocalEngineBackend needs an engine or a loader")
        self._engine, self._loader = engine, loader
        self.description = description or {}

    @classmethod
    def from_spec(cls, spec: str, quant: str = "none", **engine_options: Any) -> "LocalEngineBackend":
        from qwq.model.loading import resolve

        def load():
            from qwq.engine.engine import Engine

            return Engine.load(spec, quant=quant, **engine_options)

        path = resolve(spec).path  # fails now, not after the plan, when the spec names nothing
        return cls(loader=load, description={"model": spec, "path": str(path) if path else None, "quant": quant})

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = self._loader()
        return self._engine

    def describe(self) -> dict:
        return {"backend": "local", **self.description}

    def _params(self, sampling: SamplingConfig, seed: int):
        from qwq.engine.sampling import SamplingParams

        controls = {"thinking_budget": sampling.thinking_budget} if sampling.thinking_budget is not None else {}
        return SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                              min_p=sampling.min_p, presence_penalty=sampling.presence_penalty,
                              max_new_tokens=sampling.max_tokens, n=1, seed=seed, controls=controls)

    def generate(self, requests: Sequence[Request], sampling: SamplingConfig, on_result: OnResult) -> None:
        if not requests:
            return
        engine = self.engine
        renderer = PromptRenderer(engine.chat_template, engine.tokenizer)
        open_id, close_id = getattr(engine, "think_token_ids", (None, None))
        pending: dict[str, dict] = {}
        try:
            for request in requests:
                text, ids, starts = renderer.render(request.messages)
                try:
                    request_id = engine.submit(ids, self._params(sampling, request.seed), request_id=request.key)
                except QwqError as exc:  # e.g. a prompt longer than the model's context: this sample fails
                    on_result(Completion(request.key, error=f"{type(exc).__name__}: {exc}"))
                    continue
                pending[request_id] = {"request": request, "prompt_tokens": len(ids), "starts": starts,
                                       "tokens": [], "text": [], "start": time.perf_counter(), "prompt_text": text}
            while pending:
                for event in engine.step():
                    state = pending.get(event.request_id)
                    if state is None:
                        continue
                    if event.token_id is not None:
                        state["tokens"].append(event.token_id)
                    state["text"].append(event.text_delta)
                    if event.finished:
                        del pending[event.request_id]
                        reasoning, answer = split_token_counts(state["tokens"], close_id, state["starts"], open_id)
                        on_result(Completion(state["request"].key, "".join(state["text"]), state["starts"],
                                             event.finish_reason or "stop", state["prompt_tokens"],
                                             len(state["tokens"]), reasoning, answer, "exact",
                                             time.perf_counter() - state["start"], prompt_text=state["prompt_text"]))
                if pending and not engine.has_work():
                    raise UsageError(f"the engine stopped with {len(pending)} requests unfinished")
        finally:
            for request_id in list(pending):  # interrupted: free the engine for the next caller
                engine.abort(request_id)
