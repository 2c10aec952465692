"""A toy world for fast trainer tests: a yes/no task, a tiny tokenizer trained on it, and a very small Qwen2."""

from __future__ import annotations

import random
from typing import Sequence

import pytest
import torch

from qwq.rl.config import GRPOConfig, RunConfig, SFTConfig
from qwq.rl.data import Example, Task, think_completion


class YesNoTask(Task):
    """`Is N a number? Answer yes or no.` -- the right answer is always yes; the teacher says no at its slip rate."""

    name = "yesno"
    kind = "toy"

    def __init__(self, reward_value: float | None = None) -> None:
        self.reward_value = reward_value  # a constant reward (None: the real one)

    def generate(self, rng: random.Random) -> Example:
        n = rng.randrange(100_000)
        return Example(self.name, str(n), f"Is {n} a number? Answer yes or no.", {"answer": "yes"}, {"n": n})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        return think_completion("Let me check.", "no" if rng.random() < slip_rate else "yes")

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True):
        if self.reward_value is not None:
            return [self.reward_value] * len(completions)
        return [1.0 if c.split("</think>")[-1].strip() == "yes" else 0.0 for c in completions]


@pytest.fixture(scope="session")
def toy_world():
    from qwq.rl.modeling import new_model, tiny_config, train_tiny_tokenizer
    from qwq.rl.sft import encode_pair
    from qwq.tokenizer.chat import ChatTemplate

    task = YesNoTask()
    rng = random.Random(0)
    examples = task.examples("train", 200, seed=0)
    completions = [task.teacher(e, rng, 0.5) for e in examples]
    tokenizer = train_tiny_tokenizer([e.question + c for e, c in zip(examples, completions)], 400)
    template = ChatTemplate.for_tokenizer(tokenizer)
    config = tiny_config(tokenizer, overrides={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                               "num_attention_heads": 2, "num_key_value_heads": 1})
    items = [encode_pair(tokenizer, template, task.messages(e), c, 128) for e, c in zip(examples, completions)]

    def fresh_model(seed: int = 0):
        return new_model(config, seed)

    return {"task": task, "tokenizer": tokenizer, "template": template, "config": config, "items": items,
            "fresh_model": fresh_model, "examples": examples}


@pytest.fixture(scope="session")
def toy_sft_model(toy_world, tmp_path_factory):
    """The toy model after a short SFT on 50/50 yes/no traces (it answers yes about half the time)."""
    from qwq.rl.sft import train_sft

    torch.set_num_threads(1)
    model = toy_world["fresh_model"](0)
    cfg = SFTConfig(epochs=20, batch_size=32, lr=3e-3, warmup_steps=5)
    # fp32 whatever the CPU offers: the toy cold start must be the same model on every machine
    run = RunConfig(checkpoint_every=0, progress=False, autocast="off")
    train_sft(model, toy_world["config"], toy_world["items"], cfg, run, tmp_path_factory.mktemp("toy_sft"),
              toy_world["tokenizer"].pad_token_id)
    return model


def toy_grpo_config(**changes) -> GRPOConfig:
    base = dict(tasks={"yesno": 1.0}, steps=6, prompts_per_step=8, group_size=8, temperature=1.0, top_p=1.0, top_k=0,
                max_new_tokens=16, lr=1e-3, micro_batch=64, probe_prompts=8, loop_breaker=False)
    base.update(changes)
    return GRPOConfig(**base)
