"""What goes into the teacher and what comes out: `DiagnosisRequest` (JSON-ready, independent of the
student's own `Response` type) and the 5-part `Diagnosis`.

The diagnosis follows the paper's five parts: (1) meta-action analysis, (2) reasoning (think) analysis,
(3) safety-failure analysis, (4) efficiency-failure analysis, (5) executable corrections. Departure from
the paper: part (5) is not free text but numbers that `corrections.apply_corrections` applies literally
to the failed plan (lateral offsets per pose, target speeds per second), so "is this diagnosis
actionable?" can be measured. Every model is strict (unknown keys are errors, no NaN/inf), which is also
the contract a VLM's JSON output must meet; `diagnosis_json_schema()` is what constrained decoding uses.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from driving.scene import NUM_PLAN_POSES, AgentType, LongitudinalAction, MetaAction, Scene

TeacherKind = Literal["analytic", "coarse", "vlm"]
SubMetric = Literal[
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "lane_keeping",
    "history_comfort",
    "extended_comfort",
]
MULTIPLIER_METRICS: tuple[SubMetric, ...] = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
)
SAFETY_METRICS: tuple[SubMetric, ...] = (*MULTIPLIER_METRICS, "time_to_collision_within_bound")
EFFICIENCY_METRICS: tuple[SubMetric, ...] = (
    "ego_progress",
    "comfort",
    "lane_keeping",
    "history_comfort",
    "extended_comfort",
)
SCORED_METRICS: dict[str, tuple[SubMetric, ...]] = {  # the sub-metrics each score counts
    "pdms": (
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "time_to_collision_within_bound",
        "ego_progress",
        "comfort",
    ),
    "epdms": (
        *MULTIPLIER_METRICS,
        "time_to_collision_within_bound",
        "ego_progress",
        "lane_keeping",
        "history_comfort",
        "extended_comfort",
    ),
}
SPEED_KNOTS_S = (1.0, 2.0, 3.0, 4.0)  # [s] times of the target speeds
MAX_THINK_CHARS = 4000
MAX_COORD = 1.0e4  # [m] |x|, |y| of a plan pose; anything larger is not a plan

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Metres = Annotated[float, Field(ge=-MAX_COORD, le=MAX_COORD)]
Speed = Annotated[float, Field(ge=0.0, le=60.0)]  # [m/s]
Time = Annotated[float, Field(ge=0.0, le=10.0)]  # [s]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ------------------------------------------------------------------------------------- input ---


class ScoreBreakdown(_Model):
    """One candidate's sub-metrics and the diagnostics the teacher reads (scorer field names).
    EPDMS-only metrics are None under PDMS."""

    metric: Literal["pdms", "epdms"] = "pdms"
    score: Unit
    no_at_fault_collisions: Unit
    drivable_area_compliance: Unit
    driving_direction_compliance: Unit = 1.0
    traffic_light_compliance: Unit = 1.0
    ego_progress: Unit
    time_to_collision_within_bound: Unit
    comfort: Unit = 1.0
    lane_keeping: Unit | None = None
    history_comfort: Unit | None = None
    extended_comfort: Unit | None = None
    candidate_progress_m: float | None = None  # raw progress along the route [m]
    reference_progress_m: float | None = None  # the PDM-Closed reference's raw progress [m]
    time_to_at_fault_collision_s: Time | None = None
    time_to_ttc_infraction_s: Time | None = None
    collided_object_id: str | None = Field(default=None, max_length=200)

    def failed_metrics(self) -> list[SubMetric]:
        """The sub-metrics this score counts that are below 1 (PDMS ignores DDC, TLC and the v2 terms)."""
        names = SCORED_METRICS[self.metric]
        return [n for n in names if getattr(self, n) is not None and getattr(self, n) < 1.0]

    @classmethod
    def from_scorer(cls, result: dict[str, Any], metric: Literal["pdms", "epdms"] = "pdms") -> ScoreBreakdown:
        """From the scorer's per-candidate JSON dict (flat, or with a nested `diagnostics`)."""
        flat = {**result, **(result.get("diagnostics") or {})}
        aliases = {
            "candidate_raw_progress_m": "candidate_progress_m",
            "reference_raw_progress_m": "reference_progress_m",
            "time_to_ttc_infraction_s": "time_to_ttc_infraction_s",
            "at_fault_collision_object_id": "collided_object_id",
            "collided_object_id": "collided_object_id",
            "two_frame_extended_comfort": "extended_comfort",
        }
        data: dict[str, Any] = {"metric": metric}
        for key, value in flat.items():
            name = aliases.get(key, key)
            if name in cls.model_fields and name != "metric":
                data[name] = value
        if "score" not in data:
            data["score"] = flat.get(metric, flat.get("total"))
        if metric == "pdms":
            for v2_only in ("lane_keeping", "history_comfort", "extended_comfort"):
                data.pop(v2_only, None)
        for key in ("time_to_at_fault_collision_s", "time_to_ttc_infraction_s"):
            value = data.get(key)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                data[key] = None
        return cls.model_validate(data)


class DiagnosisRequest(_Model):
    """A failed response to diagnose. `plan` is (8, 3) (x [m], y [m], heading [rad]) in the ego frame at
    t = 0.5 ... 4 s. `images` are base64-encoded camera images (PNG/JPEG) for a VLM teacher."""

    scene_id: str = Field(min_length=1, max_length=200)
    scene: Scene
    plan: list[list[float]] = Field(min_length=NUM_PLAN_POSES, max_length=NUM_PLAN_POSES)
    breakdown: ScoreBreakdown
    think: str | None = Field(default=None, max_length=MAX_THINK_CHARS)
    meta_action: MetaAction | None = None
    images: dict[str, str] | None = Field(default=None, max_length=4)

    @field_validator("plan")
    @classmethod
    def _poses(cls, v: list[list[float]]) -> list[list[float]]:
        for i, row in enumerate(v):
            if len(row) != 3:
                raise ValueError(f"pose {i} has {len(row)} values, need 3 (x, y, heading)")
            if not all(math.isfinite(x) and abs(x) <= MAX_COORD for x in row):
                raise ValueError(f"pose {i}: values must be finite with |value| <= {MAX_COORD:g}")
        return v


# ---------------------------------------------------------------------------------- diagnosis ---

Motion = Literal["static", "stopped", "same_direction", "slower", "faster", "crossing", "oncoming"]


class ObjectRef(_Model):
    """A scene object as the teacher refers to it; position in the ego frame at t = 0 unless stated."""

    id: str = Field(max_length=200)
    type: AgentType
    x_m: Metres
    y_m: Metres
    distance_m: Annotated[float, Field(ge=0.0, le=2 * MAX_COORD)]
    speed_mps: Annotated[float, Field(ge=0.0, le=100.0)]
    motion: Motion


class MetaActionAnalysis(_Model):
    predicted: MetaAction | None  # None: the response gave none
    predicted_from: Literal["response", "plan"]  # stated by the student, or read off its plan
    expected: MetaAction
    lateral_correct: bool
    longitudinal_correct: bool
    verdict: str = Field(max_length=500)


class ObjectJudgement(_Model):
    object: ObjectRef
    issue: Literal["missed", "misjudged_distance", "misjudged_motion"]
    detail: str = Field(max_length=300)


class ReasoningAnalysis(_Model):
    key_objects: list[ObjectRef] = Field(max_length=8)
    judgements: list[ObjectJudgement] = Field(max_length=8)
    missed_red_light: bool = False
    verdict: str = Field(max_length=500)


SafetyKind = Literal["collision", "time_to_collision", "drivable_area", "driving_direction", "traffic_light"]
SAFETY_KIND_OF: dict[str, SafetyKind] = {
    "no_at_fault_collisions": "collision",
    "time_to_collision_within_bound": "time_to_collision",
    "drivable_area_compliance": "drivable_area",
    "driving_direction_compliance": "driving_direction",
    "traffic_light_compliance": "traffic_light",
}


class SafetyFailure(_Model):
    kind: SafetyKind
    sub_metric: SubMetric
    value: Unit
    time_s: Time | None = None  # when it first happens
    object: ObjectRef | None = None  # what it happens with
    x_m: Metres | None = None  # where (ego frame): the conflict point / where the ego leaves the road
    y_m: Metres | None = None
    side: Literal["front", "rear", "left", "right"] | None = None  # of the ego box
    explanation: str = Field(max_length=500)


class SafetyAnalysis(_Model):
    failures: list[SafetyFailure] = Field(max_length=8)


EfficiencyKind = Literal["progress", "comfort", "lane_keeping", "history_comfort", "extended_comfort"]
EFFICIENCY_KIND_OF: dict[str, EfficiencyKind] = {
    "ego_progress": "progress",
    "comfort": "comfort",
    "lane_keeping": "lane_keeping",
    "history_comfort": "history_comfort",
    "extended_comfort": "extended_comfort",
}


class EfficiencyIssue(_Model):
    kind: EfficiencyKind
    sub_metric: SubMetric
    value: Unit
    quantity: str | None = Field(default=None, max_length=60)  # e.g. progress, longitudinal_acceleration
    measured: float | None = None  # in `unit`
    limit: float | None = None  # reference progress, or the comfort bound exceeded
    unit: str | None = Field(default=None, max_length=20)
    explanation: str = Field(max_length=500)


class EfficiencyAnalysis(_Model):
    issues: list[EfficiencyIssue] = Field(max_length=8)


class LateralCorrection(_Model):
    """Shift the plan's path sideways: `offsets_m[i]` [m] (left positive) at the failed plan's pose i
    (t = 0.5 ... 4 s of the failed plan), 0 at the start, linear in between, the last kept beyond."""

    direction: Literal["none", "left", "right"]
    start_s: Time  # [s] when the shift starts
    offsets_m: list[Annotated[float, Field(ge=-30.0, le=30.0)]] = Field(
        min_length=NUM_PLAN_POSES, max_length=NUM_PLAN_POSES
    )
    target: str = Field(default="", max_length=200)  # what the shift aims at, e.g. "the centre of lane L2"


class LongitudinalCorrection(_Model):
    """Re-time the plan along its (shifted) path: the speed goes linearly from `initial_speed_mps` at
    t = 0 through `target_speeds_mps` at t = 1, 2, 3, 4 s."""

    action: LongitudinalAction
    initial_speed_mps: Speed
    target_speeds_mps: list[Speed] = Field(min_length=len(SPEED_KNOTS_S), max_length=len(SPEED_KNOTS_S))
    stop_before_m: Annotated[float, Field(ge=0.0, le=500.0)] | None = None  # [m] along the path
    reason: str = Field(default="", max_length=300)


class Corrections(_Model):
    """None keeps that part of the failed plan (its path / its timing)."""

    meta_action: MetaAction | None  # the action the corrected response should state
    lateral: LateralCorrection | None = None
    longitudinal: LongitudinalCorrection | None = None


class Diagnosis(_Model):
    scene_id: str = Field(max_length=200)
    teacher: TeacherKind
    failed_metrics: list[SubMetric] = Field(max_length=10)
    meta_action: MetaActionAnalysis | None  # (1); None from the coarse teacher
    reasoning: ReasoningAnalysis | None  # (2); None from the coarse teacher
    safety: SafetyAnalysis  # (3)
    efficiency: EfficiencyAnalysis  # (4)
    corrections: Corrections  # (5)


def diagnosis_json_schema() -> dict[str, Any]:
    """The JSON schema a VLM's output must satisfy (also served in the app's OpenAPI document)."""
    return Diagnosis.model_json_schema()
