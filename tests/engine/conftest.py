"""Fixtures for the engine tests: a tiny random Qwen2 model and a small trained byte-level tokenizer."""

from __future__ import annotations

import pytest
import torch

from engine_fixtures import make_model

TEXT = ("The quick brown fox jumps over the lazy dog. Numbers: 12345 67890. def f(x): return x * 2\n"
        "Stop here END and continue. Unicode: café naïve 你好 世界 ✓.\n") * 20


@pytest.fixture(autouse=True)
def _one_thread():
    """Correctness tests do not need two threads, and on a shared 2-core machine one is far faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    from qwq.tokenizer import train_bpe

    return train_bpe([TEXT], vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                     added_tokens=["<think>", "</think>"], eos_token="<|im_end|>")


@pytest.fixture(scope="session")
def tiny_model():
    return make_model()
