import json
import random

import pytest

from qwq.agent.calculator import calculator_tool
from qwq.agent.episode import Generation, run_episode, scripted_generate, tool_turn_text
from qwq.agent.tool_task import ToolArithmeticTask, boxed_integer
from qwq.rl.data import think_completion
from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate
from qwq.tokenizer.training import train_bpe

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


@pytest.fixture(scope="module")
def tok():
    corpus = ["Compute 1234 * 5678 exactly. The tool printed 7006652. verdict: OK stdout: error invalid JSON",
              '{"name": "calculator", "arguments": {"expression": "12 * 34"}} \\boxed{408} Please reason step by step',
              "system user assistant tool You may call one or more functions # Tools"] * 20
    return train_bpe(corpus, 600, special_tokens=SPECIAL, added_tokens=ADDED, chat_template=QWQ_TEMPLATE)


def call(expr):
    return f'<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{expr}"}}}}\n</tool_call>'


def test_episode_masks_tool_tokens_and_keeps_model_tokens(tok):
    turns = [think_completion("Use the tool.", call("12 * 34")), think_completion("It printed 408.", "\\boxed{408}")]
    ep = run_episode(scripted_generate(tok, turns), tok, [{"role": "user", "content": "Compute 12 * 34."}],
                     [calculator_tool()])
    assert ep.stop_reason == "answer" and ep.n_tool_calls == 1 and ep.n_tool_errors == 0
    assert len(ep.completion_ids) == len(ep.loss_mask) == len(ep.logprobs)
    model = [t for t, m in zip(ep.completion_ids, ep.loss_mask) if m]
    env = [t for t, m in zip(ep.completion_ids, ep.loss_mask) if not m]
    im_end = tok.token_to_id("<|im_end|>")
    assert model == tok.encode(turns[0]) + [im_end] + tok.encode(turns[1]) + [im_end]
    assert tok.decode(env, skip_special_tokens=False) == tool_turn_text(["408"])
    assert ep.final_text == turns[1]
    assert ep.turns[0].tool_results == [{"name": "calculator", "content": "408", "is_error": False}]
    # the environment's text is what the QwQ template writes for a tool turn followed by the generation prompt
    rendered = ChatTemplate(QWQ_TEMPLATE).render(
        [{"role": "user", "content": "q"},
         {"role": "assistant", "content": "", "tool_calls": [{"name": "calculator", "arguments": {"expression": "1"}}]},
         {"role": "tool", "content": "408"}], add_generation_prompt=True)
    assert rendered.endswith("<|im_end|>" + tool_turn_text(["408"]))


def test_prompt_lists_the_tools(tok):
    ep = run_episode(scripted_generate(tok, [think_completion("x", "\\boxed{1}")]), tok,
                     [{"role": "user", "content": "hi"}], [calculator_tool()])
    prompt = tok.decode(ep.prompt_ids, skip_special_tokens=False)
    assert '"name": "calculator"' in prompt and prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_malformed_call_gets_error_and_continues(tok):
    bad = think_completion("t", '<tool_call>\n{"name": "calculator", "arguments": {expression: 1}}\n</tool_call>')
    ep = run_episode(scripted_generate(tok, [bad, think_completion("ok", "\\boxed{1}")]), tok,
                     [{"role": "user", "content": "q"}], [calculator_tool()])
    assert ep.stop_reason == "answer" and ep.n_tool_errors == 1
    assert ep.turns[0].tool_results[0]["content"].startswith("Error: tool call #1 could not be parsed: invalid JSON")


def test_max_steps_and_token_budget(tok):
    loop = [think_completion("again", call("1+1"))] * 5
    ep = run_episode(scripted_generate(tok, loop), tok, [{"role": "user", "content": "q"}], [calculator_tool()],
                     max_steps=3)
    assert ep.stop_reason == "max_steps" and len(ep.turns) == 3
    ep = run_episode(scripted_generate(tok, loop), tok, [{"role": "user", "content": "q"}], [calculator_tool()],
                     max_steps=5, max_total_tokens=60)
    assert ep.stop_reason in ("token_budget", "length") and len(ep.completion_ids) <= 60 + 40


def test_logprobs_line_up_with_generated_tokens(tok):
    texts = iter([think_completion("a", call("2*3")), think_completion("b", "\\boxed{6}")])
    im_end = tok.token_to_id("<|im_end|>")

    def generate(ids, max_new):
        out = tok.encode(next(texts)) + [im_end]
        return Generation(out, [-0.5] * len(out), "stop")

    ep = run_episode(generate, tok, [{"role": "user", "content": "q"}], [calculator_tool()])
    for m, lp in zip(ep.loss_mask, ep.logprobs):
        assert (lp == -0.5) if m else (lp is None)


def test_tool_task_teacher_trace_scores_and_baseline_prompt(tok):
    task = ToolArithmeticTask(tool="calculator")
    ex = task.examples("train", 3, seed=0)[0]
    a, b = ex.meta["a"], ex.meta["b"]
    assert ex.fields["answer"] == str(a * b) and 1000 <= a <= 99999
    ep = run_episode(scripted_generate(tok, task.teacher_turns(ex, random.Random(0))), tok, task.messages(ex),
                     task.tools())
    assert ep.n_tool_calls == 1
    assert task.reward([ep.final_text], [ex]) == [1.0]
    assert task.reward([think_completion("guess", "\\boxed{12}")], [ex]) == [0.0]
    assert task.reward(["never closed the thinking \\boxed{" + str(a * b) + "}"], [ex]) == [0.0]
    assert "tool" not in task.messages(ex, with_tools=False)[0]["content"]
    # slipped demonstrations are wrong
    rng = random.Random(1)
    rewards = []
    for _ in range(6):
        turns = task.teacher_turns(ex, rng, slip_rate=1.0)
        ep = run_episode(scripted_generate(tok, turns), tok, task.messages(ex), task.tools())
        rewards += task.reward([ep.final_text], [ex])
    assert rewards == [0.0] * 6


def test_boxed_integer():
    assert boxed_integer("t\n</think>\n\nSo \\boxed{1,234}.") == 1234
    assert boxed_integer("t\n</think>\n\n\\boxed{1} then \\boxed{-7}") == -7
    assert boxed_integer("t\n</think>\n\n\\boxed{x+1}") is None
    assert boxed_integer("no think close \\boxed{3}") is None


def test_python_tool_task_runs_in_the_real_sandbox(tok):
    pytest.importorskip("qwq.sandbox.client")
    task = ToolArithmeticTask(tool="python")
    ex = task.examples("heldout", 1, seed=3)[0]
    ep = run_episode(scripted_generate(tok, task.teacher_turns(ex, random.Random(0))), tok, task.messages(ex),
                     task.tools())
    assert ep.turns[0].tool_results[0]["content"].startswith("verdict: OK\nstdout:\n" + ex.fields["answer"])
    assert task.reward([ep.final_text], [ex]) == [1.0]
