"""Configs: TOML/YAML files, --set overrides, errors that name the key and the allowed keys."""

from pathlib import Path

import pytest

from qwq.rl.config import PipelineConfig, TrainConfig, load_config, parse_value, to_dict
from qwq.utils.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_defaults_are_the_tiny_recipe():
    assert to_dict(load_config(RECIPES / "tiny.toml")) == to_dict(PipelineConfig())


@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b-lora-gsm8k.toml", "qwq-32b-cluster.toml"])
def test_train_recipes_load(name):
    config = load_config(RECIPES / name, root=TrainConfig)
    assert config.model.init and config.grpo.lora.enabled


def test_overrides_and_types(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[run]\nseed = 3\n[stage1]\nsteps = 7\ntasks = {arith = 1.0}\n')
    config = load_config(path, ["stage1.loss=dr_grpo", "stage1.clip_high=0.3", "run.progress=false",
                                'sft.tasks={"arith": 10}', "stage2.kl_coef=0"])
    assert (config.run.seed, config.stage1.steps, config.stage1.tasks) == (3, 7, {"arith": 1.0})
    assert config.stage1.loss == "dr_grpo" and config.stage1.clip_high == 0.3 and config.run.progress is False
    assert config.sft.tasks == {"arith": 10} and config.stage2.kl_coef == 0.0
    assert config.stage2.tasks == PipelineConfig().stage2.tasks  # untouched sections keep their defaults
    assert config.stage1.lora.rank == 8  # nested defaults survive a partial section


@pytest.mark.parametrize("overrides, message", [
    (["stage1.stepz=3"], r"unknown config key 'stage1.stepz': allowed keys are .*steps"),
    (["nope.x=1"], r"unknown config key 'nope': allowed keys are eval, gate, model, rm, run, sft, stage1, stage2, "
                   r"tokenizer"),
    (["stage1.steps=many"], r"stage1.steps: expected an integer"),
    (["stage1.loss=ppo"], r"stage1.loss: 'ppo' is not one of grpo, dapo, dr_grpo, bnpo"),
    (["stage1.group_size=1"], r"group_size must be at least 2"),
    (["stage1.reward_control=random"], r"reward_control"),
    (["stage1.steps"], r"expected key=value"),
    (["stage1.lora.rnk=4"], r"unknown config key 'stage1.lora.rnk'"),
    (["run.rollout_dtype=fp8"], r"run.rollout_dtype must be one of auto, bfloat16, float32; got 'fp8'"),
    (["run.rollout_processes=-1"], r"run.rollout_processes must be an integer >= 0"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nseed=1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[sft]\nepochz = 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'sft.epochz': allowed keys in \[sft\] are .*epochs"):
        load_config(unknown)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("run:\n  seed: 9\n")
    assert load_config(yaml_file).run.seed == 9


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value('{"a": 1}') == {"a": 1} and parse_value("[1, 2]") == [1, 2]
    assert parse_value("dapo") == "dapo"


def test_rollout_settings_are_checked_where_a_python_run_config_is_resolved():
    import torch

    from qwq.rl.config import RunConfig
    from qwq.rl.metrics import rollout_dtype
    from qwq.rl.modeling import rollout_processes

    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="run.rollout_dtype must be one of"):
        rollout_dtype(RunConfig(rollout_dtype="fp8"))
    with pytest.raises(ConfigError, match="run.rollout_processes must be an integer >= 0"):
        rollout_processes(RunConfig(rollout_processes=-1), model)
    assert rollout_dtype(RunConfig(rollout_dtype="float32")) == torch.float32
    assert rollout_processes(RunConfig(threads=2), model) == 2
    assert rollout_processes(RunConfig(threads=2, rollout_processes=1), model) == 1
