"""Sandbox throughput: a trivial Python program through the sandbox vs a bare subprocess, and over HTTP; and the
code reward's workload, many small function-test programs, one session each (old path) vs judge_batch (new path).

    python benchmarks/bench_sandbox.py [--runs 60] [--clients 8] [--programs 64] [--workers 2] [--only-batch]

Prints executions/s for: bare `subprocess.run([python, -c, CODE])`, the in-process sandbox (sequential, and with
`--clients` threads), and the HTTP service with `--clients` concurrent clients; then the ratios. The target is a
per-run overhead of at most 1.5x the bare subprocess (sequential, same machine, same run).

The batch case judges `--programs` distinct teacher programs of qwq.rl's code task (function tests, 4 cases each)
with `--workers` threads: `judge()` per program in a thread pool (one session, two interpreter start-ups per
program: the old `judge_many`) against `judge_batch` (one reused session per worker, programs forked from warm
zygotes), rounds interleaved so background load hits both alike; it also checks that both give the same verdicts.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CODE = "print(sum(range(100)))"


def rate(label: str, runs: int, fn, clients: int = 1) -> float:
    fn()  # warm-up (fork server start, imports)
    start = time.perf_counter()
    if clients == 1:
        for _ in range(runs):
            fn()
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: fn(), range(runs)))
    elapsed = time.perf_counter() - start
    per_second = runs / elapsed
    print(f"{label:48s} {per_second:7.1f} exec/s  ({1000 * elapsed / runs:6.1f} ms per run)")
    return per_second


def function_programs(count: int) -> list[dict]:
    """`count` distinct judge items from the RL code task: its teacher's programs (some wrong) and their tests."""
    import random

    from qwq.rl.data import columns
    from qwq.rl.tasks_code import CodeTask
    from qwq.verify.code import _program, parse_test_spec

    task, rng = CodeTask(), random.Random(0)
    items, seen = [], set()
    while len(items) < count:
        example = task.generate(rng)
        code, _ = _program(task.teacher(example, rng, 0.3), "python", True)
        spec = columns([example])["tests"][0]
        if code is not None and code not in seen:
            seen.add(code)
            items.append({"code": code, "tests": parse_test_spec(spec)})
    return items


def bench_batch(programs: int, workers: int, rounds: int = 3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from qwq.sandbox.batch import judge_batch
    from qwq.sandbox.judge import judge
    from qwq.sandbox.runner import Sandbox

    items = function_programs(programs)
    sandbox = Sandbox().start()

    def old() -> list:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda item: judge(sandbox=sandbox, **item), items))

    def new() -> list:
        return judge_batch(items, workers=workers, sandbox=sandbox)

    def timed(fn) -> tuple[float, list]:
        start = time.perf_counter()
        results = fn()
        return 1000 * (time.perf_counter() - start) / len(items), [(r.verdict, r.passed) for r in results]

    print(f"\n{len(items)} distinct function-test programs (RL code task), {workers} workers")
    new()  # warm sessions and zygotes, as a training run has them after its first step
    old_ms, new_ms, mismatches = [], [], 0
    for _ in range(rounds):
        ms_old, verdicts_old = timed(old)
        ms_new, verdicts_new = timed(new)
        old_ms.append(ms_old)
        new_ms.append(ms_new)
        mismatches += sum(a != b for a, b in zip(verdicts_old, verdicts_new))
        print(f"  old judge() per program {ms_old:6.1f} ms/program   new judge_batch {ms_new:6.1f} ms/program")
    sandbox.close()
    print(f"batch vs one session per program: {min(old_ms) / min(new_ms):.2f}x throughput (best rounds: "
          f"{min(old_ms):.1f} -> {min(new_ms):.1f} ms/program); verdict mismatches: {mismatches}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only-batch", action="store_true", help="run only the many-programs case")
    args = parser.parse_args()
    if args.only_batch:
        bench_batch(args.programs, args.workers)
        return

    import httpx
    import uvicorn

    from qwq.sandbox.runner import Sandbox
    from qwq.sandbox.service import create_app
    from qwq.sandbox.verdicts import Verdict

    def bare() -> None:
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
        assert out.stdout.strip() == "4950", out

    sandbox = Sandbox().start()
    print("isolation layers active:", ", ".join(sandbox.isolation["active"]) or "none")
    print("inactive:", ", ".join(sandbox.isolation["inactive"]) or "none")

    def boxed() -> None:
        result = sandbox.run(CODE)
        assert result.verdict is Verdict.OK and result.stdout.strip() == "4950", result

    # interleave bare and sandboxed rounds so background load affects both alike
    bare_rates, box_rates = [], []
    for _ in range(3):
        bare_rates.append(rate("bare subprocess.run([python, -c])", args.runs // 3, bare))
        box_rates.append(rate("sandbox, sequential", args.runs // 3, boxed))
    bare_rate, box_rate = max(bare_rates), max(box_rates)
    box_parallel = rate(f"sandbox, {args.clients} threads", args.runs, boxed, args.clients)

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    app = create_app(workers=args.clients, max_queue=4 * args.clients, sandbox=sandbox)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                        limits=httpx.Limits(max_connections=args.clients * 2))

    def over_http() -> None:
        reply = http.post("/run", json={"code": CODE})
        assert reply.status_code == 200 and reply.json()["verdict"] == "OK", reply.text

    http_rate = rate(f"HTTP service, {args.clients} concurrent clients", args.runs, over_http, args.clients)
    server.should_exit = True
    thread.join()
    sandbox.close()

    print()
    print(f"overhead per run, sandbox vs bare (sequential): {bare_rate / box_rate:.2f}x  (target <= 1.5x)")
    print(f"sandbox {args.clients} threads vs sequential:            {box_parallel / box_rate:.2f}x throughput")
    print(f"HTTP {args.clients} clients vs in-process {args.clients} threads:   {http_rate / box_parallel:.2f}x throughput")
    bench_batch(args.programs, args.workers)


if __name__ == "__main__":
    main()
