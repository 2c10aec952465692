"""AsyncEngine: many concurrent requests from asyncio code (the server), one engine loop in a worker thread.

    aengine = AsyncEngine(engine)
    async for event in aengine.generate(prompt_ids, params, request_id="r1"):
        ...                                  # TokenEvents of r1's samples as they come
    result = aengine.result("r1")            # the GenerationResult once r1 finished (kept for a while)
    await aengine.abort("r1")                # or leave the `async for` early: the request is aborted

The worker owns the Engine: requests and aborts reach it through a queue and are applied between steps, so the
engine itself needs no locks. Bad requests raise UsageError in the caller before anything is queued. Each step's
events reach a caller's event loop in one hand-over (one wake-up per step, however many tokens and requests).
If the engine fails on a request (a controller raises, a forward fails), that request's stream ends with events of
finish_reason "error" (`event.error` says what failed) and the worker goes on serving everyone else; `error` is set
only if the worker itself died.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import OrderedDict
from typing import AsyncIterator, Sequence

from qwq.engine.engine import Engine
from qwq.engine.hooks import ControllerFactory
from qwq.engine.outputs import GenerationResult, TokenEvent
from qwq.engine.sampling import SamplingParams

_KEEP_RESULTS = 256
log = logging.getLogger("qwq.engine")


class AsyncEngine:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._commands: queue.Queue = queue.Queue()
        self._sinks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._requests: dict = {}
        self._results: OrderedDict[str, GenerationResult] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.error: BaseException | None = None  # what killed the worker, if anything did

    # ---- caller side -----------------------------------------------------------------------------------------
    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams | None = None,
                       request_id: str | None = None, controllers: Sequence[ControllerFactory] = ()
                       ) -> AsyncIterator[TokenEvent]:
        request = self.engine._request(prompt_ids, params or SamplingParams(), request_id, controllers)
        self.engine.scheduler.validate(request)
        rid = request.request_id
        loop, sink = asyncio.get_running_loop(), asyncio.Queue()
        with self._lock:
            if rid in self._sinks:
                from qwq.utils.errors import UsageError

                raise UsageError(f"request id {rid!r} is already in use")
            self._sinks[rid] = (loop, sink)
        self._commands.put(("add", request))
        self._ensure_worker()
        open_samples = request.params.n
        try:
            while open_samples:
                batch = await sink.get()  # this request's events of one engine step, or what stopped it
                if isinstance(batch, BaseException):
                    raise batch
                for item in batch:
                    if item.finished:
                        open_samples -= 1
                    yield item
        finally:
            if open_samples:
                self._commands.put(("abort", rid))
            with self._lock:
                self._sinks.pop(rid, None)

    async def complete(self, prompt_ids: Sequence[int], params: SamplingParams | None = None,
                       request_id: str | None = None, controllers: Sequence[ControllerFactory] = ()
                       ) -> GenerationResult:
        """Run a request to the end and return its result."""
        rid = request_id or f"async-{id(object())}-{len(self._results)}"
        async for _ in self.generate(prompt_ids, params, rid, controllers):
            pass
        return self.result(rid)

    def result(self, request_id: str) -> GenerationResult:
        with self._lock:
            return self._results[request_id]

    async def abort(self, request_id: str) -> None:
        self._commands.put(("abort", request_id))

    def shutdown(self) -> None:
        self._stopping = True
        self._commands.put(("wake", None))
        if self._thread is not None:
            self._thread.join()

    # ---- worker side -----------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="qwq-engine", daemon=True)
            self._thread.start()

    def _deliver(self, request_id: str, item) -> None:
        with self._lock:
            target = self._sinks.get(request_id)
        if target is not None:
            _call_in_loop(target[0], target[1].put_nowait, item)

    def _deliver_step(self, events: list[TokenEvent]) -> None:
        """Hand one step's events over: one list per request, one call per event loop."""
        per_request: dict[str, list[TokenEvent]] = {}
        for event in events:
            per_request.setdefault(event.request_id, []).append(event)
        per_loop: dict[asyncio.AbstractEventLoop, list] = {}
        with self._lock:
            for rid, items in per_request.items():
                target = self._sinks.get(rid)
                if target is not None:
                    per_loop.setdefault(target[0], []).append((target[1], items))
        for loop, puts in per_loop.items():
            _call_in_loop(loop, _put_all, puts)

    def _apply(self, command: str, payload) -> None:
        if command == "add":
            try:
                self.engine.scheduler.add(payload)
                self._requests[payload.request_id] = payload
            except Exception as exc:  # noqa: BLE001 - the caller gets it
                self._deliver(payload.request_id, exc)
        elif command == "abort":
            self.engine.abort(payload)

    def _run(self) -> None:
        engine = self.engine
        try:
            while not self._stopping:
                block = not engine.has_work()
                try:
                    while True:
                        command, payload = self._commands.get(block=block, timeout=None)
                        self._apply(command, payload)
                        block = False
                except queue.Empty:
                    pass
                if self._stopping or not engine.has_work():
                    continue
                try:
                    events = engine.step()
                except Exception as exc:  # noqa: BLE001 - not one request's fault: fail those in flight, go on
                    log.error("engine step failed outside any one request; failing every request in flight",
                              exc_info=exc)
                    events = engine.scheduler.fail_all(exc)
                for rid, request in list(self._requests.items()):  # results first: a caller woken by its last
                    if request.finished:                             # event may ask for the result at once
                        del self._requests[rid]
                        with self._lock:
                            self._results[rid] = request.result()
                            while len(self._results) > _KEEP_RESULTS:
                                self._results.popitem(last=False)
                self._deliver_step(events)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear about it
            self.error = exc
            with self._lock:
                sinks = list(self._sinks)
            for rid in sinks:
                self._deliver(rid, exc)


def _put_all(puts: list) -> None:
    for sink, items in puts:
        sink.put_nowait(items)


def _call_in_loop(loop: asyncio.AbstractEventLoop, callback, *args) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the caller's event loop is closed: nobody is listening any more
        pass
