"""Safetensors checkpoints: round trips with transformers (both directions), memory mapping, and every error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from qwq.config import ModelConfig
from qwq.model.qwen2 import Qwen2ForCausalLM
from qwq.model.weights import (INDEX_FILE, index_checkpoint, load_hf_checkpoint, load_state_dict,
                               read_safetensors_header, save_hf_checkpoint)
from qwq.utils.errors import CheckpointError

transformers = pytest.importorskip("transformers")

VOCAB = 96


def tiny_config(tied: bool = False, yarn: bool = False, dtype: str = "float32") -> ModelConfig:
    return ModelConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rope_theta=1e4,
                       rms_norm_eps=1e-6, tie_word_embeddings=tied, torch_dtype=dtype,
                       rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}
                       if yarn else None)


def random_model(config: ModelConfig, seed: int = 0) -> Qwen2ForCausalLM:
    model = Qwen2ForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(seed)
    model.init_weights(std=0.3, generator=gen)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or name.endswith("norm.weight"):
                param.add_(0.3 * torch.randn(param.shape, generator=gen))
    return model


def tokens(length: int = 40) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, length), generator=torch.Generator().manual_seed(1))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# ---- round trips -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tied,yarn,shard", [(False, False, None), (True, True, None), (False, True, 6000)],
                         ids=["untied", "tied-yarn", "sharded-yarn"])
def test_our_save_loads_in_transformers(tmp_path, tied, yarn, shard):
    config = tiny_config(tied, yarn)
    model = random_model(config)
    out = save_hf_checkpoint(model, config, tmp_path / "ckpt", **({"max_shard_bytes": shard} if shard else {}))
    files = sorted(p.name for p in out.glob("*.safetensors"))
    if shard:
        assert len(files) > 2 and (out / INDEX_FILE).is_file()
        assert all(p.stat().st_size <= shard + 4096 or len(load_file(p)) == 1 for p in out.glob("*.safetensors"))
    else:
        assert files == ["model.safetensors"] and not (out / INDEX_FILE).exists()
    if tied:
        assert "lm_head.weight" not in index_checkpoint(out)
    hf = transformers.Qwen2ForCausalLM.from_pretrained(out).eval()
    ids = tokens()
    with torch.no_grad():
        expected, got = model(ids), hf(ids).logits
    assert expected.abs().max() > 1.0
    assert max_diff(got, expected) <= 1e-4
    # ... and back through our loader, bit for bit.
    config2, model2 = load_hf_checkpoint(out)
    assert config2 == config
    with torch.no_grad():
        assert torch.equal(model2(ids), expected)


def test_transformers_sharded_save_loads_in_ours(tmp_path):
    hf_config = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         rope_theta=1e4, initializer_range=0.3)
    hf = transformers.Qwen2ForCausalLM(hf_config).eval()
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if name.endswith("bias") or name.endswith("norm.weight"):
                param.add_(0.3 * torch.randn_like(param))
    hf.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    assert (tmp_path / "hf" / INDEX_FILE).is_file()
    assert len(list((tmp_path / "hf").glob("model-*.safetensors"))) > 2
    _, ours = load_hf_checkpoint(tmp_path / "hf")
    ids = tokens()
    with torch.no_grad():
        assert max_diff(ours(ids), hf(ids).logits) <= 1e-4


def test_bf16_round_trip_keeps_dtype(tmp_path):
    config = tiny_config(dtype="bfloat16")
    model = random_model(config).to(torch.bfloat16)
    save_hf_checkpoint(model, config, tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert {info.dtype for info in index_checkpoint(tmp_path / "ckpt").values()} == {"BF16"}
    _, loaded = load_hf_checkpoint(tmp_path / "ckpt")
    assert all(p.dtype == torch.bfloat16 for p in loaded.parameters())
    _, as_fp32 = load_hf_checkpoint(tmp_path / "ckpt", dtype="float32")
    assert all(p.dtype == torch.float32 for p in as_fp32.parameters())
    ids = tokens()
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))
        assert max_diff(as_fp32(ids), model(ids)) <= 0.05 * model(ids).float().abs().max().item()


def test_fp32_model_saved_with_bf16_config_records_fp32(tmp_path):
    config = tiny_config(dtype="bfloat16")
    save_hf_checkpoint(random_model(config), config, tmp_path / "ckpt")
    assert ModelConfig.from_hf(tmp_path / "ckpt").torch_dtype == "float32"


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            ranges.append((start, end))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_weights_stay_memory_mapped(tmp_path):
    config = tiny_config()
    save_hf_checkpoint(random_model(config), config, tmp_path / "ckpt")
    file = (tmp_path / "ckpt" / "model.safetensors").resolve()
    state = load_state_dict(tmp_path / "ckpt")
    _, model = load_hf_checkpoint(tmp_path / "ckpt")
    ranges = _mapped_ranges(file)
    assert ranges, "the checkpoint file is not memory-mapped"

    def mapped(t: torch.Tensor) -> bool:
        return any(start <= t.data_ptr() < end for start, end in ranges)

    assert all(mapped(t) for t in state.values())
    assert all(mapped(p) for p in model.parameters())  # assigned, not copied


def test_save_replaces_directory_without_stale_shards(tmp_path):
    config = tiny_config()
    model = random_model(config)
    save_hf_checkpoint(model, config, tmp_path / "ckpt", max_shard_bytes=6000)
    save_hf_checkpoint(model, config, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]


# ---- errors ----------------------------------------------------------------------------------------------------
def saved(tmp_path: Path, tied: bool = False) -> tuple[Path, dict[str, torch.Tensor]]:
    config = tiny_config(tied)
    save_hf_checkpoint(random_model(config), config, tmp_path / "ckpt")
    return tmp_path / "ckpt", load_file(tmp_path / "ckpt" / "model.safetensors")


def rewrite(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, directory / "model.safetensors",
              metadata={"format": "pt"})


def assert_error(directory: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_hf_checkpoint(directory)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


def test_truncated_file_names_tensor_and_file(tmp_path):
    directory, _ = saved(tmp_path)
    file = directory / "model.safetensors"
    header = read_safetensors_header(file)
    data = file.read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    raw = json.loads(data[8:8 + header_len])
    last = max((k for k in raw if k != "__metadata__"), key=lambda k: raw[k]["data_offsets"][1])
    assert last in header
    file.write_bytes(data[:len(data) - 100])
    assert_error(directory, "model.safetensors", repr(last), "truncated")
    file.write_bytes(data[:5])
    assert_error(directory, "model.safetensors", "truncated")
    file.write_bytes(data[:8] + b"{not json" + data[17:])
    assert_error(directory, "model.safetensors", "corrupt")


def test_missing_shard_and_bad_index(tmp_path):
    config = tiny_config()
    directory = save_hf_checkpoint(random_model(config), config, tmp_path / "ckpt", max_shard_bytes=6000)
    index = json.loads((directory / INDEX_FILE).read_text())
    shard = index["weight_map"]["model.layers.1.mlp.down_proj.weight"]
    (directory / shard).rename(directory / "moved.bin")
    assert_error(directory, shard, INDEX_FILE, "missing shard")
    (directory / "moved.bin").rename(directory / shard)
    elsewhere = next(name for name, file in index["weight_map"].items() if file != shard)
    index["weight_map"][elsewhere] = shard
    (directory / INDEX_FILE).write_text(json.dumps(index))
    assert_error(directory, repr(elsewhere), shard, "does not hold it")
    (directory / INDEX_FILE).write_text("{")
    assert_error(directory, INDEX_FILE, "invalid")


@pytest.mark.parametrize("change,fragments", [
    ("shape", ("'model.layers.1.mlp.up_proj.weight'", "shape [80, 31]", "[80, 32]")),
    ("dtype", ("'model.layers.0.self_attn.k_proj.weight'", "I64", "float")),
    ("missing", ("'model.layers.1.post_attention_layernorm.weight'", "missing")),
    ("unexpected", ("'model.layers.0.self_attn.rotary.weight'", "unexpected")),
    ("no-head", ("'lm_head.weight'", "missing")),
])
def test_mismatch_names_tensor_and_file(tmp_path, change, fragments):
    directory, tensors = saved(tmp_path)
    if change == "shape":
        tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][:, :31]
    elif change == "dtype":
        tensors["model.layers.0.self_attn.k_proj.weight"] = torch.ones(16, 32, dtype=torch.int64)
    elif change == "missing":
        del tensors["model.layers.1.post_attention_layernorm.weight"]
    elif change == "unexpected":
        tensors["model.layers.0.self_attn.rotary.weight"] = torch.zeros(3)
    elif change == "no-head":
        del tensors["lm_head.weight"]
    rewrite(directory, tensors)
    assert_error(directory, "model.safetensors", *fragments)


def test_tied_checkpoint_with_stored_head(tmp_path):
    directory, tensors = saved(tmp_path, tied=True)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    rewrite(directory, tensors)
    _, model = load_hf_checkpoint(directory)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1
    rewrite(directory, tensors)
    assert_error(directory, "'lm_head.weight'", "model.safetensors", "tie_word_embeddings")


def test_directory_without_weights(tmp_path):
    tiny_config().save_hf(tmp_path)
    assert_error(tmp_path, str(tmp_path), "no .safetensors")
    with pytest.raises(CheckpointError, match="no such"):
        load_state_dict(tmp_path / "absent.safetensors")


def test_saved_generation_config_is_valid_for_transformers(tmp_path):
    """Sampling defaults need do_sample (transformers refuses to save a config with a temperature and no do_sample,
    which broke TRL's save_model on our checkpoints)."""
    import json

    from transformers import GenerationConfig

    from qwq.config import preset

    config = preset("tiny").replace(generation={"temperature": 0.6, "top_p": 0.95, "top_k": 40})
    config.save_hf(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["do_sample"] is True
    GenerationConfig.from_pretrained(tmp_path).save_pretrained(tmp_path / "again")  # raises when invalid
