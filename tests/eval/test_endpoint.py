"""The OpenAI-endpoint backend against a local fake server: same scores as in-process, reasoning_content,
concurrency limit, retries with back-off; and `qwq eval --endpoint` end to end."""

import json

import pytest

from qwq.cli import main as qwq_main
from qwq.eval.backends import Request, SamplingConfig, ScriptedBackend
from qwq.eval.endpoint import EndpointBackend, completion_from_message
from qwq.eval.harness import EvalOptions, run_eval
from qwq.eval.tasks import build_task

from .fake_openai import serve

pytestmark = pytest.mark.timeout(300)


def gsm_answer(gold_of):
    """Right on problems 0 and 2, wrong elsewhere; thinking returned apart, as reasoning_content."""
    def answer(messages, body):
        question = messages[-1]["content"]
        item = next(i for q, i in gold_of.items() if q == question)
        gold = item.fields["answer"]
        right = item.id in ("0", "2")
        return f"Thinking about {item.id}.", f"\\boxed{{{gold if right else 0}}}", "stop"
    return answer


def test_same_scores_as_the_in_process_backend(data_root, tmp_path):
    task = build_task("gsm8k", data_dir=data_root)
    gold_of = {i.messages[-1]["content"]: i for i in task.items()}
    answer = gsm_answer(gold_of)

    def scripted(request):
        reasoning, content, _ = answer(request.messages, {})
        return f"{reasoning}\n</think>\n\n{content}"

    options = EvalOptions(n=2, limit=4, progress=False)
    local = run_eval([task], ScriptedBackend(scripted), SamplingConfig(), tmp_path / "local", options)
    with serve(answer) as (url, state):
        remote = run_eval([task], EndpointBackend(url, concurrency=4), SamplingConfig(), tmp_path / "remote", options)
    for key in ("pass@1", "pass@k", "maj@k", "per_problem"):
        assert remote["tasks"]["gsm8k"][key] == local["tasks"]["gsm8k"][key]
    assert remote["tasks"]["gsm8k"]["pass@1"] == pytest.approx(0.5)
    # Four requests are in flight at once, so arrival order is not item order: find item 0's requests by content.
    first_item = task.items(1)[0].messages
    bodies = [b for b in state["requests"] if b["messages"] == first_item]
    assert len(bodies) == 2  # n=2 samples of the first problem, each its own request
    body = bodies[0]
    assert body["model"] == "fake-qwq"  # the first of /v1/models
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["n"]) == (0.6, 0.95, 40, 0.0, 1)
    assert len({b["seed"] for b in state["requests"]}) == 8  # one seed per sample
    record = json.loads((tmp_path / "remote" / "gsm8k" / "samples.jsonl").read_text().splitlines()[0])
    assert record["token_counts"] == "server" and record["reasoning_tokens"] == 3 and record["starts_in_reasoning"]


def test_concurrency_limit_and_retries(data_root, tmp_path):
    task = build_task("gsm8k", data_dir=data_root)
    items = task.items()
    gold_of = {i.messages[-1]["content"]: i for i in items}
    flaky, broken = items[1].messages[-1]["content"][:40], items[2].messages[-1]["content"][:40]
    faults = {flaky: [429, 500, 503], broken: [400, 400, 400, 400]}
    with serve(gsm_answer(gold_of), faults=faults, delay_s=0.05) as (url, state):
        backend = EndpointBackend(url, concurrency=3, max_retries=4, backoff_s=0.01)
        summary = run_eval([task], backend, SamplingConfig(), tmp_path / "out",
                           EvalOptions(n=1, limit=8, progress=False))
        assert 1 < state["max_in_flight"] <= 3
        assert faults[flaky] == []  # retried through 429, 500 and 503, then answered
        assert len(faults[broken]) == 3  # a 400 is not retried
    assert summary["failed_samples"] == 1 and "HTTP 400" in summary["failures"][0]
    assert summary["tasks"]["gsm8k"]["samples"] == 7


def test_unreachable_endpoint_fails_samples_not_the_run(tmp_path, data_root):
    backend = EndpointBackend("http://127.0.0.1:9", model="m", max_retries=1, backoff_s=0.01, timeout_s=2)
    summary = run_eval([build_task("gsm8k", data_dir=data_root)], backend, SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=1, limit=2, progress=False))
    assert summary["failed_samples"] == 2 and "ConnectError" in summary["failures"][0]


def test_reasoning_fields_are_understood():
    closed = completion_from_message({"reasoning_content": "think", "content": "\\boxed{1}"}, "stop",
                                     {"prompt_tokens": 5, "completion_tokens": 10})
    assert closed.text == "think\n</think>\n\n\\boxed{1}" and closed.starts_in_reasoning
    assert (closed.reasoning_tokens + closed.answer_tokens, closed.token_counts) == (10, "estimated")
    cut = completion_from_message({"reasoning": "still thinking", "content": None}, "length", None)
    assert cut.text == "still thinking" and cut.starts_in_reasoning and cut.token_counts == "missing"
    raw = completion_from_message({"content": "mull</think>\n\\boxed{2}"}, "stop", None)
    assert raw.starts_in_reasoning
    plain = completion_from_message({"content": "\\boxed{2}"}, "stop", None)
    assert not plain.starts_in_reasoning
    forced = completion_from_message({"content": "mulling without end"}, "length", None, starts_in_reasoning=True)
    assert forced.starts_in_reasoning
    server = completion_from_message({"reasoning_content": "a b", "content": "c"}, "stop",
                                     {"completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 7}})
    assert (server.reasoning_tokens, server.answer_tokens, server.token_counts) == (7, 2, "server")


def test_request_body_options():
    request = Request("k", [{"role": "user", "content": "hi"}], 123)
    body = EndpointBackend("http://h/v1", model="m").body(request, SamplingConfig(temperature=0.0, top_k=0))
    assert body["temperature"] == 0.0 and body["top_k"] == -1 and body["seed"] == 123
    strict = EndpointBackend("http://h", model="m", send_extra_sampling=False).body(request, SamplingConfig())
    assert "top_k" not in strict and "min_p" not in strict
    assert EndpointBackend("http://h", model="m").base == "http://h/v1"


def test_cli_against_an_endpoint(data_root, tmp_path, capsys):
    task = build_task("gsm8k", data_dir=data_root)
    gold_of = {i.messages[-1]["content"]: i for i in task.items()}
    out = tmp_path / "out"
    with serve(gsm_answer(gold_of)) as (url, _):
        code = qwq_main(["eval", "--tasks", "gsm8k", "--endpoint", url, "--limit", "4", "--n", "1", "--out", str(out),
                         "--data-dir", str(data_root), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "gsm8k" in printed and "50.0" in printed
    assert (out / "report.md").is_file() and (out / "summary.json").is_file()


@pytest.mark.parametrize("argv,message", [
    (["eval", "--tasks", "gsm8k"], "-m/--model"),
    (["eval", "--endpoint", "http://127.0.0.1:9"], "--tasks is required"),
    (["eval", "--tasks", "livecodebench", "--endpoint", "http://127.0.0.1:9", "--lcb-tests", "/nonexistent"],
     "--lcb-tests"),
    (["eval", "--tasks", "nope", "--endpoint", "http://127.0.0.1:9"], "unknown task"),
    (["eval", "--tasks", "gsm8k", "--endpoint", "http://127.0.0.1:9", "--thinking-budget", "lots"], "lots"),
    (["eval", "--tasks", "gsm8k", "--endpoint", "http://127.0.0.1:9", "--limit", "1"], "cannot list models"),
])
def test_cli_usage_errors_exit_2(argv, message, capsys):
    assert qwq_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
