"""Self-consistency: the vote tally (pure) and the drivers over the real Engine / AsyncEngine on a scripted model."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from qwq.engine import AsyncEngine, SamplingParams
from qwq.engine.self_consistency import (SelfConsistencySettings, VoteTally, self_consistency,
                                         self_consistency_async)
from qwq.utils.errors import UsageError

from controls_fixtures import chat_prompt, ids_of, qwq_like_tokenizer, scripted_engine


def _done(answer: str) -> str:
    return f"thinking...\n</think>\n\nThe answer is \\boxed{{{answer}}}."


def test_majority_wins_and_the_table_is_ranked():
    tally = VoteTally(SelfConsistencySettings(n=6))
    for i, answer in enumerate(["84", "85", "84", "84", "85", "7"]):
        tally.add(i, _done(answer), -0.5)
    table = tally.table()
    assert [(row["answer"], row["votes"], row["samples"]) for row in table] == [
        ("84", 3, [0, 2, 3]), ("85", 2, [1, 4]), ("7", 1, [5])]


def test_ties_are_broken_by_mean_logprob():
    tally = VoteTally(SelfConsistencySettings(n=4))
    tally.add(0, _done("10"), -1.2)
    tally.add(1, _done("11"), -0.3)
    tally.add(2, _done("10"), -0.8)
    tally.add(3, _done("11"), -0.5)
    assert tally.table()[0]["answer"] == "11" and tally.table()[0]["mean_logprob"] == pytest.approx(-0.4)


def test_unfinished_thinking_and_missing_answers_cast_no_vote():
    tally = VoteTally(SelfConsistencySettings(n=3))
    assert tally.add(0, "still thinking about \\boxed{3}", -0.1).answer is None  # inside the thinking: not an answer
    assert tally.add(1, "done\n</think>\n\nI do not know.", -0.1).answer is None
    tally.add(2, _done("3"), -0.1)
    assert tally.table() == [{"answer": "3", "votes": 1, "samples": [2], "mean_logprob": -0.1}]


def test_cheap_equivalence_merges_spellings_of_one_number():
    tally = VoteTally(SelfConsistencySettings(n=5))
    for i, answer in enumerate(["1000", "1,000", "1000.0", "\\$1000", "999"]):
        tally.add(i, _done(answer), -0.1)
    assert [(row["answer"], row["votes"]) for row in tally.table()] == [("1000", 4), ("999", 1)]


def test_choice_answers():
    tally = VoteTally(SelfConsistencySettings(n=3, extract="choice"))
    for i, text in enumerate(['x</think>\n\n{"answer": "b"}', "x</think>\n\nThe answer is (B).", "x</think>\n\nC"]):
        tally.add(i, text, -0.1)
    assert [(row["answer"], row["votes"]) for row in tally.table()] == [("B", 2), ("C", 1)]


def test_math_equivalence_uses_the_symbolic_verifier():
    cheap = VoteTally(SelfConsistencySettings(n=3))
    symbolic = VoteTally(SelfConsistencySettings(n=3, equivalence="math"))
    for tally in (cheap, symbolic):
        for i, answer in enumerate(["\\frac{1}{2}", "0.5", "1/2"]):
            tally.add(i, _done(answer), -0.1)
    assert len(cheap.table()) >= 2
    assert [row["votes"] for row in symbolic.table()] == [3]


def test_decided_and_consensus():
    settings = SelfConsistencySettings(n=8)
    tally = VoteTally(settings)
    for i in range(4):
        tally.add(i, _done("5"), -0.1)
    assert not tally.decided(remaining=4)  # 4 more could still tie it
    tally.add(4, _done("5"), -0.1)
    assert tally.decided(remaining=3)
    quick = VoteTally(SelfConsistencySettings(n=8, consensus=0.25))
    quick.add(0, _done("5"), -0.1)
    assert not quick.decided(remaining=7)
    quick.add(1, _done("5"), -0.1)
    assert quick.decided(remaining=6)


@pytest.mark.parametrize("value", [0, {"n": 4, "consensus": 1.5}, {"n": 4, "equivalence": "exact"},
                                   {"n": 4, "letters": "A"}, {"n": 4, "extra": 1}])
def test_bad_settings(value):
    with pytest.raises(UsageError, match="self_consistency"):
        SelfConsistencySettings.parse(value)


# ---------------------------------------------------------------- drivers on a scripted model


HEADS = (" the", " quick", " brown")  # one token each: the first sampled token names the path


class Branching:
    """The first sampled token picks a path (answer and length); the rest of the path is deterministic."""

    def __init__(self, tok, prompt_len: int, paths: dict[str, tuple[float, int]]) -> None:
        self.prompt_len = prompt_len
        self.eos = ids_of(tok, "<|im_end|>")[0]
        filler = tok.encode(" hmm")[0]
        self.paths, self.heads = {}, {}
        for word, (answer, (logit, think_len)) in zip(HEADS, paths.items()):
            head = tok.encode(word)
            assert len(head) == 1
            head = head[0]
            self.heads[answer] = head
            body = [filler] * think_len + tok.encode(f"\n</think>\n\nThe answer is \\boxed{{{answer}}}.") + [self.eos]
            self.paths[head] = (logit, body)

    def __call__(self, context):
        generated = context[self.prompt_len:]
        if not generated:
            return {head: logit for head, (logit, _) in self.paths.items()}
        body = self.paths[generated[0]][1]
        k = len(generated) - 1
        return body[k] if k < len(body) else self.eos


def _engine(paths):
    tok = qwq_like_tokenizer()
    prompt = chat_prompt(tok)
    script = Branching(tok, len(prompt), paths)
    return script.heads, prompt, scripted_engine(script, tok, max_batch_size=8)


def _sampling():
    return SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=200, seed=3)


def test_votes_match_the_samples_and_the_engine_output():
    _, prompt, engine = _engine({"84": (1.0, 5), "85": (0.6, 5), "7": (0.0, 5)})
    settings = SelfConsistencySettings(n=8)
    result = self_consistency(engine, prompt, _sampling(), settings)
    answers = [b.answer for b in sorted(result.ballots, key=lambda b: b.index)]
    counts = Counter(a for a in answers if a is not None)
    assert {row["answer"]: row["votes"] for row in result.table} == dict(counts)
    assert [row["votes"] for row in result.table] == sorted(counts.values(), reverse=True)  # ties: by logprob
    assert result.answer == counts.most_common(1)[0][0]
    assert all(b.mean_logprob is not None and b.mean_logprob <= 0 for b in result.ballots)
    # the same request without voting gives the same samples (the driver only reads the event stream)
    plain = engine.generate([prompt], _sampling().replace(n=8, logprobs=True))[0]
    for ballot in result.ballots:
        assert result.texts[ballot.index] == plain.samples[ballot.index].text


def test_early_stop_aborts_the_remaining_samples():
    # "84" is likelier and short; "85" is long. Consensus 0.5 of 6 = 3 votes: the long samples are cut.
    heads, prompt, engine = _engine({"84": (0.5, 3), "85": (0.0, 150)})
    settings = SelfConsistencySettings(n=6, consensus=0.5)
    full = engine.generate([prompt], _sampling().replace(n=6))[0]
    first = [s.token_ids[0] for s in full.samples]
    assert first.count(heads["84"]) >= 3 and first.count(heads["85"]) >= 1  # this seed draws both paths
    result = self_consistency(engine, prompt, _sampling(), settings)
    assert result.stopped_early and result.answer == "84"
    assert result.table[0]["votes"] == 3 and len(result.ballots) < 6
    assert result.generated_tokens < sum(len(s.token_ids) for s in full.samples)
    assert not engine.has_work()  # the aborted samples are gone from the engine


def test_async_driver_agrees_with_the_sync_one():
    _, prompt, engine = _engine({"84": (1.0, 5), "85": (0.8, 9)})
    settings = SelfConsistencySettings(n=6)
    sync = self_consistency(engine, prompt, _sampling(), settings)
    aengine = AsyncEngine(engine)
    try:
        result = asyncio.run(self_consistency_async(aengine, prompt, _sampling(), settings))
    finally:
        aengine.shutdown()
    assert result.table == sync.table and result.answer == sync.answer
