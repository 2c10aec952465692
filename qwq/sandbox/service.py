"""The sandbox over HTTP (FastAPI): /run, /judge, /batch, /health and SandboxFusion's /run_code.

A bounded pool runs the work; requests beyond `workers + max_queue` in flight get 429 with Retry-After (the caller
backs off instead of piling up), and bodies above `max_body_bytes` get 413 before they are read in full. Bind to
loopback unless the network in front is trusted: the service itself has no authentication.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from qwq.sandbox.judge import judge
from qwq.sandbox.languages import available_languages, get_language
from qwq.sandbox.runner import Sandbox, SessionError
from qwq.sandbox.verdicts import COMPILE_LIMITS, Limits, RunResult
from qwq.sandbox.wire import (SANDBOX_FUSION_LANGUAGES, checker_from_wire, limits_from_wire, run_code_response,
                              tests_from_wire)
from qwq.utils.errors import UsageError


class RunRequest(BaseModel):
    code: str
    language: str = "python"
    stdin: str = ""
    limits: Optional[dict] = None


class JudgeRequest(BaseModel):
    code: str
    tests: dict
    language: str = "python"
    limits: Optional[dict] = None
    stop_at_first_failure: bool = True
    float_tolerance: Optional[float] = None
    checker_code: Optional[str] = None


class BatchItem(BaseModel):
    kind: str = Field(pattern="^(run|judge)$")
    request: dict


class BatchRequest(BaseModel):
    requests: list[BatchItem]


class RunCodeRequest(BaseModel):  # SandboxFusion's RunCodeRequest
    code: str
    language: str = "python"
    compile_timeout: float = 10
    run_timeout: float = 10
    memory_limit_MB: int = -1
    stdin: Optional[str] = None
    files: dict[str, Optional[str]] = {}
    fetch_files: list[str] = []


class Admission:
    """Counts requests in flight (running or queued); refuses beyond capacity so callers see 429 early."""

    def __init__(self, workers: int, max_queue: int):
        self.workers, self.capacity = workers, workers + max_queue
        self.in_flight = 0
        self._lock = threading.Lock()

    def admit(self, n: int = 1) -> bool:
        with self._lock:
            if self.in_flight + n > self.capacity:
                return False
            self.in_flight += n
            return True

    def release(self, n: int = 1) -> None:
        with self._lock:
            self.in_flight -= n


class BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, by Content-Length or while streaming.

    The body is read (up to the limit) before the app sees the request, because frameworks turn errors raised
    while they read a body into their own 400s."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(self.max_bytes)(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _too_large(self.max_bytes)(scope, receive, send)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body exceeds {limit} bytes"}, status_code=413)


def _run(sandbox: Sandbox, body: dict) -> dict:
    request = RunRequest(**body)
    return sandbox.run(request.code, request.language, request.stdin, limits_from_wire(request.limits)).to_dict()


def _judge(sandbox: Sandbox, body: dict) -> dict:
    request = JudgeRequest(**body)
    return judge(request.code, tests_from_wire(request.tests), language=request.language,
                 limits=limits_from_wire(request.limits), stop_at_first_failure=request.stop_at_first_failure,
                 float_tolerance=request.float_tolerance, checker=checker_from_wire(request.checker_code),
                 sandbox=sandbox).to_dict()


def _run_code(sandbox: Sandbox, request: RunCodeRequest) -> dict:
    language = get_language(SANDBOX_FUSION_LANGUAGES.get(request.language, request.language))
    if request.run_timeout <= 0 or request.compile_timeout <= 0:
        raise UsageError("run_timeout and compile_timeout must be positive")
    memory = None if request.memory_limit_MB is None or request.memory_limit_MB <= 0 else request.memory_limit_MB
    limits = Limits(cpu_seconds=request.run_timeout, wall_seconds=request.run_timeout, **(
        {"memory_mb": memory} if memory else {}))
    extra = {}
    for name, content in request.files.items():
        try:
            extra[name] = base64.b64decode(content or "", validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"files[{name!r}] is not base64") from None
    try:
        with sandbox.session(disk_mb=limits.disk_mb) as session:
            if extra:
                session.write(extra)
            compile_limits = Limits(**{**COMPILE_LIMITS.__dict__, "cpu_seconds": request.compile_timeout,
                                       "wall_seconds": request.compile_timeout})
            result = session.run_code(request.code, language, request.stdin or "", limits, compile_limits)
            fetched = session.read(request.fetch_files) if request.fetch_files else {}
    except SessionError as exc:
        return run_code_response(RunResult.sandbox_error(f"sandbox failure: {exc}"))
    return run_code_response(result, {k: base64.b64encode(v).decode() for k, v in fetched.items()})


def create_app(*, workers: int = 4, max_queue: int = 32, max_body_bytes: int = 16 * 1024 * 1024,
               sandbox: Sandbox | None = None) -> FastAPI:
    if workers < 1 or max_queue < 0 or max_body_bytes < 1:
        raise UsageError("workers must be >= 1, max_queue >= 0 and max_body_bytes >= 1")
    owns_sandbox = sandbox is None
    sandbox = sandbox or Sandbox(max_sessions=min(128, max(32, workers)))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")
    admission = Admission(workers, max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await asyncio.get_running_loop().run_in_executor(None, sandbox.start)
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        if owns_sandbox:
            sandbox.close()

    app = FastAPI(title="qwq sandbox", version="1", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.sandbox, app.state.admission = sandbox, admission

    async def pooled(fn, *args, n: int = 1):
        if not admission.admit(n):
            return JSONResponse({"detail": f"busy: {admission.in_flight} requests in flight "
                                           f"(capacity {admission.capacity}); retry later"},
                                status_code=429, headers={"Retry-After": "1"})
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except UsageError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        finally:
            admission.release(n)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        isolation = await asyncio.get_running_loop().run_in_executor(None, lambda: sandbox.isolation)
        return {"status": "ok", "isolation": isolation, "languages": available_languages(), "workers": workers,
                "capacity": admission.capacity, "in_flight": admission.in_flight}

    @app.post("/run")
    async def run(request: RunRequest):
        return await pooled(_run, sandbox, request.model_dump())

    @app.post("/judge")
    async def judge_endpoint(request: JudgeRequest):
        return await pooled(_judge, sandbox, request.model_dump())

    @app.post("/batch")
    async def batch(request: BatchRequest):
        items = request.requests
        if not items:
            return {"results": []}

        def work() -> dict:
            futures = [executor.submit(_run if item.kind == "run" else _judge, sandbox, item.request)
                       for item in items]
            results = []
            for future in futures:
                try:
                    results.append(future.result())
                except (UsageError, ValidationError) as exc:
                    results.append({"error": str(exc)})
            return {"results": results}

        if not admission.admit(len(items)):
            return JSONResponse({"detail": f"busy: batch of {len(items)} exceeds free capacity"}, status_code=429,
                                headers={"Retry-After": "1"})
        try:
            return await asyncio.get_running_loop().run_in_executor(None, work)
        finally:
            admission.release(len(items))

    @app.post("/run_code")
    async def run_code(request: RunCodeRequest):
        return await pooled(_run_code, sandbox, request)

    return app


def serve(host: str = "127.0.0.1", port: int = 8080, **options) -> None:
    import uvicorn

    uvicorn.run(create_app(**options), host=host, port=port, log_level="warning")
