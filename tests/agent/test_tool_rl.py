import json
from types import SimpleNamespace

import pytest
import torch

from qwq.agent.calculator import calculator_tool
from qwq.agent.episode import (episode_steps, run_episode, run_episodes, scripted_generate, tool_turn_text)
from qwq.agent.tool_rl import (EngineTurns, EpisodeGroup, EpisodeLimits, Sampling, UpdateSettings, build_batch,
                               play, policy_update, sample_groups)
from qwq.agent.tool_task import ToolArithmeticTask
from qwq.rl.data import think_completion
from qwq.rl.modeling import new_model, pad_batch, tiny_config, train_tiny_tokenizer
from qwq.rl.sft import make_optimizer
from qwq.rl.shared_prefix import PromptState, grouped_logprobs
from qwq.tokenizer.chat import ChatTemplate

torch.set_num_threads(1)


def call(expr):
    return f'<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{expr}"}}}}\n</tool_call>'


@pytest.fixture(scope="module")
def tok():
    task = ToolArithmeticTask(tool="calculator")
    corpus = [q.question + think_completion("Use the tool.", call("12 * 34")) + "The tool printed 408. \\boxed{408}"
              for q in task.examples("train", 40, 0)]
    corpus += ["verdict: OK stdout: error invalid JSON could not be parsed You may call one or more functions"] * 5
    return train_tiny_tokenizer(corpus, 400)


@pytest.fixture(scope="module")
def template(tok):
    return ChatTemplate.for_tokenizer(tok)


@pytest.fixture(scope="module")
def model(tok):
    config = tiny_config(tok, "tiny", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                       "num_attention_heads": 4, "num_key_value_heads": 2})
    return new_model(config, 0).eval(), config


class ScriptedEngine:
    """Stands in for qwq.engine.Engine: episode i replays the turns `turns_by_episode[i]` with made-up logprobs.
    The requests of a call are the running episodes in order, i.e. those with turns left (each script ends with
    its answer turn); records the sampling parameters it was given."""

    def __init__(self, tok, turns_by_episode):
        self.tok, self.queues = tok, [list(t) for t in turns_by_episode]
        self.params = []

    def generate(self, prompts, params):
        self.params += list(params)
        im_end = self.tok.token_to_id("<|im_end|>")
        results = []
        for queue, p in zip([q for q in self.queues if q], params):
            out = (self.tok.encode(queue.pop(0)) + [im_end])[:p.max_new_tokens]
            sample = SimpleNamespace(token_ids=out, logprobs=[-0.01 * (k + 1) for k in range(len(out))],
                                     finish_reason="stop" if out[-1] == im_end else "length")
            results.append(SimpleNamespace(samples=[sample]))
        return results

    def weights_changed(self):
        pass


def test_rollout_masks_environment_tokens_and_keeps_sampled_logprobs(tok, template):
    task = ToolArithmeticTask(tool="calculator")
    ex = task.examples("train", 1, 0)[0]
    a, b = ex.meta["a"], ex.meta["b"]
    first = think_completion("Use the tool.", call(f"{a} * {b}"))
    second = think_completion(f"The tool printed {a * b}.", f"\\boxed{{{a * b}}}")
    engine = ScriptedEngine(tok, [[first, second], [think_completion("guess", "\\boxed{1}")]])
    groups = sample_groups(engine, tok, template, task, [ex], 2, EpisodeLimits(3, 64, 256))
    assert groups[0].rewards == [1.0, 0.0] and groups[0].has_signal()
    ep = groups[0].episodes[0]
    assert ep.stop_reason == "answer" and ep.n_tool_calls == 1 and ep.n_tool_errors == 0
    im_end = tok.token_to_id("<|im_end|>")
    sampled = [t for t, m in zip(ep.completion_ids, ep.loss_mask) if m]
    written = [t for t, m in zip(ep.completion_ids, ep.loss_mask) if not m]
    assert sampled == tok.encode(first) + [im_end] + tok.encode(second) + [im_end]
    assert tok.decode(written, skip_special_tokens=False) == tool_turn_text([str(a * b)])
    # the logprobs of each turn sit on that turn's tokens; environment tokens have none
    turn1 = len(tok.encode(first)) + 1
    got = [lp for lp, m in zip(ep.logprobs, ep.loss_mask) if m]
    assert got[:turn1] == pytest.approx([-0.01 * (k + 1) for k in range(turn1)])
    assert all(lp is None for lp, m in zip(ep.logprobs, ep.loss_mask) if not m)
    # the training batch: the prompt once, the episode as a completion row with its mask and its old logprobs
    batch = build_batch(groups, tok.pad_token_id)
    rollouts = batch.rollouts
    assert rollouts.prompts.shape[0] == 1 and rollouts.group.tolist() == [0, 0]
    assert rollouts.prompts[0, :int(rollouts.prompt_lengths[0])].tolist() == ep.prompt_ids
    width = len(ep.completion_ids)
    assert rollouts.completions[0, :width].tolist() == ep.completion_ids
    assert rollouts.mask[0, :width].tolist() == ep.loss_mask and not rollouts.mask[0, width:].any()
    sampled_mask = rollouts.mask[0] > 0
    assert batch.old_logprobs[0][sampled_mask].tolist() == pytest.approx(
        [lp for lp, m in zip(ep.logprobs, ep.loss_mask) if m])
    assert torch.isnan(batch.old_logprobs[0][~sampled_mask]).all()
    assert rollouts.advantages.tolist() == pytest.approx([0.7070, -0.7070], abs=1e-3)


def test_malformed_tool_call_gets_an_error_response_and_the_episode_continues(tok, template):
    task = ToolArithmeticTask(tool="calculator")
    ex = task.examples("train", 1, 0)[0]
    bad = think_completion("t", '<tool_call>\n{"name": "calculator", "arguments": {expression: 1}}\n</tool_call>')
    engine = ScriptedEngine(tok, [[bad, think_completion("ok", "\\boxed{1}")]])
    [ep] = play(engine, tok, template, [(task.messages(ex), task.tools())], EpisodeLimits(3, 64, 600),
                 Sampling())
    assert ep.stop_reason == "answer" and len(ep.turns) == 2 and ep.n_tool_errors == 1
    error = ep.turns[0].tool_results[0]["content"]
    assert error.startswith("Error: tool call #1 could not be parsed")
    written = tok.decode([t for t, m in zip(ep.completion_ids, ep.loss_mask) if not m], skip_special_tokens=False)
    assert written == tool_turn_text([error])


def test_engine_turns_pass_sampling_settings_and_distinct_seeds(tok, template):
    engine = ScriptedEngine(tok, [["a\n</think>\n\nx"], ["b\n</think>\n\ny"]])
    turns = EngineTurns(engine, Sampling(temperature=1.0, top_p=1.0, top_k=0), seed=5)
    gens = turns([([1, 2], 8), ([3, 4], 16)])
    assert [p.max_new_tokens for p in engine.params] == [8, 16]
    assert all(p.logprobs and p.temperature == 1.0 and p.top_k == 0 for p in engine.params)
    assert len({p.seed for p in engine.params}) == 2
    assert all(len(g.logprobs) == len(g.token_ids) for g in gens)


def test_batched_episodes_equal_sequential_ones(tok, template):
    turns = [[think_completion("go", call(f"{i} * 7")), think_completion("done", f"\\boxed{{{7 * i}}}")]
             for i in range(1, 5)]
    messages = [{"role": "user", "content": "q"}]
    sequential = [run_episode(scripted_generate(tok, list(t)), tok, messages, [calculator_tool()],
                              chat_template=template) for t in turns]
    queues = [list(t) for t in turns]

    def generate_batch(requests):
        # requests arrive in episode order for the episodes still running
        out = []
        for (ids, budget), queue in zip(requests, [q for q in queues if q]):
            out.append(scripted_generate(tok, [queue.pop(0)])(ids, budget))
        return out

    for workers in (1, 3):
        queues = [list(t) for t in turns]
        steps = [episode_steps(tok, messages, [calculator_tool()], chat_template=template) for _ in turns]
        batched = run_episodes(generate_batch, steps, workers=workers)
        for s, b in zip(sequential, batched):
            assert (b.completion_ids, b.loss_mask, b.stop_reason) == (s.completion_ids, s.loss_mask, s.stop_reason)


def test_episode_rows_with_tool_output_score_like_the_full_forward(tok, template, model):
    """The grouped forward over episode rows (tool output inside, mask 0) gives the policy's logprobs of exactly the
    sampled tokens a full forward of prompt + episode gives, and its gradients."""
    import copy

    net, _ = model
    task = ToolArithmeticTask(tool="calculator")
    examples = task.examples("train", 2, 0)
    scripts = []
    for ex in examples:
        a, b = ex.meta["a"], ex.meta["b"]
        scripts += [[think_completion("Use the tool.", call(f"{a} * {b}")), think_completion("ok", f"\\boxed{{{a * b}}}")],
                    [think_completion("guess", "\\boxed{1}")]]
    groups = sample_groups(ScriptedEngine(tok, scripts), tok, template, task, examples, 2, EpisodeLimits(3, 64, 256))
    batch = build_batch(groups, tok.pad_token_id)
    episodes = [ep for g in groups for ep in g.episodes]
    assert batch.rollouts.prompts.shape[0] == 2 and all(0 in ep.loss_mask for ep in episodes[::2])
    plain, grouped = copy.deepcopy(net), copy.deepcopy(net)
    ids, mask = pad_batch([ep.prompt_ids + ep.completion_ids for ep in episodes],
                          [[0] * len(ep.prompt_ids) + ep.loss_mask for ep in episodes], tok.pad_token_id)
    logits = plain(ids[:, :-1])[..., :len(tok)].float()
    want = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)[mask[:, 1:] > 0]
    (want * 0.01).sum().backward()
    state = PromptState(grouped, batch.rollouts)
    got = []
    for rows in [torch.tensor([r]) for r in range(batch.rollouts.rows)]:
        logp, m, _ = grouped_logprobs(grouped, batch.rollouts, rows, state, vocab_limit=len(tok))
        (logp * m * 0.01).sum().backward()
        got.append(logp[m > 0])
    state.backward()
    torch.testing.assert_close(torch.cat(got), want.detach(), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(plain.named_parameters(), grouped.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def _real_groups(tok, template, net, config):
    from qwq.rl.modeling import make_engine

    task = ToolArithmeticTask(tool="calculator")
    engine = make_engine(net, tok, config, template, 8, 600)
    examples = task.examples("train", 2, 0)
    return sample_groups(engine, tok, template, task, examples, 2, EpisodeLimits(2, 12, 40), seed=3)


def test_old_logprobs_are_the_policy_logprobs_of_the_sampled_tokens(tok, template, model):
    net, config = model
    groups = _real_groups(tok, template, net, config)
    batch = build_batch(groups, tok.pad_token_id, keep_flat_groups=True)
    rows = torch.arange(batch.rollouts.rows)
    with torch.no_grad():
        logp, mask, _ = grouped_logprobs(net, batch.rollouts, rows, vocab_limit=len(tok))
    sampled = mask > 0
    assert int(sampled.sum()) == sum(ep.n_generated for g in groups for ep in g.episodes) > 0
    old = batch.old_logprobs[:, :logp.shape[1]]
    assert not torch.isnan(old[sampled]).any()
    torch.testing.assert_close(old[sampled], logp[sampled], atol=1e-5, rtol=1e-5)


def test_update_changes_weights_only_through_sampled_tokens(tok, template, model):
    import copy

    net, config = model
    net = copy.deepcopy(net)
    groups = _real_groups(tok, template, net, config)
    # zero advantages everywhere: the surrogate has no gradient, so the step leaves every weight as it was
    batch = build_batch(groups, tok.pad_token_id, keep_flat_groups=True)
    assert batch.rollouts.advantages.abs().sum() == 0
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = make_optimizer(list(net.parameters()), 1e-2, 0.0)
    stats = policy_update(net, optimizer, batch, UpdateSettings(loss="dapo"))
    assert stats["loss"] == 0.0 and stats["grad_norm"] == 0.0
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())
    # with advantages, the gradient is the policy gradient over the sampled tokens alone (ratio 1 at the old policy)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    batch.rollouts.advantages = advantages
    net.zero_grad()
    # reference: a plain full forward of every prompt + episode, normalised over the tokenizer's ids as the engine
    # samples; the environment's tokens are in the sequences but carry no loss
    episodes = [ep for g in groups for ep in g.episodes]
    ids, full_mask = pad_batch([ep.prompt_ids + ep.completion_ids for ep in episodes],
                               [[0] * len(ep.prompt_ids) + ep.loss_mask for ep in episodes], tok.pad_token_id)
    logits = net(ids[:, :-1])[..., :len(tok)].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    shifted = full_mask[:, 1:]
    tokens = shifted.sum()
    expected_loss = -(advantages[:, None] * shifted).sum() / tokens
    (-(logp * shifted * advantages[:, None]).sum() / tokens).backward()
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}
    captured = {}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    original_step = optimizer.step

    def capture(*args, **kwargs):
        captured.update({n: p.grad.clone() for n, p in net.named_parameters()})
        return original_step(*args, **kwargs)

    optimizer.step = capture
    stats = policy_update(net, optimizer, batch, UpdateSettings(loss="dapo", grad_clip=0.0, vocab_limit=len(tok)))
    assert stats["loss"] == pytest.approx(float(expected_loss), abs=1e-4)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    for name, grad in expected.items():
        torch.testing.assert_close(captured[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_groups_without_signal_are_left_out():
    ep = SimpleNamespace(prompt_ids=[1, 2], completion_ids=[3], loss_mask=[1], logprobs=[-0.5])
    flat = EpisodeGroup(None, [ep, ep], [1.0, 1.0])
    assert build_batch([flat], 0) is None
    batch = build_batch([flat], 0, keep_flat_groups=True)
    assert batch.rollouts.advantages.tolist() == [0.0, 0.0] and batch.old_logprobs[0, 0] == -0.5


def test_train_tool_end_to_end_smoke(tmp_path):
    from qwq.agent.tool_train import ToolRLConfig, parse_overrides, train_tool_use
    from qwq.utils.errors import UsageError

    cfg = ToolRLConfig(tool="calculator", threads=1, vocab_size=400, sft_tool_examples=24, sft_direct_examples=8,
                       sft_epochs=1.0, sft_batch_size=8, steps=2, prompts_per_step=2, group_size=2, eval_problems=4,
                       max_new_tokens=16, max_total_tokens=48, tool_workers=1, eval_samples=1,
                       model_overrides={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    summary = train_tool_use(cfg, tmp_path / "run")
    assert set(summary["accuracy"]) == {"with_tool", "without_tool"}
    assert summary["task"] == "tool_mod" and summary["chance_accuracy"] == pytest.approx(1 / 6)
    for mode in ("with_tool", "without_tool"):
        assert set(summary["accuracy"][mode]) == {"before_rl", "after_rl"}
        assert summary["after_rl"][mode]["n"] == 4 and 0.0 <= summary["greedy_accuracy"][mode]["after_rl"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "run" / "tool_grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all("reward" in r for r in records)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["tool"] == "calculator"
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    with pytest.raises(UsageError, match="already holds"):
        train_tool_use(cfg, tmp_path / "run")
    assert parse_overrides(["steps=3", "tool=python", "model_overrides={\"hidden_size\": 64}"]) == {
        "steps": 3, "tool": "python", "model_overrides": {"hidden_size": 64}}
    with pytest.raises(UsageError, match="unknown tool-RL setting"):
        parse_overrides(["nope=1"])
    with pytest.raises(UsageError, match="group_size"):
        ToolRLConfig(group_size=1).check()
