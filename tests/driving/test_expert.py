"""The privileged expert planner: its geometry helpers, and the plans it makes on hand-built and
generated scenes (stops for obstacles and red lights, changes lanes, starts consistent with the ego's
state, stays on the road, scores well with the project's NAVSIM scorer)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from driving.expert import (
    EGO_FRONT,
    N_STEPS,
    PathOption,
    agent_tracks,
    boxes_overlap,
    ego_collides,
    plan_expert,
    plan_fine_poses,
)
from driving.generator import FAMILIES, generate_scene
from driving.roads import Path, build_road, reference_line, uniform_lanes
from driving.scenarios_common import agent_on_path, ego_on_path
from driving.scene import Agent, EgoState


def _box(x, y, h, hl, hw):
    c, s = np.cos(h), np.sin(h)
    pts = [(x + c * a - s * b, y + s * a + c * b) for a, b in ((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw))]
    return Polygon(pts)


def test_boxes_overlap_matches_shapely():
    rng = np.random.default_rng(0)
    n = 2000
    a = [
        rng.uniform(-4, 4, n),
        rng.uniform(-4, 4, n),
        rng.uniform(-3, 3, n),
        rng.uniform(0.3, 3, n),
        rng.uniform(0.3, 1.5, n),
    ]
    b = [
        rng.uniform(-4, 4, n),
        rng.uniform(-4, 4, n),
        rng.uniform(-3, 3, n),
        rng.uniform(0.3, 3, n),
        rng.uniform(0.3, 1.5, n),
    ]
    got = boxes_overlap(*a, *b)
    want = np.array([_box(*[v[i] for v in a]).intersects(_box(*[v[i] for v in b])) for i in range(n)])
    assert (got == want).mean() > 0.999  # touching boxes may differ by rounding
    assert got.any() and not got.all()


def test_agent_tracks_interpolate_linearly_and_mark_absence():
    agent = Agent(
        id="a",
        type="vehicle",
        length=4.0,
        width=2.0,
        states=[[0, 0, 0, 2, 0], [1, 0, 0, 2, 0], None, None, None, None, None, None, None, None, None],
    )
    tr = agent_tracks([agent], n_steps=12)
    assert tr.shape == (1, 12, 7)
    assert tr[0, 2, 0] == pytest.approx(0.4) and tr[0, 5, 0] == pytest.approx(1.0)
    assert np.isnan(tr[0, 6:, 0]).all()
    assert tr[0, 0, 5] == 2.0 and tr[0, 0, 6] == 1.0


def _two_lane_road():
    ref = reference_line((0.0, 0.0, 0.0), [(260.0, 0.0)])
    parts = build_road(
        "R", ref, uniform_lanes(len(ref), 2, 0, [3.5, 3.5], 15.0, 15.0), [0, 100, len(ref) - 1]
    )
    paths = {k: Path(v) for k, v in parts.lane_xy.items()}
    drivable = shapely.union_all([Polygon(rb["polygon"]) for rb in parts.roadblocks])
    return paths, drivable


def _option(label, path, **kw):
    return PathOption(label, path, np.full(len(path.s), 15.0), 3.5, **kw)


def test_expert_brakes_for_a_stalled_car_when_it_cannot_change_lanes():
    paths, drivable = _two_lane_road()
    ego = EgoState.model_validate(ego_on_path(paths["f1"], 40.0, 12.0, 0.0))
    stalled = Agent.model_validate(
        agent_on_path("stalled", "vehicle", (4.6, 1.9), paths["f1"], 40.0 + EGO_FRONT + 42.0, 0.0)
    )
    plan = plan_expert(ego, [_option("keep_lane", paths["f1"])], [stalled], drivable)
    assert plan.ok and plan.label == "keep_lane"
    assert plan.fine[-1, 3] < 5.0 and plan.progress < 42.0 - 2.3 - 1.0  # brakes hard, stays behind it
    fine = plan_fine_poses(plan.poses, ego)
    assert not ego_collides(fine, agent_tracks([stalled], N_STEPS), 0.5, 0.0).any()
    assert np.abs(plan.poses[:, 1]).max() < 0.3


def test_expert_changes_lanes_around_a_stalled_car():
    paths, drivable = _two_lane_road()
    ego = EgoState.model_validate(ego_on_path(paths["f1"], 40.0, 12.0, 0.0))
    stalled = Agent.model_validate(
        agent_on_path("stalled", "vehicle", (4.6, 1.9), paths["f1"], 40.0 + EGO_FRONT + 42.0, 0.0)
    )
    options = [_option("keep_lane", paths["f1"]), _option("change_left", paths["f0"], change_cost=8.0)]
    plan = plan_expert(ego, options, [stalled], drivable)
    assert plan.ok and plan.label == "change_left"
    assert plan.poses[-1, 1] > 2.5 and plan.progress > 40.0


def test_expert_stops_at_a_red_stop_line():
    paths, drivable = _two_lane_road()
    ego = EgoState.model_validate(ego_on_path(paths["f0"], 30.0, 11.0, 0.3))
    stop = 30.0 + EGO_FRONT + 35.0
    plan = plan_expert(ego, [_option("keep_lane", paths["f0"], stop_s=stop)], [], drivable)
    assert plan.ok
    s, _ = paths["f0"].project(plan.fine[:, 0], plan.fine[:, 1])
    assert (s + EGO_FRONT <= stop + 1e-6).all() and plan.fine[-1, 3] < 4.0


def test_expert_reports_failure_when_nothing_is_safe():
    paths, drivable = _two_lane_road()
    ego = EgoState.model_validate(ego_on_path(paths["f0"], 30.0, 20.0, 0.0))
    wall = [
        Agent.model_validate(
            agent_on_path(f"w{k}", "barrier", (2.0, 0.5), paths[lane], 30.0 + EGO_FRONT + 6.0, 0.0)
        )
        for k, lane in enumerate(("f0", "f1"))
    ]
    plan = plan_expert(
        ego, [_option("keep_lane", paths["f0"]), _option("change_right", paths["f1"])], wall, drivable
    )
    assert not plan.ok and plan.reason


@pytest.mark.parametrize("family", list(FAMILIES))
def test_plans_start_consistent_and_stay_within_comfort_limits(family):
    for seed in (11, 12):
        scene = generate_scene(family, seed, "x")
        ego, poses = scene.ego, np.asarray(scene.sample.expert.poses)
        expected = ego.vx * 0.5 + 0.5 * ego.ax * 0.25
        # the first 0.5 s follows the current speed and acceleration (jerk-limited change only)
        assert np.hypot(poses[0, 0], poses[0, 1]) == pytest.approx(expected, abs=0.2 + 0.02 * ego.vx)
        step = np.hypot(*np.diff(np.vstack([[0, 0], poses[:, :2]]), axis=0).T) / 0.5
        assert (np.abs(np.diff(step)) / 0.5 < 4.6).all()  # mean acceleration per 0.5 s [m/s²]


def test_expert_scores_well_with_the_navsim_scorer():
    scorer = pytest.importorskip("scorer")
    try:
        from scorer import prepare, score
    except ImportError:
        pytest.skip("scorer API not available")
    del scorer
    totals = []
    for family in FAMILIES:
        scene = generate_scene(family, 5, "x")
        totals.append(
            float(score(prepare(scene), np.asarray(scene.sample.expert.poses)[None], "pdms").total[0])
        )
    assert np.mean(totals) >= 0.9 and min(totals) >= 0.5, totals
