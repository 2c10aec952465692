"""One API for the sandbox, in-process or over HTTP.

    client = SandboxClient()                                  # in this process (starts the fork server lazily)
    client = SandboxClient(url="http://127.0.0.1:8080")        # a `qwq sandbox serve` elsewhere
    client.run(code, language="python", stdin="", limits=None) -> RunResult
    client.judge(code, tests, ...) -> JudgeResult
    client.judge_many([{"code": ..., "tests": ...}, ...]) -> list[JudgeResult]   (bounded concurrency, batched)

Infrastructure failures (service down, timeouts, 5xx, a request the service refuses as too large) come back as
SANDBOX_ERROR results, never as exceptions and never as wrong answers; bad arguments raise UsageError.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from qwq.sandbox.batch import judge_batch
from qwq.sandbox.judge import FunctionTests, JudgeResult, judge
from qwq.sandbox.runner import Sandbox, default_sandbox
from qwq.sandbox.verdicts import Limits, RunResult, Verdict
from qwq.sandbox.wire import checker_to_wire, limits_to_wire, tests_to_wire
from qwq.utils.errors import UsageError


class SandboxClient:
    def __init__(self, url: str | None = None, *, sandbox: Sandbox | None = None, workers: int = 4,
                 timeout: float = 600.0, busy_retries: int = 30):
        if workers < 1:
            raise UsageError(f"workers must be >= 1, got {workers}")
        self.url = url.rstrip("/") if url else None
        self.workers, self.timeout, self.busy_retries = workers, timeout, busy_retries
        self._sandbox = sandbox
        self._http = None
        if self.url is not None:
            import httpx

            self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                      limits=httpx.Limits(max_connections=max(8, workers * 2)))

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = default_sandbox()
        return self._sandbox

    # ------------------------------------------------------------ HTTP plumbing
    def _post(self, path: str, body: dict) -> tuple[dict | None, str]:
        """(json, "") on success, (None, reason) on an infrastructure failure; UsageError on 400/422."""
        import httpx

        delay = 0.05
        for _ in range(self.busy_retries + 1):
            try:
                response = self._http.post(path, json=body)
            except httpx.HTTPError as exc:
                return None, f"sandbox service unreachable at {self.url}: {type(exc).__name__}: {exc}"
            if response.status_code == 429:  # back-pressure: wait and retry with jitter
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code in (400, 422):
                raise UsageError(f"sandbox service rejected the request: {response.text[:500]}")
            if response.status_code != 200:
                return None, f"sandbox service answered HTTP {response.status_code}: {response.text[:300]}"
            try:
                return response.json(), ""
            except ValueError:
                return None, "sandbox service sent a body that is not JSON"
        return None, f"sandbox service stayed busy (HTTP 429) through {self.busy_retries} retries"

    # ------------------------------------------------------------ API
    def run(self, code: str, language: str = "python", stdin: str = "", limits: Limits | None = None) -> RunResult:
        if self._http is None:
            return self.sandbox.run(code, language, stdin, limits)
        data, error = self._post("/run", {"code": code, "language": language, "stdin": stdin,
                                          "limits": limits_to_wire(limits)})
        return RunResult.from_dict(data) if data is not None else RunResult.sandbox_error(error)

    def judge(self, code: str, tests, language: str = "python", limits: Limits | None = None,
              stop_at_first_failure: bool = True, float_tolerance: float | None = None,
              checker=None) -> JudgeResult:
        if self._http is None:
            return judge(code, tests, language=language, limits=limits, stop_at_first_failure=stop_at_first_failure,
                         float_tolerance=float_tolerance, checker=checker, sandbox=self.sandbox)
        tests_list = tests if not isinstance(tests, (list, tuple)) else list(tests)
        body = {"code": code, "tests": tests_to_wire(tests_list), "language": language,
                "limits": limits_to_wire(limits), "stop_at_first_failure": stop_at_first_failure,
                "float_tolerance": float_tolerance, "checker_code": checker_to_wire(checker)}
        data, error = self._post("/judge", body)
        if data is None:
            total = tests.count if isinstance(tests, FunctionTests) else len(tests_list)
            return JudgeResult(Verdict.SANDBOX_ERROR, 0, total, message=error)
        return JudgeResult.from_dict(data)

    def judge_many(self, items: Sequence[dict], workers: int | None = None) -> list[JudgeResult]:
        """Judge many programs with at most `workers` in flight; each item holds judge()'s arguments. In process,
        each worker judges its share in one reused session (judge_batch: same verdicts, much less start-up)."""
        if self._http is None:
            return judge_batch(items, workers=workers or self.workers, sandbox=self.sandbox)
        with ThreadPoolExecutor(max_workers=workers or self.workers) as pool:
            return list(pool.map(lambda item: self.judge(**item), items))

    def run_many(self, items: Sequence[dict], workers: int | None = None) -> list[RunResult]:
        with ThreadPoolExecutor(max_workers=workers or self.workers) as pool:
            return list(pool.map(lambda item: self.run(**item), items))

    def health(self) -> dict:
        if self._http is None:
            from qwq.sandbox.languages import available_languages

            return {"status": "ok", "isolation": self.sandbox.isolation, "languages": available_languages()}
        import httpx

        try:
            response = self._http.get("/health")
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> "SandboxClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
