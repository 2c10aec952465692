"""The real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF: config, every tensor, and parity with transformers.

transformers reads the same GGUF through its own loader (gguf-py dequantization, its own Qwen2), so it is an
independent reference for our reader, dequantizers, name map and model. It takes about a minute to load, so it is
loaded once for the module.
"""

from __future__ import annotations

import hashlib

import gguf.quants
import numpy as np
import pytest
import torch

from qwq.config import preset
from qwq.model.gguf import GGUFCheckpoint, load_gguf_model
from qwq.model.hub import QWEN25_CODER_05B_GGUF
from qwq.model.kv import DenseKVCache

pytestmark = pytest.mark.weights

NEW_TOKENS = 20
PLAIN_PROMPTS = ["def fibonacci(n):\n", "# Quick sort in Python\ndef quicksort(arr):\n"]
CHAT_PROMPTS = ["Write a Python function that checks whether a number is prime.",
                "用一句话解释什么是哈希表。"]


@pytest.fixture(scope="module")
def checkpoint(real_gguf) -> GGUFCheckpoint:
    return GGUFCheckpoint.open(real_gguf)


@pytest.fixture(scope="module")
def ours(real_gguf):
    return load_gguf_model(real_gguf, dtype=torch.float32)


@pytest.fixture(scope="module")
def reference(real_gguf):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(real_gguf.parent), gguf_file=real_gguf.name, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(real_gguf) -> list[list[int]]:
    from qwq.tokenizer.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_gguf(real_gguf)
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                           tokenize=True) for text in CHAT_PROMPTS]
    return chats + [tokenizer.encode(text) for text in PLAIN_PROMPTS]


def test_cached_file_is_the_published_one(real_gguf):
    assert real_gguf.stat().st_size == QWEN25_CODER_05B_GGUF.size
    digest = hashlib.sha256()
    with open(real_gguf, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    assert digest.hexdigest() == QWEN25_CODER_05B_GGUF.sha256


def test_config_equals_preset(checkpoint):
    assert checkpoint.config == preset("qwen2.5-coder-0.5b")
    assert checkpoint.metadata["tokenizer.ggml.pre"] == "qwen2"
    assert "<|im_start|>" in checkpoint.chat_template


def test_tensor_inventory(checkpoint):
    types: dict[str, int] = {}
    for tensor in checkpoint.tensors.values():
        types[tensor.type_name] = types.get(tensor.type_name, 0) + 1
    assert types == {"Q5_0": 133, "F32": 121, "Q8_0": 13, "Q6_K": 12, "Q4_K": 12}
    assert not checkpoint.unmapped and len(checkpoint.tensors) == 291
    with torch.device("meta"):
        from qwq.model.qwen2 import Qwen2ForCausalLM

        expected = {n: tuple(t.shape) for n, t in Qwen2ForCausalLM(checkpoint.config).state_dict().items()}
    assert {n: t.shape for n, t in checkpoint.tensors.items()} == expected


def test_every_tensor_dequantizes(checkpoint):
    smallest: dict[str, object] = {}
    for tensor in checkpoint.tensors.values():
        values = tensor.dequantize()
        assert tuple(values.shape) == tensor.shape and torch.isfinite(values).all(), tensor.gguf_name
        if tensor.type_name not in smallest or tensor.numel < smallest[tensor.type_name].numel:
            smallest[tensor.type_name] = tensor
    for tensor in smallest.values():  # one tensor per type, bit for bit against gguf-py's decoder
        reference = gguf.quants.dequantize(tensor.raw, tensor.ggml_type).astype(np.float32).reshape(tensor.shape)
        assert np.array_equal(tensor.dequantize().numpy().view(np.uint32), reference.view(np.uint32)), tensor.name


def test_unpacked_blocks_rebuild_the_weights(checkpoint):
    for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.3.mlp.down_proj.weight",
                 "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"):
        tensor = checkpoint.tensors[name]
        unpacked = tensor.unpack()
        assert torch.equal(unpacked.values().reshape(tensor.shape), tensor.dequantize()), name


def _greedy(model, config, ids: list[int], new_tokens: int) -> list[int]:
    """Plain greedy decoding with a dense KV cache: one prefill, then one token per step; stops at EOS."""
    cache = DenseKVCache(config, batch_size=1, max_len=len(ids) + new_tokens)
    logits = model(torch.tensor([ids]), positions=torch.arange(len(ids))[None], cache=cache, logits_slice=1)
    cache.advance(len(ids))
    out: list[int] = []
    for step in range(new_tokens):
        token = int(logits[0, -1].argmax())
        out.append(token)
        if token in config.eos_token_ids:
            break
        logits = model(torch.tensor([[token]]), positions=torch.tensor([[len(ids) + step]]), cache=cache)
        cache.advance(1)
    return out


@torch.no_grad()
def test_prompt_logits_match_transformers(ours, reference, prompts):
    _, model = ours
    for ids in prompts:
        x = torch.tensor([ids])
        mine, theirs = model(x), reference(x).logits
        assert (mine - theirs).abs().max().item() <= 1e-3
        assert torch.equal(mine.argmax(-1), theirs.argmax(-1))


@torch.no_grad()
def test_greedy_continuations_match_transformers(ours, reference, prompts):
    config, model = ours
    for ids in prompts:
        mine = _greedy(model, config, ids, NEW_TOKENS)
        x = torch.tensor([ids])
        theirs = reference.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW_TOKENS,
                                    do_sample=False, pad_token_id=config.pad_token_id)[0, len(ids):].tolist()
        assert len(mine) >= 16, "the prompt should not end the answer this early"
        assert mine == theirs
