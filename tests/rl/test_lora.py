"""LoRA: starts equal to the base, trains only adapters, merges exactly, saves in PEFT's layout."""

import json

import pytest
import torch

from qwq.rl.lora import apply_lora, load_adapter, lora_modules, merge_lora, merged_state_dict, save_adapter
from qwq.utils.errors import ConfigError

TARGETS = ["q_proj", "v_proj", "down_proj"]


def _ids():
    return torch.tensor([[1, 5, 7, 9, 11, 3]])


def _train_a_bit(model):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        model(_ids()).logsumexp(-1).mean().backward()
        optimizer.step()


def test_starts_equal_trains_adapters_only_and_merges(toy_world):
    model = toy_world["fresh_model"](3)
    base_logits = model(_ids()).detach()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = apply_lora(model, TARGETS, rank=4, alpha=8, seed=0)
    assert len(names) == 3 * toy_world["config"].num_hidden_layers
    assert torch.equal(model(_ids()).detach(), base_logits)  # B = 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A" in n or ".lora_B" in n for n in trainable)
    _train_a_bit(model)
    adapted = model(_ids()).detach()
    assert not torch.allclose(adapted, base_logits)
    for name, p in model.named_parameters():  # every base tensor unchanged
        if "lora_" not in name:
            assert torch.equal(p, frozen[name.replace(".base.", ".")])
    state = merged_state_dict(model)
    merged = merge_lora(model)
    assert merged == len(names) and not lora_modules(model)
    assert torch.allclose(model(_ids()).detach(), adapted, atol=1e-5)
    assert set(state) == set(model.state_dict())
    assert all(torch.allclose(state[k], v, atol=1e-6) for k, v in model.state_dict().items())


def test_adapter_files_roundtrip(toy_world, tmp_path):
    model = toy_world["fresh_model"](4)
    apply_lora(model, TARGETS, rank=2, alpha=4, seed=0)
    _train_a_bit(model)
    save_adapter(model, tmp_path / "adapter", "toy", 2, 4, 0.0, TARGETS)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 2 and config["target_modules"] == TARGETS
    other = toy_world["fresh_model"](4)
    apply_lora(other, TARGETS, rank=2, alpha=4, seed=1)
    assert load_adapter(other, tmp_path / "adapter") == 2 * 3 * toy_world["config"].num_hidden_layers
    assert torch.allclose(other(_ids()), model(_ids()), atol=1e-6)


def test_bad_targets():
    from qwq.rl.modeling import new_model
    from qwq.config import TINY

    model = new_model(TINY.replace(num_hidden_layers=1, vocab_size=64), 0)
    with pytest.raises(ConfigError, match="match no Linear"):
        apply_lora(model, ["nope"], 2, 4)
