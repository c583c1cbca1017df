"""The diagnosis schema: JSON round trips, the JSON-schema export, the scorer adapter and the renderer."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from teacher_service.analytic import AnalyticTeacher
from teacher_service.render import positive_feedback, render_feedback
from teacher_service.schema import Diagnosis, DiagnosisRequest, ScoreBreakdown, diagnosis_json_schema
from teacher_service.teachers import CoarseTeacher


@pytest.fixture(scope="module")
def diagnoses(stalled_request):
    return [AnalyticTeacher().diagnose([stalled_request])[0], CoarseTeacher().diagnose([stalled_request])[0]]


def test_diagnosis_json_round_trip(diagnoses):
    for d in diagnoses:
        text = d.model_dump_json()
        again = Diagnosis.model_validate_json(text)
        assert again == d
        assert again.model_dump_json() == text


def test_request_json_round_trip(stalled_request):
    text = stalled_request.model_dump_json(exclude_none=True)
    again = DiagnosisRequest.model_validate_json(text)
    assert again.model_dump_json(exclude_none=True) == text


def test_json_schema_has_the_five_parts_and_validates_strictly(diagnoses):
    schema = diagnosis_json_schema()
    for part in ("meta_action", "reasoning", "safety", "efficiency", "corrections"):
        assert part in schema["properties"]
    json.dumps(schema)  # serialisable as is (vLLM takes it)
    data = json.loads(diagnoses[0].model_dump_json())
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        Diagnosis.model_validate(data)
    data.pop("surprise")
    data["corrections"]["longitudinal"]["target_speeds_mps"] = [1.0, 2.0]
    with pytest.raises(ValidationError, match="target_speeds_mps"):
        Diagnosis.model_validate(data)


def test_breakdown_from_scorer_dicts():
    v1 = {
        "version": "v1", "no_at_fault_collisions": 0.0, "drivable_area_compliance": 1.0,
        "driving_direction_compliance": 0.5, "ego_progress": 0.0, "time_to_collision_within_bound": 0.0,
        "comfort": 1.0, "score": 0.0, "pdms": 0.0,
        "diagnostics": {"candidate_raw_progress_m": 40.0, "reference_raw_progress_m": 22.7,
                        "time_to_at_fault_collision_s": 2.0, "time_to_ttc_infraction_s": None,
                        "at_fault_collision_object_id": "slow_lead", "route_lane_ids": ["a"]},
    }  # fmt: skip
    b = ScoreBreakdown.from_scorer(v1)
    assert b.collided_object_id == "slow_lead" and b.time_to_at_fault_collision_s == 2.0
    assert b.candidate_progress_m == 40.0 and b.time_to_ttc_infraction_s is None
    # PDMS does not count driving direction, so it is not a failure there
    assert b.failed_metrics() == ["no_at_fault_collisions", "time_to_collision_within_bound", "ego_progress"]
    v2 = {**v1, "version": "v2", "traffic_light_compliance": 0.0, "lane_keeping": 1.0, "history_comfort": 1.0,
          "two_frame_extended_comfort": 1.0, "epdms": 0.0}  # fmt: skip
    v2.pop("score")
    b2 = ScoreBreakdown.from_scorer(v2, "epdms")
    assert b2.score == 0.0 and b2.extended_comfort == 1.0
    assert "traffic_light_compliance" in b2.failed_metrics()
    assert "driving_direction_compliance" in b2.failed_metrics()


def test_rendered_feedback_has_five_parts_and_numbers(diagnoses):
    text = render_feedback(diagnoses[0])
    for head in ("1. Meta action:", "2. Reasoning:", "3. Safety:", "4. Efficiency:", "5. Corrections:"):
        assert head in text
    assert "stalled" in text and "m/s" in text
    coarse = render_feedback(diagnoses[1])
    assert "collides with another object" in coarse and "1. Meta action" not in coarse
    assert render_feedback(diagnoses[0]) == text  # deterministic


def test_positive_feedback_names_the_weakest_metric():
    b = ScoreBreakdown(
        score=0.9, no_at_fault_collisions=1.0, drivable_area_compliance=1.0, ego_progress=0.76,
        time_to_collision_within_bound=1.0, comfort=1.0,
    )  # fmt: skip
    text = positive_feedback(b)
    assert "correct" in text and "PDMS 0.90" in text and "progress (0.76)" in text
