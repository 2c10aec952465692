"""Shared pieces of the reasoning-control tests: a small BPE with QwQ's added tokens (single-token `<think>` /
`</think>`, `<|im_end|>` as EOS, QwQ's chat template), engines over scripted models, and a long reasoning text that
never repeats itself."""

from __future__ import annotations

import functools
import random

from qwq.engine import Engine, SamplingParams
from qwq.engine.controls import controls_from_request
from qwq.tokenizer import QWQ_ADDED_TOKENS, QWQ_TEMPLATE, train_bpe

from scripted_model import ScriptedModel, TextScript, scripted_config

CORPUS = [
    "Let me think step by step. First, compute 12 * 7 = 84. Then add 16 to get 100. So the answer is 100.",
    "Wait, let me check that again. Hmm, maybe I made a mistake in the second step. Let's verify carefully.",
    "The quick brown fox jumps over the lazy dog. We need the number of ways to choose two items from five.",
    "def solve(n):\n    total = 0\n    for i in range(n):\n        total += i * i\n    return total\n",
    "机器学习是人工智能的一个分支。我们今天讨论推理模型。你好，世界！我们需要计算这个数的平方根。",
    "Consider the equation $x^2 + 3x - 4 = 0$. Factoring gives $(x + 4)(x - 1) = 0$, so $x = 1$ or $x = -4$.",
    "<think>\nLet me reason step by step.\n</think>\n\nThe answer is \\boxed{84}.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "Приводим пример текста на русском языке. Ελληνικά γράμματα α β γ. 日本語のテキストです。",
]


@functools.lru_cache(maxsize=1)
def qwq_like_tokenizer():
    special = [t.content for t in QWQ_ADDED_TOKENS if t.special]
    plain = [t.content for t in QWQ_ADDED_TOKENS if not t.special]
    return train_bpe(CORPUS * 20, 1200, special, added_tokens=plain, eos_token="<|im_end|>",
                     chat_template=QWQ_TEMPLATE)


def ids_of(tokenizer, *names: str) -> list[int]:
    return [tokenizer.token_to_id(n) for n in names]


def chat_prompt(tokenizer, question: str = "What is 12 * 7?") -> list[int]:
    """QwQ's generation prompt: the output starts inside `<think>`."""
    return tokenizer.encode(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n<think>\n")


def scripted_engine(script, tokenizer, max_len: int = 8192, **options) -> Engine:
    config = scripted_config(tokenizer.vocab_size, max_len)
    options.setdefault("max_batch_size", 4)
    options.setdefault("kv_cache_tokens", max_len * options["max_batch_size"])
    return Engine(ScriptedModel(script, config), tokenizer, config, **options)


def text_script(tokenizer, prompt: list[int], thinking: str | list[int], answer: str = "\n\nThe answer is 84."):
    close, eos = ids_of(tokenizer, "</think>", "<|im_end|>")
    thinking_ids = tokenizer.encode(thinking) if isinstance(thinking, str) else list(thinking)
    return TextScript(len(prompt), thinking_ids, tokenizer.encode(answer), close, eos)


def greedy(max_new_tokens: int, **fields) -> SamplingParams:
    """Greedy decoding with the reasoning controls of request `fields` (as the CLI and the server build them)."""
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, controls=controls_from_request(fields))


_SUBJECTS = ["the triangle", "the sequence", "this sum", "the remainder", "our guess", "the integral", "the matrix",
             "that bound", "the parity", "the last digit", "this case", "the graph", "the polynomial", "the ratio"]
_VERBS = ["gives", "suggests", "means", "implies", "rules out", "confirms", "changes", "bounds", "fixes"]
_OBJECTS = ["a contradiction", "the second case", "an even number", "a smaller value", "the same answer",
            "a new constraint", "nothing useful", "the base case", "a cleaner form", "two solutions"]
_OPENERS = ["So", "Then", "Now", "Hmm,", "Wait,", "Alternatively,", "Next,", "Also,", "But", "Therefore,"]


def non_repeating_reasoning(tokenizer, num_tokens: int = 2000, seed: int = 0) -> list[int]:
    """Reasoning-like text of `num_tokens` tokens: varied sentences, arithmetic with changing numbers, short lists
    and a code block; common words recur (as in real text), no passage repeats."""
    rng = random.Random(seed)
    parts: list[str] = []
    step = 0
    while True:
        kind = rng.random()
        step += 1
        if kind < 0.5:
            parts.append(f"{rng.choice(_OPENERS)} {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} "
                         f"{rng.choice(_OBJECTS)}.")
        elif kind < 0.75:
            a, b = rng.randint(2, 999), rng.randint(2, 99)
            parts.append(f"Compute {a} * {b} = {a * b}, and {a * b} + {step} = {a * b + step}.")
        elif kind < 0.9:
            items = rng.sample(range(1, 60), 4)
            parts.append("Cases: " + "; ".join(f"n = {i} gives {i * i % 17}" for i in items) + ".")
        else:
            k = rng.randint(2, 9)
            parts.append(f"\n```python\ndef f{step}(x):\n    return x ** {k} - {rng.randint(1, 50)}\n```\n")
        ids = tokenizer.encode(" ".join(parts))
        if len(ids) >= num_tokens:
            return ids[:num_tokens]
