"""The three known scenes: our scores and diagnostics against NAVSIM's own outputs (v1.1 and v2.2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driving.scene import load_scene
from scorer import prepare, score, score_scene
from tests.conftest import DATA, SHARED_SCENES

SUBSCORES = {
    "v1": [
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "time_to_collision_within_bound",
        "comfort",
    ],
    "v2": [
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "traffic_light_compliance",
        "time_to_collision_within_bound",
        "lane_keeping",
        "history_comfort",
        "multiplicative_metrics_prod",
        "two_frame_extended_comfort",
    ],
}
CONTINUOUS = {"v1": ["ego_progress", "score", "pdms"], "v2": ["ego_progress", "pdm_score", "epdms"]}
METRIC = {"v1": "pdms", "v2": "epdms"}


def _expected(path, version):
    return json.loads((DATA / "scenes" / "expected" / f"{path.stem}.{version}.json").read_text())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_scores_match_navsim(shared_scene_path, version):
    expected = _expected(shared_scene_path, version)
    got = score_scene(load_scene(shared_scene_path), METRIC[version]).result(0)
    assert set(got) == set(expected)
    for key in SUBSCORES[version]:
        assert got[key] == expected[key], key
    for key in CONTINUOUS[version]:
        assert got[key] == pytest.approx(expected[key], abs=1e-3), key
    for key in ("version", "traffic", "scene_type"):
        assert got.get(key) == expected.get(key)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_diagnostics_match_navsim(shared_scene_path, version):
    expected = _expected(shared_scene_path, version)["diagnostics"]
    got = score_scene(load_scene(shared_scene_path), METRIC[version]).result(0)["diagnostics"]
    assert set(expected) <= set(got)
    for key in ("candidate_raw_progress_m", "reference_raw_progress_m", "centerline_length_m"):
        assert got[key] == pytest.approx(expected[key], abs=1e-4), key
    for key in ("reference_multiplicative_prod", "route_lane_ids", "human_penalty_filter_applied"):
        assert got[key] == expected[key], key
    for key in ("time_to_at_fault_collision_s", "time_to_ttc_infraction_s"):
        assert (got[key] is None) == (expected[key] is None), key
        if expected[key] is not None:
            assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    # PDM-Closed's reference plan and the simulated candidate (LQR + bicycle), at 0.5 s
    np.testing.assert_allclose(
        got["reference_trajectory_0p5s"], expected["reference_trajectory_0p5s"], atol=1e-6
    )
    if "simulated_candidate_0p5s" in expected:
        np.testing.assert_allclose(
            got["simulated_candidate_0p5s"], expected["simulated_candidate_0p5s"], atol=1e-6
        )


def test_score_api_equals_score_scene():
    scene = load_scene(SHARED_SCENES[0])
    cache = prepare(scene)
    plans = np.asarray(scene.trajectory.poses)[None]
    for metric in ("pdms", "epdms"):
        a = score(cache, plans, metric)
        b = score_scene(scene, metric)
        assert a.result(0) == b.result(0)
        assert a.total.shape == (1,)
