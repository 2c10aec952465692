"""Languages the sandbox runs: where the source goes, how it is compiled and started."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from qwq.utils.errors import UsageError

ALIASES = {"python": "python", "python3": "python", "py": "python", "cpp": "cpp", "c++": "cpp", "cxx": "cpp",
           "cc": "cpp", "js": "js", "javascript": "js", "node": "js", "nodejs": "js"}
EXTENSIONS = {".py": "python", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".c++": "cpp", ".js": "js",
              ".mjs": "js"}


@dataclass(frozen=True)
class Language:
    name: str
    source_name: str
    run_argv: tuple[str, ...]
    compile_argv: tuple[str, ...] | None = None
    # Virtual memory the runtime reserves beyond its heap (V8 maps large code ranges up front), so an
    # address-space limit of `memory_mb` alone would kill it before it runs a line.
    address_space_extra_mb: int = 0
    heap_flag: str | None = None  # runtime flag that enforces memory_mb on its own heap
    toolchain_dirs: tuple[str, ...] = ()

    def run_command(self, memory_mb: int | None) -> list[str]:
        argv = list(self.run_argv)
        if self.heap_flag and memory_mb:
            argv.insert(1, self.heap_flag.format(mb=memory_mb))
        return argv


def _prefix_dirs(executable: str) -> tuple[str, ...]:
    real = os.path.realpath(executable)
    return (os.path.dirname(os.path.dirname(real)),)


def _python() -> Language:
    return Language("python", "main.py", (sys.executable, "-I", "main.py"), toolchain_dirs=python_prefixes())


def python_prefixes() -> tuple[str, ...]:
    """Directories the interpreter needs inside the private root (venv and base installation)."""
    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    dirs.update(_prefix_dirs(sys.executable))
    return tuple(sorted(dirs))


def _cpp() -> Language | None:
    compiler = shutil.which("g++")
    if compiler is None:
        return None
    return Language("cpp", "main.cpp", ("./main",),
                    compile_argv=(compiler, "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"),
                    toolchain_dirs=_prefix_dirs(compiler))


def _js() -> Language | None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        return None
    return Language("js", "main.js", (node, "main.js"), address_space_extra_mb=2048,
                    heap_flag="--max-old-space-size={mb}", toolchain_dirs=_prefix_dirs(node))


_BUILDERS = {"python": _python, "cpp": _cpp, "js": _js}
_CACHE: dict[str, Language | None] = {}


def get_language(name: str) -> Language:
    key = ALIASES.get(str(name).lower())
    if key is None:
        raise UsageError(f"unknown language {name!r} (choose from python, cpp, js)")
    if key not in _CACHE:
        _CACHE[key] = _BUILDERS[key]()
    language = _CACHE[key]
    if language is None:
        tool = {"cpp": "g++", "js": "node"}[key]
        raise UsageError(f"language {key!r} needs `{tool}`, which is not installed on this machine")
    return language


def available_languages() -> dict[str, bool]:
    found = {}
    for key in _BUILDERS:
        try:
            get_language(key)
            found[key] = True
        except UsageError:
            found[key] = False
    return found


def language_for_file(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise UsageError(f"cannot tell the language of {path!r} from its extension; pass --lang python|cpp|js")
    return EXTENSIONS[ext]


def toolchain_dirs() -> list[str]:
    dirs: list[str] = []
    for key in _BUILDERS:
        try:
            dirs.extend(get_language(key).toolchain_dirs)
        except UsageError:
            pass
    return sorted(set(dirs))
