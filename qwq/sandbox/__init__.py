"""Code-execution sandbox: run untrusted programs with verdicts, judge them against tests, serve it over HTTP.

runner.py (threat model, Sandbox/Session), verdicts.py (Verdict, Limits, RunResult), judge.py (test cases),
harness.py (function tests in two processes), batch.py (many programs per session: the code reward's path),
zygote.py (warm interpreters forking one fresh process per program), service.py (FastAPI), client.py (same API
in-process or over HTTP), forkserver.py / supervisor.py / isolation.py (the machinery; standard library only).
Torch-free; this package imports nothing from qwq except qwq.utils, and this file imports nothing at all (the
fork server loads it with -S).
"""
