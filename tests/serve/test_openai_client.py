"""The official `openai` client against a live server on the tiny chat model: chat, streaming, n, tools round trip,
reasoning_content, usage, logprobs, completions, and errors raised as the client's typed exceptions."""

from __future__ import annotations

import json

import openai
import pytest

from chat_model import (ADD_ANSWER, ADD_QUESTION, ADD_REASONING, HELLO_ANSWER, HELLO_QUESTION,
                        TOOL_ANSWER, WEATHER_ARGS, WEATHER_QUESTION, WEATHER_REASONING, WEATHER_RESULT, WEATHER_TOOL)
from serve_helpers import MODEL_ID

USER_ADD = [{"role": "user", "content": ADD_QUESTION}]


def test_models_list(client, engine):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL_ID]
    assert models[0].model_extra["max_model_len"] == engine.max_model_len
    assert client.models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_splits_reasoning_from_answer_and_counts_tokens(client, engine):
    response = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ADD_ANSWER
    assert choice.message.model_extra["reasoning_content"] == ADD_REASONING + "\n"
    assert choice.finish_reason == "stop"
    usage = response.usage
    tokenizer = engine.tokenizer
    thinking = tokenizer.encode(ADD_REASONING + "\n</think>")
    answer = tokenizer.encode("\n\n" + ADD_ANSWER + "<|im_end|>")
    assert usage.completion_tokens == len(thinking) + len(answer)
    assert usage.completion_tokens_details.reasoning_tokens == len(thinking)
    rendered = engine.chat_template.render(USER_ADD, add_generation_prompt=True)
    assert usage.prompt_tokens == len(tokenizer.encode(rendered))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert response.id.startswith("chatcmpl-") and response.model == MODEL_ID


def test_streaming_deltas_rebuild_the_same_message(client):
    stream = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, stream=True,
                                            stream_options={"include_usage": True}, temperature=0)
    reasoning, content, finish, usage, roles, kinds = [], [], None, None, [], []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.role:
                roles.append(delta.role)
            extra = (delta.model_extra or {}).get("reasoning_content")
            if extra:
                reasoning.append(extra)
                kinds.append("r")
            if delta.content:
                content.append(delta.content)
                kinds.append("c")
            if choice.finish_reason:
                finish = choice.finish_reason
    assert roles == ["assistant"]
    assert "".join(reasoning) == ADD_REASONING + "\n"
    assert "".join(content) == ADD_ANSWER
    assert len(reasoning) > 1 and len(content) > 1  # streamed token by token, not in one piece
    assert kinds == sorted(kinds, reverse=True)  # all thinking first, then the answer
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens > 0


def test_n_3_returns_three_choices(client):
    response = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, n=3, seed=7)
    assert [c.index for c in response.choices] == [0, 1, 2]
    for choice in response.choices:
        assert choice.message.content == ADD_ANSWER
        assert choice.finish_reason == "stop"
    one = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, n=1, seed=7)
    assert response.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert response.usage.prompt_tokens == one.usage.prompt_tokens


def test_n_3_streaming_interleaves_choices(client):
    stream = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": HELLO_QUESTION}],
                                            n=3, stream=True, seed=1)
    texts = {0: [], 1: [], 2: []}
    finishes = {}
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                texts[choice.index].append(choice.delta.content)
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert {i: "".join(t) for i, t in texts.items()} == {i: HELLO_ANSWER for i in range(3)}
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}


def test_tools_round_trip(client):
    messages = [{"role": "user", "content": WEATHER_QUESTION}]
    first = client.chat.completions.create(model=MODEL_ID, messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.model_extra["reasoning_content"] == WEATHER_REASONING + "\n"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert call.id.startswith("call_")
    # the client sends the call back with the tool's answer; the model answers from it
    messages.append(choice.message.model_dump(exclude_none=True, exclude={"reasoning_content"}))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT})
    second = client.chat.completions.create(model=MODEL_ID, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == TOOL_ANSWER
    assert second.choices[0].finish_reason == "stop"


def test_tool_calls_stream_as_deltas(client):
    stream = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": WEATHER_QUESTION}],
                                            tools=[WEATHER_TOOL], stream=True)
    calls, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            calls.extend(choice.delta.tool_calls or [])
            assert not choice.delta.content or "<tool_call>" not in choice.delta.content
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == WEATHER_ARGS


def test_tool_choice_none_hides_the_tools(client):
    response = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": WEATHER_QUESTION}],
                                              tools=[WEATHER_TOOL], tool_choice="none", max_tokens=40)
    assert not response.choices[0].message.tool_calls


def test_named_tool_choice_forces_the_call_after_thinking(client):
    named = {"type": "function", "function": {"name": "get_weather"}}
    response = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": WEATHER_QUESTION}],
                                              tools=[WEATHER_TOOL], tool_choice=named, temperature=0)
    message = response.choices[0].message
    assert message.model_extra["reasoning_content"] == WEATHER_REASONING + "\n"  # it still thinks first
    assert [c.function.name for c in message.tool_calls] == ["get_weather"]
    assert json.loads(message.tool_calls[0].function.arguments) == WEATHER_ARGS


def test_forced_tool_call_starts_right_after_the_thinking(own_engine):
    # "What is 2+3?" never calls a tool by itself; the tool_choice controller makes the answer start with a call
    from qwq.engine import SamplingParams
    from qwq.serve.prepare import ForcedPrefix

    engine = own_engine
    prefix = '<tool_call>\n{"name": "get_weather", "arguments":'
    controller = ForcedPrefix(engine.encode(prefix), engine.encode("\n\n" + prefix))
    [result] = engine.generate([engine.render_chat(USER_ADD)], SamplingParams(temperature=0, max_new_tokens=40),
                               controllers=[lambda setting, state: controller])
    assert result.text.startswith(f"{ADD_REASONING}\n</think>\n\n{prefix}")
    forced = result.samples[0].forced_mask
    thinking = len(engine.encode(ADD_REASONING + "\n</think>"))
    assert not any(forced[:thinking]) and all(forced[thinking:thinking + len(engine.encode("\n\n" + prefix))])


def test_history_thinking_is_stripped_server_side(client, engine):
    # the previous assistant turn comes back WITH its thinking; the prompt must equal the one without it
    with_thinking = [*USER_ADD, {"role": "assistant", "content": f"<think>\nsecret plan\n</think>\n\n{ADD_ANSWER}",
                                 "reasoning_content": "secret plan"},
                     {"role": "user", "content": HELLO_QUESTION}]
    response = client.chat.completions.create(model=MODEL_ID, messages=with_thinking, temperature=0)
    assert response.choices[0].message.content == HELLO_ANSWER
    plain = [*USER_ADD, {"role": "assistant", "content": ADD_ANSWER}, {"role": "user", "content": HELLO_QUESTION}]
    expected = engine.tokenizer.encode(engine.chat_template.render(plain, add_generation_prompt=True))
    assert response.usage.prompt_tokens == len(expected)


def test_max_tokens_cuts_inside_the_thinking(client):
    response = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, max_tokens=3)
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content is None  # thinking never closed: no answer
    assert choice.message.model_extra["reasoning_content"]
    assert response.usage.completion_tokens == 3 == response.usage.completion_tokens_details.reasoning_tokens


def test_stop_string_and_seeded_reproducibility(client):
    response = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, stop=["three"])
    assert response.choices[0].message.model_extra["reasoning_content"] == "Two plus "
    assert response.choices[0].model_extra["stop_reason"] == "three"
    a = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "free text"}],
                                       temperature=1.5, seed=123, max_tokens=20)
    b = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "free text"}],
                                       temperature=1.5, seed=123, max_tokens=20)
    assert a.choices[0].message == b.choices[0].message


def test_logprobs_and_logit_bias(client, engine):
    response = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, logprobs=True, top_logprobs=3,
                                              temperature=0)
    entries = response.choices[0].logprobs.content
    assert len(entries) == response.usage.completion_tokens
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 3 for e in entries)
    assert entries[0].top_logprobs[0].token == entries[0].token  # greedy picks the best
    first_token = engine.tokenizer.encode(ADD_REASONING)[0]
    biased = client.chat.completions.create(model=MODEL_ID, messages=USER_ADD, temperature=0, max_tokens=2,
                                            logit_bias={str(first_token): -100})
    assert not (biased.choices[0].message.model_extra.get("reasoning_content") or "").startswith("Two")


def test_completions_endpoint(client, engine):
    prompt = engine.chat_template.render(USER_ADD, add_generation_prompt=True)
    response = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=64, temperature=0, logprobs=2)
    choice = response.choices[0]
    assert choice.text == f"{ADD_REASONING}\n</think>\n\n{ADD_ANSWER}"  # raw text: no reasoning split
    assert choice.finish_reason == "stop"
    assert len(choice.logprobs.tokens) == response.usage.completion_tokens
    assert all(len(t) <= 2 for t in choice.logprobs.top_logprobs)
    batch = client.completions.create(model=MODEL_ID, prompt=[prompt, prompt], n=2, max_tokens=5, temperature=0)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    assert len({c.text for c in batch.choices}) == 1
    ids = engine.tokenizer.encode(prompt)
    streamed = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=64, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == choice.text


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(model="no-such-model"), openai.NotFoundError, "does not exist"),
    (dict(temperature=3.0), openai.BadRequestError, "temperature"),
    (dict(top_p=0.0), openai.BadRequestError, "top_p"),
    (dict(n=0), openai.BadRequestError, "n"),
    (dict(n=64), openai.BadRequestError, "max_batch_size"),
    (dict(max_tokens=100000), openai.BadRequestError, "maximum context length"),
    (dict(messages=[]), openai.BadRequestError, "messages"),
    (dict(messages=[{"role": "wizard", "content": "hi"}]), openai.BadRequestError, "messages"),
    (dict(messages=[{"role": "user"}]), openai.BadRequestError, "content"),
    (dict(tool_choice="required"), openai.BadRequestError, "no tools"),
    (dict(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
     openai.BadRequestError, "not among the tools"),
    (dict(extra_body={"frobnicate": 1}), openai.BadRequestError, "frobnicate"),
    (dict(extra_body={"thinking_budget": -1}), openai.BadRequestError, "thinking_budget"),
    (dict(stream=True, logprobs=True, top_logprobs=2), openai.BadRequestError, "top_logprobs"),
    (dict(logit_bias={"999999": 5}), openai.BadRequestError, "vocabulary"),
    (dict(messages=[{"role": "assistant", "content": "x", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]),
     openai.BadRequestError, "arguments"),
])
def test_errors_are_typed_client_exceptions(client, kwargs, error, fragment):
    request = dict(model=MODEL_ID, messages=USER_ADD, max_tokens=8)
    request.update(kwargs)
    with pytest.raises(error) as info:
        client.chat.completions.create(**request)
    assert 400 <= info.value.status_code < 500
    body = info.value.body
    assert set(body) == {"message", "type", "param", "code"}  # the client unwraps {"error": {...}}
    assert fragment in body["message"]


def test_context_length_exceeded_has_its_code(client, engine):
    long_text = "word " * (engine.max_model_len * 2)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": long_text}])
    assert info.value.code == "context_length_exceeded"
