"""The `python` tool: run code in the sandbox (qwq.sandbox) and return its verdict, stdout and stderr."""

from __future__ import annotations

from typing import Any

from qwq.agent.tools import Tool, ToolError

MAX_STREAM_CHARS = 4000


def _clip(text: str, limit: int = MAX_STREAM_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"


def default_client() -> Any:
    from qwq.sandbox.client import SandboxClient

    return SandboxClient()


def format_run(result: Any) -> str:
    """The tool response the model reads (stdout first: it is usually the answer)."""
    verdict = str(getattr(result, "verdict", "?"))
    parts = [f"verdict: {verdict}"]
    stdout, stderr = getattr(result, "stdout", "") or "", getattr(result, "stderr", "") or ""
    parts.append("stdout:\n" + (_clip(stdout) if stdout else "(empty)"))
    if stderr:
        parts.append("stderr:\n" + _clip(stderr))
    message = getattr(result, "message", "")
    if message and verdict != "OK":
        parts.append(f"note: {message}")
    return "\n".join(parts)


def python_tool(client: Any = None, limits: Any = None) -> Tool:
    """`client` is anything with `run(code, language=..., stdin=..., limits=...)` (default: qwq.sandbox's client,
    created on first use); `limits` a qwq.sandbox Limits (default: the sandbox's own)."""
    state = {"client": client}

    def python(code: str, stdin: str = "") -> str:
        if state["client"] is None:
            state["client"] = default_client()
        kwargs = {"language": "python", "stdin": stdin}
        if limits is not None:
            kwargs["limits"] = limits
        result = state["client"].run(code, **kwargs)
        if str(getattr(result, "verdict", "")) == "SANDBOX_ERROR":
            raise ToolError(f"the sandbox failed to run the code: {getattr(result, 'message', '') or 'unknown error'}")
        return format_run(result)

    return Tool("python", "Run a Python 3 program in an isolated sandbox (no network, no files kept between calls) "
                "and get its stdout and stderr. Print what you need to see.",
                {"type": "object", "properties": {
                    "code": {"type": "string", "description": "a complete Python program; use print() for output"},
                    "stdin": {"type": "string", "description": "text given on standard input", "default": ""}},
                 "required": ["code"], "additionalProperties": False}, python)
