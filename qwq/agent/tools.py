"""Tools an agent can call: declared from a typed Python function or from a JSON schema plus a callable.

A tool never raises into the loop: unknown names, arguments that do not fit the schema, `ToolError`s the tool
raises on purpose and unexpected exceptions all come back as an error `ToolResult`, whose text goes to the model as
the tool response so it can correct itself.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import re
import time
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from qwq.utils.errors import UsageError

MAX_RESULT_CHARS = 8000
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
               tuple: "array"}


class ToolError(Exception):
    """Raised by a tool for an expected failure; the message is shown to the model as the tool's response."""


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {"content": self.content, "is_error": self.is_error, "elapsed_s": round(self.elapsed_s, 4)}


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict
    fn: Callable[..., Any]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", self.name or ""):
            raise UsageError(f"tool name {self.name!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if not isinstance(self.parameters, dict) or self.parameters.get("type", "object") != "object":
            raise UsageError(f"tool {self.name}: parameters must be a JSON-schema object")

    def schema(self) -> dict:
        """The OpenAI / QwQ-template tool entry."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def __call__(self, arguments: Mapping[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        problems = validate_arguments(self.parameters, arguments)
        if problems:
            return ToolResult(f"Error: invalid arguments for {self.name}: {'; '.join(problems)}", True,
                              time.perf_counter() - t0)
        try:
            value = self.fn(**arguments)
        except ToolError as exc:
            return ToolResult(f"Error: {exc}", True, time.perf_counter() - t0)
        except Exception as exc:  # a tool bug must not end the episode: the model sees it and can move on
            return ToolResult(f"Error: {self.name} failed: {type(exc).__name__}: {exc}", True, time.perf_counter() - t0)
        return ToolResult(_to_text(value), False, time.perf_counter() - t0)


def _to_text(value: Any, limit: int = MAX_RESULT_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n[... {len(text) - limit} more characters truncated]"
    return text


# ------------------------------------------------------------------------------------------- schema validation
def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return True


def validate_arguments(schema: Mapping, arguments: Any, path: str = "") -> list[str]:
    """Problems with `arguments` against the JSON-schema subset tools use (type, required, properties, enum,
    items, additionalProperties, minimum/maximum). Empty when they fit."""
    problems: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_type_ok(arguments, k) for k in kinds):
            got = "null" if arguments is None else type(arguments).__name__
            return [f"{path or 'arguments'} must be {' or '.join(kinds)}, got {got}"]
    if "enum" in schema and arguments not in schema["enum"]:
        problems.append(f"{path or 'value'} must be one of {schema['enum']}, got {arguments!r}")
    if isinstance(arguments, (int, float)) and not isinstance(arguments, bool):
        if "minimum" in schema and arguments < schema["minimum"]:
            problems.append(f"{path} must be >= {schema['minimum']}")
        if "maximum" in schema and arguments > schema["maximum"]:
            problems.append(f"{path} must be <= {schema['maximum']}")
    if isinstance(arguments, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in arguments:
                problems.append(f"missing required argument '{name}'")
        for name, value in arguments.items():
            sub = f"{path}.{name}" if path else name
            if name in props:
                problems += validate_arguments(props[name], value, sub)
            elif schema.get("additionalProperties", True) is False:
                problems.append(f"unexpected argument '{sub}' (expected: {', '.join(props) or 'none'})")
    if isinstance(arguments, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(arguments):
            problems += validate_arguments(schema["items"], value, f"{path}[{i}]")
    return problems


# --------------------------------------------------------------------------------------- tools from functions
def _json_type(annotation: Any) -> dict:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, collections.abc.Sequence):
        return {"type": "array", **({"items": _json_type(args[0])} if args else {})}
    if origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _json_type(non_none[0])
        return {}
    return {}


def _doc_params(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and per-parameter descriptions from a docstring ('Args:' section or ':param x:' lines)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary, params, in_args = [], {}, False
    current = None
    for line in lines:
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        m = re.match(r":param\s+(\w+):\s*(.*)", stripped)
        if m:
            params[m.group(1)] = m.group(2)
            continue
        if in_args:
            m = re.match(r"(\w+)(?:\s*\([^)]*\))?:\s*(.*)", stripped)
            if m and not line.startswith(" " * 8):
                current = m.group(1)
                params[current] = m.group(2)
            elif stripped and current:
                params[current] += " " + stripped
            elif not stripped:
                in_args = False
            continue
        if not params:
            summary.append(stripped)
    return " ".join(s for s in summary if s).strip(), params


def tool(fn: Callable | None = None, *, name: str | None = None, description: str | None = None):
    """Make a Tool from a typed function (usable as `@tool` or `@tool(name=...)`). Parameters without a default are
    required; type hints give the JSON types; the docstring gives the descriptions."""

    def build(f: Callable) -> Tool:
        sig = inspect.signature(f)
        hints = typing.get_type_hints(f)
        summary, docs = _doc_params(f.__doc__ or "")
        props, required = {}, []
        for pname, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            prop = _json_type(hints.get(pname, Any))
            if pname in docs:
                prop["description"] = docs[pname]
            if p.default is p.empty:
                required.append(pname)
            elif p.default is not None and isinstance(p.default, (str, int, float, bool)):
                prop["default"] = p.default
            props[pname] = prop
        params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        return Tool(name or f.__name__, description or summary or f.__name__, params, f)

    return build(fn) if fn is not None else build


def tool_from_schema(schema: Mapping, fn: Callable[..., Any]) -> Tool:
    """A Tool from an OpenAI-style schema ({"type": "function", "function": {...}} or the inner object) and a
    callable taking the arguments as keywords."""
    inner = schema.get("function", schema)
    try:
        name = inner["name"]
    except (KeyError, TypeError):
        raise UsageError("tool schema has no 'name'") from None
    params = inner.get("parameters") or {"type": "object", "properties": {}}
    return Tool(name, inner.get("description", ""), dict(params), fn)


class ToolRegistry:
    """The tools offered to a model, by name."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Callable) -> Tool:
        if not isinstance(t, Tool):
            t = tool(t)
        if t.name in self._tools:
            raise UsageError(f"two tools are named {t.name!r}")
        self._tools[t.name] = t
        return t

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict]:
        return [t.schema() for t in self._tools.values()]

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        t = self._tools.get(name)
        if t is None:
            return ToolResult(f"Error: unknown tool '{name}'. Available tools: {', '.join(self._tools) or 'none'}.",
                              True)
        return t(arguments)
