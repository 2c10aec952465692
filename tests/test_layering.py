"""The torch-free layers stay torch-free, and lower layers never import higher ones."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

QWQ = Path(__file__).resolve().parent.parent / "qwq"
LAYER = {"utils": 0, "config": 0, "model": 1, "tokenizer": 1, "sandbox": 1, "safety": 1, "engine": 2, "verify": 2,
         "rl": 3, "eval": 3, "agent": 3, "serve": 4, "cli": 5, "__main__": 5}


@pytest.mark.parametrize("package", ["qwq.tokenizer", "qwq.verify", "qwq.sandbox", "qwq.safety"])
def test_torch_free_packages(package):
    import pkgutil

    modules = [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(QWQ / package.split(".")[1])])
                           if not m.name.endswith("_cli") and m.name != "cli" and m.name != "reward_model"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + \
        "bad = [m for m in ('torch',) if m in sys.modules]\nassert not bad, bad\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qwq"):
            yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("qwq"):
                    yield alias.name


def test_lower_layers_never_import_higher_ones():
    problems = []
    for path in QWQ.rglob("*.py"):
        rel = path.relative_to(QWQ)
        top = rel.parts[0].removesuffix(".py")
        if top not in LAYER:
            continue
        for module in _imports(path):
            parts = module.split(".")
            if len(parts) < 2:
                continue
            target = parts[1]
            if target in LAYER and LAYER[target] > LAYER[top] and not rel.name.endswith("cli.py"):
                problems.append(f"{rel} imports {module}")
    assert not problems, problems


def test_test_module_basenames_are_unique():
    """pytest imports test modules by basename in folders without __init__.py: duplicates break collection."""
    import collections

    names = collections.Counter(p.name for p in (QWQ.parent / "tests").rglob("test_*.py")
                                if not (p.parent / "__init__.py").exists())
    assert not [n for n, c in names.items() if c > 1]
