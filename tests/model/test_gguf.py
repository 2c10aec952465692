"""GGUF reading: header, config, names, dequantization (bit-exact vs gguf.quants), errors, and logit parity."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import gguf
import gguf.quants
import numpy as np
import pytest
import torch
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf_fixtures import gguf_names, random_tensors, tiny_hf_config, write_gguf

from qwq.config import ModelConfig
from qwq.model.gguf import GGUFCheckpoint, hf_tensor_name, load_gguf_model
from qwq.model.gguf_file import read_header, read_metadata
from qwq.utils.errors import GGUFError

# ---- header, config, names ----------------------------------------------------------------------------------------
def test_header_matches_gguf_reader(tmp_path):
    hf = tiny_hf_config()
    path = write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, tied=False),
                      types={"blk.0.attn_q.weight": T.Q8_0, "blk.1.ffn_down.weight": T.Q6_K},
                      extra={"tokenizer.chat_template": "{{ messages }} ✓"})
    header = read_header(path)
    reader = gguf.GGUFReader(path)
    assert [t.name for t in header.tensors] == [t.name for t in reader.tensors]
    for ours, theirs in zip(header.tensors, reader.tensors):
        assert ours.offset == theirs.data_offset and ours.nbytes == theirs.n_bytes
        assert ours.dims == tuple(int(d) for d in theirs.shape) and ours.type_id == theirs.tensor_type
    for key, field in reader.fields.items():
        if not key.startswith("GGUF."):
            value = field.contents()
            assert header.metadata[key] == pytest.approx(value) if isinstance(value, float) else \
                header.metadata[key] == value, key
    assert read_metadata(path)["tokenizer.chat_template"] == "{{ messages }} ✓"


@pytest.mark.parametrize("tied", [False, True])
def test_config_and_names(tmp_path, tied):
    hf = tiny_hf_config()
    tensors = random_tensors(hf, tied)
    checkpoint = GGUFCheckpoint.open(write_gguf(tmp_path / "m.gguf", hf, tensors))
    expected = ModelConfig(vocab_size=320, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                           rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=tied, bos_token_id=1,
                           eos_token_id=2, pad_token_id=1, torch_dtype="float32")
    assert checkpoint.config == expected
    names = gguf_names(2, tied)
    assert {t.gguf_name: name for name, t in checkpoint.tensors.items()} == names
    assert not checkpoint.unmapped
    for gguf_name, array in tensors.items():
        tensor = checkpoint.tensors[names[gguf_name]]
        assert tensor.shape == array.shape and tensor.type_name == "F32" and not tensor.is_quantized
        assert torch.equal(tensor.dequantize(), torch.from_numpy(array))
    assert hf_tensor_name("blk.7.ffn_up.weight") == "model.layers.7.mlp.up_proj.weight"
    assert hf_tensor_name("rope_freqs.weight") is None


def test_yarn_scaling_and_key_length(tmp_path):
    hf = tiny_hf_config()
    extra = {"qwen2.rope.scaling.type": "yarn", "qwen2.rope.scaling.factor": 4.0,
             "qwen2.rope.scaling.original_context_length": 128, "qwen2.attention.key_length": 32}
    config = GGUFCheckpoint.open(write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, False), extra=extra)).config
    assert config.rope_scaling == {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
    assert config.head_dim == 32  # differs from 256 / 4, so it is kept


@pytest.mark.parametrize("key", ["qwen2.block_count", "qwen2.embedding_length", "qwen2.feed_forward_length",
                                 "qwen2.attention.head_count", "qwen2.attention.layer_norm_rms_epsilon",
                                 "qwen2.context_length"])
def test_missing_required_metadata_is_named(tmp_path, key):
    hf = tiny_hf_config()
    path = write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, False), drop_keys=(key,))
    with pytest.raises(GGUFError, match=f"{path}.*missing required metadata key '{key}'"):
        GGUFCheckpoint.open(path)


def test_wrong_architecture_and_unsupported_rope(tmp_path):
    hf = tiny_hf_config()
    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match="llama"):
        GGUFCheckpoint.open(path)
    path = write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, False), extra={"qwen2.rope.scaling.type": "linear"})
    with pytest.raises(GGUFError, match="rope.scaling.type.*linear"):
        GGUFCheckpoint.open(path)


# ---- dequantization --------------------------------------------------------------------------------------------
TYPES = [T.F16, T.BF16, T.Q8_0, T.Q5_0, T.Q4_0, T.Q4_1, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K, T.Q2_K, T.Q3_K]


def test_every_supported_type_dequantizes_like_gguf(tmp_path):
    hf = tiny_hf_config()
    tensors = random_tensors(hf, tied=False)
    matrices = [n for n, a in tensors.items() if a.ndim == 2]
    types = {name: TYPES[i % len(TYPES)] for i, name in enumerate(matrices)}
    assert set(types.values()) == set(TYPES)
    checkpoint = GGUFCheckpoint.open(write_gguf(tmp_path / "m.gguf", hf, tensors, types=types))
    assert checkpoint.config.torch_dtype == "bfloat16"  # mostly quantized: the usual release dtype
    by_gguf = {t.gguf_name: t for t in checkpoint.tensors.values()}
    reader = {t.name: t for t in gguf.GGUFReader(checkpoint.path).tensors}
    for name, qtype in types.items():
        tensor = by_gguf[name]
        assert tensor.ggml_type == qtype and tensor.shape == tensors[name].shape
        assert tensor.is_quantized == (qtype not in (T.F16, T.BF16))
        assert np.array_equal(tensor.raw.reshape(-1), np.asarray(reader[name].data).reshape(-1).view(np.uint8))
        block, type_size = GGML_QUANT_SIZES[qtype]
        assert tensor.blocks().shape == (tensor.shape[0], tensor.shape[1] // block, type_size)
        reference = gguf.quants.dequantize(np.asarray(reader[name].data), qtype).reshape(tensor.shape)
        ours = tensor.dequantize()
        assert ours.dtype == torch.float32 and tuple(ours.shape) == tensor.shape
        assert np.array_equal(ours.numpy().view(np.uint32), reference.astype(np.float32).view(np.uint32)), qtype.name
        assert torch.equal(tensor.dequantize(torch.bfloat16), ours.to(torch.bfloat16)), qtype.name
        if qtype in (T.Q8_0, T.Q5_0, T.Q4_0, T.Q5_1, T.Q4_1):
            # real quantization of known values: close to the originals
            step = np.abs(tensors[name]).max() / 8
            assert np.abs(ours.numpy() - tensors[name]).max() < step, qtype.name


@pytest.mark.parametrize("qtype", [T.Q8_0, T.Q5_0, T.Q4_K, T.Q5_K, T.Q6_K])
def test_unpack_gives_codes_and_scales(tmp_path, qtype):
    hf = tiny_hf_config()
    tensors = random_tensors(hf, tied=False)
    checkpoint = GGUFCheckpoint.open(write_gguf(tmp_path / "m.gguf", hf, tensors,
                                                types={"blk.0.ffn_gate.weight": qtype}))
    tensor = checkpoint.tensors["model.layers.0.mlp.gate_proj.weight"]
    unpacked = tensor.unpack()
    block = tensor.block_size
    n_blocks = tensor.numel // block
    assert unpacked.codes.dtype == torch.int8 and unpacked.codes.shape[0] == n_blocks
    assert unpacked.codes.shape[1] * unpacked.codes.shape[2] == block
    assert unpacked.scale.shape == unpacked.codes.shape[:2]
    assert (unpacked.minimum is not None) == (qtype in (T.Q4_K, T.Q5_K))
    bits = {T.Q8_0: (-128, 127), T.Q5_0: (-16, 15), T.Q4_K: (0, 15), T.Q5_K: (0, 31), T.Q6_K: (-32, 31)}[qtype]
    assert bits[0] <= int(unpacked.codes.min()) and int(unpacked.codes.max()) <= bits[1]
    assert torch.equal(unpacked.values().reshape(tensor.shape), tensor.dequantize())


def test_unsupported_type_is_named(tmp_path):
    hf = tiny_hf_config()
    tensors = random_tensors(hf, tied=False)
    path = write_gguf(tmp_path / "m.gguf", hf, tensors, types={"blk.1.attn_output.weight": T.IQ2_XXS})
    checkpoint = GGUFCheckpoint.open(path)  # reading the header and metadata still works
    tensor = checkpoint.tensors["model.layers.1.self_attn.o_proj.weight"]
    assert not tensor.is_supported
    with pytest.raises(GGUFError, match=r"'blk\.1\.attn_output\.weight'.*IQ2_XXS"):
        tensor.dequantize()
    with pytest.raises(GGUFError, match=r"'blk\.1\.attn_output\.weight'.*IQ2_XXS"):
        load_gguf_model(path)
    with pytest.raises(GGUFError, match="IQ2_XXS"):
        tensor.unpack()


def _patch_tensor_type(path: Path, tensor_name: str, type_id: int) -> None:
    """Overwrite a tensor's ggml type id in the tensor directory (name string, u32 n_dims, u64 dims, u32 type)."""
    data = bytearray(path.read_bytes())
    encoded = tensor_name.encode()
    at = data.index(struct.pack("<Q", len(encoded)) + encoded) + 8 + len(encoded)
    (n_dims,) = struct.unpack_from("<I", data, at)
    struct.pack_into("<I", data, at + 4 + 8 * n_dims, type_id)
    path.write_bytes(bytes(data))


def test_unknown_type_id_is_named(tmp_path):
    hf = tiny_hf_config()
    path = write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, tied=False))
    _patch_tensor_type(path, "blk.0.ffn_up.weight", 99)
    with pytest.raises(GGUFError, match=r"'blk\.0\.ffn_up\.weight'.*type id 99"):
        GGUFCheckpoint.open(path)


# ---- corrupt files ---------------------------------------------------------------------------------------------
@pytest.fixture()
def good_file(tmp_path) -> Path:
    hf = tiny_hf_config(num_hidden_layers=1)
    return write_gguf(tmp_path / "good.gguf", hf, random_tensors(hf, tied=False),
                      extra={"tokenizer.chat_template": "x" * 300})


def test_garbage_and_bad_magic(tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(GGUFError, match=f"{garbage}.*bad magic"):
        GGUFCheckpoint.open(garbage)
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(GGUFError, match="too short"):
        GGUFCheckpoint.open(tiny)
    with pytest.raises(GGUFError, match="cannot read"):
        GGUFCheckpoint.open(tmp_path / "missing.gguf")


def test_bad_version_and_absurd_counts(good_file):
    data = bytearray(good_file.read_bytes())
    struct.pack_into("<I", data, 4, 1)
    good_file.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="version 1"):
        GGUFCheckpoint.open(good_file)
    struct.pack_into("<I", data, 4, 3)
    struct.pack_into("<Q", data, 16, 1 << 60)  # metadata_kv_count
    good_file.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="metadata_kv_count"):
        GGUFCheckpoint.open(good_file)


def test_truncated_header_names_the_field(good_file):
    data = good_file.read_bytes()
    header = read_header(good_file)
    for cut in (200, header.data_offset - 40):
        good_file.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match=f"{good_file}.*truncated header.*while reading"):
            GGUFCheckpoint.open(good_file)
    good_file.write_bytes(data[:30])
    with pytest.raises(GGUFError, match=f"{good_file}: truncated or corrupt header"):
        GGUFCheckpoint.open(good_file)


def test_tensor_data_past_end_of_file(good_file):
    data = good_file.read_bytes()
    last = read_header(good_file).tensors[-1]
    good_file.write_bytes(data[:last.offset + last.nbytes - 1])
    with pytest.raises(GGUFError, match=f"{last.name}.*past the end of the file"):
        GGUFCheckpoint.open(good_file)


def test_corrupt_string_length_and_dims(good_file):
    data = bytearray(good_file.read_bytes())
    key = b"tokenizer.chat_template"
    at = data.index(key) + len(key) + 4  # past the key and its value type: the string's u64 length
    struct.pack_into("<Q", data, at, 1 << 40)
    good_file.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="tokenizer.chat_template"):
        GGUFCheckpoint.open(good_file)


# ---- loading into the model ---------------------------------------------------------------------------------------
def test_load_rejects_missing_unexpected_and_misshaped_tensors(tmp_path):
    hf = tiny_hf_config(num_hidden_layers=1)
    base = random_tensors(hf, tied=False)
    missing = dict(base)
    del missing["blk.0.attn_k.bias"]
    with pytest.raises(GGUFError, match=r"missing tensor 'model\.layers\.0\.self_attn\.k_proj\.bias'"):
        load_gguf_model(write_gguf(tmp_path / "a.gguf", hf, missing))
    extra = dict(base, **{"blk.0.attn_q_norm.weight": np.ones(64, np.float32)})
    with pytest.raises(GGUFError, match=r"unexpected tensor 'blk\.0\.attn_q_norm\.weight'"):
        load_gguf_model(write_gguf(tmp_path / "b.gguf", hf, extra))
    extra_layer = dict(base, **{"blk.1.attn_norm.weight": np.ones(256, np.float32)})
    with pytest.raises(GGUFError, match=r"unexpected tensor 'blk\.1\.attn_norm\.weight'"):
        load_gguf_model(write_gguf(tmp_path / "c.gguf", hf, extra_layer))
    wrong = dict(base, **{"blk.0.ffn_up.weight": np.zeros((500, 256), np.float32)})
    with pytest.raises(GGUFError, match=r"'blk\.0\.ffn_up\.weight'.*shape \[500, 256\].*\[512, 256\]"):
        load_gguf_model(write_gguf(tmp_path / "d.gguf", hf, wrong))


@pytest.mark.parametrize("tied", [False, True])
def test_logits_match_transformers(tmp_path, tied):
    """Random transformers Qwen2 -> its weights written as an F32 GGUF -> our loader: same logits as transformers,
    and identical to our loader reading transformers' own save of the same model."""
    import transformers

    from qwq.model.weights import load_hf_checkpoint

    hf = tiny_hf_config(hidden_size=64, intermediate_size=160, num_hidden_layers=2, vocab_size=300,
                        tie_word_embeddings=tied)
    torch.manual_seed(0)
    reference = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**hf)).eval()
    with torch.no_grad():
        for p in reference.parameters():  # larger than the default init so every part of the net matters
            p.add_(0.05 * torch.randn_like(p))
    state = {name: t.detach().numpy() for name, t in reference.state_dict().items()}
    to_gguf = {h: g for g, h in gguf_names(2, tied).items()}
    path = write_gguf(tmp_path / "m.gguf", hf, {to_gguf[name]: state[name] for name in to_gguf})
    reference.save_pretrained(tmp_path / "hf")

    config, model = load_gguf_model(path)
    assert config.tie_word_embeddings == tied
    if tied:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    _, from_hf = load_hf_checkpoint(tmp_path / "hf", dtype=torch.float32)
    ids = torch.randint(0, 300, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids)
        theirs = reference(ids).logits
        ours_via_hf = from_hf(ids)
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert torch.equal(ours, ours_via_hf)


def test_load_in_bfloat16(tmp_path):
    hf = tiny_hf_config(num_hidden_layers=1)
    path = write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, tied=False),
                      types={"blk.0.ffn_down.weight": T.Q6_K, "token_embd.weight": T.Q8_0})
    _, model = load_gguf_model(path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    expected = GGUFCheckpoint.open(path).tensors["model.layers.0.mlp.down_proj.weight"].dequantize()
    assert torch.equal(model.model.layers[0].mlp.down_proj.weight, expected.to(torch.bfloat16))


def test_open_does_not_import_torch(good_file):
    code = ("import sys\nfrom qwq.model.gguf import GGUFCheckpoint\n"
            f"c = GGUFCheckpoint.open({str(good_file)!r})\nassert c.config.num_hidden_layers == 1\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.gpu
def test_dequantize_on_cuda_matches_cpu(tmp_path):
    hf = tiny_hf_config(num_hidden_layers=1)
    types = {"blk.0.attn_q.weight": T.Q8_0, "blk.0.attn_k.weight": T.Q5_0, "blk.0.ffn_gate.weight": T.Q4_K,
             "blk.0.ffn_up.weight": T.Q5_K, "blk.0.ffn_down.weight": T.Q6_K, "token_embd.weight": T.BF16}
    checkpoint = GGUFCheckpoint.open(write_gguf(tmp_path / "m.gguf", hf, random_tensors(hf, False), types=types))
    for tensor in checkpoint.tensors.values():
        on_gpu = tensor.dequantize(device="cuda")
        assert on_gpu.device.type == "cuda"
        assert torch.equal(on_gpu.cpu(), tensor.dequantize()), tensor.gguf_name
