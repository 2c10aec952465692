"""The HTTP service over real sockets on 127.0.0.1: endpoints, SandboxFusion shape, back-pressure, size limits."""

from __future__ import annotations

import base64
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from qwq.sandbox.client import SandboxClient
from qwq.sandbox.judge import FunctionCase, FunctionTests, StdioTest
from qwq.sandbox.runner import LAYERS
from qwq.sandbox.service import create_app
from qwq.sandbox.verdicts import Limits, Verdict
from qwq.utils.errors import UsageError


class Server:
    def __init__(self, app):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(sandbox):
    running = Server(create_app(workers=2, max_queue=8, max_body_bytes=64 * 1024, sandbox=sandbox))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def test_health_reports_isolation_layers(http):
    body = http.get("/health").json()
    assert body["status"] == "ok" and set(body["isolation"]["layers"]) == set(LAYERS)
    assert body["isolation"]["inactive"] == [], body["isolation"]
    assert body["languages"]["python"] is True


def test_run_and_judge_endpoints(http):
    run = http.post("/run", json={"code": "print(input()[::-1])", "stdin": "abc", "limits": {"cpu_seconds": 2}})
    assert run.status_code == 200 and run.json()["verdict"] == "OK" and run.json()["stdout"] == "cba\n"
    judged = http.post("/judge", json={"code": "print(int(input()) + 1)", "stop_at_first_failure": False,
                                       "tests": {"stdio": [{"input": "1", "output": "2"}, {"input": "2", "output": "4"}]}})
    body = judged.json()
    assert body["verdict"] == "WRONG_ANSWER" and body["passed"] == 1 and body["total"] == 2
    assert [t["verdict"] for t in body["tests"]] == ["OK", "WRONG_ANSWER"]


def test_batch_keeps_order(http):
    requests = [{"kind": "run", "request": {"code": f"print({i})"}} for i in range(4)]
    requests.append({"kind": "judge", "request": {"code": "def f(x): return x * 2", "tests": {"function": {
        "entry_point": "f", "cases": [{"args": ["l", [["i", "4"]]], "expected": ["i", "8"]}]}}}})
    requests.append({"kind": "judge", "request": {"code": "def f(x): return [x, x]", "tests": {"function": {
        "entry_point": "f", "plain": True, "cases": [{"args": [[1]], "expected": [[1], [1]]}]}}}})
    results = http.post("/batch", json={"requests": requests}).json()["results"]
    assert [r["stdout"] for r in results[:4]] == ["0\n", "1\n", "2\n", "3\n"]
    assert results[4]["verdict"] == "OK" and results[5]["verdict"] == "OK"


def test_sandbox_fusion_run_code_shape(http):
    ok = http.post("/run_code", json={"code": "print('hi')", "language": "python"}).json()
    assert ok["status"] == "Success" and ok["compile_result"] is None and ok["executor_pod_name"] is None
    assert ok["run_result"]["status"] == "Finished" and ok["run_result"]["return_code"] == 0
    assert ok["run_result"]["stdout"] == "hi\n" and isinstance(ok["run_result"]["execution_time"], float)
    failed = http.post("/run_code", json={"code": "import sys; sys.exit(3)", "language": "python"}).json()
    assert failed["status"] == "Failed" and failed["run_result"]["return_code"] == 3
    slow = http.post("/run_code", json={"code": "while True: pass", "run_timeout": 1}).json()
    assert slow["status"] == "Failed" and slow["run_result"]["status"] == "TimeLimitExceeded"
    broken = http.post("/run_code", json={"code": "int main({", "language": "cpp"}).json()
    assert broken["status"] == "Failed" and broken["run_result"] is None
    assert broken["compile_result"]["status"] == "Finished" and broken["compile_result"]["return_code"] != 0
    files = http.post("/run_code", json={
        "code": "print(open('data.txt').read().upper())\nopen('out.txt', 'w').write('made here')",
        "files": {"data.txt": base64.b64encode(b"from the caller").decode()},
        "fetch_files": ["out.txt", "missing.txt"]}).json()
    assert files["run_result"]["stdout"] == "FROM THE CALLER\n"
    assert base64.b64decode(files["files"]["out.txt"]) == b"made here" and "missing.txt" not in files["files"]


def test_bad_requests(http):
    assert http.post("/run", json={"code": "x", "language": "cobol"}).status_code == 400
    assert http.post("/run", json={"language": "python"}).status_code == 422
    assert http.post("/run", json={"code": "x", "limits": {"cpu_seconds": -1}}).status_code == 400


def test_request_size_limit_413(http, server):
    big = {"code": "#" * (100 * 1024)}
    assert http.post("/run", json=big).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(20):
            yield b"#" * 8192

    response = httpx.post(f"{server.url}/run", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_back_pressure_429_and_client_retries(sandbox):
    busy = Server(create_app(workers=1, max_queue=0, sandbox=sandbox))
    try:
        sleeper = {"code": "import time; time.sleep(0.8)", "limits": {"cpu_seconds": 1, "wall_seconds": 5}}
        with httpx.Client(base_url=busy.url, timeout=60) as client, ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda _: client.post("/run", json=sleeper).status_code, range(4)))
        assert 429 in codes and 200 in codes
        with SandboxClient(url=busy.url, workers=4) as remote:
            results = remote.run_many([{"code": f"print({i})"} for i in range(4)])
        assert [r.stdout for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    finally:
        busy.stop()


def test_client_over_http_matches_in_process(server, sandbox):
    local = SandboxClient(sandbox=sandbox)
    tests = FunctionTests("f", cases=[FunctionCase(((1, 2),), (2, 1)), FunctionCase(({1: "a"},), {1: "a"})])
    code = "def f(x):\n    return x[::-1] if isinstance(x, tuple) else x"
    stdio = [StdioTest("3", "9"), StdioTest("4", "16")]
    with SandboxClient(url=server.url) as remote:
        for client in (local, remote):
            assert client.run("print(7)").stdout == "7\n"
            assert client.judge(code, tests).verdict is Verdict.OK
            assert client.judge("print(int(input()) ** 2)", stdio, limits=Limits(cpu_seconds=2)).passed == 2
        many = remote.judge_many([{"code": "print(1)", "tests": [StdioTest("", "1")]}] * 3)
        assert [r.verdict for r in many] == [Verdict.OK] * 3
        with pytest.raises(UsageError, match="CheckerProgram"):
            remote.judge("print(1)", [StdioTest("", "1")], checker=lambda *a: True)


def test_unreachable_service_is_a_sandbox_error_not_a_wrong_answer():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    with SandboxClient(url=dead, timeout=5) as client:
        assert client.run("print(1)").verdict is Verdict.SANDBOX_ERROR
        result = client.judge("print(1)", [StdioTest("", "1")])
        assert result.verdict is Verdict.SANDBOX_ERROR and result.score is None
        assert client.health()["status"] == "unreachable"
