"""`qwq generate`: n samples for one prompt; text to stdout (streamed when n = 1) or one JSON object per sample."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qwq.engine.cli_common import add_model_args, add_sampling_args, load_engine, sampling_params
from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="prompt text")
    source.add_argument("--prompt-file", type=Path, help="read the prompt from a file ('-' for stdin)")
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt as a user message in the model's chat template (generation prompt)")
    parser.add_argument("--system", default=None, help="system message (with --chat)")
    parser.add_argument("--n", type=int, default=1, help="number of samples (they share one prefill)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per sample")
    parser.add_argument("--logprobs", action="store_true", help="include per-token logprobs in --json output")
    add_sampling_args(parser)
    add_model_args(parser)


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        return args.prompt
    if str(args.prompt_file) == "-":
        return sys.stdin.read()
    try:
        return args.prompt_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--prompt-file {args.prompt_file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--prompt-file {args.prompt_file}: not UTF-8 text") from None


def prompt_ids(engine, args: argparse.Namespace, text: str) -> list[int]:
    if not args.chat:
        if args.system:
            raise UsageError("--system needs --chat")
        return engine.encode(text)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": text}]
    return engine.render_chat(messages)


def split_thinking(engine, prompt: list[int], text: str) -> tuple[str | None, str]:
    """(reasoning, answer). The prompt may already have opened `<think>` (QwQ's generation prompt)."""
    from qwq.tokenizer import prompt_starts_in_reasoning, split_reasoning

    inside = prompt_starts_in_reasoning(engine.tokenizer.decode(prompt[-64:]))
    if not inside and "<think>" not in text:
        return None, text
    split = split_reasoning(text, starts_in_reasoning=inside)
    return split.reasoning, split.answer


def main(args: argparse.Namespace) -> int:
    if args.n <= 0:
        raise UsageError(f"--n must be positive, got {args.n}")
    params = sampling_params(args, n=args.n, logprobs=args.logprobs)
    text = read_prompt(args)
    from qwq.engine.controls.args import print_self_consistency, self_consistency_from_args

    voting = self_consistency_from_args(args)
    if voting is not None and args.n != 1:
        raise UsageError("--self-consistency N sets the number of samples: drop --n")
    engine = load_engine(args, max_batch_size=max(args.max_batch_size, args.n, voting.n if voting else 1))
    prompt = prompt_ids(engine, args, text)
    if voting is not None:
        return print_self_consistency(engine, prompt, params, voting, args.json)
    if args.json:
        result = engine.generate([prompt], params)[0]
        for sample in result.samples:
            reasoning, answer = split_thinking(engine, prompt, sample.text)
            record = {"prompt_token_ids": result.prompt_token_ids, "sample_index": sample.index,
                      "token_ids": sample.token_ids, "text": sample.text, "reasoning": reasoning, "answer": answer,
                      "finish_reason": sample.finish_reason, "stop_reason": sample.stop_reason, "seed": sample.seed,
                      "timings": result.timings.to_dict(), "controls": sample.controls}
            if args.logprobs:
                record["logprobs"] = sample.logprobs
            print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0
    if args.n == 1:
        for event in engine.stream(prompt, params):
            sys.stdout.write(event.text_delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    result = engine.generate([prompt], params)[0]
    for sample in result.samples:
        print(f"--- sample {sample.index} ({sample.finish_reason}, {len(sample.token_ids)} tokens) ---")
        print(sample.text)
    return 0
