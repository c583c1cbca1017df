"""The analytic and coarse teachers on hand-built failures and on generated long-tail scenes: the right
object, sub-metric and side are named, and the literally applied corrections score higher."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from driving.baselines import constant_velocity_plan
from teacher_service.analytic import AnalyticTeacher
from teacher_service.config import CoarseTeacherConfig
from teacher_service.corrections import apply_corrections
from teacher_service.schema import Diagnosis
from teacher_service.teachers import CoarseTeacher, make_teacher
from tests.teacher_service.conftest import STALLED, T, long_tail_request, pdms, request_for, road_scene


@pytest.fixture(scope="module")
def teacher():
    return AnalyticTeacher()


def test_collision_names_the_object_the_side_and_the_metric(teacher, stalled_scene, stalled_request):
    d = teacher.diagnose([stalled_request])[0]
    assert "no_at_fault_collisions" in d.failed_metrics
    collision = next(f for f in d.safety.failures if f.kind == "collision")
    assert collision.sub_metric == "no_at_fault_collisions" and collision.value == 0.0
    assert collision.object.id == "stalled" and collision.object.motion == "stopped"
    assert collision.side == "front" and 2.0 < collision.time_s < 3.5
    assert collision.x_m == pytest.approx(35.0, abs=0.1)
    ttc = next(f for f in d.safety.failures if f.kind == "time_to_collision")
    assert ttc.object.id == "stalled"
    # the meta action was read off the plan (none was given) and is wrong on the longitudinal side
    assert d.meta_action.predicted_from == "plan" and not d.meta_action.longitudinal_correct
    assert d.meta_action.expected.longitudinal == "stop"
    # the think ("road clear") missed the car
    assert [(j.object.id, j.issue) for j in d.reasoning.judgements] == [("stalled", "missed")]
    # corrections: numeric, stop before the car, and they work when applied literally
    lon = d.corrections.longitudinal
    assert lon is not None and lon.action in ("stop", "decelerate") and lon.target_speeds_mps[-1] < 3.0
    assert lon.stop_before_m == pytest.approx(35.0 - 2.25 - 4.049, abs=0.5)
    fixed = apply_corrections(np.asarray(stalled_request.plan), d.corrections)
    before, after = pdms(stalled_scene, np.stack([stalled_request.plan, fixed]))
    assert before == 0.0 and after > 0.8


def test_leaving_the_road_names_the_side_and_shifts_back():
    scene = road_scene(
        [], np.stack([10.0 * T, np.zeros(8), np.zeros(8)], axis=-1), ("keep_lane", "keep_speed")
    )
    y = -0.2 * (T / 0.5) ** 2  # drifts right, off the road after ~2 s
    plan = np.stack([10.0 * T, y, np.gradient(y, 10.0 * T)], axis=-1)
    request = request_for(scene, plan)
    d = AnalyticTeacher().diagnose([request])[0]
    assert d.failed_metrics[0] == "drivable_area_compliance"
    off = d.safety.failures[0]
    assert off.kind == "drivable_area" and off.side == "right" and off.object is None
    assert off.y_m < -1.75  # the corner that left is right of the road edge at y = -1.75
    lat = d.corrections.lateral
    assert lat is not None and lat.direction == "left"
    assert np.all(np.diff(lat.offsets_m) > 0) and lat.offsets_m[-1] >= -y[-1]
    fixed = apply_corrections(plan, d.corrections)
    before, after = pdms(scene, np.stack([plan, fixed]))
    assert before == 0.0 and after > 0.9


@pytest.mark.parametrize(
    ("think", "issue"),
    [
        ("vehicle 35 m ahead stopped; intent: keep lane, stop.", None),
        ("vehicle 55 m ahead stopped; intent: keep lane, stop.", "misjudged_distance"),
        ("vehicle 34 m ahead same speed; intent: keep lane, keep speed.", "misjudged_motion"),
        ("road clear; intent: keep lane, keep speed.", "missed"),
    ],
)
def test_reasoning_checks_the_think(teacher, stalled_scene, think, issue):
    request = request_for(stalled_scene, constant_velocity_plan(stalled_scene.ego), think)
    r = teacher.diagnose([request])[0].reasoning
    assert [o.id for o in r.key_objects] == ["stalled"]
    assert [j.issue for j in r.judgements] == ([issue] if issue else [])


def test_a_free_lane_is_used_when_the_expert_changes_lanes():
    t = T
    y = 3.5 * np.clip((t - 0.0) / 3.0, 0, 1) ** 2 * (3 - 2 * np.clip(t / 3.0, 0, 1))  # smooth lane change
    expert = np.stack([10.0 * t, y, np.gradient(y, 10.0 * t)], axis=-1)
    scene = road_scene([{**STALLED, "x": 30.0}], expert, ("change_left", "keep_speed"))
    request = request_for(scene, constant_velocity_plan(scene.ego))
    d = AnalyticTeacher().diagnose([request])[0]
    assert d.corrections.lateral.direction == "left" and "lane_left" in d.corrections.lateral.target
    assert d.corrections.lateral.offsets_m[-1] == pytest.approx(3.5, abs=0.1)
    fixed = apply_corrections(np.asarray(request.plan), d.corrections)
    assert pdms(scene, fixed[None])[0] > 0.9


@pytest.mark.parametrize(
    ("family", "seed"),
    [("stalled_vehicle", 1), ("cut_in", 2), ("pedestrian_crossing", 3), ("cyclist", 4), ("construction_zone", 5),
     ("merge", 6), ("red_light", 7)],
)  # fmt: skip
def test_generated_long_tail_failures(teacher, family, seed):
    scene, request = long_tail_request(family, seed)
    b = request.breakdown
    d = teacher.diagnose([request])[0]
    assert d.failed_metrics == b.failed_metrics() and d.failed_metrics
    if b.collided_object_id is not None:
        collision = next(f for f in d.safety.failures if f.kind == "collision")
        assert collision.object.id == b.collided_object_id
        assert collision.time_s == pytest.approx(b.time_to_at_fault_collision_s)
    fixed = apply_corrections(np.asarray(request.plan), d.corrections)
    before, after = pdms(scene, np.stack([request.plan, fixed]))
    assert after > before


def test_coarse_teacher_is_generic(stalled_request):
    teacher = make_teacher(CoarseTeacherConfig())
    assert isinstance(teacher, CoarseTeacher)
    d = teacher.diagnose([stalled_request])[0]
    assert d.meta_action is None and d.reasoning is None
    assert [f.sub_metric for f in d.safety.failures] == [
        "no_at_fault_collisions",
        "time_to_collision_within_bound",
    ]
    assert all(f.object is None for f in d.safety.failures)
    assert d.corrections.lateral is None
    assert d.corrections.longitudinal.target_speeds_mps == [8.0, 6.0, 4.0, 2.0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=arrays(np.float64, (8, 3), elements=st.floats(-80.0, 80.0)),
    values=st.lists(st.sampled_from([0.0, 0.5, 0.8, 1.0]), min_size=5, max_size=5),
    collided=st.sampled_from([None, "stalled", "ghost"]),
    time_s=st.one_of(st.none(), st.floats(0.0, 10.0)),
    think=st.one_of(
        st.none(), st.text(max_size=60), st.just("vehicle 3 m ahead crossing; cyclist 99 m behind")
    ),
)
def test_any_valid_request_gets_a_valid_diagnosis(
    teacher, stalled_request, plan, values, collided, time_s, think
):
    """Whatever the plan and breakdown say (even inconsistently), the analytic teacher answers."""
    nc, dac, ep, ttc, c = values
    breakdown = stalled_request.breakdown.model_copy(
        update={
            "no_at_fault_collisions": nc, "drivable_area_compliance": dac, "ego_progress": ep,
            "time_to_collision_within_bound": ttc, "comfort": c, "collided_object_id": collided,
            "time_to_at_fault_collision_s": time_s, "time_to_ttc_infraction_s": time_s,
        }
    )  # fmt: skip
    request = stalled_request.model_copy(
        update={"plan": plan.tolist(), "breakdown": breakdown, "think": think}
    )
    d = teacher.diagnose([request])[0]
    Diagnosis.model_validate_json(d.model_dump_json())  # within the schema's bounds
    assert apply_corrections(plan, d.corrections).shape == (8, 3)
