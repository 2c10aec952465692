"""The per-choice stream router: reasoning / content / tool-call deltas, held partial tags, token accounting."""

from __future__ import annotations

import json

import pytest

from qwq.serve.stream import ChoiceRouter

THINK_OPEN, THINK_CLOSE = 900, 901  # token ids standing for <think> / </think> in these cases


def run(pieces, *, starts=True, tools=False, ids=None, think_ids=(THINK_OPEN, THINK_CLOSE), reason="stop"):
    router = ChoiceRouter(0, starts_in_reasoning=starts, parse_tools=tools, think_ids=think_ids)
    deltas = []
    ids = ids or list(range(1, len(pieces) + 1))
    for token, text in zip(ids, pieces):
        deltas += router.feed(token, text)
    deltas += router.finish(reason)
    return router, deltas


def joined(deltas, key):
    return "".join(d[key] for d in deltas if key in d)


def test_reasoning_then_answer_with_a_tag_split_across_tokens():
    router, deltas = run(["Let me ", "think.", "\n</thi", "nk>\n\n", "The answer", " is 4."], think_ids=(None, None))
    assert joined(deltas, "reasoning_content") == "Let me think.\n"
    assert joined(deltas, "content") == "The answer is 4."
    assert all("</" not in d.get("reasoning_content", "") and "nk>" not in d.get("content", "") for d in deltas)
    assert router.message() == {"role": "assistant", "content": "The answer is 4.",
                                "reasoning_content": "Let me think.\n"}
    # without tag ids the parser's state decides: the tokens up to the one completing `</think>` are thinking
    assert router.state.reasoning_tokens == 4 and router.state.tokens == 6
    assert router.state.finish_reason == "stop"


def test_reasoning_tokens_follow_the_tag_ids_when_the_vocabulary_has_them():
    pieces = ["a", "b", "</think>", "\n\n", "x", "y", "z"]
    ids = [1, 2, THINK_CLOSE, 3, 4, 5, 6]
    router, _ = run(pieces, ids=ids)
    assert router.state.reasoning_tokens == 3 and router.state.tokens == 7


def test_unfinished_thinking_has_no_content():
    router, deltas = run(["still ", "thinking"], reason="length")
    assert router.message() == {"role": "assistant", "content": None, "reasoning_content": "still thinking"}
    assert router.state.finish_reason == "length"
    assert not any("content" in d for d in deltas)


def test_a_model_without_thinking_is_all_content():
    router, deltas = run(["Hello", " world"], starts=False, think_ids=(None, None))
    assert router.message() == {"role": "assistant", "content": "Hello world"}
    assert router.state.reasoning_tokens == 0


def test_explicit_opening_tag_is_accepted():
    router, _ = run(["<think>", "\nhmm\n", "</think>", "\n\nok"], starts=False, think_ids=(None, None))
    assert router.message()["reasoning_content"] == "hmm\n" and router.message()["content"] == "ok"


def test_tool_calls_become_deltas_and_finish_reason_tool_calls():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    text = "plan\n</think>\n\nLet me check." + "\n" + call
    pieces = [text[i:i + 3] for i in range(0, len(text), 3)]  # tags split everywhere
    router, deltas = run(pieces, tools=True, think_ids=(None, None))
    assert joined(deltas, "content") == "Let me check."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1
    assert calls[0]["index"] == 0 and calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert router.state.finish_reason == "tool_calls"
    assert router.message()["tool_calls"] == [{k: v for k, v in calls[0].items() if k != "index"}]


def test_tool_calls_in_the_thinking_are_not_calls():
    text = 'maybe <tool_call>{"name": "f", "arguments": {}}</tool_call>?</think>\n\nNo call.'
    router, deltas = run([text], tools=True, think_ids=(None, None))
    assert "tool_calls" not in router.message()
    assert router.state.finish_reason == "stop"


def test_two_calls_get_indices_and_an_invalid_block_stays_text():
    text = ('</think>\n\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>\n<tool_call>not json</tool_call>')
    router, deltas = run(list(text), tools=True, think_ids=(None, None))
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "a"), (1, "b")]
    assert router.message()["content"] == "<tool_call>not json</tool_call>"


def test_unterminated_block_at_the_end_is_returned_as_text():
    router, _ = run(['</think>\n\n<tool_call>{"name": "a"'], tools=True, think_ids=(None, None), reason="length")
    assert router.message()["content"] == '<tool_call>{"name": "a"</tool_call>'
    assert router.state.finish_reason == "length"


def test_tools_off_leaves_the_block_in_the_content():
    text = '</think>\n\n<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    router, _ = run([text], tools=False, think_ids=(None, None))
    assert router.message()["content"] == '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    assert router.state.finish_reason == "stop"


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_deltas_concatenate_to_the_whole_message_for_any_split(size):
    text = "Reason <b>1</b> and </thi\nnk>.\n</think>\n\nAnswer </think> with a stray tag <think> too."
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    router, deltas = run(pieces, think_ids=(None, None))
    whole, _ = run([text], think_ids=(None, None))
    assert joined(deltas, "reasoning_content") == whole.message()["reasoning_content"]
    assert joined(deltas, "content") == whole.message()["content"]


def test_a_finish_event_without_a_token_counts_nothing():
    router = ChoiceRouter(0, starts_in_reasoning=True, parse_tools=False, think_ids=(None, None))
    router.feed(5, "x")
    router.feed(None, "")
    router.finish("abort")
    assert router.state.tokens == 1 and router.state.finish_reason == "abort"
