"""Overthinking control: does answer-stabilisation early exit save tokens without losing accuracy?

    python benchmarks/bench_overthinking.py [--prompts 32] [--dataset gsm8k] [--max-new-tokens 512] [--every 32]

Real model: Qwen2.5-Coder-0.5B-Instruct (int4), greedy, math problems with QwQ's instruction through its chat
template; the whole output is treated as thinking (the model has no `<think>` tokens). Configurations:

- off: plain greedy decoding;
- text probe: exit once the answer stated in the thinking stayed the same for `patience` probes `every` tokens apart;
- model probe: every `every` tokens ask the model (side engine sharing the weights, prefix-cached) for its current
  `\\boxed{}` answer; exit once `patience` probes agree.

On exit the controller writes a short sentence and `</think>`; the model then answers (the answer is read from the
text after `</think>`). Printed: accuracy (math verifier against the gold), tokens of the outputs (mean / total),
probe tokens (model probe: the extra tokens decoded by the probes), exits, and wall time.
"""

from __future__ import annotations

import argparse

from reasoning_bench_common import chat_prompts, load_engine, load_problems, mean, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--dataset", choices=("mixed", "math500", "gsm8k"), default="gsm8k")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--every", type=int, default=32)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--skip-model-probe", action="store_true")
    args = parser.parse_args()

    from qwq.engine.controls.early_exit import model_probe

    problems = load_problems(args.dataset, args.prompts, args.offset)
    engine = load_engine(args.batch, 1024 + args.max_new_tokens)
    prompts = chat_prompts(engine, [q for q, _ in problems])
    golds = [g for _, g in problems]
    print(f"{len(prompts)} prompts ({args.dataset}), greedy, max {args.max_new_tokens} new tokens, "
          f"probe every {args.every} tokens, patience {args.patience}", flush=True)
    exit_settings = {"every": args.every, "patience": args.patience, "min_tokens": args.every}
    base = {"starts_in_thinking": True}
    runs = [run(engine, "off", prompts, golds, args.max_new_tokens, base),
            run(engine, "text probe", prompts, golds, args.max_new_tokens, base | {"early_exit": exit_settings})]
    probe = None
    if not args.skip_model_probe:
        probe = model_probe(engine, kv_cache_tokens=4 * (1024 + args.max_new_tokens))
        runs.append(run(engine, "model probe", prompts, golds, args.max_new_tokens,
                        base | {"early_exit": exit_settings | {"probe": probe}}))

    print()
    print("| config | correct | answered | tokens mean | tokens total | probes | probe cost (decoded + prefilled) "
          "| exits | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseline = runs[0]
    for r in runs:
        exits = sum(1 for s in r.samples if s.controls.get("early_exit", {}).get("exited"))
        probes = sum(s.controls.get("early_exit", {}).get("probes", 0) for s in r.samples)
        cost = f"{probe.decoded_tokens} + {probe.prefilled_tokens}" if r.name == "model probe" else "0"
        print(f"| {r.name} | {sum(r.correct)}/{len(r.samples)} | {sum(r.answered())}/{len(r.samples)} | "
              f"{mean(r.tokens):.0f} | {sum(r.tokens)} | {probes} | {cost} | {exits} | {r.wall_s:.0f} |")
    for r in runs[1:]:
        lost = [i for i in range(len(prompts)) if baseline.correct[i] and not r.correct[i]]
        gained = [i for i in range(len(prompts)) if r.correct[i] and not baseline.correct[i]]
        saved = sum(baseline.tokens) - sum(r.tokens)
        print(f"{r.name}: tokens saved {saved} ({saved / max(1, sum(baseline.tokens)):.1%}); "
              f"correct answers lost {len(lost)} {lost}, gained {len(gained)} {gained}")


if __name__ == "__main__":
    main()
