"""The hostile corpus: every program gets the right verdict, nothing escapes, no process survives."""

from __future__ import annotations

import os
import secrets
import socket
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qwq.sandbox.judge import FunctionTests, judge
from qwq.sandbox.languages import get_language
from qwq.sandbox.runner import LAYERS, Sandbox
from .helpers import HOSTILE_LIMITS, processes_of, require_layers
from .hostile_programs import ADD_TESTS, CORPUS, OK

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Listener:
    """A host TCP listener and an abstract unix socket that record any connection from inside the sandbox."""

    def __init__(self, token: str):
        self.connections = 0
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.abstract_name = f"qwq-canary-{token}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen()
        for sock in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


@pytest.fixture(scope="module")
def corpus_run():
    token = secrets.token_hex(12)
    os.environ["QWQ_TEST_CANARY"] = token  # in the host env before the fork server starts: must never leak
    home_canary = Path.home() / f".qwq-canary-{secrets.token_hex(4)}"
    home_canary.write_text(token)
    listener = Listener(token)
    places = {"@TOKEN@": token, "@HOME_CANARY@": str(home_canary), "@PROJECT_FILE@": str(REPO / "pyproject.toml"),
              "@PORT@": str(listener.port), "@ABSTRACT@": listener.abstract_name,
              "@HOST_TMP@": f"/tmp/qwq-escape-{token}", "@HOST_PROJECT_OUT@": str(REPO / f"escape-{token}"),
              "@SITE@": sysconfig.get_paths()["purelib"]}

    def fill(text: str) -> str:
        for key, value in places.items():
            text = text.replace(key, value)
        return text

    box = Sandbox(max_sessions=8)
    try:
        box.start()

        def run(case):
            code = fill(case.code)
            if case.function:
                result = judge(code, FunctionTests("add", test_code=ADD_TESTS), sandbox=box, limits=HOSTILE_LIMITS)
                return case, result, []
            with box.session(disk_mb=HOSTILE_LIMITS.disk_mb) as session:
                uid = session.uid
                result = session.run_code(code, get_language(case.language), "", HOSTILE_LIMITS)
            return case, result, processes_of([uid, uid + 1])

        with ThreadPoolExecutor(3) as pool:
            outcomes = {case.name: (result, left) for case, result, left in pool.map(run, CORPUS)}
        survivors = processes_of(box.uid_range)
        after = box.run("print('still fine')")
        yield {"outcomes": outcomes, "places": places, "fill": fill, "listener": listener, "survivors": survivors,
               "after": after, "isolation": box.isolation}
    finally:
        box.close()
        listener.close()
        home_canary.unlink()
        os.environ.pop("QWQ_TEST_CANARY", None)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40
    assert len({case.name for case in CORPUS}) == len(CORPUS)


def test_layers_the_corpus_relies_on(corpus_run):
    layers = corpus_run["isolation"]["layers"]
    missing = [name for name in LAYERS if not layers[name]["active"]]
    assert not missing, f"inactive isolation layers: {missing}"


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_hostile_program(corpus_run, case):
    result, leftovers = corpus_run["outcomes"][case.name]
    fill = corpus_run["fill"]
    verdict = result.verdict.value
    detail = f"{case.name}: {verdict} {result.message!r}"
    if case.function:
        assert verdict in case.verdicts and result.passed < result.total, detail
        return
    assert verdict in case.verdicts, f"{detail} stderr={result.stderr[-600:]!r}"
    assert not leftovers, f"processes survived the run: {leftovers}"
    for secret in case.must_not_print:
        value = fill(secret)
        assert value not in result.stdout and value not in result.stderr, f"{case.name} leaked {secret}"
    for path in case.host_paths_absent:
        assert not os.path.exists(fill(path)), f"{case.name} wrote {fill(path)} on the host"
    if case.stdout_truncated:
        assert result.stdout_truncated and len(result.stdout.encode()) <= HOSTILE_LIMITS.stdout_bytes
    if case.stderr_truncated:
        assert result.stderr_truncated and len(result.stderr.encode()) <= HOSTILE_LIMITS.stderr_bytes
    assert result.wall_seconds < 60, "a hostile program held the sandbox far past its limits"


def test_no_process_survives_and_host_still_works(corpus_run):
    assert corpus_run["survivors"] == []
    assert corpus_run["after"].verdict.value == OK and corpus_run["after"].stdout == "still fine\n"
    assert corpus_run["listener"].connections == 0


def test_correct_add_passes_the_same_harness(sandbox):
    require_layers(sandbox, "uid_drop", "pid_namespace")
    result = judge("def add(a, b):\n    return a + b\n", FunctionTests("add", test_code=ADD_TESTS), sandbox=sandbox,
                   limits=HOSTILE_LIMITS)
    assert result.verdict.value == OK and result.passed == result.total == 1
