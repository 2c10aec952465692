"""Function-test harness: the candidate and the checker run as two processes (standard library only).

Copied into a session's /judge and run twice:
  `harness.py candidate SOLUTION ENTRY`: loads the candidate's code and answers calls. It is the only process that
      runs candidate code, under the candidate's uid.
  `harness.py checker SPEC`: runs the tests (HumanEval `check(candidate)` or a list of cases) under a second uid.
      `candidate` there is a proxy that sends the arguments over a pipe and decodes the reply into plain data.

So the candidate cannot fake a pass: exiting early (`exit(0)`, `os._exit(0)`) only closes its pipe; patching
builtins or the harness changes its own process, not the checker's; an object whose `__eq__` always says True
cannot cross the pipe (replies are decoded into builtin values); the test files are unreadable by its uid; and
the checker's report goes to a descriptor the candidate never had, ending with a nonce it never saw.
"""

from __future__ import annotations

import base64
import builtins
import json
import math
import os
import select
import sys
import time
import traceback

MAX_DEPTH = 200
MAX_REPLY_BYTES = 32 * 1024 * 1024
REQUEST_FD, REPLY_FD, REPORT_FD, SECRET_FD = 3, 4, 5, 6


class UnsupportedValue(TypeError):
    pass


# ---------------------------------------------------------------- plain-data codec

def encode(value, depth: int = 0):
    """Builtin data -> JSON-able tagged form (tuples, sets, bytes, non-finite floats and int keys survive)."""
    if depth > MAX_DEPTH:
        raise UnsupportedValue("value nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return ["i", str(value)]
    if kind is float:
        return ["f", repr(value)]
    if kind is complex:
        return ["c", repr(value.real), repr(value.imag)]
    if kind is bytes or kind is bytearray:
        return ["b", base64.b64encode(bytes(value)).decode()]
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        items = list(value) if kind in (list, tuple) else sorted(value, key=repr)
        return [{"list": "l", "tuple": "t", "set": "s", "frozenset": "F"}[kind.__name__],
                [encode(item, depth + 1) for item in items]]
    if kind is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    # subclasses are converted to their base value: what crosses the pipe is data, never behaviour
    for base in (bool, int, float, str, bytes, tuple, list, dict):
        if isinstance(value, base):
            return encode(base(value) if base is not dict else dict(value.items()), depth + 1)
    raise UnsupportedValue(f"cannot pass a value of type {kind.__name__} between candidate and checker")


def decode(data, depth: int = 0):
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None or isinstance(data, (bool, str)):
        return data
    if not isinstance(data, list) or not data:
        raise ValueError(f"malformed value {str(data)[:80]!r}")
    tag = data[0]
    if tag == "i":
        return int(data[1])
    if tag == "f":
        return float(data[1])
    if tag == "c":
        return complex(float(data[1]), float(data[2]))
    if tag == "b":
        return base64.b64decode(data[1])
    if tag in ("l", "t", "s", "F"):
        items = [decode(item, depth + 1) for item in data[1]]
        return {"l": list, "t": tuple, "s": set, "F": frozenset}[tag](items)
    if tag == "d":
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in data[1]}
    raise ValueError(f"unknown value tag {tag!r}")


def values_match(actual, expected, tolerance: float | None) -> bool:
    """Equality of decoded data; tuples equal lists (test data comes from JSON); floats within `tolerance`."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
            if math.isnan(actual) or math.isnan(expected):
                return math.isnan(actual) and math.isnan(expected)
            if tolerance is None:
                return actual == expected
            return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance)
        return False
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(actual) == len(expected) and all(values_match(a, e, tolerance) for a, e in zip(actual, expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(values_match(actual[k], v, tolerance)
                                                        for k, v in expected.items())
    return actual == expected


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send(fd: int, message: dict) -> None:
    _write_all(fd, (json.dumps(message) + "\n").encode())


def _describe(exc: BaseException) -> dict:
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])[-2000:]
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": tail,
            "is_exception": isinstance(exc, Exception)}


# ---------------------------------------------------------------- the candidate process

def resolve_entry(namespace: dict, entry_point: str):
    """`f`, or `Class.method` (the class is instantiated with no arguments, LeetCode style)."""
    head, *rest = entry_point.split(".")
    if head not in namespace:
        raise NameError(f"entry point {head!r} is not defined by the solution")
    target = namespace[head]
    for part in rest:
        if isinstance(target, type):
            target = target()
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"entry point {entry_point!r} is not callable")
    return target


def serve_candidate(solution_path: str, entry_point: str) -> None:
    requests = os.fdopen(REQUEST_FD, "rb")
    try:
        with open(solution_path, encoding="utf-8") as handle:
            source = handle.read()
        namespace = {"__name__": "__candidate__", "__builtins__": builtins}
        exec(compile(source, "solution.py", "exec"), namespace)
        target = resolve_entry(namespace, entry_point)
    except BaseException as exc:  # SystemExit too: the candidate ended itself before answering anything
        _send(REPLY_FD, {"load_error": _describe(exc), "syntax": isinstance(exc, SyntaxError)})
        return
    _send(REPLY_FD, {"ready": True})
    for line in requests:
        call = json.loads(line)
        try:
            value = target(*decode(call["args"]), **decode(call["kwargs"]))
            reply = {"value": encode(value)}
        except BaseException as exc:
            reply = {"raised": _describe(exc)}
        _send(REPLY_FD, reply)


# ---------------------------------------------------------------- the checker process

class CandidateStopped(Exception):
    """The candidate cannot answer any more: verdict says why (CRASHED, TIME_LIMIT, WALL_TIMEOUT, OUTPUT_LIMIT)."""

    def __init__(self, verdict: str, message: str):
        super().__init__(message)
        self.verdict = verdict


class CandidateRaised(Exception):
    """The candidate raised an exception that is not a builtin Exception type."""


def _peer_cpu(pid: int) -> tuple[float, bool]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return 0.0, False
    fields = text[text.rfind(b")") + 2:].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK"), fields[0] == b"R" or _any_thread_runnable(pid)


def _any_thread_runnable(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        if text[text.rfind(b")") + 2:text.rfind(b")") + 3] == b"R":
            return True
    return False


class Channel:
    """Calls into the candidate with a per-call CPU limit and an idle (wall) guard."""

    def __init__(self, peer_pid: int, cpu_limit: float, wall_limit: float):
        self.peer_pid, self.cpu_limit, self.wall_limit = peer_pid, cpu_limit, wall_limit
        self.buffer = b""
        self.last_raised: BaseException | None = None
        self.start_budget()

    def start_budget(self) -> None:
        """Limits count from here: per call for case lists, once for a whole `check(candidate)`."""
        self.budget_cpu, _ = _peer_cpu(self.peer_pid)
        self.budget_wall = time.monotonic()

    def receive(self) -> dict:
        start_cpu, start = self.budget_cpu, self.budget_wall
        idle_polls = 0
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([REPLY_FD], [], [], 0.02)
            if ready:
                chunk = os.read(REPLY_FD, 1 << 20)
                if not chunk:
                    raise CandidateStopped("CRASHED", "the candidate process ended without answering")
                self.buffer += chunk
                if len(self.buffer) > MAX_REPLY_BYTES:
                    raise CandidateStopped("OUTPUT_LIMIT", f"reply larger than {MAX_REPLY_BYTES} bytes")
                continue
            cpu, runnable = _peer_cpu(self.peer_pid)
            if cpu - start_cpu > self.cpu_limit:
                raise CandidateStopped("TIME_LIMIT", f"CPU time limit of {self.cpu_limit:g} s exceeded")
            elapsed = time.monotonic() - start
            if elapsed > self.wall_limit:
                idle_polls = 0 if runnable else idle_polls + 1
                if idle_polls >= 2 or elapsed > 4 * self.wall_limit + 2 * self.cpu_limit:
                    raise CandidateStopped("WALL_TIMEOUT", f"idle past the wall-clock guard of {self.wall_limit:g} s")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            raise CandidateStopped("CRASHED", "the candidate corrupted the reply channel") from None
        return message

    def call(self, *args, **kwargs):
        _send(REQUEST_FD, {"args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        reply = self.receive()
        if "value" in reply:
            try:
                return decode(reply["value"])
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise CandidateStopped("CRASHED", f"malformed reply: {exc}") from None
        raised = reply.get("raised")
        if not isinstance(raised, dict):
            raise CandidateStopped("CRASHED", "the candidate corrupted the reply channel")
        exc_type = getattr(builtins, str(raised.get("type")), None)
        if not raised.get("is_exception"):  # SystemExit, KeyboardInterrupt...: the candidate tried to leave
            raise CandidateStopped("CRASHED", f"the candidate raised {raised.get('type')}: {raised.get('message')}")
        if isinstance(exc_type, type) and issubclass(exc_type, Exception) and not issubclass(exc_type, AssertionError):
            error = exc_type(raised.get("message", ""))
        else:
            error = CandidateRaised(f"{raised.get('type')}: {raised.get('message', '')}")
        error.candidate_traceback = raised.get("traceback", "")
        self.last_raised = error
        raise error


def run_checker(spec_path: str) -> None:
    nonce = os.read(SECRET_FD, 256).decode()
    os.close(SECRET_FD)
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    channel = Channel(int(os.environ["QWQ_PEER_PID"]), float(spec["cpu_seconds"]), float(spec["wall_seconds"]))

    def report(**fields) -> None:
        _send(REPORT_FD, fields)

    try:
        hello = channel.receive()
    except CandidateStopped as stop:
        report(case=spec["first_case"], verdict=stop.verdict, message=f"while loading: {stop}")
        report(done=nonce)
        return
    if "load_error" not in hello and hello.get("ready") is not True:
        report(case=spec["first_case"], verdict="RUNTIME_ERROR", message="the candidate corrupted the reply channel")
        report(done=nonce)
        return
    if "load_error" in hello:
        error = hello["load_error"] if isinstance(hello["load_error"], dict) else {}
        verdict = "COMPILE_ERROR" if hello.get("syntax") else "RUNTIME_ERROR"
        report(case=spec["first_case"], verdict=verdict, load_error=True,
               message=f"{error.get('type')}: {error.get('message')}\n{error.get('traceback', '')}")
        report(done=nonce)
        return
    if spec["mode"] == "check":
        namespace = {"__name__": "__checker__"}
        for name in ("prelude.py", "tests.py"):
            with open(os.path.join(os.path.dirname(spec_path), name), encoding="utf-8") as handle:
                exec(compile(handle.read(), name, "exec"), namespace)
            if name == "prelude.py" and "." not in spec["entry_point"]:
                # tests may call the function by its own name (HumanEval/33 does): that name means the candidate
                namespace[spec["entry_point"]] = channel.call
        try:
            namespace["check"](channel.call)
            report(case=0, verdict="OK", message="")
        except CandidateStopped as stop:
            report(case=0, verdict=stop.verdict, message=str(stop))
        except AssertionError as exc:
            report(case=0, verdict="WRONG_ANSWER", message=f"assertion failed {exc}".strip())
        except Exception as exc:
            if exc is channel.last_raised:
                report(case=0, verdict="RUNTIME_ERROR", message=f"{exc}\n{getattr(exc, 'candidate_traceback', '')}")
            else:
                report(case=0, verdict="WRONG_ANSWER", message=f"{type(exc).__name__}: {exc}")
    else:
        tolerance = spec.get("float_tolerance")
        for offset, case in enumerate(spec["cases"]):
            index = spec["first_case"] + offset
            channel.start_budget()
            try:
                value = channel.call(*decode(case["args"]), **decode(case["kwargs"]))
            except CandidateStopped as stop:
                report(case=index, verdict=stop.verdict, message=str(stop))
                break
            except Exception as exc:
                report(case=index, verdict="RUNTIME_ERROR", message=f"{type(exc).__name__}: {exc}")
                if spec["stop_at_first_failure"]:
                    break
                continue
            expected = decode(case["expected"])
            if values_match(value, expected, tolerance):
                report(case=index, verdict="OK", message="")
            else:
                report(case=index, verdict="WRONG_ANSWER",
                       message=f"expected {expected!r:.300} got {value!r:.300}")
                if spec["stop_at_first_failure"]:
                    break
    report(done=nonce)


def _zygote_serve() -> list[str]:
    """Become a zygote (see zygote.py, copied next to this file); returns inside each program it forks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_qwq_zygote", os.path.join(os.path.dirname(__file__), "zygote.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.serve()


if __name__ == "__main__":
    _args = _zygote_serve() if sys.argv[1] == "zygote" else sys.argv[1:]
    if _args[0] == "candidate":
        serve_candidate(_args[1], _args[2])
    elif _args[0] == "checker":
        run_checker(_args[1])
    # Both sides are done: the checker's report is complete (nonce written) and the candidate has no more calls
    # to answer, so nothing the interpreter's shutdown would do (waiting for threads the candidate left, atexit
    # hooks, freeing every module: tens of ms of CPU) can change a verdict. Skip it; keep the captured output.
    for _stream in (sys.stdout, sys.stderr):
        try:
            _stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream cannot hold anything worth keeping
            pass
    os._exit(0)
