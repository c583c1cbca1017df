"""The analytic teacher: the 5-part diagnosis computed from the scene, the failed plan, the ground truth
(the scene's expert plan and meta action) and the score breakdown.

At paper scale a 32B VLM writes this diagnosis from the camera image; here every field is derived, so it
is exactly as right as the geometry (scene_facts.py) and the correction search (repair.py). A progress
shortfall is reported as an efficiency failure only when the plan really covers less route than the
reference: under PDMS a colliding plan's progress is masked to 0, which is a consequence of the
collision, not a second failure.
"""

from __future__ import annotations

import math
import re

import numpy as np

from actors.response import derive_meta_action
from driving.geometry import trajectory_local
from driving.scene import MetaAction
from teacher_service.config import AnalyticTeacherConfig
from teacher_service.repair import plan_corrections
from teacher_service.scene_facts import (
    COMFORT_UNITS,
    SceneFacts,
    comfort_excess,
    first_collision,
    key_objects,
    offroad,
    red_light_crossing,
    red_lights_ahead,
    side_of,
    ttc_object,
    wrong_way,
)
from teacher_service.schema import (
    EFFICIENCY_KIND_OF,
    SAFETY_KIND_OF,
    Diagnosis,
    DiagnosisRequest,
    EfficiencyAnalysis,
    EfficiencyIssue,
    MetaActionAnalysis,
    ObjectJudgement,
    ObjectRef,
    ReasoningAnalysis,
    SafetyAnalysis,
    SafetyFailure,
    SubMetric,
    TeacherKind,
)
from teacher_service.teachers import TeacherStats

DT = 0.1  # [s] step of the 0.1 s plan
TYPE_WORDS = {  # words of the student's think -> agent types
    "vehicle": "vehicle", "car": "vehicle", "truck": "vehicle", "bus": "vehicle", "van": "vehicle",
    "pedestrian": "pedestrian", "cyclist": "bicycle", "bicycle": "bicycle", "bike": "bicycle",
    "cone": "traffic_cone", "barrier": "barrier", "sign": "czone_sign", "object": "generic_object",
}  # fmt: skip
MOTION_WORDS = {  # our motion -> the think's word for it
    "stopped": "stopped", "oncoming": "oncoming", "crossing": "crossing",
    "slower": "slower", "faster": "faster", "same_direction": "same speed",
}  # fmt: skip
_MENTION = re.compile(r"\b(" + "|".join(TYPE_WORDS) + r")s?\s+(\d+(?:\.\d+)?)\s*m\b([^;,.]*)", re.IGNORECASE)


class AnalyticTeacher:
    kind: TeacherKind = "analytic"

    def __init__(self, config: AnalyticTeacherConfig | None = None) -> None:
        self.config = config or AnalyticTeacherConfig()
        self.stats = TeacherStats()

    def diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]:
        self.stats.requests += len(requests)
        return [self.diagnose_one(r) for r in requests]

    def diagnose_one(self, request: DiagnosisRequest) -> Diagnosis:
        facts = SceneFacts.of(request.scene)
        plan = np.asarray(request.plan, dtype=np.float64)
        fine = facts.fine(plan)
        expert = _expert_plan(request)
        failed = request.breakdown.failed_metrics()
        safety, conflict = safety_analysis(facts, fine, request, failed)
        efficiency = efficiency_analysis(facts, plan, expert, request, failed)
        meta = meta_action_analysis(request, plan, expert, facts.ego_speed)
        expert_fine = [facts.fine(expert)] if expert is not None else []
        conflicts = [f.object.id for f in safety.failures if f.object is not None]
        reasoning = reasoning_analysis(facts, [fine, *expert_fine], conflicts, request)
        timing = {"no_at_fault_collisions", "time_to_collision_within_bound", "traffic_light_compliance"}
        timing_failed = bool(timing & set(failed)) or any(
            i.kind in ("progress", "comfort", "history_comfort") for i in efficiency.issues
        )
        expected = meta.expected if meta else None
        repair = plan_corrections(facts, plan, expert, expected, timing_failed, conflict, self.config)
        return Diagnosis(
            scene_id=request.scene_id,
            teacher="analytic",
            failed_metrics=failed,
            meta_action=meta,
            reasoning=reasoning,
            safety=safety,
            efficiency=efficiency,
            corrections=repair.corrections,
        )


def _expert_plan(request: DiagnosisRequest) -> np.ndarray | None:
    scene = request.scene
    traj = scene.sample.expert if scene.sample is not None else scene.human_trajectory
    if traj is None or len(traj.poses) != 8:
        return None
    return trajectory_local(traj, scene.ego)


# ---------------------------------------------------------------------------- (1) meta action ---


def meta_action_analysis(
    request: DiagnosisRequest, plan: np.ndarray, expert: np.ndarray | None, ego_speed: float
) -> MetaActionAnalysis | None:
    sample = request.scene.sample
    expected = sample.meta_action if sample is not None and sample.meta_action is not None else None
    if expected is None and expert is not None:
        expected = derive_meta_action(expert, ego_speed)
    if expected is None:
        return None
    predicted, source = request.meta_action, "response"
    if predicted is None:
        predicted, source = derive_meta_action(plan, ego_speed), "plan"
    lat_ok = predicted.lateral == expected.lateral
    lon_ok = predicted.longitudinal == expected.longitudinal
    said = "You chose" if source == "response" else "Your plan amounts to"
    verdict = f"{said} {_words(predicted)}; the scene calls for {_words(expected)}."
    if lat_ok and lon_ok:
        verdict += " The meta action is right; the failure is in how the plan executes it."
    else:
        wrong = [w for w, ok in (("lateral", lat_ok), ("longitudinal", lon_ok)) if not ok]
        verdict += f" The {' and '.join(wrong)} action{'s are' if len(wrong) == 2 else ' is'} wrong."
    return MetaActionAnalysis(
        predicted=predicted,
        predicted_from=source,
        expected=expected,
        lateral_correct=lat_ok,
        longitudinal_correct=lon_ok,
        verdict=verdict,
    )


def _words(meta: MetaAction) -> str:
    return f"{meta.lateral.replace('_', ' ')} + {meta.longitudinal.replace('_', ' ')}"


# ------------------------------------------------------------------------------ (2) reasoning ---


def reasoning_analysis(
    facts: SceneFacts, paths: list[np.ndarray], conflict_ids: list[str], request: DiagnosisRequest
) -> ReasoningAnalysis:
    first = [i for i in (facts.index_of(c) for c in conflict_ids) if i is not None]
    refs = [facts.object_ref(i) for i in key_objects(facts, paths, first)]
    reds = red_lights_ahead(facts)
    think = request.think
    if think is None:
        names = ", ".join(_name(r) for r in refs) or "no object"
        return ReasoningAnalysis(
            key_objects=refs,
            judgements=[],
            missed_red_light=False,
            verdict=f"No reasoning was given. It should have covered: {names}"
            + ("; the red light ahead." if reds else "."),
        )
    mentions = [(TYPE_WORDS[m[1].lower()], float(m[2]), m[3].lower()) for m in _MENTION.finditer(think)]
    judgements = [j for j in (_judge(r, mentions) for r in refs) if j is not None]
    missed_red = bool(reds) and "red light" not in think.lower()
    if not judgements and not missed_red:
        verdict = "The reasoning names the key objects correctly; the failure lies in the plan itself."
    else:
        parts = [j.detail for j in judgements[:3]]
        if missed_red:
            parts.append("it ignores the red light ahead")
        verdict = "The reasoning is flawed: " + "; ".join(parts) + "."
    return ReasoningAnalysis(
        key_objects=refs, judgements=judgements, missed_red_light=missed_red, verdict=verdict
    )


def _judge(ref: ObjectRef, mentions: list[tuple[str, float, str]]) -> ObjectJudgement | None:
    same_type = [m for m in mentions if m[0] == ref.type]
    if not same_type:
        return ObjectJudgement(object=ref, issue="missed", detail=f"it does not mention {_name(ref)}")
    kind, dist, rest = min(same_type, key=lambda m: abs(m[1] - ref.distance_m))
    tolerance = max(3.0, 0.25 * ref.distance_m)
    if abs(dist - ref.distance_m) > tolerance:
        return ObjectJudgement(
            object=ref,
            issue="misjudged_distance",
            detail=f"it puts the {ref.type} at {dist:.0f} m, but {_name(ref)} is {ref.distance_m:.0f} m away",
        )
    said = [w for w in MOTION_WORDS.values() if w in rest]
    truth = MOTION_WORDS.get(ref.motion)
    if said and truth is not None and truth not in said:
        return ObjectJudgement(
            object=ref,
            issue="misjudged_motion",
            detail=f"it calls {_name(ref)} '{said[0]}', but it is {truth}",
        )
    return None


def _name(ref: ObjectRef) -> str:
    motion = {"same_direction": "moving ahead"}.get(ref.motion, ref.motion)
    return f"{ref.type.replace('_', ' ')} {ref.id} ({motion}, {ref.distance_m:.0f} m)"


# --------------------------------------------------------------------------------- (3) safety ---


def safety_analysis(
    facts: SceneFacts, fine: np.ndarray, request: DiagnosisRequest, failed: list[SubMetric]
) -> tuple[SafetyAnalysis, tuple[int, int] | None]:
    """The safety failures and the (agent index, step) of the main conflict (collision, else TTC)."""
    b = request.breakdown
    failures: list[SafetyFailure] = []
    conflict = None
    if "no_at_fault_collisions" in failed:
        found = _located(facts, b.collided_object_id, b.time_to_at_fault_collision_s)
        found = found or first_collision(facts, fine)
        conflict = found
        failures.append(
            _object_failure(facts, fine, "no_at_fault_collisions", b.no_at_fault_collisions, found)
        )
    if "time_to_collision_within_bound" in failed:
        found = ttc_object(facts, fine, b.time_to_ttc_infraction_s)
        conflict = conflict or found
        failures.append(
            _object_failure(
                facts, fine, "time_to_collision_within_bound", b.time_to_collision_within_bound, found
            )
        )
    if "drivable_area_compliance" in failed:
        failures.append(_offroad_failure(facts, fine, b.drivable_area_compliance))
    if "driving_direction_compliance" in failed:
        failures.append(_direction_failure(facts, fine, b.driving_direction_compliance))
    if "traffic_light_compliance" in failed:
        failures.append(_red_light_failure(facts, fine, b.traffic_light_compliance))
    return SafetyAnalysis(failures=failures), conflict


def _located(facts: SceneFacts, object_id: str | None, time_s: float | None) -> tuple[int, int] | None:
    index = facts.index_of(object_id)
    if index is None or time_s is None:
        return None
    return index, int(round(time_s / DT))


def _object_failure(
    facts: SceneFacts, fine: np.ndarray, metric: SubMetric, value: float, found: tuple[int, int] | None
) -> SafetyFailure:
    kind = SAFETY_KIND_OF[metric]
    what = "collides with" if kind == "collision" else "closes in on (time to collision < 0.9 s)"
    if found is None:
        return SafetyFailure(
            kind=kind, sub_metric=metric, value=value,
            explanation=f"The tracked plan {what} another road user ({metric} = {value:g}); keep more distance.",
        )  # fmt: skip
    index, step = found
    step = min(step, len(fine) - 1)
    at_t0, now = facts.object_ref(index), facts.object_ref(index, step)
    side = (
        side_of(fine, step, facts.tracks[index, step, :2])
        if np.isfinite(facts.tracks[index, step, 0])
        else None
    )
    t = step * DT
    explanation = (
        f"At {t:.1f} s your plan {what} {_name(at_t0)}"
        f"{f' with its {side}' if side else ''}, at ({now.x_m:.1f}, {now.y_m:.1f}) m in the ego frame "
        f"({metric} = {value:g})."
    )
    return SafetyFailure(
        kind=kind, sub_metric=metric, value=value, time_s=round(t, 2), object=at_t0,
        x_m=now.x_m, y_m=now.y_m, side=side, explanation=explanation,
    )  # fmt: skip


def _offroad_failure(facts: SceneFacts, fine: np.ndarray, value: float) -> SafetyFailure:
    metric: SubMetric = "drivable_area_compliance"
    found = offroad(facts, fine)
    if found is None:
        return SafetyFailure(
            kind="drivable_area", sub_metric=metric, value=value,
            explanation="The tracked plan leaves the drivable area (drivable_area_compliance = 0): "
            "follow the lane centre more closely.",
        )  # fmt: skip
    step, corner, side = found
    x, y = facts.to_local(corner)
    return SafetyFailure(
        kind="drivable_area", sub_metric=metric, value=value, time_s=round(step * DT, 2),
        x_m=round(float(x), 2), y_m=round(float(y), 2), side=side,
        explanation=f"At {step * DT:.1f} s the ego's {side} side leaves the drivable area at "
        f"({x:.1f}, {y:.1f}) m (drivable_area_compliance = 0).",
    )  # fmt: skip


def _direction_failure(facts: SceneFacts, fine: np.ndarray, value: float) -> SafetyFailure:
    metric: SubMetric = "driving_direction_compliance"
    found = wrong_way(facts, fine)
    if found is None:
        return SafetyFailure(
            kind="driving_direction", sub_metric=metric, value=value,
            explanation=f"The plan drives against the traffic direction ({metric} = {value:g}).",
        )  # fmt: skip
    step, lane_id = found
    x, y = facts.to_local(fine[step, :2])
    return SafetyFailure(
        kind="driving_direction", sub_metric=metric, value=value, time_s=round(step * DT, 2),
        x_m=round(float(x), 2), y_m=round(float(y), 2),
        explanation=f"From {step * DT:.1f} s the ego drives in lane {lane_id} against its direction "
        f"({metric} = {value:g}).",
    )  # fmt: skip


def _red_light_failure(facts: SceneFacts, fine: np.ndarray, value: float) -> SafetyFailure:
    metric: SubMetric = "traffic_light_compliance"
    found = red_light_crossing(facts, fine)
    if found is None:
        return SafetyFailure(
            kind="traffic_light", sub_metric=metric, value=value,
            explanation="The plan runs a red light (traffic_light_compliance = 0).",
        )  # fmt: skip
    step, lane_id, stop = found
    x, y = facts.to_local(stop)
    return SafetyFailure(
        kind="traffic_light", sub_metric=metric, value=value, time_s=round(step * DT, 2),
        x_m=round(float(x), 2), y_m=round(float(y), 2), side="front",
        explanation=f"At {step * DT:.1f} s the ego passes the red light of {lane_id} whose stop line is "
        f"{math.hypot(x, y):.1f} m ahead at ({x:.1f}, {y:.1f}) m.",
    )  # fmt: skip


# ----------------------------------------------------------------------------- (4) efficiency ---


def efficiency_analysis(
    facts: SceneFacts,
    plan: np.ndarray,
    expert: np.ndarray | None,
    request: DiagnosisRequest,
    failed: list[SubMetric],
) -> EfficiencyAnalysis:
    b = request.breakdown
    issues = []
    if "ego_progress" in failed:
        issue = _progress_issue(plan, expert, request)
        if issue is not None:
            issues.append(issue)
    if "comfort" in failed or "history_comfort" in failed:
        metric: SubMetric = "comfort" if "comfort" in failed else "history_comfort"
        issues.append(_comfort_issue(plan, facts.ego_speed, metric, getattr(b, metric)))
    for metric in ("lane_keeping", "extended_comfort"):
        if metric in failed:
            text = {
                "lane_keeping": "The plan stays more than 0.5 m off the lane centre for 2 s or longer.",
                "extended_comfort": "The plan is inconsistent with the previous frame's plan.",
            }[metric]
            issues.append(
                EfficiencyIssue(
                    kind=EFFICIENCY_KIND_OF[metric],
                    sub_metric=metric,
                    value=getattr(b, metric),
                    explanation=text,
                )
            )
    return EfficiencyAnalysis(issues=issues)


def _progress_issue(
    plan: np.ndarray, expert: np.ndarray | None, request: DiagnosisRequest
) -> EfficiencyIssue | None:
    b = request.breakdown
    measured, limit = b.candidate_progress_m, b.reference_progress_m
    if measured is None or limit is None:
        measured = float(np.hypot(*plan[-1, :2]))
        limit = float(np.hypot(*expert[-1, :2])) if expert is not None else None
    if limit is None or measured >= limit - 0.5:
        return None  # progress was masked by a failed multiplier, not lost
    return EfficiencyIssue(
        kind="progress", sub_metric="ego_progress", value=b.ego_progress, quantity="progress",
        measured=round(measured, 2), limit=round(limit, 2), unit="m",
        explanation=f"The plan covers {measured:.1f} m of the route in 4 s; {limit:.1f} m were possible "
        f"(ego_progress = {b.ego_progress:.2f}).",
    )  # fmt: skip


def _comfort_issue(plan: np.ndarray, ego_speed: float, metric: SubMetric, value: float) -> EfficiencyIssue:
    excess = comfort_excess(plan, ego_speed)
    if excess is None:
        return EfficiencyIssue(
            kind=EFFICIENCY_KIND_OF[metric], sub_metric=metric, value=value,
            explanation="The tracked motion exceeds a comfort bound: change speed and heading more gradually.",
        )  # fmt: skip
    name, measured, bound = excess
    unit = COMFORT_UNITS[name]
    return EfficiencyIssue(
        kind=EFFICIENCY_KIND_OF[metric], sub_metric=metric, value=value, quantity=name,
        measured=round(measured, 2), limit=bound, unit=unit,
        explanation=f"The {name.replace('_', ' ')} reaches {measured:.2f} {unit}, beyond the comfort bound "
        f"{bound:g} {unit}.",
    )  # fmt: skip
