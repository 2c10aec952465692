"""The inference engine: token ids in, samples out.

Public API (other packages code against these names):

    from qwq.engine import Engine, AsyncEngine, SamplingParams, GenerationResult, Sample, TokenEvent

    engine = Engine.load("qwen2.5-coder-0.5b", quant="int4", max_batch_size=16)   # or Engine(model, tokenizer, config)
    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=40, min_p=0.0, presence_penalty=0.0,
                            frequency_penalty=0.0, max_new_tokens=256, n=1, seed=None, stop=[...],
                            stop_token_ids=[...], logprobs=False, top_logprobs=0, controls={...})
    results = engine.generate(prompts, params)          # list[GenerationResult], prompt order
    for event in engine.stream(prompt_ids, params): ... # TokenEvent per token; closing the iterator aborts
    result = engine.chat(messages, params, tools=None)  # renders the chat template (QwQ generation prompt)
    engine.load_weights(state_dict) / engine.weights_changed()   # RL: new weights, no stale cache

    aengine = AsyncEngine(engine)
    async for event in aengine.generate(prompt_ids, params, request_id): ...
    await aengine.abort(request_id)

GenerationResult: request_id, prompt_token_ids, samples [Sample(token_ids, text, finish_reason "stop" | "length" |
"abort" | "error", stop_reason, logprobs, top_logprobs, forced_mask, seed, controls)], timings (queued, prefill,
decode, time to first token, tokens/s). Per-sample controllers (reasoning controls): qwq.engine.hooks.
"error": the engine failed on that request alone (a controller raised, its forward failed); the async engine ends
its stream so (TokenEvent.error says what failed) and serves on, the synchronous calls raise the exception.

Modules: sampling (SamplingParams, batched sampler), cache (paged + static KV), scheduler (continuous batching),
prefill (packing a step's prompts into shared forwards), runner (model calls), quant / quant_gguf / quant_io (weight-only int8/int4), engine (sync core), async_engine.
Names are imported lazily so `import qwq.engine` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Engine": "qwq.engine.engine", "EngineOptions": "qwq.engine.engine",
    "AsyncEngine": "qwq.engine.async_engine",
    "SamplingParams": "qwq.engine.sampling",
    "GenerationResult": "qwq.engine.outputs", "Sample": "qwq.engine.outputs", "TokenEvent": "qwq.engine.outputs",
    "Timings": "qwq.engine.outputs",
    "Action": "qwq.engine.hooks", "BaseController": "qwq.engine.hooks", "SampleState": "qwq.engine.hooks",
    "register_controller": "qwq.engine.hooks",
    "QuantSpec": "qwq.engine.quant",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from qwq.engine.async_engine import AsyncEngine
    from qwq.engine.engine import Engine, EngineOptions
    from qwq.engine.hooks import Action, BaseController, SampleState, register_controller
    from qwq.engine.outputs import GenerationResult, Sample, TokenEvent, Timings
    from qwq.engine.quant import QuantSpec
    from qwq.engine.sampling import SamplingParams


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qwq.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
