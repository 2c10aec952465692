"""Writing small Qwen2 GGUF files for the tests, the way llama.cpp's converter lays them out (via gguf.GGUFWriter)."""

from __future__ import annotations

from pathlib import Path

import gguf
import gguf.quants
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

# The Qwen2 tensor names llama.cpp writes, spelled out independently of qwq's own name map.
GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}
PER_LAYER = [("attn_norm.weight", "input_layernorm.weight"), ("attn_q.weight", "self_attn.q_proj.weight"),
             ("attn_q.bias", "self_attn.q_proj.bias"), ("attn_k.weight", "self_attn.k_proj.weight"),
             ("attn_k.bias", "self_attn.k_proj.bias"), ("attn_v.weight", "self_attn.v_proj.weight"),
             ("attn_v.bias", "self_attn.v_proj.bias"), ("attn_output.weight", "self_attn.o_proj.weight"),
             ("ffn_norm.weight", "post_attention_layernorm.weight"), ("ffn_gate.weight", "mlp.gate_proj.weight"),
             ("ffn_up.weight", "mlp.up_proj.weight"), ("ffn_down.weight", "mlp.down_proj.weight")]
QUANTIZABLE = {T.Q8_0, T.Q5_0, T.Q4_0, T.Q4_1, T.Q5_1, T.BF16}  # gguf.quants can quantize these
# Where each block type keeps its float16 scale(s), so random test blocks get finite ones.
SCALE_BYTES = {T.Q4_K: (0, 4), T.Q5_K: (0, 4), T.Q6_K: (208, 210), T.Q2_K: (80, 84), T.Q3_K: (108, 110),
               T.IQ2_XXS: (0, 2)}


def gguf_names(num_layers: int, tied: bool) -> dict[str, str]:
    names = {g: h for g, h in GLOBAL.items() if not (tied and g == "output.weight")}
    for i in range(num_layers):
        names.update({f"blk.{i}.{g}": f"model.layers.{i}.{h}" for g, h in PER_LAYER})
    return names


def random_blocks(qtype: T, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Valid-looking blocks of a type gguf.quants cannot quantize: random bytes, finite float16 scales."""
    block, type_size = GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(shape[:-1]))
    raw = rng.integers(0, 256, size=(rows * shape[-1] // block, type_size), dtype=np.uint8)
    lo, hi = SCALE_BYTES[qtype]
    raw[:, lo:hi] = (rng.normal(size=(raw.shape[0], (hi - lo) // 2)) * 0.01).astype(np.float16).view(np.uint8)
    return raw.reshape(*shape[:-1], shape[-1] // block * type_size)


def encode(array: np.ndarray, qtype: T, rng: np.random.Generator) -> np.ndarray:
    if qtype == T.F32:
        return array.astype(np.float32)
    if qtype == T.F16:
        return array.astype(np.float16)
    if qtype in QUANTIZABLE:
        return gguf.quants.quantize(array.astype(np.float32), qtype)
    return random_blocks(qtype, array.shape, rng)


def write_gguf(path: Path, hf: dict, tensors: dict[str, np.ndarray], types: dict[str, T] | None = None,
               drop_keys: tuple[str, ...] = (), extra: dict | None = None, seed: int = 0) -> Path:
    """A Qwen2 GGUF as llama.cpp's converter lays it out: `tensors` maps GGUF names to float arrays in PyTorch
    order, `types` picks each one's ggml type (F32 by default)."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "qwen2")
    keys = {
        "qwen2.block_count": hf["num_hidden_layers"], "qwen2.context_length": hf["max_position_embeddings"],
        "qwen2.embedding_length": hf["hidden_size"], "qwen2.feed_forward_length": hf["intermediate_size"],
        "qwen2.attention.head_count": hf["num_attention_heads"],
        "qwen2.attention.head_count_kv": hf["num_key_value_heads"],
        "qwen2.rope.freq_base": float(hf["rope_theta"]),
        "qwen2.attention.layer_norm_rms_epsilon": float(hf["rms_norm_eps"]),
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.padding_token_id": 1,
    }
    keys.update(extra or {})
    for key, value in keys.items():
        if key in drop_keys:
            continue
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    for name, array in tensors.items():
        qtype = (types or {}).get(name, T.F32)
        data = encode(array, qtype, rng)
        writer.add_tensor(name, data, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_hf_config(**overrides) -> dict:
    hf = dict(vocab_size=320, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, rope_theta=500000.0, rms_norm_eps=1e-5)
    hf.update(overrides)
    return hf


def random_tensors(hf: dict, tied: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """GGUF name -> random float32 array in PyTorch order, for the architecture in `hf`."""
    rng = np.random.default_rng(seed)
    h, inter = hf["hidden_size"], hf["intermediate_size"]
    head_dim = h // hf["num_attention_heads"]
    kv = hf["num_key_value_heads"] * head_dim
    shapes = {"token_embd.weight": (hf["vocab_size"], h), "output_norm.weight": (h,)}
    if not tied:
        shapes["output.weight"] = (hf["vocab_size"], h)
    per_layer = {"attn_norm.weight": (h,), "attn_q.weight": (h, h), "attn_q.bias": (h,), "attn_k.weight": (kv, h),
                 "attn_k.bias": (kv,), "attn_v.weight": (kv, h), "attn_v.bias": (kv,), "attn_output.weight": (h, h),
                 "ffn_norm.weight": (h,), "ffn_gate.weight": (inter, h), "ffn_up.weight": (inter, h),
                 "ffn_down.weight": (h, inter)}
    for i in range(hf["num_hidden_layers"]):
        shapes.update({f"blk.{i}.{name}": shape for name, shape in per_layer.items()})
    out = {}
    for name, shape in shapes.items():
        scale = 0.1 if len(shape) > 1 else 0.02
        base = 1.0 if name.endswith("norm.weight") else 0.0
        out[name] = (base + scale * rng.standard_normal(shape)).astype(np.float32)
    return out


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in the order byte-level vocabularies list them."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(visible), 0
    for b in range(256):
        if b not in visible:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tokenizer_metadata(rows: int) -> dict:
    """A tiny Qwen2-style byte-level BPE vocabulary in GGUF form: 256 byte tokens, a few merges, ChatML specials,
    and UNUSED padding entries up to `rows` (as llama.cpp writes for padded embedding matrices)."""
    tokens = byte_alphabet() + ["Ġt", "he", "Ġthe", "in"]
    merges = ["Ġ t", "h e", "Ġt he", "i n"]
    types = [1] * len(tokens)
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        tokens.append(special)
        types.append(3)  # CONTROL
    pad_start = len(tokens)
    tokens += [f"[PAD{i}]" for i in range(pad_start, rows)]
    types += [5] * (rows - pad_start)  # UNUSED
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
            "tokenizer.ggml.bos_token_id": tokens.index("<|endoftext|>"),
            "tokenizer.ggml.eos_token_id": tokens.index("<|im_end|>"),
            "tokenizer.ggml.padding_token_id": tokens.index("<|endoftext|>"), "tokenizer.chat_template": CHATML}
