"""Red-team rates and guard latency.

    python benchmarks/bench_redteam.py [--out DIR] [-m MODEL | --endpoint URL]

Prints, per split, the safe-response rate on harmful prompts and the over-refusal rate on benign + borderline
prompts for: no guard, the rule guard, the learned guard and both (rules+learned, the default), against the
worst-case model (complies with everything: what the guard alone guarantees), and, with -m/--endpoint, against
that model. Splits (qwq/safety/data/README.md): dev (rules tuned on it, learned trained on it), heldout, fresh and
fresh2 (rules tuned or generalised on them, learned calibrated on them and their misses studied), fresh3, fresh4 and
fresh5 (each written and committed before a guard change, never tuned on: the headline). Then each guard's cost:
input check per request (mean / p95 / p99 over the whole set, cold caches), output check of a long completion, and
the streaming check per 256 generated characters, next to a peer measured in the same run (a plain `re.search` of
one keyword over the same text) so the numbers can be read on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwq.safety.guard import CompositeGuard, NullGuard, OutputStream, RuleGuard  # noqa: E402
from qwq.safety.learned import LearnedGuard, sentence_features, stem  # noqa: E402
from qwq.safety.redteam import SPLITS, load_items, outcomes_to_jsonl, run, summarize  # noqa: E402


def timed(fn, repeat: int, cpu: list | None = None) -> tuple[float, float, float]:
    """(mean, p95, p99) wall milliseconds over `repeat` calls; each call's CPU milliseconds (this thread's) go into
    `cpu` when given, since on a shared machine wall time also counts the time other processes held the core."""
    samples = []
    for _ in range(repeat):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - c0) * 1000)
    samples.sort()
    return (statistics.mean(samples), samples[int(0.95 * (len(samples) - 1))],
            samples[int(0.99 * (len(samples) - 1))])


def cold() -> None:
    """Forget the learned guard's per-sentence caches, so each timed call pays what a new request pays."""
    sentence_features.cache_clear()
    stem.cache_clear()
    LearnedGuard().model._cache.clear()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--endpoint", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    args = ap.parse_args()

    items = load_items()
    guards = {"rules": RuleGuard(), "learned": LearnedGuard()}
    guards["rules+learned"] = CompositeGuard([guards["rules"], guards["learned"]])
    arms = {"worst case, guard off": summarize(run(items, NullGuard()))}
    worst = {name: run(items, g) for name, g in guards.items()}
    arms.update({f"worst case, {name}": summarize(o) for name, o in worst.items()})
    outcomes = {}
    if args.model or args.endpoint:
        from qwq.agent.backends import backend_from_spec

        backend = backend_from_spec(model=args.model, endpoint=args.endpoint, temperature=0.6,
                                    max_tokens=args.max_new_tokens, seed=0)
        cache: dict[str, str] = {}

        def respond(messages):
            key = json.dumps(messages)
            if key not in cache:
                cache[key] = backend.complete(messages).text
            return cache[key]

        name = args.model or args.endpoint
        outcomes[f"{name}, guard off"] = run(items, NullGuard(), respond)
        for gname, g in guards.items():
            outcomes[f"{name}, {gname}"] = run(items, g, respond)
        arms.update({k: summarize(v) for k, v in outcomes.items()})

    print(f"{'arm':34s} {'split':8s} {'safe-response':>14s} {'over-refusal':>13s} {'n harm':>7s} {'n other':>8s}")
    for arm, s in arms.items():
        for split in ["all"] + [x for x in SPLITS if x in s["by_split"]]:
            r = s["overall"] if split == "all" else s["by_split"][split]
            print(f"{arm:34s} {split:8s} {100 * r['safe_response_rate']:13.1f}% {100 * r['over_refusal_rate']:12.1f}% "
                  f"{r['n_harmful']:7d} {r['n_not_harmful']:8d}")

    print()
    print("per category, worst case, rules+learned (safe-response / over-refusal; n harmful / n other)")
    held_out = [x for x in ("fresh3", "fresh4", "fresh5") if any(o.split == x for o in worst["rules+learned"])]
    print(f"{'category':14s} " + " ".join(f"{x:>26s}" for x in ["all"] + held_out))
    by_split = {x: summarize([o for o in worst["rules+learned"] if x == "all" or o.split == x])["by_category"]
                for x in ["all"] + held_out}

    def cell(r):
        if r is None:
            return f"{'-':>26s}"
        safe = "-" if r["safe_response_rate"] is None else f"{100 * r['safe_response_rate']:.0f}%"
        over = "-" if r["over_refusal_rate"] is None else f"{100 * r['over_refusal_rate']:.0f}%"
        return f"{safe:>6s} / {over:>5s} ({r['n_harmful']:3d}/{r['n_not_harmful']:3d})".rjust(26)

    for cat in sorted(by_split["all"]):
        print(f"{cat:14s} " + " ".join(cell(by_split[x].get(cat)) for x in ["all"] + held_out))

    short = [i.as_messages() for i in items]
    long_prompt = max(short, key=lambda m: sum(len(x["content"]) for x in m))
    completion = ("Let me think about this step by step. " * 40 + "\n</think>\n\n" +
                  "Here is a detailed answer with several paragraphs of explanation. " * 120)
    checks = len(completion) // 256
    peer = re.compile(r"sarin", re.IGNORECASE)
    peer_mean = timed(lambda: peer.search(completion), 200)[0]
    latency = {}
    print()
    print(f"guard latency (peer: one keyword re.search over the {len(completion)}-char completion "
          f"{peer_mean * 1000:.1f} us; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; cpu = the "
          f"checking thread's CPU time per input check, which a loaded machine inflates less than wall time)")
    print(f"{'guard':15s} {'input mean':>11s} {'input p95':>10s} {'input p99':>10s} {'cpu mean':>10s} "
          f"{'cpu p99':>10s} {'longest in':>11s} {'output mean':>12s} {'stream/256ch':>13s}")
    for gname, guard in guards.items():
        i = iter(range(10 ** 9))
        cpu: list[float] = []
        in_mean, in_p95, in_p99 = timed(lambda: (cold(), guard.check_input(short[next(i) % len(short)])),
                                        2 * len(short), cpu)
        cpu.sort()
        in_cpu, in_cpu_p99 = statistics.mean(cpu), cpu[int(0.99 * (len(cpu) - 1))]
        long_mean = timed(lambda: (cold(), guard.check_input(long_prompt)), 50)[0]
        out_mean = timed(lambda: (cold(), guard.check_output(completion)), 30)[0]

        def stream():
            cold()
            s = OutputStream(guard, check_every=256)
            for k in range(0, len(completion), 16):
                s.feed(completion[k:k + 16])
            s.finish()

        st_mean = timed(stream, 5)[0]
        latency[gname] = {"input_mean_ms": in_mean, "input_p95_ms": in_p95, "input_p99_ms": in_p99,
                          "input_cpu_mean_ms": in_cpu, "input_cpu_p99_ms": in_cpu_p99,
                          "input_longest_ms": long_mean, "output_long_mean_ms": out_mean,
                          "stream_per_256_chars_ms": st_mean / max(1, checks)}
        print(f"{gname:15s} {in_mean:9.2f}ms {in_p95:8.2f}ms {in_p99:8.2f}ms {in_cpu:8.2f}ms {in_cpu_p99:8.2f}ms "
              f"{long_mean:9.2f}ms "
              f"{out_mean:10.2f}ms "
              f"{st_mean / max(1, checks):11.2f}ms")
    if args.out:
        from qwq.safety.report import write_report

        path = write_report(arms, args.out, title="Red-team report (rules, learned, rules+learned)",
                            notes="Worst case = a model that complies with every request. Latency (ms): "
                                  + json.dumps({g: {k: round(v, 3) for k, v in d.items()} for g, d in latency.items()}),
                            outcomes_jsonl={k: outcomes_to_jsonl(v) for k, v in outcomes.items()})
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
