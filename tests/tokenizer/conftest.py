"""Fixtures for tokenizer tests: a small trained byte-level BPE with QwQ's added tokens, and GGUF writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwq.tokenizer import QWQ_ADDED_TOKENS, QWQ_TEMPLATE, Tokenizer, train_bpe

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024, isn't it? We'll see: 3.14159 != 22/7.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }\n\t\treturn 0;",
    "机器学习是人工智能的一个分支。我们今天讨论推理模型。你好，世界！",
    "Émoji test: 😀 👍🏽 🇫🇷 ❤️ — naïve café, Straße, ångström, Ελληνικά, русский текст, العربية.",
    "<think>\nLet me reason step by step. 12 * 7 = 84.\n</think>\n\nThe answer is \\boxed{84}.",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "    indented    spaces     and\n\n\nnewlines\r\n   trailing   ",
]

TINY_VOCAB = 600


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    special = [t.content for t in QWQ_ADDED_TOKENS if t.special]
    plain = [t.content for t in QWQ_ADDED_TOKENS if not t.special]
    return train_bpe(CORPUS * 20, TINY_VOCAB, special, added_tokens=plain, chat_template=QWQ_TEMPLATE)


@pytest.fixture(scope="session")
def write_gguf():
    """Function writing a tokenizer into a GGUF file (see _write_gguf)."""
    return _write_gguf


def _write_gguf(path: Path, tokenizer: Tokenizer, padding: int = 0, *, model: str = "gpt2", pre: str = "qwen2",
               chat_template: str | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A GGUF holding `tokenizer` the way llama.cpp's converter writes one (padding entries typed UNUSED)."""
    from gguf import GGUFWriter

    document = json.loads(tokenizer.backend.to_str())
    tokens = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
    types = [3 if i in tokenizer.special_ids else 4 if i in tokenizer.added_tokens else 1 for i in range(len(tokens))]
    tokens += [f"[PAD{len(tokens) + k}]" for k in range(padding)]
    types += [5] * padding
    merges = [" ".join(m) if isinstance(m, list) else m for m in document["model"]["merges"]]
    writer = GGUFWriter(str(path), "qwen2")
    fields = {
        "model": lambda: writer.add_tokenizer_model(model),
        "pre": lambda: writer.add_tokenizer_pre(pre),
        "tokens": lambda: writer.add_token_list(tokens),
        "types": lambda: writer.add_token_types(types),
        "merges": lambda: writer.add_token_merges(merges),
        "eos": lambda: writer.add_eos_token_id(tokenizer.eos_token_id),
        "pad": lambda: writer.add_pad_token_id(tokenizer.pad_token_id),
        "bos": lambda: writer.add_bos_token_id(tokenizer.pad_token_id),
        "add_bos": lambda: writer.add_add_bos_token(False),
        "template": lambda: writer.add_chat_template(chat_template or tokenizer.chat_template),
    }
    for name, add in fields.items():
        if name not in drop:
            add()
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
