"""The tool-RL cold start (qwq.agent.tool_sft): schedule, exact-turn check, stop once the model copies."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from qwq.agent.tool_sft import answer_mask, exact_turn_rate, sft_on_episodes, wsd_lr
from qwq.rl.modeling import new_model, tiny_config, train_tiny_tokenizer
from qwq.rl.sft import SFTItem

torch.set_num_threads(1)


def test_wsd_schedule_warms_up_holds_then_decays_to_the_floor():
    lrs = [wsd_lr(s, 1.0, 10, 80, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(lr == 1.0 for lr in lrs[10:80])
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:])) and lrs[99] == pytest.approx(0.1)
    assert wsd_lr(150, 1.0, 10, 80, 100) == pytest.approx(0.1)  # past the end: the floor, never negative


@pytest.fixture(scope="module")
def setup():
    texts = [f"copy {n:03d} -> {n:03d}." for n in range(200)]
    tok = train_tiny_tokenizer(texts, 300)

    def item(n):
        prompt, answer = tok.encode(f"copy {n:03d} ->"), tok.encode(f" {n:03d}.")
        return SFTItem(prompt + answer, [0] * len(prompt) + [1] * len(answer))

    config = tiny_config(tok, "tiny", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2})
    return tok, config, item


def settings(**kw):
    base = dict(seed=0, sft_lr=1e-2, sft_epochs=60.0, sft_batch_size=8, sft_stop_accuracy=0.9, sft_check_every=5,
                sft_tail=0.25)
    return SimpleNamespace(**{**base, **kw})


def test_exact_turn_rate_of_an_untrained_model_is_zero_and_the_mode_is_kept(setup):
    tok, config, item = setup
    model = new_model(config, 0)
    model.train()
    items = [item(n) for n in range(8)]
    assert exact_turn_rate(model, items, tok.pad_token_id) == 0.0  # nothing above probability 1/2 yet
    assert exact_turn_rate(model, [], tok.pad_token_id) == 0.0
    assert model.training


def test_sft_stops_after_the_copy_is_learned_and_decays_over_a_tail(setup, tmp_path):
    """A copy task the tiny model learns in a few dozen steps: SFT stops well before the cap, once the held-out
    turns are reproduced, after a decay tail of a quarter of the steps taken."""
    tok, config, item = setup
    model = new_model(config, 0)
    train = [item(n) for n in range(0, 160)]
    held = [item(n) for n in range(160, 200)]
    cfg = settings()
    records = sft_on_episodes(model, train, cfg, tok.pad_token_id, tmp_path / "m.jsonl", len(tok), held)
    cap = math.ceil(cfg.sft_epochs * math.ceil(len(train) / cfg.sft_batch_size))
    copied = [r["step"] for r in records if r.get("copied")]
    assert len(copied) == 1 and records[-1]["step"] < cap
    stop = copied[0]
    assert records[-1]["step"] == stop + max(cfg.sft_check_every, round(cfg.sft_tail * stop))
    assert [r["step"] for r in records if "heldout_exact" in r] == list(range(5, records[-1]["step"] + 1, 5))
    assert next(r for r in records if r.get("copied"))["heldout_exact"] >= 0.9
    assert records[stop]["lr"] < cfg.sft_lr and records[-1]["lr"] == pytest.approx(0.1 * cfg.sft_lr)
    assert exact_turn_rate(model, held, tok.pad_token_id, len(tok)) >= 0.9 and not model.training
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == len(records)
    # without the check (rate 0) the same run goes to the cap
    capped = sft_on_episodes(new_model(config, 0), train[:16], settings(sft_epochs=3.0, sft_stop_accuracy=0.0),
                             tok.pad_token_id, tmp_path / "c.jsonl", len(tok), held)
    assert len(capped) == 6 and not any("heldout_exact" in r for r in capped)
    assert json.loads((tmp_path / "c.jsonl").read_text().splitlines()[-1])["step"] == 6


def test_answer_mask_drops_the_thinking_of_every_turn():
    # prompt 1 2 <think>(8) | thought 3 4 </think>(9) call 5 | env 6 <think>(8) | thought 3 </think>(9) box 7
    ids = [1, 2, 8, 3, 4, 9, 5, 6, 8, 3, 9, 7]
    mask = [0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1]
    assert answer_mask(ids, mask, 8, 9) == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_prefix_grouped_batch_scores_the_loss_tokens_like_a_full_forward(setup):
    """Two prefix groups, a lone row, and a row whose loss starts inside the others' common prefix: the grouped
    forward (each group's prefix once) gives the full forward's logprobs of every loss token, and its gradients."""
    import copy

    from qwq.agent.tool_sft import prefix_grouped_batch
    from qwq.rl.modeling import continuation_logprobs, pad_batch
    from qwq.rl.shared_prefix import PromptState, grouped_logprobs

    tok, config, _ = setup
    gen = torch.Generator().manual_seed(0)

    def rand(n):
        return torch.randint(1, len(tok), (n,), generator=gen).tolist()

    system, other = rand(30), rand(20)
    items = [SFTItem(system + rand(n), [0] * 34 + [1] * (n - 4)) for n in (10, 25, 17)]
    items.append(SFTItem(system + rand(8), [0] * 12 + [1] * 26))  # loss from token 12, inside the shared 30
    items += [SFTItem(other + rand(12), [0] * 22 + [1] * 10), SFTItem(rand(9), [0] * 3 + [1] * 6)]
    batch = prefix_grouped_batch(items, tok.pad_token_id)
    assert batch.prompts.shape[0] == 3 and batch.rows == len(items)
    assert int(batch.prompt_lengths[0]) == 12  # the prefix stops at the first loss token
    assert int(batch.mask.sum()) == sum(sum(it.mask) for it in items)
    model = new_model(config, 0)
    plain, grouped = copy.deepcopy(model), copy.deepcopy(model)
    ids, mask = pad_batch([it.ids for it in items], [it.mask for it in items], tok.pad_token_id)
    want, shifted, _ = continuation_logprobs(plain, ids, mask)
    (want * shifted).sum().backward()
    state = PromptState(grouped, batch)
    got = {}
    for rows in batch.micro_batches(2):
        logp, m, _ = grouped_logprobs(grouped, batch, rows, state)
        (logp * m).sum().backward()
        for i, row in enumerate(rows.tolist()):
            got[row] = logp[i][m[i] > 0]
    state.backward()
    # rows come out in group order: items 0-3, 4, 5
    for row in range(len(items)):
        torch.testing.assert_close(got[row], want[row][shifted[row] > 0].detach(), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(plain.named_parameters(), grouped.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="item 0"):
        prefix_grouped_batch([SFTItem([1], [1])], tok.pad_token_id)
