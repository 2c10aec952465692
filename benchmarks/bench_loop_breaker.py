"""Loop breaker on the real model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M repacked to int4), greedy decoding, which
loops easily. Same prompts, breaker off vs on.

    python benchmarks/bench_loop_breaker.py [--prompts 32] [--dataset mixed] [--max-new-tokens 768] [--batch 16]

Prompts: MATH-500 / GSM8K problems with QwQ's math instruction, through the model's own chat template. The model has
no `<think>` tokens and never writes `</think>`: the whole output is treated as thinking (`starts_in_thinking:
true`), so when the breaker fires it writes its exit sentence and `</think>` as text and the model answers after it
(at most 256 answer tokens). A request "ends with an answer" when it finished on its own (EOS, not the length limit
or a stop) and its final part (after `</think>` if any, else all of it) has an answer the verify layer's extractor
reads. Printed per configuration: requests ending with an answer, tokens spent (mean / p90 / total), loops cut,
accuracy against the gold answers (the math verifier), and wall time.
"""

from __future__ import annotations

import argparse
import json

from reasoning_bench_common import chat_prompts, load_engine, load_problems, mean, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--dataset", choices=("mixed", "math500", "gsm8k"), default="mixed")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=768)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", default=None, help="also write the per-request records here")
    args = parser.parse_args()

    problems = load_problems(args.dataset, args.prompts, args.offset)
    engine = load_engine(args.batch, 1024 + args.max_new_tokens)
    prompts = chat_prompts(engine, [q for q, _ in problems])
    golds = [g for _, g in problems]
    print(f"{len(prompts)} prompts ({args.dataset}), greedy, max {args.max_new_tokens} new tokens", flush=True)
    breaker = {"answer_tokens": 256}
    runs = [run(engine, "breaker off", prompts, golds, args.max_new_tokens, {"starts_in_thinking": True}),
            run(engine, "breaker on", prompts, golds, args.max_new_tokens,
                {"starts_in_thinking": True, "loop_breaker": breaker})]

    off, on = runs
    print()
    print(f"| {'config':<12} | answered | tokens mean | tokens p90 | tokens total | hit length limit | loops cut "
          f"| correct | wall s |")
    print("|" + "---|" * 9)
    for r in runs:
        tokens = sorted(r.tokens)
        loops = sum(1 for s in r.samples if s.controls.get("loop_breaker", {}).get("fired"))
        length = sum(1 for s in r.samples if s.finish_reason == "length")
        print(f"| {r.name:<12} | {sum(r.answered())}/{len(r.samples)} | {mean(tokens):.0f} | "
              f"{tokens[int(0.9 * (len(tokens) - 1))]} | {sum(tokens)} | {length} | {loops} | "
              f"{sum(r.correct)}/{len(r.samples)} | {r.wall_s:.0f} |")
    changed = [i for i, (a, b) in enumerate(zip(off.samples, on.samples)) if a.token_ids != b.token_ids]
    unchanged_same = all(off.samples[i].token_ids == on.samples[i].token_ids
                         for i in range(len(prompts)) if not on.samples[i].controls["loop_breaker"]["fired"])
    print(f"\nrequests the breaker changed: {len(changed)} (every one of them had a loop cut: "
          f"{all(on.samples[i].controls['loop_breaker']['fired'] for i in changed)}); "
          f"requests without a loop are token-identical: {unchanged_same}")
    rescued = [i for i in changed if on.answered()[i] and not off.answered()[i]]
    print(f"requests that end with an answer only with the breaker: {len(rescued)}; "
          f"tokens saved: {sum(off.tokens) - sum(on.tokens)} ({1 - sum(on.tokens) / max(1, sum(off.tokens)):.0%})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            for i, (a, b) in enumerate(zip(off.samples, on.samples)):
                f.write(json.dumps({"i": i, "gold": golds[i], "off": {"tokens": len(a.token_ids),
                                    "finish": a.finish_reason, "text_tail": a.text[-300:]},
                                    "on": {"tokens": len(b.token_ids), "finish": b.finish_reason,
                                           "controls": b.controls, "text_tail": b.text[-400:]}},
                                   ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
