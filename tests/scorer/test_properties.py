"""Properties: a group scores like its members alone, and a rigid motion of the whole scene changes nothing."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driving.scene import Scene, load_scene, scene_from_dict, scene_to_dict
from scorer import ScoreBatch, prepare, score, score_scene
from tests.conftest import SHARED_SCENES

GENERATED = sorted((Path(__file__).parents[1] / "data" / "scorer").glob("*.json"))
DISCRETE = [
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
    "time_to_collision_within_bound",
    "lane_keeping",
    "comfort",
]


def _plans(scene: Scene, k: int, seed: int) -> np.ndarray:
    base = np.asarray(scene.trajectory.poses)
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (k, 8, 3)) * [1.5, 1.0, 0.05]
    return base[None] + noise * np.linspace(0.2, 1.0, 8)[None, :, None]


@pytest.mark.parametrize("path", [SHARED_SCENES[1], GENERATED[0], GENERATED[-1]], ids=lambda p: p.stem)
@pytest.mark.parametrize("metric", ["pdms", "epdms"])
def test_group_scores_equal_single_scores(path, metric):
    """Scoring 8 candidates together gives each exactly (bit for bit) what it gets alone, whether the
    group comes first (and builds the reference) or after single calls."""
    scene = load_scene(path)
    plans = _plans(scene, 8, seed=11)
    group = score(prepare(scene), plans, metric)
    cache = prepare(scene)
    singles = [score(cache, plans[i : i + 1], metric) for i in range(len(plans))]
    again = score(cache, plans, metric)
    for i, single in enumerate(singles):
        assert single.result(0) == group.result(i) == again.result(i)
    for f in fields(ScoreBatch):
        value = getattr(group, f.name)
        if isinstance(value, np.ndarray) and value.shape[:1] == (8,):
            np.testing.assert_array_equal(
                value, np.concatenate([getattr(s, f.name) for s in singles]), f.name
            )


def _move(scene: Scene, angle: float, dx: float, dy: float) -> Scene:
    """The scene rotated by `angle` about the origin, then shifted by (dx, dy); plans in the ego frame stay."""
    c, s = np.cos(angle), np.sin(angle)

    def point(p: list) -> list:
        return [c * p[0] - s * p[1] + dx, s * p[0] + c * p[1] + dy]

    def pose(p: list) -> list:
        return point(p[:2]) + [float((p[2] + angle + np.pi) % (2 * np.pi) - np.pi)] + list(p[3:])

    def vector(v: list) -> list:
        return [c * v[0] - s * v[1], s * v[0] + c * v[1]]

    data = scene_to_dict(scene)
    ego = data["ego"]
    ego["x"], ego["y"], ego["heading"] = pose([ego["x"], ego["y"], ego["heading"]])
    if ego.get("history"):
        ego["history"] = [pose(row[:3]) + row[3:] for row in ego["history"]]
    for block in data["map"].get("roadblocks", []) + data["map"].get("roadblock_connectors", []):
        if block.get("polygon"):
            block["polygon"] = [point(p) for p in block["polygon"]]
        for lane in block["lanes"]:
            lane["centerline"] = [point(p) for p in lane["centerline"]]
            if lane.get("polygon"):
                lane["polygon"] = [point(p) for p in lane["polygon"]]
    for layer in ("intersections", "carpark_areas"):
        for area in data["map"].get(layer) or []:
            area["polygon"] = [point(p) for p in area["polygon"]]
    for agent in data.get("agents", []):
        if agent.get("states") is not None:
            agent["states"] = [None if r is None else pose(r[:3]) + vector(r[3:5]) for r in agent["states"]]
        else:
            agent["x"], agent["y"], agent["heading"] = pose([agent["x"], agent["y"], agent["heading"]])
            agent["vx"], agent["vy"] = vector([agent["vx"], agent["vy"]])
    return scene_from_dict(data)


def _off_axis(scene: Scene, dy: float) -> Scene:
    """The scene with its agents shifted sideways: an agent exactly on the ego's axis makes NAVSIM's
    arccos(cos angle) round to NaN or not depending on the last bits, so it is not rotation invariant."""
    data = scene_to_dict(scene)
    for agent in data["agents"]:
        if agent.get("states") is None:
            agent["y"] += dy
    return scene_from_dict(data)


SCENES_FOR_MOTION = [
    load_scene(SHARED_SCENES[0]),
    _off_axis(load_scene(SHARED_SCENES[1]), 0.05),
    load_scene(GENERATED[0]),
]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    angle=st.floats(-np.pi, np.pi),
    dx=st.floats(-500.0, 500.0),
    dy=st.floats(-500.0, 500.0),
)
def test_rigid_motion_changes_no_score(angle, dx, dy):
    for scene in SCENES_FOR_MOTION:
        moved = _move(scene, angle, dx, dy)
        for metric in ("pdms", "epdms"):
            a, b = score_scene(scene, metric), score_scene(moved, metric)
            for name in DISCRETE:
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)
            np.testing.assert_allclose(a.ego_progress, b.ego_progress, atol=1e-6)
            np.testing.assert_allclose(a.total, b.total, atol=1e-6)
            np.testing.assert_allclose(a.simulated_0p5s, b.simulated_0p5s, atol=1e-6)
