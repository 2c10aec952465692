"""Reasoning controls as request fields (qwq.engine.controls through the server): thinking budget, budget forcing,
self-consistency voting, and their validation errors as 400s naming the field."""

from __future__ import annotations

import openai
import pytest

from chat_model import ADD_ANSWER, ADD_QUESTION, LONG_QUESTION, LONG_REASONING
from serve_helpers import MODEL_ID


def ask(client, question, **extra):
    return client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": question}],
                                          temperature=0, extra_body=extra)


def test_thinking_budget_wraps_up_and_answers(client, engine):
    free = ask(client, LONG_QUESTION)
    budget = ask(client, LONG_QUESTION, thinking_budget={"max_thinking_tokens": 10, "answer_tokens": 8})
    message = budget.choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert len(reasoning) < len(LONG_REASONING) and reasoning.startswith("Still thinking")
    assert message.content  # it answered after the forced `</think>`
    used = budget.usage.completion_tokens_details.reasoning_tokens
    assert used < free.usage.completion_tokens_details.reasoning_tokens
    assert budget.usage.completion_tokens - used <= 8  # the answer budget


def test_min_thinking_tokens_says_wait(client):
    reply = ask(client, ADD_QUESTION, min_thinking_tokens={"min_tokens": 20, "max_extensions": 1}, max_tokens=80)
    assert "Wait" in reply.choices[0].message.model_extra["reasoning_content"]


def test_self_consistency_votes(client):
    reply = ask(client, ADD_QUESTION, self_consistency=5)
    assert len(reply.choices) == 1
    assert reply.choices[0].message.content == ADD_ANSWER
    vote = reply.model_extra["self_consistency"]
    assert vote["answer"] == "5" and vote["votes"][0]["answer"] == "5"
    assert vote["completed"] <= 5 and vote["winner_index"] in vote["votes"][0]["samples"]
    one = ask(client, ADD_QUESTION)
    # every generated token counts, those of samples cut when the vote was decided too
    assert reply.usage.completion_tokens == vote["generated_tokens"]
    assert reply.usage.completion_tokens >= vote["completed"] * one.usage.completion_tokens


def test_other_controls_are_accepted(client):
    reply = ask(client, ADD_QUESTION, loop_breaker=True, language_guard="report", early_exit=True)
    assert reply.choices[0].message.content == ADD_ANSWER


def test_starts_in_thinking_false_reads_everything_as_answer(client):
    reply = ask(client, ADD_QUESTION, starts_in_thinking=False)
    message = reply.choices[0].message
    assert "reasoning_content" not in (message.model_extra or {}) or not message.model_extra["reasoning_content"]
    assert message.content.startswith("Two plus three")
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("extra, param", [
    ({"thinking_budget": {"nope": 1}}, "thinking_budget"),
    ({"loop_breaker": "explode"}, "loop_breaker"),
    ({"language_guard": {"mode": "loud"}}, "language_guard"),
    ({"self_consistency": {"n": 0}}, "self_consistency"),
    ({"early_exit": {"every": 0}}, "early_exit"),
    ({"min_thinking_tokens": True}, "min_thinking_tokens"),
    ({"self_consistency": 3, "stream": True}, "self_consistency"),
    ({"self_consistency": 3, "n": 2}, "self_consistency"),
])
def test_bad_control_settings_are_400_naming_the_field(client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, ADD_QUESTION, **extra)
    assert info.value.body["param"] == param, info.value.body
