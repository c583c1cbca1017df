"""SFT samples made from scenes: stage 1 driving-knowledge QA, stage 2 q_base -> ground truth and
q_fb -> ground truth.

This is the one learner module that reads scenes (DESIGN keeps `learner/` scene-free; the issue puts SFT
data here): everything it derives comes from the scene JSON through `driving`, `scorer` and the analytic
teacher, and leaves as (prompt, target text) pairs.

Stage 1 (the paper's driving-knowledge pre-training, here four generated questions per scene):
  * drivable area: how far the road is drivable straight ahead and to each side of the ego [m]
  * road shape: which way and how far the lane ahead bends over the next 4 s (only the image shows it)
  * nearest objects: up to 3 road users within 60 m, with type, distance, bearing and motion
  * what to do: the meta action and the ground-truth think that justifies it
Stage 2 feedback samples (q_fb -> ground truth): the ground-truth plan is perturbed into a failing one
(faster, slower, drifting sideways, wrong curvature, or constant velocity), scored with PDMS, kept only if
it fails (score < s = 0.8), diagnosed by the analytic teacher and rendered into the feedback text. The
previous answer in q_fb is that failing plan with a think consistent with it, as the student would write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from PIL import Image

from actors.prompts import ChatTurn, Prompt, build_base_prompt, build_feedback_prompt
from actors.response import (
    derive_meta_action,
    format_number,
    ground_truth_plan,
    ground_truth_response,
    render_response,
    road_phrase,
    scene_think,
    wrap_poses,
)
from driving.geometry import drivable_area, ego_origin, points_local_to_global, trajectory_local
from driving.scene import Scene
from learner.config import QA_QUESTIONS

FAIL_BELOW = 0.8  # the paper's threshold s: a plan scoring below it is wrong
AHEAD_RANGE_M = 80.0  # [m] drivable distance is reported up to this
SIDE_RANGE_M = 15.0  # [m]
OBJECT_RANGE_M = 60.0  # [m]
MAX_OBJECTS = 3


@dataclass(frozen=True, eq=False)
class SFTSample:
    prompt: Prompt
    target: str  # the answer text (the EOS token is appended when encoding)
    kind: str  # "qa" | "base" | "fb"


# ------------------------------------------------------------------------------- stage 1: QA ---


def _qa_prompt(scene: Scene, image: Image.Image | None, question: str) -> Prompt:
    text = f"Speed {format_number(scene.ego.vx)} m/s.\nQuestion: {question}"
    return Prompt(
        scene_id=scene.id or "", kind="base", turns=(ChatTurn("user", text, image is not None),), image=image
    )


def drivable_extent(scene: Scene) -> tuple[float, float, float]:
    """[m] how far the drivable area reaches from the ego's rear axle straight ahead, to the left and to
    the right (along the ego's axes, sampled every 0.5 m / 0.25 m, capped at the ranges above)."""
    area = drivable_area(scene)
    origin = ego_origin(scene.ego)

    def reach(direction: tuple[float, float], limit: float, step: float) -> float:
        d = np.arange(step, limit + step, step)
        local = np.stack([d * direction[0], d * direction[1]], axis=-1)
        xy = points_local_to_global(local, origin)
        inside = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        out = np.flatnonzero(~inside)
        return float(d[out[0]] - step) if len(out) else limit

    return (
        reach((1.0, 0.0), AHEAD_RANGE_M, 0.5),
        reach((0.0, 1.0), SIDE_RANGE_M, 0.25),
        reach((0.0, -1.0), SIDE_RANGE_M, 0.25),
    )


def _bearing(x: float, y: float) -> str:
    angle = math.degrees(math.atan2(y, x))
    if abs(angle) <= 15.0:
        return "ahead"
    if abs(angle) <= 60.0:
        return "ahead left" if angle > 0 else "ahead right"
    if abs(angle) <= 120.0:
        return "left" if angle > 0 else "right"
    return "behind"


def nearest_objects(scene: Scene) -> str:
    """`vehicle 14 m ahead slower; pedestrian 22 m ahead right crossing` or `none within 60 m`."""
    from teacher_service.scene_facts import SceneFacts

    facts = SceneFacts.of(scene)
    refs = sorted((facts.object_ref(i) for i in range(len(scene.agents))), key=lambda r: r.distance_m)
    words = {"same_direction": "same speed", "static": "static"}
    phrases = [
        f"{r.type.replace('_', ' ')} {round(r.distance_m)} m {_bearing(r.x_m, r.y_m)} {words.get(r.motion, r.motion)}"
        for r in refs
        if r.distance_m <= OBJECT_RANGE_M
    ][:MAX_OBJECTS]
    return "; ".join(phrases) if phrases else f"none within {OBJECT_RANGE_M:g} m"


def qa_samples(
    scene: Scene, image: Image.Image | None, questions: Sequence[str] = QA_QUESTIONS
) -> list[SFTSample]:
    """The driving-knowledge questions of a scene (`questions`, of `QA_QUESTIONS`) with their generated
    answers, in that order; `action` is left out of a scene without ground truth. A repeated question
    repeats its sample (answered once)."""
    made = {q: _qa_sample(scene, image, q) for q in dict.fromkeys(questions)}
    return [sample for q in questions if (sample := made[q]) is not None]


def _qa_sample(scene: Scene, image: Image.Image | None, question: str) -> SFTSample | None:
    if question == "drivable":
        ahead, left, right = drivable_extent(scene)
        text, answer = (
            "How far is the road drivable ahead and to each side?",
            f"drivable {ahead:.0f} m ahead, {left:.1f} m left, {right:.1f} m right.",
        )
    elif question == "road":
        text, answer = "Which way does the road go ahead?", road_phrase(scene) + "."
    elif question == "objects":
        text, answer = "Which road users are nearest, and how far?", nearest_objects(scene) + "."
    elif question == "action":
        if scene.sample is None:
            return None
        _, meta = ground_truth_plan(scene)
        text, answer = (
            "What should the ego do now?",
            f"{meta.lateral},{meta.longitudinal}: {scene_think(scene, meta)}",
        )
    else:
        raise ValueError(f"QA question {question!r}: use one of {', '.join(QA_QUESTIONS)}")
    return SFTSample(_qa_prompt(scene, image, text), answer, "qa")


# ------------------------------------------------------------------------------ stage 2 ---


def base_sample(scene: Scene, image: Image.Image | None) -> SFTSample:
    return SFTSample(build_base_prompt(scene, image), ground_truth_response(scene), "base")


def _speed_scaled(plan: np.ndarray, factor: float) -> np.ndarray:
    """The same path driven `factor` times as far in 4 s (poses re-sampled along the path)."""
    pts = np.vstack([np.zeros((1, 3)), plan])
    station = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts[:, :2], axis=0).T))])
    target = np.clip(station[1:] * factor, 0.0, None)
    # past the end of the path: extend straight along the last heading
    extra = np.clip(target - station[-1], 0.0, None)
    inside = np.minimum(target, station[-1])
    out = np.stack([np.interp(inside, station, pts[:, k]) for k in range(3)], axis=-1)
    out[:, 0] += extra * np.cos(out[:, 2])
    out[:, 1] += extra * np.sin(out[:, 2])
    return out


def _lateral_drift(plan: np.ndarray, offset_m: float) -> np.ndarray:
    """A drift sideways growing linearly to `offset_m` at 4 s [m, left positive]."""
    out = plan.copy()
    t = np.arange(1, len(plan) + 1) / len(plan)
    out[:, 1] += offset_m * t
    out[:, 2] += math.atan2(offset_m, max(1.0, float(np.hypot(*plan[-1, :2]))))
    return out


def _constant_velocity(scene: Scene) -> np.ndarray:
    from driving.baselines import constant_velocity_plan

    return constant_velocity_plan(scene.ego)


PERTURBATIONS: dict[str, Callable[[Scene, np.ndarray, np.random.Generator], np.ndarray]] = {
    "too_fast": lambda s, p, rng: _speed_scaled(p, rng.uniform(1.3, 1.8)),
    "too_slow": lambda s, p, rng: _speed_scaled(p, rng.uniform(0.2, 0.6)),
    "drift": lambda s, p, rng: _lateral_drift(p, rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 5.0)),
    "constant_velocity": lambda s, p, rng: _constant_velocity(s),
}


def failing_plan(scene: Scene, rng: np.random.Generator, tries: int = 4) -> tuple[np.ndarray, dict] | None:
    """A perturbed ground-truth plan that scores below FAIL_BELOW, with its scorer result dict."""
    from scorer import prepare, score

    assert scene.sample is not None
    expert = wrap_poses(trajectory_local(scene.sample.expert, scene.ego))
    names = list(PERTURBATIONS)
    plans = [
        wrap_poses(PERTURBATIONS[names[rng.integers(len(names))]](scene, expert, rng)) for _ in range(tries)
    ]
    batch = score(prepare(scene), np.stack(plans), "pdms")
    for i in np.argsort(batch.total):
        if batch.total[i] < FAIL_BELOW:
            return plans[i], batch.result(int(i))
    return None


def feedback_sample(scene: Scene, image: Image.Image | None, rng: np.random.Generator) -> SFTSample | None:
    """q_fb (q_base, a failing answer, the analytic teacher's feedback) -> the ground-truth answer; None if
    no perturbation made the plan fail."""
    from teacher_service.analytic import AnalyticTeacher
    from teacher_service.render import render_feedback
    from teacher_service.schema import DiagnosisRequest, ScoreBreakdown

    found = failing_plan(scene, rng)
    if found is None:
        return None
    plan, result = found
    meta = derive_meta_action(plan, scene.ego.vx)
    think = scene_think(scene, meta)
    previous = render_response(think, meta, plan)
    request = DiagnosisRequest(
        scene_id=scene.id or "scene",
        scene=scene,
        plan=plan.tolist(),
        breakdown=ScoreBreakdown.from_scorer(result, "pdms"),
        think=think,
        meta_action=meta,
    )
    feedback = render_feedback(AnalyticTeacher().diagnose_one(request))
    prompt = build_feedback_prompt(build_base_prompt(scene, image), previous, feedback)
    return SFTSample(prompt, ground_truth_response(scene), "fb")
