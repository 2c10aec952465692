"""Command-line flags of the reasoning controls (`qwq generate`, `qwq chat`): the request fields, spelled as flags."""

from __future__ import annotations

import argparse
from typing import Any


def add_control_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reasoning controls (all off by default)")
    group.add_argument("--thinking-budget", type=int, default=None, metavar="N",
                       help="at most N thinking tokens, then a wrap-up sentence, </think> and the answer")
    group.add_argument("--answer-budget", type=int, default=None, metavar="A",
                       help="with --thinking-budget: at most A answer tokens after the thinking")
    group.add_argument("--min-thinking-tokens", type=int, default=None, metavar="M",
                       help="budget forcing: a </think> before M thinking tokens becomes 'Wait' (at most 8 times)")
    group.add_argument("--loop-breaker", nargs="?", const="answer", choices=("answer", "stop"), default=None,
                       help="detect repetition loops; 'answer' (default) closes the thinking, 'stop' ends the sample")
    group.add_argument("--language-guard", nargs="?", const="report", choices=("report", "penalize", "mask"),
                       default=None, help="keep the thinking in the user's script (report only by default)")
    group.add_argument("--early-exit", action="store_true",
                       help="stop thinking once the answer stated in the thinking stays the same (3 probes)")
    group.add_argument("--self-consistency", type=int, default=None, metavar="N",
                       help="sample N answers and return the majority (math answers; ties by mean logprob)")
    group.add_argument("--thinking", choices=("auto", "yes", "no"), default="auto",
                       help="does the output start inside the thinking? auto: read it from the prompt")


def request_fields_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as request fields (the server's names)."""
    fields: dict[str, Any] = {}
    budget = getattr(args, "thinking_budget", None)
    answer_budget = getattr(args, "answer_budget", None)
    if budget is not None:
        fields["thinking_budget"] = budget if answer_budget is None else {"max_thinking_tokens": budget,
                                                                          "answer_tokens": answer_budget}
    elif answer_budget is not None:
        from qwq.utils.errors import UsageError

        raise UsageError("--answer-budget needs --thinking-budget")
    for name in ("min_thinking_tokens", "loop_breaker", "language_guard", "self_consistency"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "early_exit", False):
        fields["early_exit"] = True
    thinking = getattr(args, "thinking", "auto")
    if thinking != "auto":
        fields["starts_in_thinking"] = thinking == "yes"
    return fields


def controls_from_args(args: argparse.Namespace) -> dict:
    from qwq.engine.controls import controls_from_request

    return controls_from_request(request_fields_from_args(args))


def self_consistency_from_args(args: argparse.Namespace):
    from qwq.engine.controls import self_consistency_from_request

    return self_consistency_from_request(request_fields_from_args(args))


def print_self_consistency(engine: Any, prompt: list[int], params: Any, settings: Any, as_json: bool) -> int:
    """Run the vote for `qwq generate/chat --self-consistency N` and print it: the winning sample's text and the
    vote table (or, with --json, one object with the table and the winner)."""
    import json

    from qwq.engine.self_consistency import self_consistency

    result = self_consistency(engine, prompt, params, settings)
    winner = result.winner_index
    if as_json:
        record = result.to_dict() | {"prompt_token_ids": list(prompt),
                                     "text": None if winner is None else result.texts.get(winner)}
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0
    if winner is not None:
        print(result.texts.get(winner, ""))
    print(f"--- self-consistency: {len(result.ballots)} of {settings.n} samples voted"
          f"{' (stopped early)' if result.stopped_early else ''}; answer: {result.answer} ---")
    for row in result.table:
        print(f"  {row['votes']:>3} x {row['answer']}  (samples {row['samples']}, mean logprob {row['mean_logprob']})")
    missing = [b.index for b in result.ballots if b.answer is None]
    if missing:
        print(f"  no answer: samples {missing}")
    return 0
