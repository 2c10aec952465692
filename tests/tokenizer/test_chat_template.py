"""Chat templates: parity with transformers' apply_chat_template on the QwQ template, validation, sandboxing."""

from __future__ import annotations

import copy

import pytest

from qwq.tokenizer import QWQ_TEMPLATE, ChatTemplate, validate_messages
from qwq.utils.errors import TokenizerError

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city (météo).",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                   "required": ["city"]}}}
PYTHON_TOOL = {"type": "function", "function": {
    "name": "python", "description": "Run Python code.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}


def _call(name, arguments):
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "single user turn": ([{"role": "user", "content": "What is 2+2?"}], None),
    "system prompt": ([{"role": "system", "content": "You are a careful mathematician."},
                       {"role": "user", "content": "Prove that √2 is irrational."}], None),
    "multi-turn with thinking": ([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"},
        {"role": "user", "content": "Count to 3."},
        {"role": "assistant", "content": "Okay, simple.\n</think>\n\n1, 2, 3."},
        {"role": "user", "content": "Now backwards."}], None),
    "last assistant keeps its thinking": ([
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "t1</think>\n\nA1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "t2</think>\n\nA2"}], None),
    "tools listed without a system prompt": ([{"role": "user", "content": "Weather in Paris?"}],
                                             [WEATHER_TOOL, PYTHON_TOOL]),
    "tools with a system prompt": ([{"role": "system", "content": "Use tools when helpful."},
                                    {"role": "user", "content": "Weather in Zürich?"}], [WEATHER_TOOL]),
    "tool call and its result": ([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [_call("get_weather", {"city": "Paris", "unit": "c"})]},
        {"role": "tool", "content": '{"temp": 21, "sky": "clear"}'}], [WEATHER_TOOL]),
    "consecutive tool results merge into one user turn": ([
        {"role": "user", "content": "Compare Paris and 東京."},
        {"role": "assistant", "content": "I will check both.</think>\n\nChecking.",
         "tool_calls": [_call("get_weather", {"city": "Paris"}), _call("get_weather", {"city": "東京"})]},
        {"role": "tool", "content": "21C"},
        {"role": "tool", "content": "25C"},
        {"role": "assistant", "content": "Reasoned.</think>\n\nTokyo is warmer."},
        {"role": "user", "content": "Thanks"}], [WEATHER_TOOL]),
    "flat tool call form and a mid-conversation system turn": ([
        {"role": "user", "content": "Run it"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "python", "arguments": {"code": "print(1)"}}]},
        {"role": "tool", "content": "1"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "And 2?"}], [PYTHON_TOOL]),
    "unicode and special characters": ([
        {"role": "user", "content": "Écris «bonjour» 👋 <b>bold</b> & \"quotes\"\n\tindent"}], None),
}


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_tokenizer):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer.backend, chat_template=QWQ_TEMPLATE,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>")


@pytest.mark.parametrize("name", list(CONVERSATIONS))
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_qwq_template_parity_with_transformers(hf_tokenizer, name, add_generation_prompt):
    messages, tools = CONVERSATIONS[name]
    expected = hf_tokenizer.apply_chat_template(copy.deepcopy(messages), tools=tools, tokenize=False,
                                                add_generation_prompt=add_generation_prompt)
    ours = ChatTemplate(QWQ_TEMPLATE).render(messages, tools=tools, add_generation_prompt=add_generation_prompt)
    assert ours == expected
    assert ours.endswith("<|im_start|>assistant\n<think>\n") == add_generation_prompt


def test_qwq_template_facts():
    template = ChatTemplate(QWQ_TEMPLATE)
    messages, tools = CONVERSATIONS["multi-turn with thinking"]
    text = template.render(messages, add_generation_prompt=True)
    assert "The user greets me" not in text and "Okay, simple" not in text  # earlier thinking stripped
    assert "<|im_start|>assistant\nHello! How can I help?<|im_end|>" in text
    assert not text.startswith("<|im_start|>system")  # no default system prompt
    messages, tools = CONVERSATIONS["consecutive tool results merge into one user turn"]
    text = template.render(messages, tools=tools)
    assert "<|im_start|>user\n<tool_response>\n21C\n</tool_response>\n<tool_response>\n25C\n</tool_response>" \
           "<|im_end|>" in text
    assert '{"name": "get_weather", "arguments": {"city": "東京"}}' in text  # tojson keeps non-ASCII
    assert "<tools>\n" + '{"type": "function", "function": {"name": "get_weather"' in text


def test_string_arguments_are_parsed_like_objects():
    template = ChatTemplate(QWQ_TEMPLATE)
    as_dict = [{"role": "user", "content": "x"},
               {"role": "assistant", "content": "", "tool_calls": [_call("f", {"a": [1, "é"]})]}]
    as_string = copy.deepcopy(as_dict)
    as_string[1]["tool_calls"][0]["function"]["arguments"] = '{"a": [1, "\\u00e9"]}'
    assert template.render(as_string) == template.render(as_dict)
    assert as_string[1]["tool_calls"][0]["function"]["arguments"] == '{"a": [1, "\\u00e9"]}'  # caller's untouched


def test_normalization_of_openai_shapes():
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                 "name": None},
                {"role": "assistant", "content": None, "tool_calls": [_call("f", {})]},
                {"role": "tool", "content": "r", "tool_call_id": "call_1"},
                {"role": "assistant", "content": "done", "tool_calls": None}]
    checked = validate_messages(messages)
    assert checked[0] == {"role": "user", "content": "ab"}
    assert checked[1]["content"] == "" and checked[1]["tool_calls"][0]["function"]["arguments"] == {}
    assert "tool_calls" not in checked[3]
    text = ChatTemplate(QWQ_TEMPLATE).render(messages)
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>' in text


@pytest.mark.parametrize("messages, message", [
    ([], "messages is empty"),
    ("hello", "must be a list"),
    ([{"content": "x"}], r"messages\[0\] has no 'role'"),
    ([{"role": "user", "content": "x"}, {"role": 3, "content": "y"}], r"messages\[1\].role must be a non-empty"),
    ([{"role": "user"}], r"messages\[0\] \(user\) has no 'content'"),
    ([{"role": "user", "content": 42}], r"messages\[0\].content must be a string, got int"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
     r"messages\[0\].content\[0\]: only text content parts"),
    (["just text"], r"messages\[0\] must be an object"),
    ([{"role": "user", "content": "x", "tool_calls": []}], r"messages\[0\].tool_calls: only assistant"),
    ([{"role": "assistant", "content": "", "tool_calls": {"name": "f"}}], r"messages\[0\].tool_calls must be a list"),
    ([{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}],
     r"messages\[0\].tool_calls\[0\].function.name must be a non-empty string"),
    ([{"role": "assistant", "tool_calls": [_call("f", "{not json")]}],
     r"messages\[0\].tool_calls\[0\].function.arguments is not valid JSON"),
    ([{"role": "assistant", "tool_calls": [_call("f", [1, 2])]}],
     r"messages\[0\].tool_calls\[0\].function.arguments must be a JSON object, got list"),
    ([{"role": "assistant", "tool_calls": [{"name": "f"}]}], r"messages\[0\].tool_calls\[0\].arguments is missing"),
    ([{"role": "user", "content": "x", "meta": object()}], r"messages\[0\].meta: a object cannot be passed"),
])
def test_message_validation_errors(messages, message):
    with pytest.raises(TokenizerError, match=message):
        ChatTemplate(QWQ_TEMPLATE).render(messages)


def test_tools_validation():
    template = ChatTemplate(QWQ_TEMPLATE)
    user = [{"role": "user", "content": "x"}]
    with pytest.raises(TokenizerError, match="tools must be a list"):
        template.render(user, tools=WEATHER_TOOL)
    with pytest.raises(TokenizerError, match=r"tools\[1\] must be an object"):
        template.render(user, tools=[WEATHER_TOOL, "python"])
    assert template.render(user, tools=[]) == template.render(user)


def test_template_errors_are_tokenizer_errors():
    with pytest.raises(TokenizerError, match="syntax error at line 2"):
        ChatTemplate("ok\n{% if %}")
    with pytest.raises(TokenizerError, match="the template is empty"):
        ChatTemplate("  ")
    raising = ChatTemplate("line1\n{{ raise_exception('System role not supported') }}")
    with pytest.raises(TokenizerError, match="template line 2.*System role not supported"):
        raising.render([{"role": "user", "content": "x"}])
    with pytest.raises(TokenizerError, match="failed"):
        ChatTemplate("{{ messages[0].content.missing.deeper }}").render([{"role": "user", "content": "x"}])
    with pytest.raises(TokenizerError, match="failed"):
        ChatTemplate("{{ messages[0].content + 1 }}").render([{"role": "user", "content": "x"}])


def test_sandbox_blocks_escapes():
    user = [{"role": "user", "content": "x"}]
    with pytest.raises(TokenizerError, match="unsafe|not allowed"):
        ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}").render(user)
    with pytest.raises(TokenizerError, match="not allowed"):
        ChatTemplate("{% set ns = namespace(_x=1) %}").render(user)
    with pytest.raises(TokenizerError, match="unsafe|immutable|not safely"):
        ChatTemplate("{{ messages.append(1) }}").render(user)


def test_helpers_and_variables():
    user = [{"role": "user", "content": "x"}]
    template = ChatTemplate("{{ bos_token }}|{{ {'k': 'é<'} | tojson }}|{{ strftime_now('%Y') | length }}|"
                            "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{% endfor %}"
                            "{% generation %}{{ enable_thinking }}{% endgeneration %}",
                            special_tokens={"bos_token": "<s>"})
    assert template.render(user, enable_thinking=False) == '<s>|{"k": "é<"}|4|False'
