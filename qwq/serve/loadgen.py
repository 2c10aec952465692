"""A load generator for any OpenAI-compatible chat endpoint: many concurrent streaming clients, each stream checked
for well-formedness, optional mid-stream disconnects, and the server's Prometheus metrics read back.

    results, wall = await run_load(url, bodies, disconnect_after={3: 2, ...})
    print(summarize(results, wall))

A stream is well-formed when every event is `data: <JSON>` with one id and object `chat.completion.chunk`, the
first delta of each choice carries the role, each choice gets exactly one finish_reason (after which it says
nothing), a usage chunk comes when asked, and `data: [DONE]` ends it. Used by benchmarks/bench_serve_load.py and the
server tests.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass
class StreamResult:
    ok: bool = False
    error: str | None = None
    disconnected: bool = False  # closed on purpose before the end
    ttft_s: float | None = None  # request sent -> first reasoning/content delta
    total_s: float = 0.0
    chunks: int = 0
    completion_tokens: int | None = None
    finish_reasons: dict[int, str] = field(default_factory=dict)
    text: dict[int, str] = field(default_factory=dict)  # reasoning + content per choice


class MalformedStream(Exception):
    pass


class _StreamChecker:
    def __init__(self, n: int, want_usage: bool) -> None:
        self.n, self.want_usage = n, want_usage
        self.ids: set[str] = set()
        self.roles: set[int] = set()
        self.usage: dict | None = None
        self.done = False

    def event(self, data: str, result: StreamResult) -> bool:
        """Check one `data:` payload; True when it was a delta with text."""
        if self.done:
            raise MalformedStream("data after [DONE]")
        if data == "[DONE]":
            self.done = True
            return False
        chunk = json.loads(data)
        if "error" in chunk:
            raise MalformedStream(f"error event: {chunk['error']}")
        if chunk.get("object") != "chat.completion.chunk":
            raise MalformedStream(f"object is {chunk.get('object')!r}")
        self.ids.add(chunk.get("id"))
        if len(self.ids) != 1:
            raise MalformedStream("chunks carry different ids")
        if chunk.get("usage"):
            if chunk["choices"]:
                raise MalformedStream("the usage chunk has choices")
            self.usage = chunk["usage"]
        texty = False
        for choice in chunk["choices"]:
            index = choice["index"]
            if not 0 <= index < self.n:
                raise MalformedStream(f"choice index {index} out of range")
            if index in result.finish_reasons:
                raise MalformedStream(f"choice {index} continued after its finish_reason")
            delta = choice["delta"]
            if delta.get("role"):
                if index in self.roles:
                    raise MalformedStream(f"choice {index} sent its role twice")
                self.roles.add(index)
            elif index not in self.roles:
                raise MalformedStream(f"choice {index} started without the role")
            piece = (delta.get("reasoning_content") or "") + (delta.get("content") or "")
            if piece or delta.get("tool_calls"):
                texty = True
                result.text[index] = result.text.get(index, "") + piece
            if choice.get("finish_reason"):
                result.finish_reasons[index] = choice["finish_reason"]
        return texty

    def close(self, result: StreamResult) -> None:
        if not self.done:
            raise MalformedStream("the stream ended without [DONE]")
        if len(result.finish_reasons) != self.n:
            raise MalformedStream(f"{len(result.finish_reasons)} of {self.n} choices got a finish_reason")
        if self.want_usage:
            if self.usage is None:
                raise MalformedStream("no usage chunk")
            result.completion_tokens = int(self.usage["completion_tokens"])


async def one_stream(client: Any, url: str, body: Mapping, headers: Mapping[str, str],
                     disconnect_after: int | None = None) -> StreamResult:
    """POST one streaming chat request and check it; with `disconnect_after`, close after that many text deltas."""
    result = StreamResult()
    checker = _StreamChecker(int(body.get("n", 1)), bool((body.get("stream_options") or {}).get("include_usage")))
    start = time.perf_counter()
    try:
        async with client.stream("POST", url, json={**body, "stream": True}, headers=dict(headers)) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {(await response.aread())[:300]!r}"
                return result
            texts = 0
            buffer = ""
            async for piece in response.aiter_text():
                buffer += piece
                while "\n\n" in buffer:
                    event, buffer = buffer.split("\n\n", 1)
                    if not event.startswith("data: "):
                        raise MalformedStream(f"not a data event: {event[:80]!r}")
                    result.chunks += 1
                    if checker.event(event[6:], result):
                        texts += 1
                        if result.ttft_s is None:
                            result.ttft_s = time.perf_counter() - start
                        if disconnect_after is not None and texts >= disconnect_after:
                            result.disconnected, result.ok = True, True
                            return result  # leaving the block closes the connection mid-stream
            if buffer.strip():
                raise MalformedStream(f"trailing bytes: {buffer[:80]!r}")
            checker.close(result)
            result.ok = True
    except (MalformedStream, json.JSONDecodeError, KeyError, TypeError) as exc:
        result.error = f"malformed stream: {exc}"
    except Exception as exc:  # noqa: BLE001 - transport errors are results here
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.total_s = time.perf_counter() - start
    return result


async def run_load(base_url: str, bodies: Sequence[Mapping], *, disconnect_after: Mapping[int, int] | None = None,
                   api_key: str | None = None, timeout_s: float = 600.0) -> tuple[list[StreamResult], float]:
    """All bodies at once, one connection each. Returns the results (in body order) and the wall time."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=len(bodies) + 4, max_keepalive_connections=0)
    disconnect_after = disconnect_after or {}
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_stream(client, "/v1/chat/completions", body, headers,
                                                    disconnect_after.get(i)) for i, body in enumerate(bodies)))
        return list(results), time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(results: Sequence[StreamResult], wall_s: float) -> dict:
    complete = [r for r in results if r.ok and not r.disconnected]
    ttfts = [r.ttft_s for r in results if r.ok and r.ttft_s is not None]
    tokens = sum(r.completion_tokens or 0 for r in complete)
    return {"clients": len(results), "errors": sum(1 for r in results if not r.ok),
            "complete": len(complete), "disconnected": sum(1 for r in results if r.disconnected),
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
            "completion_tokens": tokens, "wall_s": wall_s, "aggregate_tokens_per_s": tokens / wall_s if wall_s else 0.0,
            "first_errors": [r.error for r in results if not r.ok][:3]}


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


async def wait_for_idle(base_url: str, *, api_key: str | None = None, timeout_s: float = 30.0) -> dict[str, float]:
    """Poll /metrics until no request runs or waits and no sequence holds KV cache; returns the last reading
    (raises TimeoutError with it when the cache never empties: a leaked slot)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        while True:
            values = parse_metrics((await client.get("/metrics", headers=headers)).text)
            busy = [k for k in ("qwq_running_requests", "qwq_queue_waiting_requests", "qwq_kv_cache_sequences",
                                "qwq_kv_cache_blocks_used", "qwq_requests_in_flight") if values.get(k, 0) != 0]
            if not busy:
                return values
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not idle after {timeout_s:g} s: " +
                                   ", ".join(f"{k}={values[k]:g}" for k in busy))
            await asyncio.sleep(0.05)
