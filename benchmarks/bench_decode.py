"""Decode speed of qwq against its peers on the same GGUF, same prompt, same threads (DESIGN §5, engine issue).

    python benchmarks/bench_decode.py [--tokens 128] [--threads 2] [--batch 16] [--skip transformers,llama.cpp]

Runs, each in its own process (clean peak RSS): qwq int4, int8 and w8a8 (`qwq bench`), transformers fp32 loading the GGUF
(`from_pretrained(gguf_file=...)`), and llama.cpp through llama-cpp-python when it is installed (it is optional and
never installed by CI: it builds from source for ~15 minutes). Prints one row per run and the ratios qwq/peer.
Rates are the best of --repeat runs; "per CPU-second" divides by the process's CPU time instead of wall time, which
with one thread is what an idle core would give (use it when other jobs share the machine). Prefill is timed on a
separate --prefill-tokens prompt (qwq: the bench prompt repeated; llama-bench: its `-p` run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring and tests."

PEER_SCRIPT = r'''
import json, resource, sys, time
kind, path, tokens, threads, prompt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
repeat = int(sys.argv[6])
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
if kind == "transformers":
    import torch
    torch.set_num_threads(threads)
    from pathlib import Path
    from transformers import AutoModelForCausalLM, AutoTokenizer
    p = Path(path)
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, torch_dtype=torch.float32)
    load = time.perf_counter() - start
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        model.generate(ids, max_new_tokens=1, do_sample=False)
        ttft = time.perf_counter() - start
        best = best_cpu = 0.0
        for _ in range(repeat):
            c0 = time.process_time()
            t0 = time.perf_counter(); model.generate(ids, max_new_tokens=1, do_sample=False); one = time.perf_counter() - t0
            c1 = time.process_time()
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            total = time.perf_counter() - t0
            c2 = time.process_time()
            n = out.shape[1] - ids.shape[1]
            best = max(best, (n - 1) / (total - one))
            best_cpu = max(best_cpu, (n - 1) / max(1e-9, (c2 - c1) - (c1 - c0)))
    print(json.dumps({"run": "transformers fp32", "load_s": load, "load_to_first_token_s": ttft,
                      "single_stream_tokens_per_s": best, "single_stream_tokens_per_cpu_s": best_cpu,
                      "peak_rss_gb": rss()}))
elif kind == "llama.cpp":
    from llama_cpp import Llama
    start = time.perf_counter()
    llm = Llama(model_path=path, n_threads=threads, n_ctx=1024, verbose=False)
    load = time.perf_counter() - start
    llm.create_completion(prompt, max_tokens=1, temperature=0.0)
    ttft = time.perf_counter() - start
    best = best_cpu = 0.0
    for _ in range(repeat):
        llm.reset()
        c0 = time.process_time()
        t0 = time.perf_counter(); llm.create_completion(prompt, max_tokens=1, temperature=0.0); one = time.perf_counter() - t0
        c1 = time.process_time()
        llm.reset()
        t0 = time.perf_counter()
        out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0)
        total = time.perf_counter() - t0
        c2 = time.process_time()
        n = out["usage"]["completion_tokens"]
        best = max(best, (n - 1) / (total - one))
        best_cpu = max(best_cpu, (n - 1) / max(1e-9, (c2 - c1) - (c1 - c0)))
    print(json.dumps({"run": "llama.cpp", "load_s": load, "load_to_first_token_s": ttft,
                      "single_stream_tokens_per_s": best, "single_stream_tokens_per_cpu_s": best_cpu,
                      "peak_rss_gb": rss()}))
'''


def run_qwq(quant: str, args) -> dict:
    cmd = [sys.executable, "-m", "qwq", "bench", "-m", "qwen2.5-coder-0.5b", "--quant", quant, "--tokens",
           str(args.tokens), "--batch", str(args.batch), "--threads", str(args.threads), "--repeat", str(args.repeat),
           "--prefill-tokens", str(args.prefill_tokens), "--json",
           "--prompt", PROMPT]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    report["run"] = f"qwq {quant}"
    return report


def run_llama_bench(binary: str, path: str, args) -> dict | None:
    """llama.cpp's own `llama-bench` (text generation from an empty context, and a separate prompt of
    --prefill-tokens): the peer when llama-cpp-python is absent."""
    proc = subprocess.run([binary, "-m", path, "-t", str(args.threads), "-p", str(args.prefill_tokens), "-n",
                           str(args.tokens), "-r", str(args.repeat), "-o", "json"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"llama-bench: failed ({proc.stderr.strip()[-300:]})")
        return None
    results = json.loads(proc.stdout)
    rate = max(r["avg_ts"] for r in results if r.get("n_gen"))
    prefill = [r["avg_ts"] for r in results if r.get("n_prompt") and not r.get("n_gen")]
    row = {"run": "llama.cpp (llama-bench)", "load_s": float("nan"), "load_to_first_token_s": float("nan"),
           "single_stream_tokens_per_s": rate, "peak_rss_gb": float("nan")}
    if prefill:
        row["long_prefill_tokens_per_s"] = max(prefill)
    return row


def run_peer(kind: str, path: str, args) -> dict | None:
    if kind == "llama.cpp":
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            print("llama.cpp: skipped (llama-cpp-python is not installed; `pip install llama-cpp-python` builds it "
                  "from source in ~15 min)")
            return None
    proc = subprocess.run([sys.executable, "-c", PEER_SCRIPT, kind, path, str(args.tokens), str(args.threads),
                           PROMPT, str(args.repeat)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{kind}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def per_cpu_ratio(run: dict, peer: dict) -> str:
    """qwq's tokens per CPU-second over the peer's, or "-" when either has no CPU time (llama-bench reports none)."""
    ours, theirs = run.get("single_stream_tokens_per_cpu_s"), peer.get("single_stream_tokens_per_cpu_s")
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="decode runs per engine; the best one counts")
    parser.add_argument("--prefill-tokens", type=int, default=512,
                        help="prompt length of the prefill timing (qwq and llama-bench; 0: skip)")
    parser.add_argument("--skip", default="", help="comma list of runs to skip: int8, w8a8, transformers, llama.cpp")
    parser.add_argument("--llama-bench", default=None, metavar="PATH",
                        help="a llama.cpp `llama-bench` binary to use as the llama.cpp peer instead of llama-cpp-python")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from qwq.model.hub import ensure_real_model

    path = str(ensure_real_model())
    skip = set(filter(None, args.skip.split(",")))
    rows = [run_qwq("int4", args)]
    for quant in ("int8", "w8a8"):
        if quant not in skip:
            rows.append(run_qwq(quant, args))
    for peer in ("llama.cpp", "transformers"):
        if peer not in skip:
            row = run_llama_bench(args.llama_bench, path, args) if peer == "llama.cpp" and args.llama_bench \
                else run_peer(peer, path, args)
            if row:
                rows.append(row)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}  threads={args.threads}  tokens={args.tokens}  prompt={PROMPT!r}")
    print(f"{'run':20s} {'tok/s':>8s} {'tok/cpu-s':>9s} {'load s':>8s} {'to 1st tok s':>12s} {'peak RSS GB':>11s} "
          f"{'roofline':>8s} {'batch tok/s':>11s} {'batch x':>7s} {'prefill tok/s':>13s}")
    for r in rows:
        print(f"{r['run']:20s} {r['single_stream_tokens_per_s']:8.2f} "
              f"{r.get('single_stream_tokens_per_cpu_s', float('nan')):9.2f} {r['load_s']:8.2f} "
              f"{r['load_to_first_token_s']:12.2f} {r['peak_rss_gb']:11.2f} "
              f"{r.get('roofline_share', float('nan')):8.2f} {r.get('batch_tokens_per_s', float('nan')):11.2f} "
              f"{r.get('batch_speedup', float('nan')):7.2f} "
              f"{r.get('long_prefill_tokens_per_s', float('nan')):13.1f}")
    peers = {r["run"]: r for r in rows if not r["run"].startswith("qwq")}
    for r in rows:
        if r["run"].startswith("qwq"):
            for name, peer in peers.items():
                ratio = r["single_stream_tokens_per_s"] / peer["single_stream_tokens_per_s"]
                print(f"{r['run']} / {name}: {ratio:.2f}x decode tok/s (wall), "
                      f"{per_cpu_ratio(r, peer)} per CPU-second")
                if r.get("long_prefill_tokens_per_s") and peer.get("long_prefill_tokens_per_s"):
                    speedup = r["long_prefill_tokens_per_s"] / peer["long_prefill_tokens_per_s"]
                    print(f"{r['run']} / {name}: {speedup:.2f}x prefill tok/s ({args.prefill_tokens}-token prompt, "
                          f"wall)")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
