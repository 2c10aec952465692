"""The `calculator` tool: arithmetic by walking a whitelisted Python AST (never eval).

Allowed: numbers, + - * / // % **, unary signs, parentheses, the constants pi, e, tau, and a fixed set of math
functions. Sizes are bounded before computing (exponents, factorials, integer length, expression length), so a
request like 9**9**9 is refused instead of freezing the agent.
"""

from __future__ import annotations

import ast
import math
import operator

from qwq.agent.tools import Tool, ToolError

MAX_EXPRESSION_CHARS = 2000
MAX_NODES = 400
MAX_INT_BITS = 20_000
MAX_FACTORIAL = 3000

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(n):
    if not isinstance(n, int) or n < 0:
        raise ToolError("factorial needs a non-negative integer")
    if n > MAX_FACTORIAL:
        raise ToolError(f"factorial argument {n} is too large (limit {MAX_FACTORIAL})")
    return math.factorial(n)


_FUNCTIONS = {
    "sqrt": math.sqrt, "cbrt": lambda x: math.copysign(abs(x) ** (1 / 3), x), "exp": math.exp, "log": math.log,
    "log2": math.log2, "log10": math.log10, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
    "acos": math.acos, "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "degrees": math.degrees, "radians": math.radians, "hypot": math.hypot, "floor": math.floor,
    "ceil": math.ceil, "abs": abs, "round": round, "min": min, "max": max, "gcd": math.gcd, "lcm": math.lcm,
    "comb": math.comb, "perm": math.perm, "factorial": _factorial, "isqrt": math.isqrt,
}


def _check_size(value):
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"result too large (more than {MAX_INT_BITS} bits)")
    return value


def _power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * max(1, abs(base).bit_length() - 1) > MAX_INT_BITS:
            raise ToolError(f"{base}**{exponent} is too large to compute exactly")
    if isinstance(exponent, (int, float)) and abs(exponent) > 100_000:
        raise ToolError("exponent too large")
    return base ** exponent


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_power(left, right))
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise ToolError("result too large")
        return _check_size(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name '{node.id}' (constants: {', '.join(_CONSTANTS)})")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn = _FUNCTIONS.get(node.func.id)
        if fn is None:
            raise ToolError(f"unknown function '{node.func.id}' (available: {', '.join(sorted(_FUNCTIONS))})")
        return _check_size(fn(*[_eval(a) for a in node.args]))
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:60]} (only arithmetic is allowed)")


def evaluate(expression: str):
    """The value of an arithmetic expression (int when exact, else float). Raises ToolError on anything else."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("expression is empty")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"cannot parse expression: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError("expression too complex")
    try:
        return _eval(tree)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (ValueError, OverflowError, TypeError) as exc:
        raise ToolError(f"math error: {exc}") from None


def format_number(value) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


def calculator_tool() -> Tool:
    def calculator(expression: str) -> str:
        return format_number(evaluate(expression))

    return Tool("calculator", "Evaluate an arithmetic expression exactly (integers are exact; + - * / // % ** and "
                "functions such as sqrt, log, sin, factorial, gcd).",
                {"type": "object", "properties": {"expression": {"type": "string",
                                                                 "description": "e.g. (12345 * 678) - 9**3"}},
                 "required": ["expression"], "additionalProperties": False}, calculator)
