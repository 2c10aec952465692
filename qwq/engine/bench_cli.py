"""`qwq bench`: load time, time to first token, single-stream decode speed, batched throughput, peak memory.

    qwq bench -m qwen2.5-coder-0.5b --quant int4 --tokens 128 --batch 16 [--json]

Decode speed is also given as a share of the memory-bandwidth roofline: the bytes of weights one decode step must
read (every Linear and the LM head, at their stored size) times tokens/s, over a measured copy bandwidth.
Prefill speed is timed on a long prompt (--prefill-tokens, default 512: one chunk through the quantized
kernels), best of --repeat, as prompt tokens per second and per CPU-second.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from qwq.engine.cli_common import add_model_args

DEFAULT_PROMPT = "Write a Python function that returns the n-th Fibonacci number, with a docstring and tests."


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--tokens", type=int, default=128, help="tokens to decode per sequence")
    parser.add_argument("--batch", type=int, default=16, help="concurrent sequences for the throughput run (0: skip)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="single-stream runs; the best is reported (robust to other load on the machine)")
    parser.add_argument("--prefill-tokens", type=int, default=512,
                        help="also time the prefill of a prompt this long (the bench prompt repeated, at most "
                             "the context; 0: skip)")
    parser.add_argument("--json", action="store_true")
    add_model_args(parser)


def copy_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """Best-of memory copy bandwidth (read + write bytes per second), in GB/s."""
    import torch

    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best / 1e9


def weight_bytes_per_token(model) -> int:
    """Bytes one decode step reads: all parameters and buffers except the embedding table (one row is read)."""
    total = 0
    embedding = model.model.embed_tokens
    seen = {id(t) for t in list(embedding.parameters()) + list(embedding.buffers())}
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen or tensor.is_meta:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    if model.config.tie_word_embeddings:  # the tied head reads the whole table each step
        total += sum(t.numel() * t.element_size() for t in embedding.parameters())
    return total


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def time_prefill(engine, prompt: list[int], length: int, repeat: int) -> dict:
    """Best-of-`repeat` prefill of a `length`-token prompt (no prefix cache: every token computed); capped to what
    the model's context allows."""
    length = min(length, engine.max_model_len - 1)
    from qwq.engine.sampling import SamplingParams

    long_prompt = (prompt * (length // len(prompt) + 1))[:length]
    one = SamplingParams(temperature=0.0, max_new_tokens=1, ignore_eos=True)
    best, best_cpu = 0.0, 0.0
    for _ in range(repeat):
        cpu_start = time.process_time()
        result = engine.generate([long_prompt], one)[0]
        cpu = time.process_time() - cpu_start
        best = max(best, result.timings.prefill_tokens_per_s)
        best_cpu = max(best_cpu, length / cpu if cpu > 0 else 0.0)  # the one sampled token included
    return {"long_prefill_tokens": length, "long_prefill_tokens_per_s": round(best, 1),
            "long_prefill_tokens_per_cpu_s": round(best_cpu, 1)}


def run_bench(args: argparse.Namespace) -> dict:
    from qwq.engine.cli_common import load_engine
    from qwq.engine.sampling import SamplingParams
    from qwq.utils.errors import UsageError

    if args.tokens <= 0 or args.batch < 0 or args.prefill_tokens < 0:
        raise UsageError("--tokens must be positive, --batch and --prefill-tokens >= 0")
    start = time.perf_counter()
    engine = load_engine(args, max_batch_size=max(1, args.batch), prefix_caching=False,
                         kv_cache_tokens=max(max(1, args.batch) * (args.tokens + 512), args.prefill_tokens + 1))
    load_s = time.perf_counter() - start
    prompt = engine.encode(args.prompt)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=args.tokens, ignore_eos=True)
    first = next(iter(engine.stream(prompt, greedy.replace(max_new_tokens=1))))
    ttft_s = time.perf_counter() - start
    assert first.token_id is not None

    single, single_tps, cpu_tps = None, 0.0, 0.0
    for _ in range(max(1, args.repeat)):
        cpu_start = time.process_time()
        result = engine.generate([prompt], greedy)[0]
        cpu = time.process_time() - cpu_start
        if result.timings.decode_tokens_per_s > single_tps:
            single, single_tps = result, result.timings.decode_tokens_per_s
            # tokens per CPU-second of this process (prefill included): with one thread, what an idle core gives
            cpu_tps = result.timings.generated_tokens / cpu if cpu > 0 else 0.0
    report = {
        "model": args.model, "quant": args.quant, "dtype": str(engine.dtype).removeprefix("torch."),
        "threads": __import__("torch").get_num_threads(), "load_s": round(load_s, 2),
        "load_to_first_token_s": round(ttft_s, 2), "prompt_tokens": len(prompt),
        "prefill_tokens_per_s": round(single.timings.prefill_tokens_per_s, 1),
        "single_stream_tokens_per_s": round(single_tps, 2),
        "single_stream_tokens_per_cpu_s": round(cpu_tps, 2),
    }
    step_bytes = weight_bytes_per_token(engine.model)
    bandwidth = copy_bandwidth_gbs()
    report.update({"weight_bytes_per_token": step_bytes, "copy_bandwidth_gbs": round(bandwidth, 1),
                   "roofline_tokens_per_s": round(bandwidth * 1e9 / step_bytes, 1),
                   "roofline_share": round(single_tps * step_bytes / (bandwidth * 1e9), 3)})
    if args.prefill_tokens:
        report.update(time_prefill(engine, prompt, args.prefill_tokens, max(1, args.repeat)))
    if args.batch:
        prompts = [prompt] * args.batch
        params = [greedy.replace(temperature=0.7, seed=i) for i in range(args.batch)]
        start = time.perf_counter()
        results = engine.generate(prompts, params)
        elapsed = time.perf_counter() - start
        generated = sum(len(s.token_ids) for r in results for s in r.samples)
        decode_s = max(r.timings.decode_s for r in results)
        report.update({"batch": args.batch, "batch_tokens_per_s": round(generated / elapsed, 2),
                       "batch_decode_tokens_per_s": round(generated / decode_s, 2) if decode_s else None,
                       "batch_speedup": round(generated / elapsed / single_tps, 2) if single_tps else None})
    report["peak_rss_gb"] = round(peak_rss_gb(), 2)
    return report


def main(args: argparse.Namespace) -> int:
    report = run_bench(args)
    if args.json:
        print(json.dumps(report))
        return 0
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0
