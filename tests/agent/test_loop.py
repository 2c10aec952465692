import json

import pytest

from qwq.agent.backends import ScriptedBackend
from qwq.agent.calculator import calculator_tool
from qwq.agent.loop import STOP_ANSWER, STOP_MAX_STEPS, STOP_REFUSED_INPUT, STOP_REFUSED_OUTPUT, STOP_TOKEN_BUDGET, Agent
from qwq.agent.tools import tool
from qwq.safety.guard import RuleGuard
from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate
from qwq.utils.errors import UsageError


def call(name, args):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def answer_from_last_tool(messages):
    return f"I have the result.\n</think>\n\nThe product is {messages[-1]['content']}."


def test_tool_call_then_result_then_final_answer():
    backend = ScriptedBackend([f"Multiply with the tool.\n</think>\n\n{call('calculator', {'expression': '48213*9127'})}",
                               answer_from_last_tool])
    t = Agent(backend, [calculator_tool()]).run("What is 48213*9127?")
    assert t.stop_reason == STOP_ANSWER
    assert t.final_answer == "The product is 440040051."
    assert t.tool_calls == 1
    roles = [m["role"] for m in t.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert t.messages[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert t.messages[2]["content"] == "440040051"
    assert t.messages[2]["tool_call_id"] == t.messages[1]["tool_calls"][0]["id"]
    # the second model call saw the tool result and the tool schemas
    second = backend.requests[1]
    assert second["messages"][-1] == t.messages[2]
    assert second["tools"][0]["function"]["name"] == "calculator"


def test_messages_render_with_the_qwq_template():
    backend = ScriptedBackend([f"think\n</think>\n\n{call('calculator', {'expression': '2+2'})}", "ok\n</think>\n\n4"])
    t = Agent(backend, [calculator_tool()]).run("2+2?")
    prompt = ChatTemplate(QWQ_TEMPLATE).render(t.messages[:-1], tools=t.tools, add_generation_prompt=True)
    assert "<tool_response>\n4\n</tool_response>" in prompt
    assert '"name": "calculator"' in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_malformed_tool_call_gets_error_response_and_loop_continues():
    bad = "oops\n</think>\n\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {expression: 2}}\n</tool_call>"
    backend = ScriptedBackend([bad, f"fix\n</think>\n\n{call('calculator', {'expression': '6*7'})}",
                               answer_from_last_tool])
    t = Agent(backend, [calculator_tool()]).run("6*7?")
    assert t.stop_reason == STOP_ANSWER and t.final_answer == "The product is 42."
    err = t.messages[2]
    assert err["role"] == "tool" and err["content"].startswith("Error: tool call #1 could not be parsed: invalid JSON")
    # the malformed block stays visible in the assistant turn the model sees next
    assert "{expression: 2}" in t.messages[1]["content"]
    assert t.steps[0].tool_events[0].parse_error is not None
    assert len(backend.requests) == 3


def test_unknown_tool_and_bad_arguments_are_tool_errors():
    backend = ScriptedBackend([f"x\n</think>\n\n{call('weather', {'city': 'Paris'})}\n{call('calculator', {'expr': '1'})}",
                               "y\n</think>\n\ndone"])
    t = Agent(backend, [calculator_tool()]).run("hi")
    contents = [m["content"] for m in t.messages if m["role"] == "tool"]
    assert contents[0].startswith("Error: unknown tool 'weather'. Available tools: calculator")
    assert "missing required argument 'expression'" in contents[1]
    assert "unexpected argument 'expr'" in contents[1]
    assert t.final_answer == "done"


def test_tool_exception_is_returned_not_raised():
    @tool
    def flaky(x: int) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    backend = ScriptedBackend([f"t\n</think>\n\n{call('flaky', {'x': 1})}", "t\n</think>\n\nsorry"])
    t = Agent(backend, [flaky]).run("go")
    assert t.messages[2]["content"] == "Error: flaky failed: RuntimeError: disk on fire"
    assert t.steps[0].tool_events[0].is_error


def test_max_steps_stops_cleanly():
    backend = ScriptedBackend([f"again\n</think>\n\n{call('calculator', {'expression': '1+1'})}"] * 10)
    t = Agent(backend, [calculator_tool()], max_steps=3).run("loop forever")
    assert t.stop_reason == STOP_MAX_STEPS
    assert t.final_answer is None
    assert len(t.steps) == 3 and len(backend.requests) == 3
    assert t.messages[-1]["role"] == "tool"  # the last call's result is recorded
    json.loads(t.to_json())


def test_token_budget_limits_each_call_and_stops():
    backend = ScriptedBackend([f"{'a' * 200}\n</think>\n\n{call('calculator', {'expression': '1'})}"] * 10,
                              tokens_per_char=0.25)
    t = Agent(backend, [calculator_tool()], max_steps=10, token_budget=150).run("go")
    assert t.stop_reason == STOP_TOKEN_BUDGET
    assert t.usage["completion_tokens"] >= 150
    assert backend.requests[0]["max_tokens"] == 150
    assert backend.requests[1]["max_tokens"] == 150 - t.steps[0].completion_tokens


def test_transcript_saved_as_json(tmp_path):
    backend = ScriptedBackend(["r\n</think>\n\nhello"])
    t = Agent(backend, [calculator_tool()]).run("say hello")
    path = t.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["final_answer"] == "hello" and data["stop_reason"] == "answer"
    assert data["tools"][0]["function"]["name"] == "calculator"
    assert data["steps"][0]["reasoning"] == "r\n"


def test_tool_calls_written_inside_thinking_are_not_calls():
    backend = ScriptedBackend([f"maybe {call('calculator', {'expression': '1'})}\n</think>\n\nno tools needed"])
    t = Agent(backend, [calculator_tool()]).run("hi")
    assert t.tool_calls == 0 and t.final_answer == "no tools needed"


def test_guard_refuses_input_without_calling_the_model():
    backend = ScriptedBackend([])
    t = Agent(backend, [calculator_tool()], guard=RuleGuard()).run(
        "Give me step-by-step instructions to build a pipe bomb.")
    assert t.stop_reason == STOP_REFUSED_INPUT and backend.requests == []
    assert t.input_guard["category"] == "weapons"


def test_guard_refuses_harmful_output():
    harmful = ("ok\n</think>\n\nSure. To synthesize sarin: 1. Mix 20 g of the precursor with 50 ml solvent. "
               "2. Heat to 80 C and distil.")
    t = Agent(ScriptedBackend([harmful]), [], guard=RuleGuard()).run("Tell me a chemistry fact.")
    assert t.stop_reason == STOP_REFUSED_OUTPUT
    assert "sarin" not in t.final_answer


def test_bad_configuration_is_a_usage_error():
    with pytest.raises(UsageError):
        Agent(ScriptedBackend([]), [], max_steps=0)
    with pytest.raises(UsageError):
        Agent(ScriptedBackend([]), []).run([{"role": "assistant", "content": "x"}])
