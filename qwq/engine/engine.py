"""The engine: token ids in, samples out. A synchronous core (`Engine`) that `AsyncEngine` drives from a thread.

    engine = Engine.load("qwen2.5-coder-0.5b", quant="int4")
    results = engine.generate([prompt_ids], SamplingParams(temperature=0.6, max_new_tokens=256, n=4, seed=0))
    for event in engine.stream(prompt_ids, params): print(event.text_delta, end="")
    result = engine.chat([{"role": "user", "content": "..."}], params)

Several calls may be in flight only through `AsyncEngine` (or `submit` + `step` by hand); `generate` runs its
requests together in one continuously batched loop. Weights may be changed between calls (RL): call
`weights_changed()` (or use `load_weights`) so prefix-cached blocks computed with the old weights are dropped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from qwq.config import ModelConfig
from qwq.engine.cache import PagedKVCache, StaticKVCache
from qwq.engine.hooks import ControllerFactory
from qwq.engine.outputs import GenerationResult, TokenEvent
from qwq.engine.prefill import DEFAULT_PREFILL_BUDGET
from qwq.engine.runner import DEFAULT_PREFILL_CHUNK, ModelRunner
from qwq.engine.sampling import SamplingParams
from qwq.engine.scheduler import Scheduler
from qwq.engine.sequence import RequestState
from qwq.utils.errors import UsageError

DEFAULT_KV_TOKENS_PER_ROW = 4096
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class EngineOptions:
    max_batch_size: int = 16
    max_model_len: int | None = None  # default: the config's max_position_embeddings
    cache: str = "paged"  # "paged" | "static"
    block_size: int = 16
    kv_cache_tokens: int | None = None  # default: max_batch_size x min(max_model_len, 4096)
    prefix_caching: bool = True
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK  # most tokens in one prefill forward (one prompt's chunk or a pack)
    prefill_budget: int = DEFAULT_PREFILL_BUDGET  # prompt tokens admitted per step (at least one request)
    compile: bool | str = False  # torch.compile the decode step (True: inductor, or a backend name)
    fuse_projections: bool = True  # quantized models: q/k/v and gate/up as one matmul each (see engine.fusion)
    kv_dtype: Any = None  # KV cache storage dtype (default: the model's); bfloat16 halves it for long contexts

    def check(self) -> None:
        def positive(name: str, value: Any, limit: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
                raise UsageError(f"engine option {name!r} must be an integer in 1..{limit}, got {value!r}")

        positive("max_batch_size", self.max_batch_size, 4096)
        positive("block_size", self.block_size, 4096)
        positive("prefill_chunk", self.prefill_chunk, 1 << 20)
        positive("prefill_budget", self.prefill_budget, 1 << 30)
        if self.max_model_len is not None:
            positive("max_model_len", self.max_model_len, 1 << 24)
        if self.kv_cache_tokens is not None:
            positive("kv_cache_tokens", self.kv_cache_tokens, 1 << 30)
        if self.cache not in ("paged", "static"):
            raise UsageError(f"engine option 'cache' must be 'paged' or 'static', got {self.cache!r}")


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The activation dtype: that of the final norm (always floating point, whatever is quantized); for other
    modules (test doubles) the first floating-point parameter's."""
    norm = getattr(getattr(model, "model", None), "norm", None)
    if norm is not None and hasattr(norm, "weight"):
        return norm.weight.dtype
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class Engine:
    """Continuous-batching generation over a Qwen2 model (float or weight-only quantized)."""

    def __init__(self, model: nn.Module, tokenizer: Any = None, config: ModelConfig | None = None, *,
                 chat_template: Any = None, options: EngineOptions | None = None, **option_overrides: Any) -> None:
        options = options or EngineOptions()
        if option_overrides:
            import dataclasses

            unknown = set(option_overrides) - {f.name for f in dataclasses.fields(EngineOptions)}
            if unknown:
                raise UsageError(f"unknown engine option(s): {', '.join(sorted(unknown))}")
            options = dataclasses.replace(options, **option_overrides)
        options.check()
        self.model = model.eval()
        self.config = config or model.config
        self.fused_groups = 0
        if options.fuse_projections:
            from qwq.engine.fusion import fuse_projections

            self.fused_groups = fuse_projections(model)
        self.tokenizer, self.chat_template, self.options = tokenizer, chat_template, options
        self.dtype = _model_dtype(model)
        if options.kv_dtype is None:
            self.kv_dtype = self.dtype
        else:
            from qwq.engine.loading import parse_dtype

            self.kv_dtype = parse_dtype(options.kv_dtype)
        self.device = next(iter(model.parameters())).device
        self.max_model_len = min(options.max_model_len or self.config.max_position_embeddings,
                                 self.config.max_position_embeddings)
        self.vocab_limit = min(self.config.vocab_size, getattr(tokenizer, "vocab_size", None) or self.config.vocab_size)
        eos = tuple(getattr(tokenizer, "eos_token_ids", ()) or ()) or self.config.eos_token_ids
        self.eos_token_ids = eos
        think = (None, None)
        if tokenizer is not None and hasattr(tokenizer, "token_to_id"):
            think = (tokenizer.token_to_id(THINK_OPEN), tokenizer.token_to_id(THINK_CLOSE))
            if think[0] is not None and think[0] >= self.vocab_limit:
                think = (None, None)
        self.think_token_ids = think
        self.cache = self._make_cache()
        self.runner = ModelRunner(model, self.cache, options.prefill_chunk, options.compile)
        self.scheduler = Scheduler(self.runner, self.cache, tokenizer, self.eos_token_ids, self.vocab_limit,
                                   options.max_batch_size, self.max_model_len, think, options.prefill_budget)
        self._ids = itertools.count()
        self.source: Any = None  # what Engine.load resolved (for reports)
        self.last_result: GenerationResult | None = None  # of the last stream() that ran to its end
        self.load_report: dict = {}

    def _make_cache(self) -> PagedKVCache:
        o = self.options
        per_row = min(self.max_model_len, DEFAULT_KV_TOKENS_PER_ROW)
        tokens = o.kv_cache_tokens or o.max_batch_size * per_row
        if o.cache == "static":
            max_len = min(self.max_model_len, max(1, tokens // o.max_batch_size))
            return StaticKVCache(self.config, o.max_batch_size, max_len, self.kv_dtype, self.device)
        blocks = max(1, -(-tokens // o.block_size))
        return PagedKVCache(self.config, blocks, o.block_size, self.kv_dtype, self.device, o.prefix_caching)

    # ---- construction from a model spec -------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str, quant: str = "none", *, group_size: int | None = None, dtype: torch.dtype | str | None = None,
             device: str = "cpu", **options: Any) -> "Engine":
        """Load `-m` spec (HF dir, .gguf, qwq run dir, quantized checkpoint, or a known name) and build an engine.

        quant: "none" (float weights), "int8" or "int4" (weight-only; a GGUF is repacked without inflating it).
        """
        from qwq.engine.loading import load_for_engine

        loaded = load_for_engine(spec, quant=quant, group_size=group_size, dtype=dtype, device=device)
        engine = cls(loaded.model, loaded.tokenizer, loaded.config, chat_template=loaded.chat_template, **options)
        engine.source, engine.load_report = loaded.source, loaded.report
        return engine

    # ---- requests ------------------------------------------------------------------------------------------------
    def _request(self, prompt_ids: Sequence[int], params: SamplingParams, request_id: str | None,
                 controllers: Sequence[ControllerFactory]) -> RequestState:
        if not isinstance(params, SamplingParams):
            raise UsageError(f"params must be a SamplingParams, got {type(params).__name__}")
        if isinstance(prompt_ids, (str, bytes)) or not isinstance(prompt_ids, Sequence):
            raise UsageError("a prompt must be a list of token ids (use engine.encode() or engine.chat() for text)")
        prompt = list(prompt_ids)
        return RequestState(request_id or f"req-{next(self._ids)}", prompt, params, tuple(controllers))

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams, request_id: str | None = None,
               controllers: Sequence[ControllerFactory] = ()) -> str:
        """Queue a request; `step()` advances every queued and running request. Returns the request id."""
        request = self._request(prompt_ids, params, request_id, controllers)
        self.scheduler.add(request)
        return request.request_id

    def step(self) -> list[TokenEvent]:
        return self.scheduler.step()

    def abort(self, request_id: str) -> None:
        """Stop a request at the next step boundary; its samples finish with reason "abort"."""
        self.scheduler.abort(request_id)

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams] | None = None,
                 controllers: Sequence[ControllerFactory] = ()) -> list[GenerationResult]:
        """Generate for every prompt (continuously batched); results in prompt order. If the engine fails on one of
        them (a controller raises, say), the others are aborted and the exception is raised here."""
        if prompts and isinstance(prompts[0], int):
            raise UsageError("generate() takes a list of prompts (each a list of token ids); wrap a single prompt "
                             "in a list")
        params = params if params is not None else SamplingParams()
        per_prompt = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(per_prompt) != len(prompts):
            raise UsageError(f"{len(per_prompt)} sampling parameter sets for {len(prompts)} prompts")
        requests = [self._request(p, sp, None, controllers) for p, sp in zip(prompts, per_prompt)]
        for request in requests:
            request.stream_text = False  # only the results are returned: no per-token text deltas to build
        added = []
        try:
            for request in requests:
                self.scheduler.add(request)
                added.append(request)
            while any(not r.finished for r in requests):
                self.scheduler.step()
                _raise_failure(requests)
        except BaseException:
            for request in added:
                self.scheduler.abort(request.request_id)
            self._drain_aborts()
            raise
        return [r.result() for r in requests]

    def stream(self, prompt_ids: Sequence[int], params: SamplingParams | None = None, request_id: str | None = None,
               controllers: Sequence[ControllerFactory] = ()) -> Iterator[TokenEvent]:
        """Token events of one request as they are generated. Closing the iterator early aborts the request.
        When the iterator is exhausted, `engine.last_result` holds the request's GenerationResult (timings). If the
        engine fails on the request, its "error" events are yielded and then the exception is raised."""
        request = self._request(prompt_ids, params or SamplingParams(), request_id, controllers)
        self.scheduler.add(request)
        try:
            while not request.finished or not request.seqs:
                for event in self.scheduler.step():
                    if event.request_id == request.request_id:
                        yield event
                if request.aborted and not self.scheduler.has_work():
                    break
        finally:
            if not request.finished:
                self.scheduler.abort(request.request_id)
                self._drain_aborts()
        _raise_failure([request])
        self.last_result = request.result()

    def _drain_aborts(self) -> None:
        """Process pending aborts now (frees their cache) without running a decode step for them."""
        self.scheduler._drop_aborted([])

    # ---- text conveniences -------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise UsageError("this engine has no tokenizer: pass token ids")
        return self.tokenizer.encode(text)

    def render_chat(self, messages: Sequence[dict], tools: Sequence[dict] | None = None) -> list[int]:
        """Prompt ids for a conversation, ending with the assistant generation prompt (QwQ: `<think>\\n`)."""
        if self.chat_template is None:
            raise UsageError("this engine has no chat template: pass prompt token ids")
        text = self.chat_template.render(messages, tools=tools, add_generation_prompt=True)
        return self.encode(text)

    def chat(self, messages: Sequence[dict], params: SamplingParams | None = None, tools: Sequence[dict] | None = None,
             controllers: Sequence[ControllerFactory] = ()) -> GenerationResult:
        return self.generate([self.render_chat(messages, tools)], params, controllers)[0]

    # ---- weights ---------------------------------------------------------------------------------------------------
    def weights_changed(self) -> None:
        """Drop prefix-cached KV blocks (they were computed with the old weights). Call with no request running."""
        if self.scheduler.has_work():
            raise UsageError("weights_changed() while requests are running: finish or abort them first")
        self.cache.reset()
        self.runner.weights_changed()

    @torch.no_grad()
    def load_weights(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Copy new float weights into the model in place (e.g. from an RL learner) and drop stale cache blocks.

        Only for unquantized, unfused models: a quantized or fused module's state dict holds derived tensors (codes,
        scales, concatenations) under other names, and copying float weights into them would change nothing or
        corrupt them. Such engines are rebuilt from the new weights instead (quantize them as at load)."""
        derived = _derived_module(self.model)
        if derived is not None:
            name, module = derived
            raise UsageError(f"load_weights: module {name!r} is {type(module).__name__} (quantized or fused weights "
                             f"derived from the originals); build a new engine from the new weights instead")
        own = self.model.state_dict()
        unknown = [k for k in state_dict if k not in own]
        missing = [k for k in own if k not in state_dict]
        if strict and (unknown or missing):
            what = f"unknown tensor {unknown[0]!r}" if unknown else f"missing tensor {missing[0]!r}"
            raise UsageError(f"load_weights: {what}")
        for name, tensor in state_dict.items():
            if name in own:
                own[name].copy_(tensor.to(own[name].dtype))
        self.weights_changed()


def _derived_module(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first module whose parameters are not the checkpoint's float tensors (quantized or fused), if any."""
    from qwq.engine.fusion import FusedProjections
    from qwq.engine.quant import Int8Embedding, _QuantLinear
    from qwq.engine.quant_w8a8 import W8A8Linear

    for name, module in model.named_modules():
        if isinstance(module, (_QuantLinear, Int8Embedding, W8A8Linear, FusedProjections)):
            return name, module
    return None


def _raise_failure(requests: Sequence[RequestState]) -> None:
    """The synchronous API raises what failed a request (the async engine ends its stream with "error" instead)."""
    for request in requests:
        if request.error is not None:
            raise request.error
