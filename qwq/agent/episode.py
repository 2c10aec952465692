"""Multi-turn tool-use episodes at the token level, for RL rollouts and SFT on tool traces.

`run_episode` drives a model through generate -> parse tool calls -> run tools -> append the tool turn -> generate,
on ONE growing token sequence: every token the model sampled has loss-mask 1, every token the environment wrote
(tool responses and the template text around them) has mask 0, so a trainer can compute the policy loss on the
model's own tokens only. The sequence is append-only (earlier thinking stays in context, unlike the chat template's
re-rendering of finished turns): the sampled tokens and their logprobs are then exactly what the trainer rescores.

The tool turn is written the way the QwQ template renders it (`<|im_end|>` closes the assistant turn, tool results
become one user turn of `<tool_response>` blocks, then the generation prompt `<|im_start|>assistant\\n<think>\\n`).

How a GRPO rollout uses it: for each prompt and each of the G samples, call
`run_episode(generate, tokenizer, task.messages(example), task.tools(), ...)` where `generate(ids, max_new_tokens)`
samples a continuation of `ids` with the policy (returning token ids, optional logprobs and a finish reason), then
`task.reward([ep.final_text], [example])`. Train on `ep.prompt_ids + ep.completion_ids` with `ep.loss_mask` over
the completion part (and `ep.logprobs` as the old-policy logprobs, None where the environment wrote the token).
For SFT on teacher traces, pass `scripted_generate(tokenizer, texts)` as `generate`. To batch the model turns of
many episodes on an engine, build each with `episode_steps(...)` (the same episode as a generator) and drive them
with `run_episodes(generate_batch, episodes)` (qwq.agent.tool_rl does this for GRPO).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Protocol, Sequence

from qwq.agent.tools import Tool, ToolRegistry
from qwq.tokenizer.reasoning import split_reasoning
from qwq.tokenizer.toolcall import parse_tool_calls
from qwq.utils.errors import UsageError

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
GENERATION_PROMPT = f"{IM_START}assistant\n<think>\n"
PARSE_HINT = 'Write tool calls as <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> with valid JSON.'


@dataclass
class Generation:
    token_ids: list[int]
    logprobs: list[float] | None = None
    finish_reason: str = "stop"  # "stop" (eos or a stop string) or "length"


class Generate(Protocol):
    def __call__(self, prompt_ids: list[int], max_new_tokens: int) -> Generation: ...


@dataclass
class Turn:
    text: str
    reasoning: str
    answer: str
    tool_calls: list[dict] = field(default_factory=list)
    tool_results: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class Episode:
    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float | None]
    turns: list[Turn]
    stop_reason: str  # answer | max_steps | token_budget | length

    @property
    def final_text(self) -> str:
        """The last model turn (thinking + `</think>` + answer): what a task's reward reads."""
        return self.turns[-1].text if self.turns else ""

    @property
    def n_tool_calls(self) -> int:
        return sum(len(t.tool_calls) for t in self.turns)

    @property
    def n_tool_errors(self) -> int:
        return sum(1 for t in self.turns for r in t.tool_results if r["is_error"])

    @property
    def n_generated(self) -> int:
        return sum(self.loss_mask)


def tool_turn_text(results: Sequence[str]) -> str:
    """The environment's text after a model turn with tool calls (closing `<|im_end|>` not included)."""
    blocks = "".join(f"\n<tool_response>\n{r}\n</tool_response>" for r in results)
    return f"\n{IM_START}user{blocks}{IM_END}\n{GENERATION_PROMPT}"


def _special_id(tokenizer: Any, token: str) -> int:
    tid = tokenizer.token_to_id(token)
    if tid is None:
        raise UsageError(f"tokenizer has no {token!r} token: tool episodes need the ChatML/QwQ special tokens")
    return tid


EpisodeSteps = Generator[tuple[list[int], int], Generation, Episode]


def episode_steps(tokenizer: Any, messages: Sequence[dict], tools: ToolRegistry | Sequence[Tool], *,
                  max_steps: int = 4, max_new_tokens: int = 256, max_total_tokens: int = 2048,
                  chat_template: Any = None) -> EpisodeSteps:
    """One episode as a generator: it yields `(context_ids, max_new_tokens)` whenever the model must speak, is sent
    the `Generation`, and returns the `Episode` (StopIteration.value). `run_episode` drives one with a `generate`
    function; `run_episodes` drives many at once so each model turn is one batched engine call."""
    registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
    schemas = registry.schemas() or None
    if chat_template is not None:
        prompt_text = chat_template.render(list(messages), tools=schemas, add_generation_prompt=True)
    else:
        prompt_text = tokenizer.apply_chat_template(list(messages), tools=schemas, add_generation_prompt=True)
    prompt_ids = tokenizer.encode(prompt_text)
    im_end = _special_id(tokenizer, IM_END)
    stop_ids = {im_end, getattr(tokenizer, "eos_token_id", None)} - {None}

    completion: list[int] = []
    mask: list[int] = []
    logprobs: list[float | None] = []
    turns: list[Turn] = []

    def inject(ids: list[int]) -> None:
        completion.extend(ids)
        mask.extend([0] * len(ids))
        logprobs.extend([None] * len(ids))

    for _ in range(max_steps):
        room = max_total_tokens - len(completion)
        if room <= 0:
            return Episode(prompt_ids, completion, mask, logprobs, turns, "token_budget")
        gen = yield prompt_ids + completion, min(max_new_tokens, room)
        ids = list(gen.token_ids)
        if gen.logprobs is not None and len(gen.logprobs) != len(ids):
            raise UsageError(f"generate returned {len(ids)} tokens but {len(gen.logprobs)} logprobs")
        completion.extend(ids)
        mask.extend([1] * len(ids))
        logprobs.extend(gen.logprobs if gen.logprobs is not None else [None] * len(ids))
        ended = bool(ids) and ids[-1] in stop_ids
        body = ids[:-1] if ended else ids
        text = tokenizer.decode(body, skip_special_tokens=False)
        split = split_reasoning(text, starts_in_reasoning=True)
        answer = split.answer if split.finished else ""
        parsed = parse_tool_calls(answer)
        turn = Turn(text, split.reasoning, answer, [{"id": c.id, "name": c.name, "arguments": c.arguments}
                                                    for c in parsed.tool_calls], [], gen.finish_reason)
        turns.append(turn)
        if not parsed.tool_calls and not parsed.errors:
            reason = "answer" if (ended or gen.finish_reason == "stop") and split.finished else (
                "token_budget" if len(completion) >= max_total_tokens else "length")
            return Episode(prompt_ids, completion, mask, logprobs, turns, reason)
        if not ended:
            if gen.finish_reason == "length":  # cut off mid-turn: no clean place to append a tool turn
                return Episode(prompt_ids, completion, mask, logprobs, turns,
                               "token_budget" if len(completion) >= max_total_tokens else "length")
            inject([im_end])  # stopped on a stop string (e.g. </tool_call>): close the turn for the model
        results = []
        for call in parsed.tool_calls:
            r = registry.call(call.name, call.arguments)
            turn.tool_results.append({"name": call.name, "content": r.content, "is_error": r.is_error})
            results.append(r.content)
        for err in parsed.errors:
            content = f"Error: tool call #{err.index + 1} could not be parsed: {err.message}. {PARSE_HINT}"
            turn.tool_results.append({"name": None, "content": content, "is_error": True})
            results.append(content)
        inject(tokenizer.encode(tool_turn_text(results)))
    return Episode(prompt_ids, completion, mask, logprobs, turns, "max_steps")


def run_episode(generate: Generate, tokenizer: Any, messages: Sequence[dict], tools: ToolRegistry | Sequence[Tool],
                *, max_steps: int = 4, max_new_tokens: int = 256, max_total_tokens: int = 2048,
                chat_template: Any = None) -> Episode:
    """Run one episode. `tokenizer` needs encode/decode/token_to_id and a chat template (or pass `chat_template`,
    anything with `render(messages, tools=..., add_generation_prompt=True)`)."""
    steps = episode_steps(tokenizer, messages, tools, max_steps=max_steps, max_new_tokens=max_new_tokens,
                          max_total_tokens=max_total_tokens, chat_template=chat_template)
    try:
        request = next(steps)
        while True:
            request = steps.send(generate(*request))
    except StopIteration as done:
        return done.value


def run_episodes(generate_batch: Callable[[list[tuple[list[int], int]]], list[Generation]],
                 episodes: Sequence[EpisodeSteps], workers: int = 1) -> list[Episode]:
    """Drive many `episode_steps` together: every round, the episodes still running each need one model turn, and
    `generate_batch([(context_ids, max_new_tokens), ...])` answers them all at once (one batched engine call).
    Between rounds each episode parses its turn and runs its tools; with `workers` > 1 episodes do that in a thread
    pool (tools that wait on a subprocess, like the sandboxed python tool, then overlap). Returns the episodes in
    order."""
    results: list[Episode | None] = [None] * len(episodes)
    pending: dict[int, tuple[list[int], int]] = {}

    def advance(item: tuple[int, Generation | None]) -> tuple[int, Any, bool]:
        i, gen = item
        try:
            return i, (next(episodes[i]) if gen is None else episodes[i].send(gen)), False
        except StopIteration as done:
            return i, done.value, True

    def advance_all(items: list[tuple[int, Generation | None]]) -> None:
        if workers > 1 and len(items) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(advance, items))
        else:
            outcomes = [advance(item) for item in items]
        for i, value, finished in outcomes:
            if finished:
                results[i] = value
            else:
                pending[i] = value

    advance_all([(i, None) for i in range(len(episodes))])
    while pending:
        order = list(pending)
        generations = generate_batch([pending[i] for i in order])
        if len(generations) != len(order):
            raise UsageError(f"generate_batch returned {len(generations)} generations for {len(order)} requests")
        pending.clear()
        advance_all(list(zip(order, generations)))
    return results  # type: ignore[return-value]


def scripted_generate(tokenizer: Any, texts: Sequence[str | Callable[[str], str]], *,
                      end_turns: bool = True) -> Callable:
    """A `generate` that replays turn texts (teacher traces for SFT, or tests): each call returns the next text's
    tokens, closed with `<|im_end|>` unless `end_turns` is False. A callable entry gets the decoded context so far
    (e.g. to copy a tool's output) and returns the text."""
    queue = list(texts)
    im_end = _special_id(tokenizer, IM_END)

    def generate(prompt_ids: list[int], max_new_tokens: int) -> Generation:
        if not queue:
            raise UsageError("scripted_generate: no turns left")
        item = queue.pop(0)
        text = item(tokenizer.decode(prompt_ids, skip_special_tokens=False)) if callable(item) else item
        ids = tokenizer.encode(text) + ([im_end] if end_turns else [])
        if len(ids) > max_new_tokens:
            return Generation(ids[:max_new_tokens], None, "length")
        return Generation(ids, None, "stop")

    return generate
