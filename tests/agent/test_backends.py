import json

import httpx
import pytest

from qwq.agent.backends import BackendError, OpenAIBackend, backend_from_spec
from qwq.agent.calculator import calculator_tool
from qwq.agent.loop import Agent
from qwq.agent.python_tool import format_run, python_tool
from qwq.utils.errors import UsageError


def endpoint(replies, seen):
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, json=replies.pop(0))
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_openai_backend_native_tool_calls_drive_the_loop():
    seen = []
    replies = [
        {"choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "", "reasoning_content": "Need the tool.",
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "calculator", "arguments": "{\"expression\": \"6*7\"}"}}]}}],
         "usage": {"prompt_tokens": 50, "completion_tokens": 12}},
        {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "It is 42."}}],
         "usage": {"prompt_tokens": 80, "completion_tokens": 5}},
    ]
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "qwq", client=endpoint(replies, seen))
    t = Agent(backend, [calculator_tool()]).run("6*7?")
    assert t.final_answer == "It is 42." and t.tool_calls == 1
    assert t.usage["completion_tokens"] == 17
    assert seen[0]["tools"][0]["function"]["name"] == "calculator" and seen[0]["model"] == "qwq"
    second = seen[1]["messages"]
    assert second[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert isinstance(second[1]["tool_calls"][0]["function"]["arguments"], str)
    assert second[2] == {"role": "tool", "content": "42", "tool_call_id": t.messages[1]["tool_calls"][0]["id"],
                         "name": "calculator"}
    assert "reasoning_content" not in second[1]


def test_openai_backend_errors_are_typed():
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500, text="boom")))
    with pytest.raises(BackendError, match="HTTP 500"):
        OpenAIBackend("http://127.0.0.1:9", client=client).complete([{"role": "user", "content": "x"}])
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"nope": 1})))
    with pytest.raises(BackendError, match="not a chat completion"):
        OpenAIBackend("http://127.0.0.1:9", client=client).complete([{"role": "user", "content": "x"}])


def test_backend_spec_needs_exactly_one_source():
    with pytest.raises(UsageError):
        backend_from_spec()
    with pytest.raises(UsageError):
        backend_from_spec(model="tiny", endpoint="http://x")


class FakeRun:
    def __init__(self, verdict, stdout="", stderr="", message=""):
        self.verdict, self.stdout, self.stderr, self.message = verdict, stdout, stderr, message


class FakeClient:
    def __init__(self, result):
        self.result, self.calls = result, []

    def run(self, code, **kw):
        self.calls.append((code, kw))
        return self.result


def test_python_tool_formats_the_run_and_reports_sandbox_failures():
    client = FakeClient(FakeRun("OK", "42\n"))
    t = python_tool(client)
    assert t({"code": "print(42)"}).content == "verdict: OK\nstdout:\n42\n"
    assert client.calls[0] == ("print(42)", {"language": "python", "stdin": ""})
    r = python_tool(FakeClient(FakeRun("SANDBOX_ERROR", message="fork server died")))({"code": "1"})
    assert r.is_error and "fork server died" in r.content
    assert "stderr:\nTraceback" in format_run(FakeRun("RUNTIME_ERROR", "", "Traceback ..."))
    assert python_tool(client)({"cod": "x"}).is_error


def test_agent_cli_rejects_bad_input(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "qwq", "agent", "--endpoint", "http://127.0.0.1:9", "--prompt", "hi",
                          "--tools", "files"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "files tool needs --dir" in out.stderr
