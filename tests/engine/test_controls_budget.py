"""Thinking budget, budget forcing, accounting and the request fields, through the real Engine on scripted models."""

from __future__ import annotations

import pytest

from qwq.engine import SamplingParams
from qwq.engine.controls import controls_from_request, self_consistency_from_request
from qwq.engine.controls.settings import DEFAULT_WRAP_UP
from qwq.tokenizer import split_reasoning
from qwq.utils.errors import UsageError

from controls_fixtures import (chat_prompt, greedy, ids_of, non_repeating_reasoning, qwq_like_tokenizer,
                               scripted_engine, text_script)


@pytest.fixture(scope="module")
def tok():
    return qwq_like_tokenizer()


def _generate(tok, script, params):
    prompt = chat_prompt(tok)
    return scripted_engine(script(prompt), tok).generate([prompt], params)[0].samples[0]


# ---------------------------------------------------------------- thinking budget


def test_thinking_budget_yields_an_answer_with_budget_plus_answer_tokens(tok):
    long_answer = "\n\n" + " ".join(f"part{i}" for i in range(100))
    script = lambda prompt: text_script(tok, prompt, non_repeating_reasoning(tok, 1500), long_answer)  # noqa: E731
    free = _generate(tok, script, greedy(800))
    assert free.finish_reason == "length" and not split_reasoning(free.text).finished

    budget, answer_budget = 120, 15
    sample = _generate(tok, script, greedy(800, thinking_budget={"max_thinking_tokens": budget,
                                                                  "answer_tokens": answer_budget}))
    close_ids = tok.encode(DEFAULT_WRAP_UP + "\n</think>\n\n")
    blank = len(tok.encode("\n\n"))  # the blank line after </think> is the answer's first token(s)
    assert sample.token_ids[:budget] == free.token_ids[:budget]  # untouched up to the budget
    assert sample.token_ids[budget:budget + len(close_ids)] == close_ids  # then the wrap-up and </think>
    assert sample.forced_mask == [False] * budget + [True] * len(close_ids) + [False] * (answer_budget - blank)
    assert len(sample.token_ids) == budget + len(close_ids) - blank + answer_budget
    assert (sample.finish_reason, sample.stop_reason) == ("stop", "answer_budget")
    split = split_reasoning(sample.text)
    assert split.finished and split.answer.startswith("part0 part1")
    report = sample.controls["thinking_budget"]
    assert report["forced_close"] and report["forced_at_thinking_tokens"] == budget and report["answer_capped"]
    accounting = sample.controls["accounting"]
    assert accounting["reasoning_tokens"] == budget + len(close_ids) - blank
    assert accounting["answer_tokens"] == answer_budget


def test_thinking_budget_short_form_and_no_force_when_the_model_stops_in_time(tok):
    script = lambda prompt: text_script(tok, prompt, "Short. 12 * 7 = 84.")  # noqa: E731
    sample = _generate(tok, script, greedy(200, thinking_budget=50))
    assert sample.controls["thinking_budget"]["forced_close"] is False
    assert split_reasoning(sample.text).answer == "The answer is 84."
    assert not sample.forced_mask


def test_zero_budget_closes_the_thinking_at_once(tok):
    script = lambda prompt: text_script(tok, prompt, non_repeating_reasoning(tok, 300))  # noqa: E731
    sample = _generate(tok, script, greedy(200, thinking_budget={"max_thinking_tokens": 0, "wrap_up": ""}))
    assert sample.token_ids[:2] == tok.encode("\n</think>\n\n")[:2]
    assert split_reasoning(sample.text).answer == "The answer is 84."


# ---------------------------------------------------------------- budget forcing


class EagerCloser:
    """Thinks `filler` and tries to close the thinking after every `every` tokens; answers once closed."""

    def __init__(self, tok, prompt_len: int, every: int = 10, eos_instead: bool = False) -> None:
        self.prompt_len, self.every = prompt_len, every
        self.filler = non_repeating_reasoning(tok, 3000, seed=5)
        self.close, self.eos = ids_of(tok, "</think>", "<|im_end|>")
        self.attempt = self.eos if eos_instead else self.close
        self.answer = tok.encode("\n\nThe answer is 84.")

    def __call__(self, context):
        generated = context[self.prompt_len:]
        if self.close in generated:
            k = len(generated) - 1 - generated[::-1].index(self.close)
            rest = len(generated) - k - 1
            return self.answer[rest] if rest < len(self.answer) else self.eos
        i = len(generated)
        return self.attempt if i % self.every == self.every - 1 else self.filler[i]


@pytest.mark.parametrize("min_tokens,max_extensions", [(50, 8), (50, 2), (5, 8)])
def test_budget_forcing_inserts_wait_exactly_as_configured(tok, min_tokens, max_extensions):
    wait = "\nWait"
    wait_ids = tok.encode(wait)
    sample = _generate(tok, lambda prompt: EagerCloser(tok, len(prompt)),
                       greedy(400, min_thinking_tokens={"min_tokens": min_tokens, "max_extensions": max_extensions,
                                                        "wait": wait}))
    report = sample.controls["min_thinking_tokens"]
    split = split_reasoning(sample.text)
    assert split.finished and split.answer == "The answer is 84."
    # The script tries to close at every generated index i with i % 10 == 9. Simulate the rule: an attempt while
    # fewer than min_tokens thinking tokens exist becomes the Wait tokens, until the extensions run out.
    expected, i = 0, 0
    while True:
        if i % 10 == 9:
            if i < min_tokens and expected < max_extensions:
                expected += 1
                i += len(wait_ids)
                continue
            break
        i += 1
    assert report["extensions"] == expected
    assert split.reasoning.count("Wait") == expected
    assert all(at < min_tokens for at in report["extended_at_thinking_tokens"])
    assert sum(sample.forced_mask or []) == expected * len(wait_ids)
    closed_at = sample.token_ids.index(tok.token_to_id("</think>"))
    assert closed_at + 1 == sample.controls["accounting"]["reasoning_tokens"]
    if expected < max_extensions:
        assert closed_at >= min_tokens  # it thought at least min_tokens
    else:
        assert closed_at < min_tokens  # out of extensions: the next attempt was let through


def test_budget_forcing_catches_end_of_sequence_inside_the_thinking(tok):
    sample = _generate(tok, lambda prompt: EagerCloser(tok, len(prompt), every=12, eos_instead=True),
                       greedy(100, min_thinking_tokens={"min_tokens": 40, "max_extensions": 3, "wait": " Wait,"}))
    assert sample.controls["min_thinking_tokens"]["extensions"] == 3
    assert sample.text.count(" Wait,") == 3
    assert sample.finish_reason == "stop" and sample.token_ids[-1] == tok.token_to_id("<|im_end|>")


def test_budget_forcing_leaves_a_forced_close_alone(tok):
    script = lambda prompt: text_script(tok, prompt, non_repeating_reasoning(tok, 500))  # noqa: E731
    sample = _generate(tok, script, greedy(300, min_thinking_tokens=200, thinking_budget=30))
    assert sample.controls["min_thinking_tokens"]["extensions"] == 0
    assert sample.controls["thinking_budget"]["forced_close"]
    assert split_reasoning(sample.text).finished


# ---------------------------------------------------------------- request fields


def test_controls_from_request_builds_sampling_controls():
    controls = controls_from_request({"thinking_budget": 100, "loop_breaker": "stop", "language_guard": None,
                                      "min_thinking_tokens": False, "temperature": 0.6, "self_consistency": 4})
    assert controls == {"accounting": {"starts_in_thinking": None}, "loop_breaker": "stop", "thinking_budget": 100}
    SamplingParams(controls=controls)  # a valid SamplingParams
    assert controls_from_request({}) == {}
    assert controls_from_request({"starts_in_thinking": True}) == {"accounting": {"starts_in_thinking": True}}
    assert self_consistency_from_request({"self_consistency": 4}).n == 4
    assert self_consistency_from_request({}) is None


@pytest.mark.parametrize("fields,message", [
    ({"thinking_budget": -1}, "max_thinking_tokens"),
    ({"thinking_budget": "lots"}, "max_thinking_tokens"),
    ({"thinking_budget": {"max_thinking_tokens": 10, "answer_token": 5}}, "unknown field 'answer_token'"),
    ({"min_thinking_tokens": 0}, "min_tokens"),
    ({"loop_breaker": "answerr"}, "action"),
    ({"loop_breaker": {"tolerance": 0.9}}, "tolerance"),
    ({"language_guard": "block"}, "mode"),
    ({"language_guard": {"language": "klingon"}}, "language"),
    ({"early_exit": {"probe": "model"}}, "probe"),
    ({"self_consistency": 0}, "'n'"),
    ({"self_consistency": {"n": 4, "extract": "code"}}, "extract"),
    ({"starts_in_thinking": "yes"}, "starts_in_thinking"),
])
def test_bad_request_fields_are_usage_errors_naming_the_field(fields, message):
    with pytest.raises(UsageError, match=message):
        controls_from_request(fields)


def test_controls_need_a_tokenizer():
    from qwq.engine import Engine

    from scripted_model import ScriptedModel, scripted_config

    config = scripted_config(64)
    engine = Engine(ScriptedModel(lambda context: 1, config), None, config, max_batch_size=1, kv_cache_tokens=256)
    with pytest.raises(UsageError, match="tokenizer"):
        engine.generate([[1, 2, 3]], greedy(5, loop_breaker=True))


# ---------------------------------------------------------------- the CLI flags


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, tok):
    """A random tiny Qwen2 with the QwQ-like tokenizer, as a HF checkpoint directory (any output will do)."""
    from qwq.model.weights import save_hf_checkpoint

    from engine_fixtures import make_model, tiny_config

    config = tiny_config(vocab_size=tok.vocab_size, max_position_embeddings=512)
    directory = tmp_path_factory.mktemp("ckpt") / "model"
    save_hf_checkpoint(make_model(config, seed=5), config, directory)
    tok.save(directory)
    return directory


def _cli(capsys, *argv):
    import json

    from qwq.cli import main

    code = main(list(argv))
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], out


def test_generate_cli_thinking_budget_and_answer_budget(checkpoint_dir, capsys, tok):
    code, records, _ = _cli(capsys, "generate", "-m", str(checkpoint_dir), "--prompt", "What is 12 * 7?", "--chat",
                            "--temperature", "0", "--max-new-tokens", "200", "--thinking-budget", "6",
                            "--answer-budget", "4", "--loop-breaker", "--json")
    assert code == 0
    record = records[0]
    controls = record["controls"]
    assert controls["thinking_budget"]["forced_at_thinking_tokens"] == 6
    assert controls["accounting"]["answer_tokens"] == 4 and record["stop_reason"] == "answer_budget"
    assert "loop_breaker" in controls and record["reasoning"] is not None


def test_generate_cli_self_consistency(checkpoint_dir, capsys):
    code, records, _ = _cli(capsys, "generate", "-m", str(checkpoint_dir), "--prompt", "2+2?", "--chat",
                            "--max-new-tokens", "12", "--thinking-budget", "3", "--self-consistency", "3",
                            "--seed", "1", "--json")
    assert code == 0
    record = records[0]
    assert record["n"] == 3 and record["completed"] == 3
    assert sum(row["votes"] for row in record["votes"]) + len(record["no_answer"]) == 3


def test_generate_cli_bad_control_flag_is_exit_2(checkpoint_dir, capsys):
    from qwq.cli import main

    assert main(["generate", "-m", str(checkpoint_dir), "--prompt", "x", "--answer-budget", "3"]) == 2
    assert "--answer-budget needs --thinking-budget" in capsys.readouterr().err
