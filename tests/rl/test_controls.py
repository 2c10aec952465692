"""Reward controls: shuffle (across the batch), shuffle_group (within each group), constant."""

import random
from collections import Counter

import pytest

from qwq.rl.rewards import apply_control
from qwq.utils.errors import ConfigError


def test_shuffle_group_keeps_each_groups_rewards_and_unscorable_positions():
    rewards = [1.0, 0.0, 0.0, None, 1.0, 1.0, 0.0, 0.5, 0.0, 0.0]
    sizes = [4, 3, 3]
    seen_moves = False
    for seed in range(20):
        out = apply_control(list(rewards), "shuffle_group", random.Random(seed), sizes)
        start = 0
        for size in sizes:
            assert Counter(out[start:start + size]) == Counter(rewards[start:start + size])
            start += size
        assert out[3] is None
        seen_moves |= out != rewards
    assert seen_moves  # it does permute


def test_shuffle_mixes_across_groups_and_constant_flattens():
    rewards = [1.0] * 8 + [0.0] * 8
    outs = [apply_control(list(rewards), "shuffle", random.Random(seed)) for seed in range(5)]
    assert all(sorted(o) == sorted(rewards) for o in outs)
    assert any(o[:8] != rewards[:8] for o in outs)  # all-right group no longer all right
    assert apply_control([0.0, None, 1.0], "constant", random.Random(0)) == [1.0, None, 1.0]


def test_bad_controls_are_refused():
    with pytest.raises(ValueError, match="group sizes"):
        apply_control([1.0, 0.0], "shuffle_group", random.Random(0), [3])
    with pytest.raises(ConfigError, match="shuffle_group"):
        apply_control([1.0], "random", random.Random(0))
