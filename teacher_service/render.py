"""The feedback text that goes into q_fb: a diagnosis rendered as five short sections, or rule-based
positive feedback for a correct response (score >= the threshold s).

Numbers are written with fixed precision so the same diagnosis always renders the same text (prompts
are cached by text). The corrections section gives the numbers `apply_corrections` executes, so a
student that follows the text literally writes the corrected plan.
"""

from __future__ import annotations

from driving.scene import MetaAction
from teacher_service.schema import (
    SCORED_METRICS,
    SPEED_KNOTS_S,
    Corrections,
    Diagnosis,
    EfficiencyAnalysis,
    MetaActionAnalysis,
    ReasoningAnalysis,
    SafetyAnalysis,
    ScoreBreakdown,
)

SHORT_NAMES = {
    "no_at_fault_collisions": "no collision",
    "drivable_area_compliance": "drivable area",
    "driving_direction_compliance": "driving direction",
    "traffic_light_compliance": "traffic lights",
    "time_to_collision_within_bound": "time to collision",
    "ego_progress": "progress",
    "comfort": "comfort",
    "lane_keeping": "lane keeping",
    "history_comfort": "history comfort",
    "extended_comfort": "extended comfort",
}


def render_feedback(diagnosis: Diagnosis) -> str:
    """The 5-part feedback text for a wrong response."""
    failed = ", ".join(SHORT_NAMES[m] for m in diagnosis.failed_metrics) or "none"
    lines = [f"Your previous answer failed. Failed sub-metrics: {failed}."]
    if diagnosis.meta_action is not None:
        lines.append("1. Meta action: " + _meta(diagnosis.meta_action))
    if diagnosis.reasoning is not None:
        lines.append("2. Reasoning: " + _reasoning(diagnosis.reasoning))
    lines.append("3. Safety: " + _safety(diagnosis.safety))
    lines.append(
        "4. Efficiency: " + _efficiency(diagnosis.efficiency, "ego_progress" in diagnosis.failed_metrics)
    )
    lines.append("5. Corrections: " + _corrections(diagnosis.corrections))
    return "\n".join(lines)


def _meta(m: MetaActionAnalysis) -> str:
    return m.verdict


def _reasoning(r: ReasoningAnalysis) -> str:
    return r.verdict


def _safety(s: SafetyAnalysis) -> str:
    if not s.failures:
        return "no safety failure."
    return " ".join(f.explanation for f in s.failures)


def _efficiency(e: EfficiencyAnalysis, progress_failed: bool) -> str:
    if not e.issues:
        if progress_failed:
            return "progress is scored 0 only because of the safety failure; otherwise no efficiency failure."
        return "no efficiency failure."
    return " ".join(i.explanation for i in e.issues)


def _corrections(c: Corrections) -> str:
    parts = []
    if c.meta_action is not None:
        parts.append(f"state the meta action {_action(c.meta_action)}.")
    if c.lateral is not None:
        offsets = ", ".join(f"{o:+.2f}" for o in c.lateral.offsets_m)
        parts.append(
            f"Lateral: shift {c.lateral.direction} from {c.lateral.start_s:.1f} s toward {c.lateral.target or 'the target'}; "
            f"offsets from your poses at 0.5-4 s: {offsets} m (left positive)."
        )
    else:
        parts.append("Lateral: keep your path.")
    lon = c.longitudinal
    if lon is not None:
        speeds = ", ".join(f"{v:.1f}" for v in lon.target_speeds_mps)
        knots = "/".join(f"{t:g}" for t in SPEED_KNOTS_S)
        text = f"Longitudinal: {lon.action.replace('_', ' ')}; from {lon.initial_speed_mps:.1f} m/s to {speeds} m/s at {knots} s"
        if lon.stop_before_m is not None and lon.action in ("stop", "decelerate"):
            text += f", staying behind the conflict point {lon.stop_before_m:.1f} m ahead"
        parts.append(text + ".")
    else:
        parts.append("Longitudinal: keep your timing.")
    return " ".join(parts)


def _action(meta: MetaAction) -> str:
    return f"{meta.lateral},{meta.longitudinal}"


def positive_feedback(breakdown: ScoreBreakdown, meta_action: MetaAction | None = None) -> str:
    """Rule-based feedback for a correct response: what it got right, and its weakest sub-metric."""
    name = breakdown.metric.upper()
    ok = [SHORT_NAMES[m] for m in _scored(breakdown) if getattr(breakdown, m) >= 1.0]
    text = f"Your previous answer is correct ({name} {breakdown.score:.2f})."
    if ok:
        text += f" It is fully compliant on: {', '.join(ok)}."
    weak = [(getattr(breakdown, m), m) for m in _scored(breakdown) if getattr(breakdown, m) < 1.0]
    if weak:
        value, metric = min(weak)
        text += f" The one thing to improve is {SHORT_NAMES[metric]} ({value:.2f})."
    if meta_action is not None:
        text += f" Keep the meta action {_action(meta_action)}."
    return text + " Keep this driving behaviour."


def _scored(breakdown: ScoreBreakdown) -> tuple[str, ...]:
    return SCORED_METRICS[breakdown.metric]
