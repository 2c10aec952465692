from typing import Literal

import pytest

from qwq.agent.calculator import evaluate
from qwq.agent.tools import ToolError, ToolRegistry, tool, tool_from_schema, validate_arguments
from qwq.utils.errors import UsageError


def test_tool_schema_from_a_typed_function():
    @tool
    def search(query: str, limit: int = 5, mode: Literal["fast", "exact"] = "fast", tags: list[str] | None = None):
        """Search the notes.

        Args:
            query: what to look for
            limit: how many results
        """
        return [query, limit, mode, tags]

    s = search.schema()["function"]
    assert s["name"] == "search" and s["description"] == "Search the notes."
    p = s["parameters"]
    assert p["required"] == ["query"]
    assert p["properties"]["query"] == {"type": "string", "description": "what to look for"}
    assert p["properties"]["limit"] == {"type": "integer", "description": "how many results", "default": 5}
    assert p["properties"]["mode"]["enum"] == ["fast", "exact"]
    assert p["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert search({"query": "x", "limit": 2}).content == '["x", 2, "fast", null]'
    r = search({"query": 3})
    assert r.is_error and "query must be string, got int" in r.content


def test_tool_from_json_schema():
    schema = {"type": "function", "function": {"name": "add", "description": "Add two numbers",
                                               "parameters": {"type": "object", "properties": {
                                                   "a": {"type": "number"}, "b": {"type": "number"}},
                                                   "required": ["a", "b"]}}}
    t = tool_from_schema(schema, lambda a, b: a + b)
    assert t({"a": 1, "b": 2.5}).content == "3.5"
    assert "missing required argument 'b'" in t({"a": 1}).content
    assert t.schema() == schema


def test_validate_arguments_subset():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                                               "xs": {"type": "array", "items": {"type": "integer"}}},
              "additionalProperties": False}
    assert validate_arguments(schema, {"n": 2, "xs": [1, 2]}) == []
    probs = validate_arguments(schema, {"n": 0, "xs": [1, "2"], "z": 1})
    assert any("n must be >= 1" in p for p in probs)
    assert any("xs[1] must be integer" in p for p in probs)
    assert any("unexpected argument 'z'" in p for p in probs)
    assert validate_arguments(schema, {"n": True}) == ["n must be integer, got bool"]


def test_registry_rejects_duplicates_and_bad_names():
    reg = ToolRegistry()

    @tool
    def a() -> str:
        """A."""
        return "a"

    reg.add(a)
    with pytest.raises(UsageError):
        reg.add(a)
    with pytest.raises(UsageError):
        tool_from_schema({"name": "bad name!"}, lambda: 1)


@pytest.mark.parametrize("expr,value", [("1+2*3", 7), ("2**100", 2 ** 100), ("48213*9127", 440040051),
                                        ("7/2", 3.5), ("7//2", 3), ("-3**2", -9), ("sqrt(16)", 4.0),
                                        ("factorial(20)", 2432902008176640000), ("gcd(12, 18)", 6), ("2^10", 1024),
                                        ("round(pi, 3)", 3.142)])
def test_calculator_values(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr,msg", [("9**9**9", "too large"), ("__import__('os')", "unknown function"),
                                      ("().__class__", "unsupported syntax"), ("x + 1", "unknown name"),
                                      ("1/0", "division by zero"), ("factorial(10**6)", "too large"),
                                      ("'a' * 3", "unsupported syntax"), ("1 +", "cannot parse"),
                                      ("sqrt(-1)", "math error"), ("[1, 2]", "unsupported syntax")])
def test_calculator_refuses(expr, msg):
    with pytest.raises(ToolError, match=msg):
        evaluate(expr)
