"""Vectorised scorer == slow loop-by-loop statements of NAVSIM's rules (`navsim_loops`), on generated
scenes with intersections, red lights, static objects, pedestrians and cyclists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driving.scene import load_scene
from scorer import prepare
from scorer.boxes import ego_coords
from scorer.collisions import no_at_fault_collisions, time_to_collision
from scorer.interp import plan_to_poses
from scorer.metrics import driving_direction_compliance, ego_areas, lane_keeping
from scorer.reference import generate_proposals, proposal_paths
from scorer.route import _bfs
from scorer.simulation import simulate
from tests.scorer import navsim_loops as loops

SCENES = sorted((Path(__file__).parents[1] / "data" / "scorer").glob("*.json"))
SAMPLE = [
    p
    for p in SCENES
    if p.stem.split("-")[0] in ("construction_zone", "unprotected_left", "stalled_vehicle", "cyclist")
]


@pytest.fixture(scope="module")
def caches():
    return {p.stem: prepare(load_scene(p)) for p in SCENES}


@pytest.mark.parametrize("path", SCENES, ids=lambda p: p.stem)
def test_proposals_match_loop(caches, path):
    c = caches[path.stem]
    paths = proposal_paths(c.route.centerline)
    limit = c.route.start_lane.speed_limit
    fast = generate_proposals(paths, c.origin, c.initial_state[3], limit, c.forecast())
    slow = loops.proposals_loop(paths, c.origin, c.initial_state[3], limit or 15.0, c.forecast())
    # the compiled unroll wraps headings with the C library's sin, cos and atan2, numpy (here, the loop)
    # may use its own SIMD versions: headings can differ in the last bit, positions do not
    np.testing.assert_array_equal(fast[..., :2], slow[..., :2])
    np.testing.assert_allclose(fast[..., 2], slow[..., 2], rtol=0, atol=1e-12)


def _candidates(c, rng):
    base = c.proposal_states()[::3]
    plans = c.scene.trajectory.poses
    noisy = np.asarray(plans)[None] + rng.normal(0.0, 0.8, (3, 8, 3)) * [1.0, 1.0, 0.05]
    return np.concatenate([base, c.simulate(plan_to_poses(c.origin, noisy, 0.5))])


@pytest.mark.parametrize("path", SAMPLE, ids=lambda p: p.stem)
@pytest.mark.parametrize("which", ["forecast", "v1", "v2"])
def test_metrics_match_loops(caches, path, which):
    c = caches[path.stem]
    states = _candidates(c, np.random.default_rng(3))
    obs = {"forecast": c.forecast(), "v1": c.context(1).observation, "v2": c.context(2).observation}[which]
    coords = ego_coords(states)
    corners, centers = coords[:, :, :4], coords[:, :, 4]
    areas = ego_areas(coords, states[..., :2], c.drivable, c.route.lane_ids)
    slow = loops.areas_loop(states, c.drivable, c.route.lane_ids)
    for fast, key in (
        (areas.multiple_lanes, "multi"),
        (areas.off_road, "off"),
        (areas.oncoming, "onc"),
        (areas.center_in_intersection, "cint"),
        (areas.rear_axle_in_intersection, "rint"),
    ):
        np.testing.assert_array_equal(fast, slow[key], err_msg=key)
    nc = no_at_fault_collisions(states, corners, centers, areas.multiple_lanes, areas.off_road, obs)
    np.testing.assert_array_equal((nc.score, nc.step), loops.nc_loop(states, obs, slow))
    last = 31 if which == "v2" else 40
    ttc = time_to_collision(
        states,
        corners,
        centers,
        areas.multiple_lanes,
        areas.off_road,
        areas.rear_axle_in_intersection,
        obs,
        last,
    )
    np.testing.assert_array_equal(ttc, loops.ttc_loop(states, obs, slow, last))
    np.testing.assert_array_equal(
        lane_keeping(centers, areas, c.route.centerline), loops.lk_loop(states, slow, c.route.centerline)
    )
    for skip in (False, True):
        np.testing.assert_array_equal(
            driving_direction_compliance(centers, areas, skip), loops.ddc_loop(states, slow, skip)
        )


@pytest.mark.parametrize("path", SAMPLE[:2], ids=lambda p: p.stem)
def test_simulation_matches_step_by_step_navsim(caches, path):
    c = caches[path.stem]
    poses = np.concatenate(
        [c.proposal_poses()[::4], plan_to_poses(c.origin, np.asarray(c.scene.trajectory.poses)[None], 0.5)]
    )
    fast, slow = simulate(c.initial_state, poses), loops.simulate_loop(c.initial_state, poses)
    np.testing.assert_allclose(fast[..., :4], slow[..., :4], rtol=0, atol=1e-8)


def test_plan_interpolation_matches_scipy():
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(0)
    origin = np.array([10.0, -5.0, 3.0])
    local = np.cumsum(rng.normal(0.0, 1.0, (2, 8, 3)), axis=1)
    got = plan_to_poses(origin, local, 0.5)
    from scorer.interp import local_to_global

    knots = np.concatenate([np.broadcast_to(origin, (2, 1, 3)), local_to_global(origin, local)], axis=1)
    times = np.arange(9) * 500_000.0
    for k in range(2):
        xy = interpolate.interp1d(times, knots[k, :, :2], axis=0)(np.arange(41) * 100_000.0)
        h = interpolate.interp1d(times, np.unwrap(knots[k, :, 2]))(np.arange(41) * 100_000.0)
        np.testing.assert_allclose(got[k, :, :2], xy, atol=1e-12)
        np.testing.assert_allclose(np.cos(got[k, :, 2] - h), 1.0, atol=1e-12)


def test_bfs_matches_navsim_queue_on_a_diamond():
    """Two routes of equal depth between the same roadblocks (a diamond) and a loop back."""
    from types import SimpleNamespace

    graph = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["e", "a"], "e": []}
    blocks = {
        k: SimpleNamespace(outgoing=v, incoming=[s for s, outs in graph.items() if k in outs])
        for k, v in graph.items()
    }
    model = SimpleNamespace(roadblocks=blocks)
    for start, targets, forward in (
        ("a", ["e"], True),
        ("e", ["a"], False),
        ("a", ["d"], True),
        ("b", ["c"], True),
    ):
        assert _bfs(model, start, targets, 30, forward) == loops.bfs_queue(model, start, targets, 30, forward)
