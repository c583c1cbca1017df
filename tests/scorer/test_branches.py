"""One hand-built scene per branch of every sub-metric (straight road, see `builders`)."""

from __future__ import annotations

import numpy as np
import pytest

from scorer import prepare, score, score_scene
from tests.scorer.builders import cv_agent, scene, straight_plan, track_agent


def pdms(sc):
    return score_scene(sc, "pdms").result(0)


def epdms(sc):
    return score_scene(sc, "epdms").result(0)


# --- no at-fault collisions -------------------------------------------------------------------------


def test_no_collision_scores_one():
    r = pdms(scene([cv_agent("lead", 40.0, 0.0, 10.0)]))
    assert r["no_at_fault_collisions"] == 1.0 and r["diagnostics"]["time_to_at_fault_collision_s"] is None


def test_ego_stopped_is_not_at_fault():
    """A car drives into the standing ego from behind: ego stopped -> not at fault (TTC skips it too)."""
    r = pdms(scene([cv_agent("car", -12.0, 0.0, 5.0)], plan=straight_plan(0.0), speed=0.0))
    assert r["no_at_fault_collisions"] == 1.0
    assert r["time_to_collision_within_bound"] == 1.0


def test_stopped_track_is_at_fault():
    r = pdms(scene([cv_agent("parked", 20.0, 0.0, 0.0)]))
    assert r["no_at_fault_collisions"] == 0.0
    assert r["diagnostics"]["at_fault_collision_object_id"] == "parked"
    assert r["pdms"] == 0.0


def test_static_object_scores_half():
    r = pdms(scene([cv_agent("cone", 20.0, 0.0, kind="traffic_cone")]))
    assert r["no_at_fault_collisions"] == 0.5
    assert r["pdms"] == pytest.approx(
        0.5 * (5 * r["ego_progress"] + 5 * r["time_to_collision_within_bound"] + 2) / 12
    )


def test_rear_collision_is_not_at_fault():
    r = pdms(scene([cv_agent("tailgater", -10.0, 0.0, 12.0)], plan=straight_plan(2.0), speed=2.0))
    assert r["no_at_fault_collisions"] == 1.0


def test_front_collision_is_at_fault():
    r = pdms(scene([cv_agent("slow", 20.0, 0.0, 3.0)]))
    assert r["no_at_fault_collisions"] == 0.0
    assert r["diagnostics"]["time_to_at_fault_collision_s"] == pytest.approx(2.0)


def test_lateral_collision_in_own_lane_is_not_at_fault():
    """A car from the left lane cuts into the ego's side while the ego keeps its lane."""
    rows = [
        [1.5 + 5.0 * i, 3.5 - 0.9 * min(i, 3), -0.2 if i < 3 else 0.0, 10.0, -1.8 if i < 3 else 0.0]
        for i in range(11)
    ]
    r = pdms(scene([track_agent("cutter", rows)]))
    assert r["no_at_fault_collisions"] == 1.0


def test_lateral_collision_across_lanes_is_at_fault():
    """The ego changes lanes into a car driving alongside: it spans two lanes -> at fault."""
    r = pdms(scene([cv_agent("alongside", 2.0, 3.5, 10.0)], plan=straight_plan(10.0, lateral=3.0)))
    assert r["no_at_fault_collisions"] == 0.0


def test_pedestrian_and_bicycle_count_as_agents():
    for kind in ("pedestrian", "bicycle"):
        r = pdms(scene([cv_agent("vru", 20.0, 0.0, 0.0, kind=kind)]))
        assert r["no_at_fault_collisions"] == 0.0, kind


# --- drivable area, driving direction, traffic lights, lane keeping ----------------------------------


def test_leaving_the_road_fails_dac():
    r = pdms(scene(plan=straight_plan(10.0, lateral=8.0)))
    assert r["drivable_area_compliance"] == 0.0 and r["pdms"] == 0.0


@pytest.mark.parametrize(("speed", "lateral", "ddc"), [(10.0, 0.0, 1.0), (5.0, -3.0, 0.5), (10.0, -3.0, 0.0)])
def test_driving_direction(speed, lateral, ddc):
    """Distance driven in the oncoming lane within 1 s: < 2 m -> 1, < 6 m -> 0.5, else 0 (a v2 multiplier,
    weight 0 in v1)."""
    sc = scene(plan=straight_plan(speed, lateral=lateral), speed=speed)
    v2, v1 = epdms(sc), pdms(sc)
    assert v2["driving_direction_compliance"] == v1["driving_direction_compliance"] == ddc
    assert v2["multiplicative_metrics_prod"] == ddc
    assert v1["drivable_area_compliance"] == 1.0 and (v1["pdms"] > 0.5)


def test_red_light_fails_tlc_and_stops_the_reference():
    red, green = epdms(scene(intersection=True, red=True)), epdms(scene(intersection=True, red=False))
    assert red["traffic_light_compliance"] == 0.0 and red["epdms"] == 0.0
    assert green["traffic_light_compliance"] == 1.0
    # PDM-Closed brakes for the red connector, so the reference makes less progress
    assert (
        red["diagnostics"]["reference_raw_progress_m"] < green["diagnostics"]["reference_raw_progress_m"] - 10
    )
    assert pdms(scene(intersection=True, red=True))["pdms"] > 0.5  # v1 has no TLC


@pytest.mark.parametrize(("lateral", "lk"), [(0.3, 1.0), (1.0, 0.0)])
def test_lane_keeping(lateral, lk):
    assert epdms(scene(plan=straight_plan(10.0, lateral=lateral)))["lane_keeping"] == lk


def test_lane_keeping_skips_intersections():
    """1 m off the centerline, but the run is broken by the intersection before it reaches 2 s."""
    assert epdms(scene(plan=straight_plan(10.0, lateral=1.0), intersection=True))["lane_keeping"] == 1.0


# --- time to collision ------------------------------------------------------------------------------


def test_ttc_agent_ahead():
    r = pdms(scene([cv_agent("slow", 24.0, 0.0, 6.0)]))
    assert r["no_at_fault_collisions"] == 1.0 and r["time_to_collision_within_bound"] == 0.0


def test_ttc_agent_in_other_lane_is_ignored():
    r = pdms(scene([cv_agent("overtaker", -8.0, 3.5, 14.0)]))
    assert r["time_to_collision_within_bound"] == 1.0


def test_ttc_v2_stops_at_3_1_seconds():
    """A stopped car reached only in the last 0.9 s: v1 (steps 0-40) flags it, v2 (steps 0-31) does not."""
    sc = scene([cv_agent("far", 50.0, 0.0, 0.0)], plan=straight_plan(10.0))
    assert pdms(sc)["time_to_collision_within_bound"] == 0.0
    assert epdms(sc)["time_to_collision_within_bound"] == 1.0


# --- ego progress -----------------------------------------------------------------------------------


def test_progress_above_5m_is_relative_to_the_reference():
    r = pdms(scene(plan=straight_plan(5.0)))
    d = r["diagnostics"]
    assert d["reference_raw_progress_m"] > 5.0
    assert r["ego_progress"] == pytest.approx(d["candidate_raw_progress_m"] / d["reference_raw_progress_m"])


def test_progress_below_5m_scores_one():
    """Ego at rest behind a parked car: nobody can make 5 m of progress -> EP = 1."""
    r = pdms(scene([cv_agent("parked", 8.0, 0.0, 0.0)], plan=straight_plan(0.0), speed=0.0))
    assert r["diagnostics"]["reference_raw_progress_m"] <= 5.0
    assert r["ego_progress"] == 1.0


def test_progress_v1_masks_failed_candidates_v2_does_not():
    sc = scene(plan=straight_plan(10.0, lateral=8.0))  # off road
    assert pdms(sc)["ego_progress"] == 0.0
    v2 = epdms(sc)
    d = v2["diagnostics"]
    assert v2["ego_progress"] == pytest.approx(
        min(1.0, d["candidate_raw_progress_m"] / d["reference_raw_progress_m"])
    )


def test_progress_clipped_at_one_in_v2():
    sc = scene([cv_agent("slow", 25.0, 0.0, 3.0)])  # the reference brakes, the candidate does not
    assert epdms(sc)["ego_progress"] == 1.0


# --- comfort, history comfort, extended comfort -------------------------------------------------------


def test_hard_braking_is_uncomfortable():
    assert pdms(scene(plan=straight_plan(10.0, accel=-6.0)))["comfort"] == 0.0
    assert pdms(scene(plan=straight_plan(10.0, accel=-1.0)))["comfort"] == 1.0


def test_history_comfort_sees_the_past():
    """Hard braking in the past, then cruising: comfortable alone (v1), not with the history (v2)."""
    history = [[-22.5, 0.0, 0.0, 20.0, 0.0, -8.0, 0.0], [-13.0, 0.0, 0.0, 16.0, 0.0, -8.0, 0.0]]
    history.append([-6.0, 0.0, 0.0, 12.0, 0.0, -8.0, 0.0])
    sc = scene(
        plan=straight_plan(10.0),
        ego={
            "x": 0.0,
            "y": 0.0,
            "heading": 0.0,
            "vx": 10.0,
            "vy": 0.0,
            "ax": -8.0,
            "ay": 0.0,
            "history": history,
        },
    )
    assert epdms(sc)["history_comfort"] == 0.0


def test_extended_comfort_input_is_weighted():
    one = epdms(scene(two_frame_extended_comfort=1.0))
    zero = epdms(scene(two_frame_extended_comfort=0.0))
    assert one["pdm_score"] == zero["pdm_score"]
    assert one["epdms"] - zero["epdms"] == pytest.approx(2.0 / 16.0 * one["multiplicative_metrics_prod"])


# --- human penalty filter, reactive traffic --------------------------------------------------------


def test_human_penalty_filter_resets_what_the_human_also_fails():
    """Both the human and the candidate leave the road: DAC is not held against the candidate."""
    off_road = {"poses": straight_plan(10.0, lateral=8.0), "frame": "local"}
    sc = scene(plan=straight_plan(10.0, lateral=8.0), human_trajectory=off_road)
    r = epdms(sc)
    assert r["scene_type"] == "ORIGINAL"
    assert r["drivable_area_compliance"] == 1.0 and r["diagnostics"]["human_penalty_filter_applied"]
    assert r["epdms"] > 0.0 and r["pdm_score"] == 0.0  # NAVSIM's pdm_score stays unfiltered
    clean = epdms(
        scene(plan=straight_plan(10.0, lateral=8.0), human_trajectory={"poses": straight_plan(10.0)})
    )
    assert (
        clean["drivable_area_compliance"] == 0.0 and not clean["diagnostics"]["human_penalty_filter_applied"]
    )


def test_reactive_traffic_is_refused_clearly():
    sc = scene(traffic="reactive")
    with pytest.raises(NotImplementedError, match="reactive"):
        epdms(sc)
    assert pdms(sc)["pdms"] > 0.0  # v1 has no traffic option


def test_scores_are_in_unit_interval():
    sc = scene([cv_agent("lead", 30.0, 0.0, 8.0), cv_agent("cone", 60.0, 3.5, kind="traffic_cone")])
    cache = prepare(sc)
    rng = np.random.default_rng(7)
    plans = np.asarray(straight_plan(10.0))[None] + rng.normal(0.0, 1.0, (16, 8, 3)) * [1.0, 1.0, 0.05]
    for metric in ("pdms", "epdms"):
        batch = score(cache, plans, metric)
        for name in ("total", "ego_progress", "pdm_score", "multiplicative_metrics_prod"):
            values = getattr(batch, name)
            assert np.all((values >= 0.0) & (values <= 1.0)), name
