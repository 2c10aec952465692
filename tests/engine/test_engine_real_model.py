"""The engine on the real Qwen2.5-Coder-0.5B GGUF: quantization accuracy, exact Q4_K repacking, greedy exactness.

Accuracy is teacher-forced top-1 agreement with the GGUF decoded to fp32, over every position of a few real texts
(code, math word problems, prose): int8 >= 99 %, int4 >= 95 % (the acceptance thresholds of the engine issue).
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.weights

POSITIONS = 384
CODE = '''def merge_sorted(a: list[int], b: list[int]) -> list[int]:
    """Merge two sorted lists into one sorted list."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    return out + a[i:] + b[j:]
'''


@pytest.fixture(scope="module")
def tokenizer(real_gguf):
    from qwq.tokenizer import Tokenizer

    return Tokenizer.from_gguf(real_gguf)


@pytest.fixture(scope="module")
def eval_ids(tokenizer, shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:4]]
    texts = [CODE] + [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in rows]
    lists, total = [], 0
    for text in texts:
        ids = tokenizer.encode(text)[: POSITIONS - total]
        lists.append(ids)
        total += len(ids)
        if total >= POSITIONS:
            break
    return lists


@torch.no_grad()
def _logits(model, lists):
    return torch.cat([model(torch.tensor([ids]))[0].float() for ids in lists])


@pytest.fixture(scope="module")
def reference_top1(real_gguf, eval_ids):
    from qwq.model.gguf import load_gguf_model

    torch.set_num_threads(1)
    _, model = load_gguf_model(real_gguf, dtype=torch.float32)
    return _logits(model, eval_ids).argmax(-1)


@pytest.mark.parametrize("quant,threshold", [("int8", 0.99), ("int4", 0.95), ("w8a8", 0.95)])
def test_quantized_top1_agreement_with_fp32(real_gguf, eval_ids, reference_top1, quant, threshold):
    from qwq.engine.loading import load_for_engine

    loaded = load_for_engine(str(real_gguf), quant=quant)
    top1 = _logits(loaded.model, eval_ids).argmax(-1)
    agreement = (top1 == reference_top1).float().mean().item()
    assert agreement >= threshold, f"{quant}: top-1 agreement {agreement:.4f} < {threshold}"


def test_q4k_blocks_repack_exactly(real_gguf):
    from gguf.constants import GGMLQuantizationType

    from qwq.engine.quant import Int4Linear
    from qwq.engine.quant_gguf import fill_int4_from_gguf
    from qwq.model.gguf import GGUFCheckpoint

    checkpoint = GGUFCheckpoint.open(real_gguf)
    name, tensor = next((n, t) for n, t in checkpoint.tensors.items() if t.ggml_type == GGMLQuantizationType.Q4_K)
    module = Int4Linear(tensor.shape[1], tensor.shape[0], False, 32, compute_dtype=torch.float32)
    assert fill_int4_from_gguf(module, tensor) == "exact"
    assert torch.allclose(module.dequantize(), tensor.dequantize(), rtol=0, atol=1e-6), name


def test_engine_greedy_equals_full_forwards_on_the_real_model(real_gguf, tokenizer):
    from qwq.engine import Engine, SamplingParams

    torch.set_num_threads(1)
    engine = Engine.load(str(real_gguf), quant="int4", max_batch_size=4, block_size=16)
    prompts = [tokenizer.encode(t) for t in ("def is_prime(n):", "The capital of France is", "1, 1, 2, 3, 5, 8,")]
    results = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True))
    for prompt, result in zip(prompts, results):
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(8):
                ids.append(int(engine.model(torch.tensor([ids]))[0, -1, : engine.vocab_limit].argmax()))
        assert result.samples[0].token_ids == ids[len(prompt):]
        assert result.samples[0].text == tokenizer.decode(result.samples[0].token_ids, skip_special_tokens=True)
