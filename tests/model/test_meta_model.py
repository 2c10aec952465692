"""meta_model: the loaders' shape-only model, built without running the modules' random init."""

import pytest
import torch
from torch import nn

from qwq.config import preset
from qwq.model.qwen2 import meta_model


def test_meta_model_has_every_parameter_on_meta_and_restores_init(monkeypatch):
    calls = []
    original = nn.init.normal_
    monkeypatch.setattr(nn.init, "normal_", lambda t, *a, **k: calls.append(t.shape) or original(t, *a, **k))
    patched = nn.init.normal_
    model = meta_model(preset("tiny"))
    assert calls == []  # the embedding's init did not run
    assert all(p.is_meta for p in model.parameters())
    assert model.num_parameters() > 0
    assert nn.init.normal_ is patched  # put back as it was
    nn.Embedding(4, 3)  # and used again by ordinary modules
    assert calls == [(4, 3)]


def test_meta_model_restores_init_when_construction_fails(monkeypatch):
    import qwq.model.qwen2 as qwen2

    def broken(self, config):
        raise RuntimeError("boom")

    before = {name: getattr(nn.init, name) for name in qwen2._INIT_FUNCTIONS}
    monkeypatch.setattr(qwen2.Qwen2ForCausalLM, "__init__", broken)
    with pytest.raises(RuntimeError, match="boom"):
        meta_model(preset("tiny"))
    assert {name: getattr(nn.init, name) for name in before} == before
    assert torch.empty(1).device.type == "cpu"  # the meta device context is closed too
