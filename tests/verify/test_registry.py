"""The reward registry: names, dotted paths, weights, combination, None masking, TRL-style inputs."""

import pytest

from qwq.verify.registry import (CombinedReward, RewardError, WeightedReward, build_reward, completion_texts,
                                 register_reward, registered_rewards, resolve_reward)

PLUGIN = __name__.rsplit(".", 1)[0] + ".reward_plugins"


def test_builtin_names_are_registered():
    assert {"math_accuracy", "choice_accuracy", "format", "language_consistency", "overlong", "repetition",
            "ifeval"} <= set(registered_rewards())


def test_weights_and_combination():
    reward = build_reward([{"name": "format", "weight": 0.5},
                           {"name": "repetition", "weight": 2.0, "params": {"n": 2}}])
    completions = ["think</think>a b a b a b", "no thinking closed"]
    scores = reward(completions)
    rep = [-(1 - 3 / 6), 0.0]  # think a b a b a b: 6 bigrams, 3 distinct (tags are not words); 2 of 2 distinct
    assert scores == pytest.approx([0.5 * 1 + 2 * rep[0], 0.5 * 0 + 2 * rep[1]])
    assert set(reward.last_scores) == {"format", "repetition"}
    assert reward.__name__ == "format+repetition"


def test_config_forms():
    assert [c.weight for c in build_reward("format:0.2, repetition").components] == [0.2, 1.0]
    assert [c.name for c in build_reward({"format": 1.0, "repetition": 0.1}).components] == ["format", "repetition"]
    plugin = build_reward(f"{PLUGIN}:answer_length:0.5")
    assert plugin.components[0].name == f"{PLUGIN}:answer_length" and plugin.components[0].weight == 0.5


def test_dotted_paths_with_params():
    fn = resolve_reward(f"{PLUGIN}.answer_length", {"scale": 2.0})
    assert fn(["abc", ""]) == [6.0, 0.0]
    assert resolve_reward(f"{PLUGIN}:answer_length")(["ab"]) == [2]


@pytest.mark.parametrize("spec, message", [
    ("no_such_reward", "unknown reward"),
    ("no_such_module_xyz:fn", "cannot import module"),
    (f"{PLUGIN}:missing", "has no callable"),
    (f"{PLUGIN}:not_callable", "has no callable"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(RewardError, match=message):
        resolve_reward(spec)


def test_bad_outputs_and_configs_are_clear_errors():
    with pytest.raises(RewardError, match="expected a list of 2 values"):
        build_reward(f"{PLUGIN}:broken_length")(["a", "b"])
    with pytest.raises(RewardError, match="appears twice"):
        build_reward("format,format")
    with pytest.raises(RewardError, match="needs 'name'"):
        build_reward([{"weight": 1.0}])
    with pytest.raises(RewardError, match="not a number"):
        build_reward([{"name": "format", "weight": "heavy"}])
    with pytest.raises(RewardError, match="needs the example field 'answer'"):
        build_reward("math_accuracy")(["x</think>\\boxed{1}"])
    with pytest.raises(RewardError, match="one value per completion"):
        build_reward("math_accuracy")(["x</think>\\boxed{1}"], answer="1")


def test_none_is_masked_or_skipped():
    def always_none(completions, **_):
        return [None] * len(completions)

    components = [WeightedReward("format", resolve_reward("format")), WeightedReward("nothing", always_none)]
    assert CombinedReward(components)(["a</think>b"]) == [None]
    assert CombinedReward(components, none_policy="skip")(["a</think>b"]) == [1.0]
    assert CombinedReward([WeightedReward("nothing", always_none)], none_policy="skip")(["x"]) == [None]


def test_math_reward_gives_none_when_the_gold_cannot_be_judged():
    reward = build_reward("math_accuracy")
    scores = reward(["x</think>\\boxed{3}", "x</think>\\boxed{3}", "x</think>\\boxed{3}"],
                    answer=["3", "\\frac{", ""])
    assert scores == [1.0, None, None]


def test_trl_conversational_completions():
    conversational = [[{"role": "assistant", "content": "r</think>\\boxed{7}"}], {"content": "r</think>\\boxed{8}"}]
    assert completion_texts(conversational) == ["r</think>\\boxed{7}", "r</think>\\boxed{8}"]
    assert build_reward("math_accuracy")(conversational, answer=["7", "7"]) == [1.0, 0.0]
    with pytest.raises(RewardError, match="neither a string nor a list of chat messages"):
        completion_texts([3])


def test_language_reward_targets_the_prompt_script_and_ifeval_reads_the_answer():
    lang = build_reward("language_consistency")
    assert lang(["想一想</think>答案", "think</think>答案"], prompts=["请回答", "请回答"]) == pytest.approx([1.0, 2 / 7])
    assert lang(["想一想</think>答案"], language=["en"]) == [0.0]
    ifeval = build_reward([{"name": "ifeval", "params": {"aggregate": "fraction"}}])
    scores = ifeval(["Thinking, with commas.</think>no commas here", "no end"],
                    instruction_id_list=[["punctuation:no_comma", "detectable_format:title"]] * 2,
                    kwargs=[[{}, {}]] * 2, prompt=["p", "p"])
    assert scores == [0.5, 0.0]


def test_overlong_reward_uses_token_ids_or_chars():
    reward = build_reward([{"name": "overlong", "params": {"max_length": 10, "buffer": 4}}])
    assert reward(["a", "b"], completion_ids=[[1] * 6, [1] * 8]) == [0.0, -0.5]
    with pytest.raises(RewardError, match="completion_ids"):
        reward(["a"])
    chars = build_reward([{"name": "overlong", "params": {"max_length": 10, "buffer": 4, "length_unit": "chars"}}])
    assert chars(["x" * 12]) == [-1.0]


def test_register_reward_refuses_a_second_function_under_the_same_name():
    @register_reward("test_only_constant")
    def constant(completions, **_):
        return [1.0] * len(completions)

    assert build_reward("test_only_constant")(["a"]) == [1.0]
    with pytest.raises(RewardError, match="already registered"):
        register_reward("test_only_constant")(lambda completions, **_: [])
