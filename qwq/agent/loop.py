"""The agent loop on QwQ's format: generate -> parse `<tool_call>` blocks -> run tools -> feed results back as
`tool` messages -> repeat, until the model answers without calling a tool, or a limit stops it.

Limits: `max_steps` model calls, `token_budget` completion tokens over the whole episode (each call is given at most
what is left). A tool call that does not parse, names an unknown tool or has bad arguments is answered with an error
tool response and the loop goes on: the model gets to correct itself. With a guard, the user's request is checked
before the first call and every response (thinking included) after each call. The transcript records every step
and is saved as JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from qwq.agent.backends import Backend
from qwq.agent.tools import Tool, ToolRegistry
from qwq.tokenizer.reasoning import split_reasoning
from qwq.tokenizer.toolcall import parse_tool_calls
from qwq.utils.atomic import atomic_write_text
from qwq.utils.errors import UsageError

STOP_ANSWER = "answer"
STOP_MAX_STEPS = "max_steps"
STOP_TOKEN_BUDGET = "token_budget"
STOP_LENGTH = "length"
STOP_REFUSED_INPUT = "refused_input"
STOP_REFUSED_OUTPUT = "refused_output"

CALL_FORMAT_HINT = ('Write each tool call as <tool_call>\n{"name": "<tool name>", "arguments": {...}}\n</tool_call> '
                    "with valid JSON.")


@dataclass
class ToolEvent:
    name: str | None
    arguments: dict | None
    call_id: str | None
    content: str
    is_error: bool
    elapsed_s: float = 0.0
    parse_error: str | None = None


@dataclass
class Step:
    index: int
    text: str
    reasoning: str
    content: str
    finish_reason: str
    completion_tokens: int
    elapsed_s: float
    tool_events: list[ToolEvent] = field(default_factory=list)
    guard: dict | None = None


@dataclass
class Transcript:
    messages: list[dict]
    steps: list[Step]
    final_answer: str | None
    stop_reason: str
    tools: list[dict]
    usage: dict
    elapsed_s: float
    input_guard: dict | None = None

    @property
    def tool_calls(self) -> int:
        return sum(1 for s in self.steps for e in s.tool_events if e.parse_error is None)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n")
        return path


class Agent:
    """A tool-using agent. `tools`: Tool objects, typed functions, or a ToolRegistry."""

    def __init__(self, backend: Backend, tools: ToolRegistry | Iterable[Tool | Any] = (), *,
                 system: str | None = None, max_steps: int = 8, token_budget: int | None = None,
                 max_tokens_per_step: int | None = None, guard: Any = None):
        if max_steps < 1:
            raise UsageError(f"max_steps must be >= 1, got {max_steps}")
        if token_budget is not None and token_budget < 1:
            raise UsageError(f"token_budget must be >= 1, got {token_budget}")
        self.backend = backend
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.system = system
        self.max_steps = max_steps
        self.token_budget = token_budget
        self.max_tokens_per_step = max_tokens_per_step
        self.guard = guard

    def _start(self, request: str | Sequence[dict]) -> list[dict]:
        if isinstance(request, str):
            messages = [{"role": "user", "content": request}]
        else:
            messages = [dict(m) for m in request]
        if not messages or messages[-1].get("role") != "user":
            raise UsageError("the conversation given to the agent must end with a user message")
        if self.system and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def run(self, request: str | Sequence[dict]) -> Transcript:
        t_start = time.perf_counter()
        messages = self._start(request)
        schemas = self.tools.schemas()
        steps: list[Step] = []
        used = 0
        input_guard = None

        def finish(answer: str | None, reason: str) -> Transcript:
            return Transcript(messages, steps, answer, reason, schemas,
                              {"completion_tokens": used, "steps": len(steps)}, time.perf_counter() - t_start,
                              input_guard)

        if self.guard is not None:
            from qwq.safety.guard import refusal_message

            verdict = self.guard.check_input(messages)
            input_guard = verdict.to_dict()
            if verdict.refused:
                answer = refusal_message(verdict)
                messages.append({"role": "assistant", "content": answer})
                return finish(answer, STOP_REFUSED_INPUT)

        for index in range(self.max_steps):
            remaining = None if self.token_budget is None else self.token_budget - used
            if remaining is not None and remaining <= 0:
                return finish(None, STOP_TOKEN_BUDGET)
            limit = min(x for x in (remaining, self.max_tokens_per_step) if x is not None) \
                if (remaining is not None or self.max_tokens_per_step is not None) else None
            t0 = time.perf_counter()
            completion = self.backend.complete(messages, schemas or None, max_tokens=limit)
            used += completion.completion_tokens
            split = split_reasoning(completion.text, starts_in_reasoning=completion.starts_in_reasoning)
            reasoning, answer_text = split.reasoning, split.answer
            if not split.finished:
                # the thinking never closed: nothing after it is an answer or a call
                reasoning, answer_text = split.reasoning, ""
            step = Step(index, completion.text, reasoning, answer_text, completion.finish_reason,
                        completion.completion_tokens, 0.0)
            steps.append(step)

            if self.guard is not None:
                from qwq.safety.guard import refusal_message

                verdict = self.guard.check_output(answer_text, reasoning=reasoning, messages=messages)
                step.guard = verdict.to_dict()
                if verdict.refused:
                    answer = refusal_message(verdict)
                    messages.append({"role": "assistant", "content": answer})
                    step.elapsed_s = time.perf_counter() - t0
                    return finish(answer, STOP_REFUSED_OUTPUT)
                if verdict.action == "redact":
                    reasoning = verdict.details.get("reasoning", reasoning) or ""
                    answer_text = verdict.details.get("answer", answer_text)
                    step.reasoning, step.content = reasoning, answer_text

            parsed = parse_tool_calls(answer_text)
            # failed blocks stay visible in the turn, so the model sees what it wrote next to the error response
            shown = "".join([parsed.content] + [f"\n<tool_call>\n{e.raw}\n</tool_call>" for e in parsed.errors])
            assistant: dict = {"role": "assistant", "content": shown.strip("\n")}
            if reasoning:
                assistant["reasoning_content"] = reasoning
            if parsed.tool_calls:
                assistant["tool_calls"] = [c.to_openai() for c in parsed.tool_calls]
            messages.append(assistant)

            if not parsed.tool_calls and not parsed.errors:
                step.elapsed_s = time.perf_counter() - t0
                if not split.finished or completion.finish_reason == "length":
                    out_of_budget = self.token_budget is not None and used >= self.token_budget
                    return finish(parsed.content or None, STOP_TOKEN_BUDGET if out_of_budget else STOP_LENGTH)
                return finish(parsed.content, STOP_ANSWER)

            for call in parsed.tool_calls:
                result = self.tools.call(call.name, call.arguments)
                step.tool_events.append(ToolEvent(call.name, call.arguments, call.id, result.content,
                                                  result.is_error, result.elapsed_s))
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                 "content": result.content})
            for err in parsed.errors:
                content = f"Error: tool call #{err.index + 1} could not be parsed: {err.message}. {CALL_FORMAT_HINT}"
                step.tool_events.append(ToolEvent(None, None, None, content, True, 0.0, err.message))
                messages.append({"role": "tool", "content": content})
            step.elapsed_s = time.perf_counter() - t0
        return finish(None, STOP_MAX_STEPS)
