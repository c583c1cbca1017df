"""One interface for every teacher (`diagnose(requests) -> diagnoses`), the coarse rule teacher, and the
factory that builds a teacher from its config.

The coarse teacher is the paper's "rule feedback" baseline: it reads only the score breakdown and says
one generic sentence per failed sub-metric. Its corrections are as generic as its words (brake at
2 m/s² after a collision, TTC breach or red light; speed up at 1 m/s² after a progress shortfall; no
lateral advice), so the correction check measures what such feedback is worth when taken literally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from teacher_service.config import (
    AnalyticTeacherConfig,
    CoarseTeacherConfig,
    TeacherBackend,
    VLMTeacherConfig,
)
from teacher_service.corrections import longitudinal_correction
from teacher_service.schema import (
    EFFICIENCY_KIND_OF,
    SAFETY_KIND_OF,
    SAFETY_METRICS,
    SPEED_KNOTS_S,
    Corrections,
    Diagnosis,
    DiagnosisRequest,
    EfficiencyAnalysis,
    EfficiencyIssue,
    LongitudinalCorrection,
    SafetyAnalysis,
    SafetyFailure,
    SubMetric,
    TeacherKind,
)

COARSE_SENTENCES: dict[str, str] = {
    "no_at_fault_collisions": "Your trajectory collides with another object; drive more carefully.",
    "drivable_area_compliance": "Your trajectory leaves the drivable area; stay on the road.",
    "driving_direction_compliance": "Your trajectory drives against the traffic direction.",
    "traffic_light_compliance": "Your trajectory runs a red light; stop at red lights.",
    "time_to_collision_within_bound": "Your trajectory gets too close to other road users; keep a safe distance.",
    "ego_progress": "Your trajectory makes too little progress; drive more efficiently.",
    "comfort": "Your trajectory is uncomfortable; drive more smoothly.",
    "lane_keeping": "Your trajectory drifts away from the lane centre; keep your lane.",
    "history_comfort": "Your trajectory is uncomfortable given the past motion; drive more smoothly.",
    "extended_comfort": "Your trajectory is inconsistent with your previous plan.",
}
COARSE_BRAKE = 2.0  # [m/s²] "drive more carefully", taken literally
COARSE_SPEED_UP = 1.0  # [m/s²] "drive more efficiently", taken literally


@dataclass
class TeacherStats:
    requests: int = 0
    invalid_outputs: int = 0  # model outputs that failed validation (VLM)
    fallbacks: int = 0  # diagnoses replaced by the analytic teacher


@runtime_checkable
class Teacher(Protocol):
    """What the controller, the Serve app and the client all call."""

    kind: TeacherKind
    stats: TeacherStats

    def diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]: ...


class CoarseTeacher:
    kind: TeacherKind = "coarse"

    def __init__(self, config: CoarseTeacherConfig | None = None) -> None:
        self.config = config or CoarseTeacherConfig()
        self.stats = TeacherStats()

    def diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]:
        self.stats.requests += len(requests)
        return [self._one(r) for r in requests]

    def _one(self, request: DiagnosisRequest) -> Diagnosis:
        b = request.breakdown
        failed = b.failed_metrics()
        safety = [
            SafetyFailure(
                kind=SAFETY_KIND_OF[m], sub_metric=m, value=getattr(b, m), explanation=COARSE_SENTENCES[m]
            )
            for m in failed
            if m in SAFETY_METRICS
        ]
        efficiency = [
            EfficiencyIssue(
                kind=EFFICIENCY_KIND_OF[m], sub_metric=m, value=getattr(b, m), explanation=COARSE_SENTENCES[m]
            )
            for m in failed
            if m in EFFICIENCY_KIND_OF
        ]
        ego = request.scene.ego
        return Diagnosis(
            scene_id=request.scene_id,
            teacher="coarse",
            failed_metrics=failed,
            meta_action=None,
            reasoning=None,
            safety=SafetyAnalysis(failures=safety),
            efficiency=EfficiencyAnalysis(issues=efficiency),
            corrections=Corrections(
                meta_action=None, longitudinal=_coarse_longitudinal(failed, math.hypot(ego.vx, ego.vy))
            ),
        )


def _coarse_longitudinal(failed: list[SubMetric], v0: float) -> LongitudinalCorrection | None:
    t = np.asarray(SPEED_KNOTS_S)
    careful = {"no_at_fault_collisions", "time_to_collision_within_bound", "traffic_light_compliance"}
    if careful & set(failed):
        return longitudinal_correction(v0, np.maximum(v0 - COARSE_BRAKE * t, 0.0), "drive more carefully")
    if "ego_progress" in failed:
        return longitudinal_correction(v0, v0 + COARSE_SPEED_UP * t, "drive more efficiently")
    return None


def make_teacher(config: TeacherBackend) -> Teacher:
    """The teacher a config names (the VLM loads its model here)."""
    if isinstance(config, AnalyticTeacherConfig):
        from teacher_service.analytic import AnalyticTeacher

        return AnalyticTeacher(config)
    if isinstance(config, CoarseTeacherConfig):
        return CoarseTeacher(config)
    if isinstance(config, VLMTeacherConfig):
        from teacher_service.vlm import VLMTeacher

        return VLMTeacher.from_config(config)
    raise TypeError(f"unknown teacher config {type(config).__name__}")
