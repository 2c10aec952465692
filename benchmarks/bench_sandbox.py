"""Sandbox throughput: a trivial Python program through the sandbox vs a bare subprocess, and over HTTP.

    python benchmarks/bench_sandbox.py [--runs 60] [--clients 8]

Prints executions/s for: bare `subprocess.run([python, -c, CODE])`, the in-process sandbox (sequential, and with
`--clients` threads), and the HTTP service with `--clients` concurrent clients; then the ratios. The target is a
per-run overhead of at most 1.5x the bare subprocess (sequential, same machine, same run).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
