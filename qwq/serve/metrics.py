"""Prometheus metrics (text exposition format 0.0.4), written by hand: a handful of counters, gauges read live from
the engine (queue, batch, KV cache) and two histograms. Counters are updated from the event loop only, so they
need no lock; the engine gauges read sizes the engine thread changes, which is safe for len() and simple reads."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Iterable

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
RATE_WINDOW_S = 10.0


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{edge:g}"}} {count}' for edge, count in zip(self.buckets, self.counts)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.total}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.total}"]
        return out


def engine_snapshot(engine: Any) -> dict[str, float]:
    """Queue, batch and KV-cache occupancy of a qwq Engine, read from another thread."""
    scheduler, cache = engine.scheduler, engine.cache
    running = list(scheduler.running)
    batch = 0
    for request in running:
        batch += sum(1 for seq in list(request.seqs) if not seq.finished)
    total = cache.num_blocks
    used = total - cache.free_blocks()
    return {"waiting": len(scheduler.waiting), "running": len(running), "batch": batch,
            "kv_blocks_total": total, "kv_blocks_used": used, "kv_sequences": len(cache.seqs),
            "kv_usage": used / total if total else 0.0, "max_batch": engine.options.max_batch_size,
            "preemptions": getattr(scheduler, "preemptions", 0)}


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = {}
        self.in_flight = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.reasoning_tokens = 0
        self.aborted = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) for the tokens/s gauge

    def request_done(self, route: str, status: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def tokens_generated(self, count: int, now: float | None = None) -> None:
        if count <= 0:
            return
        now = time.perf_counter() if now is None else now
        self.generation_tokens += count
        self._recent.append((now, count))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()

    def tokens_per_second(self) -> float:
        now = time.perf_counter()
        self._trim(now)
        return sum(c for _, c in self._recent) / RATE_WINDOW_S

    def render(self, engine: Any = None) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[str]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples])

        metric("qwq_requests_total", "counter", "HTTP requests answered, by route and status",
               [f'qwq_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(self.requests.items())]
               or ['qwq_requests_total{route="",status=""} 0'])
        metric("qwq_requests_in_flight", "gauge", "generation requests being served", [f"qwq_requests_in_flight "
                                                                                      f"{self.in_flight}"])
        metric("qwq_requests_aborted_total", "counter", "generations cancelled (client gone or stopped)",
               [f"qwq_requests_aborted_total {self.aborted}"])
        metric("qwq_prompt_tokens_total", "counter", "prompt tokens processed", [f"qwq_prompt_tokens_total "
                                                                                f"{self.prompt_tokens}"])
        metric("qwq_generation_tokens_total", "counter", "tokens generated",
               [f"qwq_generation_tokens_total {self.generation_tokens}"])
        metric("qwq_reasoning_tokens_total", "counter", "generated tokens spent thinking",
               [f"qwq_reasoning_tokens_total {self.reasoning_tokens}"])
        metric("qwq_generation_tokens_per_second", "gauge", f"tokens generated per second over the last "
               f"{RATE_WINDOW_S:g} s", [f"qwq_generation_tokens_per_second {self.tokens_per_second():.3f}"])
        metric("qwq_time_to_first_token_seconds", "histogram", "time from request to its first generated token",
               self.ttft.lines("qwq_time_to_first_token_seconds"))
        metric("qwq_request_duration_seconds", "histogram", "time from request to its last token",
               self.latency.lines("qwq_request_duration_seconds"))
        if engine is not None:
            snap = engine_snapshot(engine)
            gauges = [("qwq_queue_waiting_requests", "waiting", "requests queued for a batch slot"),
                      ("qwq_running_requests", "running", "requests in the running batch"),
                      ("qwq_batch_size", "batch", "sequences decoded per step right now"),
                      ("qwq_batch_size_max", "max_batch", "the engine's max batch size"),
                      ("qwq_kv_cache_blocks_total", "kv_blocks_total", "KV cache blocks"),
                      ("qwq_kv_cache_blocks_used", "kv_blocks_used", "KV cache blocks held by live sequences"),
                      ("qwq_kv_cache_sequences", "kv_sequences", "sequences holding KV cache"),
                      ("qwq_kv_cache_usage_ratio", "kv_usage", "fraction of KV cache blocks in use"),
                      ("qwq_preemptions_total", "preemptions", "requests preempted for lack of KV cache")]
            for name, key, help_text in gauges:
                kind = "counter" if name.endswith("_total") and key == "preemptions" else "gauge"
                value = snap[key]
                metric(name, kind, help_text, [f"{name} {value:.6g}" if isinstance(value, float) else
                                               f"{name} {value}"])
        metric("qwq_uptime_seconds", "gauge", "seconds since the server started",
               [f"qwq_uptime_seconds {time.time() - self.started:.1f}"])
        return "\n".join(lines) + "\n"
