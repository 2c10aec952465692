"""The tiny model shipped in qwq/assets/tiny: the weights are the ones its training summary fingerprints, it speaks
QwQ's format, and it is as good as the summary says on the held-out problems (greedy, so exactly)."""

import json

import pytest

from qwq.model.loading import load_model, tiny_checkpoint_dir
from qwq.rl.modeling import weights_hash

SUMMARY = tiny_checkpoint_dir() / "training_summary.json"


@pytest.fixture(scope="module")
def tiny():
    if not SUMMARY.is_file():
        pytest.skip("no tiny model in this installation")
    return load_model("tiny"), json.loads(SUMMARY.read_text())


def test_shipped_weights_match_their_training_summary(tiny):
    loaded, summary = tiny
    assert weights_hash(loaded.model) == summary["weights_sha256"]
    assert summary["gate"]["passed"] is True


def test_shipped_model_answers_in_qwq_format_and_scores_what_the_summary_says(tiny):
    import torch

    from qwq.engine import Engine
    from qwq.rl.data import build_task
    from qwq.rl.evaluate import evaluate_heldout

    torch.set_num_threads(2)  # the thread count the summary was measured with (greedy logits can depend on it)
    loaded, summary = tiny
    engine = Engine(loaded.model, loaded.tokenizer, loaded.config, chat_template=loaded.chat_template,
                    max_batch_size=150)
    prompt = loaded.chat_template.render([{"role": "user", "content": "Solve for x: 3 * x + 5 = y."}],
                                         add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    tasks = {name: build_task(name) for name in ("algebra", "code")}
    result = evaluate_heldout(engine, loaded.chat_template, loaded.tokenizer, tasks, {"algebra": 150, "code": 150},
                              max_new_tokens=96)
    final = summary["stages"][-1]["heldout_after"]
    for name in tasks:
        assert result["tasks"][name]["accuracy"] == pytest.approx(final[name], abs=0.01), name
