"""Load benchmark of `qwq serve`: many concurrent streaming clients, then half of them hanging up mid-stream.

    python benchmarks/bench_serve_load.py [-m tiny] [--clients 64] [--max-tokens 64] [--max-batch-size 64]

The server runs as its own process (`qwq serve`, so the clients do not share its interpreter); the clients are
`qwq.serve.loadgen` streams, each checked for well-formedness. Reports errors, complete streams, p50/p99 time to
first token and aggregate tokens/s; then the disconnect phase checks through /metrics that the KV cache returns to
empty (no leaked slot) and that every hang-up was aborted. The peer, measured in the same run: the same engine
generating the same requests in-process with no HTTP at all (`Engine.generate`), so the ratio is the server's cost.

Model: `-m` (default `tiny` when installed, else the server tests' tiny chat model, trained once into the qwq cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ["What is 2+3?", "Say hello.", "Think for a long time.", "Tell me something new.",
           "What is the weather in Paris?", "Explain continuous batching in one sentence."]


def default_model() -> str:
    from qwq.model.loading import resolve
    from qwq.utils.errors import ModelNotFoundError

    try:
        resolve("tiny")
        return "tiny"
    except ModelNotFoundError:
        pass
    sys.path.insert(0, str(REPO / "tests" / "serve"))
    import chat_model
    from qwq.utils.paths import cache_dir

    directory = cache_dir() / "bench" / "serve-chat-model"
    if not (directory / "config.json").is_file():
        print("training the tests' tiny chat model once ...", file=sys.stderr)
        chat_model.save_chat_model(directory)
    return str(directory)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "qwq", "serve", "-m", model, "--port", str(port), "--served-model-name", "bench",
               "--max-batch-size", str(args.max_batch_size), "--log-level", "warning"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.quant != "none":
        command += ["--quant", args.quant]
    env = {**os.environ, "QWQ_API_KEY": ""}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    import httpx

    deadline = time.monotonic() + 600
    while True:
        if process.poll() is not None:
            raise SystemExit(f"qwq serve exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("qwq serve did not come up in 10 minutes")
        time.sleep(0.25)


def bodies(count: int, max_tokens: int, **extra) -> list[dict]:
    return [{"model": "bench", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
             "max_tokens": max_tokens, "seed": i, "stream_options": {"include_usage": True}, **extra}
            for i in range(count)]


def offline_peer(model: str, requests: list[dict], args: argparse.Namespace) -> dict:
    """The same requests through Engine.generate in this process: no HTTP, no JSON, no event loop."""
    import torch

    from qwq.engine import Engine, SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
    engine = Engine.load(model, quant=args.quant, max_batch_size=args.max_batch_size)
    prompts = [engine.render_chat(r["messages"]) for r in requests]
    params = [SamplingParams(max_new_tokens=r["max_tokens"], seed=r["seed"]) for r in requests]
    start = time.perf_counter()
    results = engine.generate(prompts, params)
    wall = time.perf_counter() - start
    tokens = sum(len(s.token_ids) for r in results for s in r.samples)
    return {"completion_tokens": tokens, "wall_s": wall, "aggregate_tokens_per_s": tokens / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--model", default=None)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and peer alike (default 1: "
                        "two threads on a busy 2-core machine spin against each other)")
    parser.add_argument("--quant", default="none", choices=("none", "int8", "int4"))
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()

    from qwq.serve.loadgen import run_load, summarize, wait_for_idle

    model = args.model or default_model()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(model, port, args)
    failed = False
    served_rate = 0.0
    try:
        asyncio.run(run_load(url, bodies(4, 8)))  # warm-up
        load = bodies(args.clients, args.max_tokens)
        results, wall = asyncio.run(run_load(url, load))
        summary = summarize(results, wall)
        served_rate = summary["aggregate_tokens_per_s"]
        idle = asyncio.run(wait_for_idle(url))
        print(json.dumps({"phase": "load", "model": model, **summary}), flush=True)
        failed |= summary["errors"] > 0 or summary["complete"] != args.clients

        # half the clients hang up after 3 deltas of a generation that would run to the context limit
        aborted_before = idle.get("qwq_requests_aborted_total", 0)
        half = bodies(args.clients, args.max_tokens)
        disconnect = {}
        for i in range(1, args.clients, 2):
            half[i]["max_tokens"] = 4 * args.max_tokens
            disconnect[i] = 3
        results, wall = asyncio.run(run_load(url, half, disconnect_after=disconnect))
        summary = summarize(results, wall)
        try:
            after = asyncio.run(wait_for_idle(url, timeout_s=60))
            leaked = 0
        except TimeoutError as exc:
            print(f"LEAK: {exc}", file=sys.stderr)
            after, leaked = {}, 1
        aborted = after.get("qwq_requests_aborted_total", 0) - aborted_before
        print(json.dumps({"phase": "disconnect", **summary, "aborted": aborted, "leaked": leaked,
                          "kv_sequences_after": after.get("qwq_kv_cache_sequences"),
                          "kv_blocks_used_after": after.get("qwq_kv_cache_blocks_used")}), flush=True)
        failed |= bool(summary["errors"] or leaked or aborted < len(disconnect))
    finally:
        server.terminate()
        server.wait(timeout=60)
    if not args.skip_peer:
        peer = offline_peer(model, bodies(args.clients, args.max_tokens), args)
        print(json.dumps({"phase": "peer: Engine.generate in-process", **peer,
                          "served_over_offline": served_rate / peer["aggregate_tokens_per_s"]}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
