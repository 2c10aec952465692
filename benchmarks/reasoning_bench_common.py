"""Shared by bench_loop_breaker.py and bench_overthinking.py: prompts from the shared data, the engine, runs with a
given set of reasoning controls, and the per-request measures (tokens, answered, correct)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def shared_data() -> Path:
    for candidate in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    raise SystemExit("shared data not found beside the checkout")


def load_problems(dataset: str, count: int, offset: int = 0) -> list[tuple[str, str]]:
    """(question, gold answer) pairs; "mixed" alternates MATH-500 and GSM8K."""
    def rows(name: str) -> list[tuple[str, str]]:
        from qwq.verify.extract import gold_answer

        path = shared_data() / name / "test.jsonl"
        return [(r["question"], gold_answer(r["answer"])) for r in map(json.loads, path.open(encoding="utf-8"))]

    if dataset == "mixed":
        a, b = rows("math500")[offset:], rows("gsm8k")[offset:]
        return [pair for i in range(count) for pair in ([a[i // 2]] if i % 2 == 0 else [b[i // 2]])][:count]
    return rows(dataset)[offset:offset + count]


def load_engine(batch: int, kv_tokens_per_row: int):
    from qwq.engine import Engine

    start = time.perf_counter()
    # No prefix caching: a prompt served from the cache is computed in different chunks, and the rounding
    # differences can flip greedy near-ties; every configuration must see the very same logits.
    engine = Engine.load("qwen2.5-coder-0.5b", quant="int4", max_batch_size=batch,
                         kv_cache_tokens=batch * kv_tokens_per_row, prefix_caching=False)
    print(f"loaded qwen2.5-coder-0.5b int4 in {time.perf_counter() - start:.1f}s", flush=True)
    return engine


def chat_prompts(engine, questions: list[str]) -> list[list[int]]:
    return [engine.render_chat([{"role": "user", "content": f"{q}\n{MATH_INSTRUCTION}"}]) for q in questions]


def final_region(text: str) -> str:
    """The answer part of an output: after the last `</think>` if the thinking was closed, else all of it (the
    0.5B model never writes `</think>` itself, so an output that ends on its own is its answer)."""
    return text.rsplit("</think>", 1)[1] if "</think>" in text else text


@dataclass
class Run:
    name: str
    samples: list = field(default_factory=list)
    wall_s: float = 0.0
    correct: list = field(default_factory=list)

    @property
    def tokens(self) -> list[int]:
        return [len(s.token_ids) for s in self.samples]

    def answered(self) -> list[bool]:
        """Finished on its own (EOS), with an answer the extractor reads in its final part."""
        from qwq.verify.extract import extract_math_answer

        out = []
        for s in self.samples:
            ended = s.finish_reason == "stop" and isinstance(s.stop_reason, int)
            out.append(ended and extract_math_answer(final_region(s.text)).answer is not None)
        return out


def run(engine, name: str, prompts: list[list[int]], golds: list[str], max_new_tokens: int,
        fields: dict) -> Run:
    from qwq.engine import SamplingParams
    from qwq.engine.controls import controls_from_request
    from qwq.verify import verify_math_batch

    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, controls=controls_from_request(fields))
    start = time.perf_counter()
    results = engine.generate(prompts, params)
    result = Run(name, [r.samples[0] for r in results], time.perf_counter() - start)
    verdicts = verify_math_batch([final_region(s.text) for s in result.samples], golds, starts_in_reasoning=False)
    result.correct = [v.correct is True for v in verdicts]
    print(f"  {name}: {sum(result.tokens)} tokens in {result.wall_s:.0f}s", flush=True)
    return result


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
