"""The scenario generator: every family yields valid scenes, generation is deterministic, the default
mix is long-tail-skewed, and long-tail scenes defeat a constant-velocity plan."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from driving.expert import N_STEPS, agent_tracks, ego_box_corners, ego_collides, plan_fine_poses
from driving.generator import (
    DEFAULT_MIX,
    FAMILIES,
    check_scene,
    constant_velocity_failures,
    generate_scene,
    sample_families,
)
from driving.geometry import drivable_area
from driving.scene import NUM_PLAN_POSES, Agent, EgoState, dumps_scene, scene_from_dict, scene_to_dict

LONG_TAIL = [n for n, f in FAMILIES.items() if f.difficulty == "long_tail"]
COMMON = [n for n, f in FAMILIES.items() if f.difficulty == "common"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_generates_valid_scenes(family):
    for seed in (1, 2, 3):
        scene = generate_scene(family, seed, f"{family}-{seed}")
        assert check_scene(scene) == [], (family, seed, scene.description)
        s = scene.sample
        assert s.family == family and s.difficulty == FAMILIES[family].difficulty and s.seed == seed
        assert len(s.expert.poses) == NUM_PLAN_POSES and s.expert.frame == "local"
        assert scene.trajectory == s.expert and scene.id == f"{family}-{seed}"
        assert s.command in ("left", "straight", "right") and s.meta_action is not None
        assert scene.description and "\n" not in scene.description
        assert scene.ego.history is not None and len(scene.ego.history) == 3
        assert all(a.states is not None and len(a.states) == 11 for a in scene.agents)
        # the scene file round-trips through the strict reader
        assert scene_from_dict(scene_to_dict(scene)) == scene


def test_same_seed_gives_byte_identical_scene():
    for family in ("cruise_curved", "unprotected_left", "construction_zone"):
        a, b = generate_scene(family, 42, "s"), generate_scene(family, 42, "s")
        assert dumps_scene(a) == dumps_scene(b)
        assert dumps_scene(generate_scene(family, 43, "s")) != dumps_scene(a)


def test_default_mix_is_long_tail_skewed():
    names = sample_families(2000, seed=5, mix=None)
    share = np.mean([FAMILIES[n].difficulty == "long_tail" for n in names])
    assert 0.10 <= share <= 0.15
    assert set(names) == set(FAMILIES)
    assert sample_families(300, 9) == sample_families(300, 9)
    total = sum(DEFAULT_MIX.values())
    assert abs(sum(DEFAULT_MIX[n] for n in LONG_TAIL) / total - 0.125) < 1e-9


def test_mix_subset_and_errors():
    names = sample_families(500, seed=1, mix={"cut_in": 1.0, "merge": 3.0, "follow": 0.0})
    assert set(names) == {"cut_in", "merge"}
    assert 0.65 < names.count("merge") / 500 < 0.85
    with pytest.raises(ValueError, match="unknown"):
        sample_families(5, 0, {"nope": 1.0})
    with pytest.raises(ValueError):
        sample_families(5, 0, {"merge": 0.0})
    with pytest.raises(ValueError):
        sample_families(5, 0, {"merge": -1.0, "cut_in": 2.0})
    with pytest.raises(ValueError, match="unknown family"):
        generate_scene("nope", 0, "x")


def test_history_is_consistent_with_speed_and_acceleration():
    for family in ("cruise_straight", "stop_and_go", "right_turn"):
        scene = generate_scene(family, 7, "h")
        ego = scene.ego
        hist = np.asarray(ego.history)
        for t, row in zip((-1.5, -1.0, -0.5), hist):
            dist = np.hypot(row[0] - ego.x, row[1] - ego.y)
            expected = abs(ego.vx * t + 0.5 * ego.ax * t * t)
            assert dist == pytest.approx(expected, abs=0.35 + 0.05 * expected), (family, t)
            assert row[3] >= 0.0


def constant_velocity_failures_on_scene(scene):
    """Collision or leaving the road, from the scene file alone."""
    t = np.arange(1, NUM_PLAN_POSES + 1) * 0.5
    cv = np.stack([scene.ego.vx * t, 0 * t, 0 * t], axis=-1)
    fine = plan_fine_poses(cv, scene.ego)
    kinds = []
    if ego_collides(fine, agent_tracks(scene.agents, N_STEPS)).any():
        kinds.append("collision")
    corners = ego_box_corners(fine[:, 0], fine[:, 1], fine[:, 2])
    if not shapely.contains_xy(drivable_area(scene), corners[..., 0], corners[..., 1]).all():
        kinds.append("offroad")
    return kinds


@pytest.mark.parametrize(
    "family", ["stalled_vehicle", "cut_in", "pedestrian_crossing", "cyclist", "construction_zone", "merge"]
)
def test_constant_velocity_collides_or_leaves_road_in_long_tail(family):
    rate = np.mean(
        [bool(constant_velocity_failures_on_scene(generate_scene(family, s, "cv"))) for s in range(8)]
    )
    assert rate >= 0.75, rate


def test_constant_velocity_mostly_passes_common_scenes():
    rates = [
        bool(constant_velocity_failures_on_scene(generate_scene(f, s, "cv")))
        for f in ("cruise_straight", "cruise_curved", "follow")
        for s in range(6)
    ]
    assert np.mean(rates) <= 0.3


def test_generator_cv_check_agrees_with_scene_file():
    """The generator's rejection test (on the draft) and the check on the written scene agree."""
    for seed in range(4):
        scene = generate_scene("stalled_vehicle", seed, "x")
        assert "collision" in constant_velocity_failures_on_scene(scene)
    draft = FAMILIES["cut_in"].build(np.random.default_rng(0))
    ego = EgoState.model_validate(draft.ego)
    kinds = constant_velocity_failures(draft, ego, [Agent.model_validate(a) for a in draft.agents])
    assert set(kinds) <= {"collision", "offroad", "red_light", "off_route"}
