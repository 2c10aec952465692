"""Tool-call parsing: whole answers, streams cut at every position, malformed blocks, formatting."""

from __future__ import annotations

import itertools
import json

import pytest

from qwq.tokenizer import (QWQ_TEMPLATE, ChatTemplate, ContentDelta, ToolCall, ToolCallDone, ToolCallFailed,
                           ToolCallStreamParser, format_tool_call, parse_tool_calls)


def _ids():
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'
SEARCH = '<tool_call>\n{"name": "search", "arguments": {"q": "東京 \\"quoted\\" <tag>"}}\n</tool_call>'

# (text, content, [(name, arguments)], [error message fragments])
CASES = {
    "plain answer": ("The answer is 4.", "The answer is 4.", [], []),
    "one call": (WEATHER, "", [("get_weather", {"city": "Paris", "days": 3})], []),
    "text then call": ("Let me check.\n\n" + WEATHER, "Let me check.",
                       [("get_weather", {"city": "Paris", "days": 3})], []),
    "two calls": (WEATHER + "\n" + SEARCH, "", [("get_weather", {"city": "Paris", "days": 3}),
                                               ("search", {"q": '東京 "quoted" <tag>'})], []),
    "text around calls": ("Before " + WEATHER + "\nafter", "Beforeafter",
                          [("get_weather", {"city": "Paris", "days": 3})], []),
    "malformed json": ('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', "", [],
                       ["invalid JSON"]),
    "bad then good": ('<tool_call>{oops}</tool_call>\n' + WEATHER, "",
                      [("get_weather", {"city": "Paris", "days": 3})], ["invalid JSON"]),
    "missing name": ('<tool_call>{"arguments": {}}</tool_call>', "", [], ["'name' must be a non-empty string"]),
    "arguments not an object": ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "", [],
                                ["'arguments' must be a JSON object, got list"]),
    "not an object": ('<tool_call>[1, 2]</tool_call>', "", [], ["expected a JSON object"]),
    "double-encoded arguments": ('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>', "",
                                 [("f", {"x": 1})], []),
    "parameters alias and no arguments": ('<tool_call>{"name": "f", "parameters": {"y": 2}}</tool_call>'
                                          '<tool_call>{"name": "g"}</tool_call>', "", [("f", {"y": 2}), ("g", {})],
                                          []),
    "unterminated block": ("Calling.\n<tool_call>\n{\"name\": \"f\", \"argu", "Calling.", [], ["unterminated"]),
    "stray closing tag is content": ("a </tool_call> b", "a </tool_call> b", [], []),
    "partial tag at the end is content": ("answer <tool_ca", "answer <tool_ca", [], []),
    "angle brackets in content": ("if a<b then <b>bold</b>", "if a<b then <b>bold</b>", [], []),
    "trailing whitespace kept without calls": ("line\n\n", "line\n\n", [], []),
    "compact json on one line": ('<tool_call>{"name":"f","arguments":{"k":"v"}}</tool_call>', "",
                                 [("f", {"k": "v"})], []),
}


def _stream(chunks):
    parser = ToolCallStreamParser(id_factory=_ids())
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    calls = [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallDone)]
    errors = [e.error.message for e in events if isinstance(e, ToolCallFailed)]
    assert content == parser.content and calls == [(c.name, c.arguments) for c in parser.tool_calls]
    return content, calls, errors


def _check(result, content, calls, errors):
    got_content, got_calls, got_errors = result
    assert got_content == content and got_calls == calls
    assert len(got_errors) == len(errors) and all(e in g for e, g in zip(errors, got_errors))


@pytest.mark.parametrize("name", list(CASES))
def test_whole_text(name):
    text, content, calls, errors = CASES[name]
    parsed = parse_tool_calls(text, id_factory=_ids())
    _check((parsed.content, [(c.name, c.arguments) for c in parsed.tool_calls], [e.message for e in parsed.errors]),
           content, calls, errors)


@pytest.mark.parametrize("name", list(CASES))
def test_stream_split_at_every_position(name):
    text, content, calls, errors = CASES[name]
    for cut in range(len(text) + 1):
        _check(_stream([text[:cut], text[cut:]]), content, calls, errors)
    _check(_stream(list(text)), content, calls, errors)


def test_errors_keep_the_raw_block_and_index():
    parsed = parse_tool_calls('<tool_call>{bad}</tool_call>' + WEATHER + '<tool_call>{"name": 1}</tool_call>')
    assert [e.index for e in parsed.errors] == [0, 2] and parsed.errors[0].raw == "{bad}"
    assert len(parsed.tool_calls) == 1


def test_content_is_not_emitted_before_a_partial_tag_resolves():
    parser = ToolCallStreamParser()
    assert parser.feed("Checking.\n<tool") == [ContentDelta("Checking.")]
    assert parser.feed('_call>{"name": "f", "arguments": {}}</tool_c') == []
    events = parser.feed("all>")
    assert len(events) == 1 and isinstance(events[0], ToolCallDone) and events[0].call.name == "f"


def test_ids_and_openai_shape():
    calls = parse_tool_calls(WEATHER + SEARCH).tool_calls
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    entry = calls[1].to_openai()
    assert entry["type"] == "function" and entry["function"]["name"] == "search"
    assert json.loads(entry["function"]["arguments"]) == {"q": '東京 "quoted" <tag>'}


def test_format_matches_the_chat_template_and_parses_back():
    call = ToolCall("get_weather", {"city": "Zürich", "nested": {"a": [1, 2.5, None, True]}}, id="call_x")
    formatted = format_tool_call(call.name, call.arguments)
    rendered = ChatTemplate(QWQ_TEMPLATE).render([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": call.name,
                                                                          "arguments": call.arguments}}]}])
    assert f"<|im_start|>assistant\n{formatted}<|im_end|>" in rendered
    parsed = parse_tool_calls(formatted).tool_calls
    assert [(c.name, c.arguments) for c in parsed] == [(call.name, call.arguments)]


def test_never_raises_on_garbage():
    for text in ["<tool_call>", "<tool_call></tool_call>", "<tool_call>" * 3 + "</tool_call>" * 3,
                 "<tool_call>" + "[" * 100000 + "</tool_call>", "\x00<tool_call>\ud800</tool_call>"]:
        parsed = parse_tool_calls(text)
        assert parsed.tool_calls == [] and parsed.errors
