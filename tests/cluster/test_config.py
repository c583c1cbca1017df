"""Experiment config: YAML + dotted overrides, errors that name the key, resolved config in the run folder."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from cluster.config import ConfigError, ExperimentConfig, load_config, write_resolved
from cluster.runs import DEMO_CONFIG, new_run_dir


def test_defaults_validate():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.scorer.metric == "pdms"


def test_demo_config_loads():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.run.name == "demo"
    assert cfg.scenes.camera.width == 64


@pytest.mark.parametrize("name", sorted(p.name for p in DEMO_CONFIG.parent.glob("*.yaml")))
def test_every_shipped_config_validates(name):
    from cluster.ablate import AblationConfig

    cfg = load_config(
        DEMO_CONFIG.parent / name, model=AblationConfig if name == "ablate.yaml" else ExperimentConfig
    )
    assert cfg.run.name, name
    if name == "sft_cpu.yaml":  # the full CPU SFT generates its own scenes; stage 1 is mostly road-shape QA
        assert cfg.sft.scenes_dir is None and cfg.scenes.count == 12000
        assert (cfg.sft.stage1_steps, cfg.sft.stage1_batch_size, cfg.sft.stage2_steps) == (1500, 64, 2200)
        assert cfg.sft.stage1_questions.count("road") == 3


def test_dotted_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenes: {count: 10}\n")
    cfg = load_config(
        path, ["scenes.count=25", "scorer.metric=epdms", "scenes.splits={train: 0.5, val: 0.25, test: 0.25}"]
    )
    assert cfg.scenes.count == 25 and cfg.scorer.metric == "epdms"
    assert cfg.scenes.splits["val"] == 0.25


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.scenes.count = 3


@pytest.mark.parametrize(
    "override, expected",
    [
        ("scorer.metric=pmds", "scorer.metric: Input should be 'pdms' or 'epdms' (got 'pmds')"),
        (
            "scorer.metrc=pdms",
            "scorer.metrc: unknown key (did you mean scorer.metric?); allowed here: metric",
        ),
        ("scenes.count=0", "scenes.count: Input should be greater than or equal to 1"),
        ("scenes.count=many", "scenes.count: Input should be a valid integer"),
        (
            "scenes.families=[cruise_moon]",
            "scenes.families: Value error, unknown family ['cruise_moon']; allowed:",
        ),
        (
            "bogus.x=1",
            "bogus: unknown key; allowed here: run, scenes, scorer, teacher, rollout, learner, sft, select, "
            "train, eval, cluster",
        ),
        ("teacher.backend.type=oracle", "teacher.backend"),
        ("scenes.views=[side]", "scenes.views: Value error, unknown view(s) ['side']; allowed: front, bev"),
        ("noequals", "an override is KEY=VALUE"),
        ("train.reinject_source=expert", "train.reinject_source: Input should be 'corrections' or"),
        (
            "train.reinject_top_k=0 train.reinject_source=ground_truth",
            "train: reinject_source ground_truth with reinject_top_k 0 reinjects nothing",
        ),
        (
            "train.reinject_source=ground_truth learner.loss.policy_shaping=false",
            "train.reinject_source ground_truth needs learner.loss.policy_shaping: true",
        ),
    ],
)
def test_errors_name_the_key_and_allowed_values(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, override.split(" "))
    assert expected.replace("Value error, ", "") in str(info.value)


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenes: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)
    path.write_text("scenes: {count: 5, colour: red}\n")
    with pytest.raises(ConfigError, match=r"scenes.colour: unknown key"):
        load_config(path)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["scenes.count=7"])
    run_dir = new_run_dir(tmp_path, "t", cfg)
    written = run_dir / "config.yaml"
    assert written.is_file()
    assert load_config(written) == cfg
    assert yaml.safe_load(written.read_text())["scenes"]["count"] == 7
    assert write_resolved(cfg, tmp_path / "x").read_text() == written.read_text()


def test_overrides_reach_into_a_discriminated_union():
    cfg = load_config(None, ["teacher.backend.type=coarse"])
    assert cfg.teacher.backend.type == "coarse"
    with pytest.raises(ConfigError, match=r"teacher.backend.modle_path: unknown key \(did you mean"):
        load_config(None, ["teacher.backend.modle_path=/x"])


def test_switching_a_backend_type_starts_from_its_defaults(tmp_path):
    from cluster.config import write_resolved

    resolved = write_resolved(load_config(None, ["teacher.backend.type=analytic"]), tmp_path)
    assert "safety_margin_m" in resolved.read_text()  # a resolved file holds every analytic key ...
    switched = load_config(resolved, ["teacher.backend.type=coarse"])  # ... which coarse does not have
    assert switched.teacher.backend.type == "coarse"
