"""Part (5) of the analytic diagnosis: numeric corrections that `apply_corrections` executes literally.

Lateral: the target path is the ground-truth (expert) path, continued along the lane it ends in; the
correction is the sideways distance from each failed pose to that path, measured along the failed
path's normal. Longitudinal: candidate speed profiles along the corrected path (the failed plan's own
timing, the expert's speeds, constant decelerations to a floor, gentle accelerations) are applied
literally and checked on the 0.1 s plan against every agent (box overlap with margins, NAVSIM's TTC
projection), red stop lines and the drivable area. The failed plan's timing is kept when it is safe and
progress was not the problem, else the expert's speeds when safe, else the safe profile with the most
progress, else the one whose first violation comes latest.

Simplified: the check runs on the plan, not on the LQR-tracked states the scorer simulates; the margins
cover the tracking lag. Plans that barely move have no path to attach lateral offsets to, so they get
longitudinal corrections only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from driving.geometry import global_to_local, lane_polygon, local_to_global, wrap_angle
from driving.roads import Path
from driving.scene import EGO_FRONT_LENGTH, MetaAction
from teacher_service.config import AnalyticTeacherConfig
from teacher_service.corrections import (
    MIN_PATH_M,
    PLAN_TIMES_S,
    apply_corrections,
    base_path,
    longitudinal_correction,
    plan_stations,
    speeds_of_plan,
    travel_distances,
)
from teacher_service.scene_facts import (
    SceneFacts,
    fine_speeds,
    offroad,
    overlaps,
    red_light_crossing,
    ttc_hits,
)
from teacher_service.schema import SPEED_KNOTS_S, Corrections, LateralCorrection

MIN_SHIFT_M = 0.2  # [m] smaller lateral corrections are left out
SAME_SPEED_MPS = 0.5  # [m/s] a plan this close to the expert's speeds at every knot keeps its own
MAX_SHIFT_M = 30.0  # [m] the schema's bound
CONTINUATION_M = 150.0  # [m] the target path runs on along its lane this far past the expert's end
DECELERATIONS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5)  # [m/s²] candidate profiles
FLOORS = (0.0, 0.25, 0.5, 0.75)  # fractions of the current speed kept after braking
ACCELERATIONS = (0.5, 1.0, 1.5, 2.0)  # [m/s²]
DEFAULT_SPEED_LIMIT = 15.0  # [m/s] where the ego's lane has none
BEHIND_COS = math.cos(math.radians(150.0))


@dataclass(frozen=True)
class Check:
    """A corrected plan checked against the scene: first violation step (None = safe) and progress."""

    first_bad_step: int | None
    progress_m: float
    what: str  # collision | ttc | red_light | offroad | ""

    @property
    def safe(self) -> bool:
        return self.first_bad_step is None


def check_plan(facts: SceneFacts, plan: np.ndarray, config: AnalyticTeacherConfig) -> Check:
    fine = facts.fine(plan)
    moving = fine_speeds(fine, facts.ego_speed) > 0.05
    hit = overlaps(fine, facts.tracks, config.safety_margin_m, config.lateral_margin_m) & moving[None]
    cx, cy, h = fine[:, 0], fine[:, 1], fine[:, 2]
    dx, dy = facts.tracks[:, : len(fine), 0] - cx[None], facts.tracks[:, : len(fine), 1] - cy[None]
    cos_rel = (dx * np.cos(h)[None] + dy * np.sin(h)[None]) / np.maximum(np.hypot(dx, dy), 1e-6)
    hit &= cos_rel > BEHIND_COS  # an agent closing in from behind is not the ego's fault
    events = [
        (_first(hit.any(axis=0)), "collision"),
        (_first(ttc_hits(facts, fine, margin=0.25).any(axis=0)), "ttc"),
    ]
    red = red_light_crossing(facts, fine)
    events.append((None if red is None else red[0], "red_light"))
    off = offroad(facts, fine)
    events.append((None if off is None else off[0], "offroad"))
    found = [(step, what) for step, what in events if step is not None]
    progress = float(plan_stations(plan)[-1])
    if not found:
        return Check(None, progress, "")
    step, what = min(found)
    return Check(step, progress, what)


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


# ---------------------------------------------------------------------------------- lateral ---


def target_path(facts: SceneFacts, expert: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(M, 2) local polyline: the expert path from the origin, continued along its final lane; and
    that lane's id (None when the expert ends on no lane in its direction)."""
    pts = np.vstack([np.zeros((1, 2)), expert[:, :2]])
    end_global = local_to_global(expert[-1], facts.origin)
    lane_id, continuation = _lane_continuation(facts, end_global)
    if continuation is None:
        h = float(expert[-1, 2])
        ahead = expert[-1, :2] + np.outer(np.arange(5.0, CONTINUATION_M, 5.0), [math.cos(h), math.sin(h)])
        return np.vstack([pts, ahead]), None
    local = facts.to_local(continuation)
    # join where the lane centre is comfortably ahead of the expert's end (no sideways jump)
    lead = max(10.0, 2.0 * _end_speed(expert))
    along = (local - expert[-1, :2]) @ np.array([math.cos(expert[-1, 2]), math.sin(expert[-1, 2])])
    return np.vstack([pts, local[along > lead]]), lane_id


def _end_speed(plan: np.ndarray) -> float:
    return float(np.hypot(*(plan[-1, :2] - plan[-2, :2]))) / 0.5


def _lane_continuation(facts: SceneFacts, end: np.ndarray) -> tuple[str | None, np.ndarray | None]:
    """The centreline (global) of the lane containing `end` (heading within 60°) from `end` on, followed
    through successor lanes (on-route ones first) for CONTINUATION_M."""
    scene = facts.scene
    point = shapely.Point(float(end[0]), float(end[1]))
    best = None
    for lane in scene.map.all_lanes():
        line = np.asarray(lane.centerline, dtype=np.float64)
        path = Path(line)
        s, d = path.project(np.array(end[0]), np.array(end[1]))
        _, _, h = path.pose(s)
        aligned = abs(float(wrap_angle(h - end[2]))) < math.pi / 3
        if aligned and 0.0 <= s <= path.length and lane_polygon(lane).buffer(0.3).contains(point):
            if best is None or abs(float(d)) < best[0]:
                best = (abs(float(d)), lane, path, float(s))
    if best is None:
        return None, None
    _, lane, path, s0 = best
    route = set(scene.map.route_roadblock_ids)
    route_lanes = {ln.id for rb in scene.map.all_roadblocks() if rb.id in route for ln in rb.lanes}
    parts = [path.point(np.arange(s0, path.length, 1.0))]  # 1 m apart
    total = float(len(parts[0]))
    current = lane
    while total < CONTINUATION_M and current.outgoing:
        nxt = sorted(current.outgoing, key=lambda i: i not in route_lanes)[0]
        current = scene.lane(nxt)
        line = np.asarray(current.centerline, dtype=np.float64)
        parts.append(line)
        total += float(np.hypot(*np.diff(line, axis=0).T).sum())
    return lane.id, np.concatenate(parts, axis=0)


def lateral_offsets(plan: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(8,) signed distance [m] (left positive) from each failed pose to the target polyline along the
    failed path's normal; by projection where the normal misses the polyline."""
    base = base_path(plan)
    stations = plan_stations(plan)[1:]
    x, y, h = base.pose(stations)
    a, b = target[:-1], target[1:]
    ab = b - a
    out = np.zeros(len(stations))
    tpath = Path(target)
    for i in range(len(stations)):
        p, n = np.array([x[i], y[i]]), np.array([-math.sin(h[i]), math.cos(h[i])])
        denom = n[0] * ab[:, 1] - n[1] * ab[:, 0]  # cross(n, ab)
        ap = a - p
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ap[:, 0] * ab[:, 1] - ap[:, 1] * ab[:, 0]) / denom  # along the normal
            u = (ap[:, 0] * n[1] - ap[:, 1] * n[0]) / denom  # along the segment
        ok = np.isfinite(t) & (u >= 0.0) & (u <= 1.0) & (np.abs(t) <= MAX_SHIFT_M)
        if ok.any():
            out[i] = t[ok][np.argmin(np.abs(t[ok]))]
        else:
            _, d = tpath.project(np.array(x[i]), np.array(y[i]))
            out[i] = -float(d)
    return np.clip(out, -MAX_SHIFT_M, MAX_SHIFT_M)


def lateral_correction(plan: np.ndarray, target: np.ndarray, lane_id: str | None) -> LateralCorrection | None:
    if plan_stations(plan)[-1] < MIN_PATH_M:
        return None
    offsets = np.round(lateral_offsets(plan, target), 2)
    big = np.abs(offsets) >= MIN_SHIFT_M
    if not big.any():
        return None
    first = int(np.argmax(big))
    peak = float(offsets[np.argmax(np.abs(offsets))])
    return LateralCorrection(
        direction="left" if peak > 0 else "right",
        start_s=float(PLAN_TIMES_S[first - 1]) if first > 0 else 0.0,
        offsets_m=[float(o) for o in offsets],
        target=f"the ground-truth path into lane {lane_id}" if lane_id else "the ground-truth path",
    )


# ----------------------------------------------------------------------------- longitudinal ---


def speed_candidates(facts: SceneFacts) -> list[tuple[str, np.ndarray]]:
    """(label, (4,) target speeds [m/s]): constant decelerations to a floor, gentle accelerations."""
    v0 = facts.ego_speed
    t = np.asarray(SPEED_KNOTS_S)
    out = []
    for a in DECELERATIONS:
        for floor in FLOORS:
            out.append((f"brake {a:g} m/s² to {floor * v0:.1f} m/s", np.maximum(v0 - a * t, floor * v0)))
    limit = _speed_limit(facts)
    for a in ACCELERATIONS:
        out.append((f"accelerate {a:g} m/s²", np.minimum(v0 + a * t, max(limit, v0))))
    out.append(("keep speed", np.full(4, v0)))
    return out


def _speed_limit(facts: SceneFacts) -> float:
    ego = np.array([facts.origin[0], facts.origin[1]])
    best = (math.inf, DEFAULT_SPEED_LIMIT)
    for lane in facts.scene.map.all_lanes():
        line = np.asarray(lane.centerline, dtype=np.float64)
        dist = float(np.min(np.hypot(line[:, 0] - ego[0], line[:, 1] - ego[1])))
        if dist < best[0] and lane.speed_limit_mps:
            best = (dist, lane.speed_limit_mps)
    return best[1]


@dataclass(frozen=True)
class Repair:
    corrections: Corrections
    check: Check  # of the corrected plan
    label: str  # which longitudinal candidate was chosen


def expert_speeds(expert: np.ndarray, initial_speed: float) -> np.ndarray:
    """(4,) knots [m/s] that reproduce the expert's distances best: its speeds read off by central
    differences, or the knots that hit its distance at every full second exactly (clipped at 0)."""
    target = plan_stations(expert)
    exact, previous = [], initial_speed
    for k in (2, 4, 6, 8):  # stations at 1, 2, 3, 4 s
        previous = max(2.0 * (target[k] - target[k - 2]) - previous, 0.0)
        exact.append(previous)
    options = [speeds_of_plan(expert, initial_speed), np.asarray(exact)]
    errors = [np.abs(travel_distances(initial_speed, o) - target[1:]).max() for o in options]
    return options[int(np.argmin(errors))]


def plan_corrections(
    facts: SceneFacts,
    plan: np.ndarray,
    expert: np.ndarray | None,
    meta_action: MetaAction | None,
    timing_failed: bool,
    conflict: tuple[int, int] | None,
    config: AnalyticTeacherConfig,
) -> Repair:
    """The corrections for `plan`. `timing_failed`: a failure the plan's speeds cause or share
    (collision, TTC, red light, comfort, too little progress); `conflict` is (agent index, step) of the
    main conflict, for the stop distance."""
    lateral = None
    if expert is not None:
        target, lane_id = target_path(facts, expert)
        lateral = lateral_correction(plan, target, lane_id)
    stop_m = _stop_distance(facts, plan, conflict)
    v0 = facts.ego_speed

    def attempt(label: str, speeds: np.ndarray | None) -> Repair:
        lon = None if speeds is None else longitudinal_correction(v0, speeds, "", stop_m)
        corr = Corrections(meta_action=meta_action, lateral=lateral, longitudinal=lon)
        return Repair(corr, check_plan(facts, apply_corrections(plan, corr), config), label)

    keep = attempt("keep speeds", None)
    if expert is not None:
        speeds = expert_speeds(expert, v0)
        ground_truth = attempt("expert", speeds)
        if ground_truth.check.safe:
            similar = np.abs(speeds_of_plan(plan, v0) - speeds).max() < SAME_SPEED_MPS
            if keep.check.safe and similar and not timing_failed and lateral is not None:
                return keep  # the speeds were right: only the path changes
            return _with_reason(ground_truth, stop_m)
    if keep.check.safe and not timing_failed and lateral is not None:
        return keep
    tried = [keep]
    candidates = speed_candidates(facts)
    candidates.sort(key=lambda c: -travel_distances(v0, c[1])[-1])
    for label, speeds in candidates:
        result = attempt(label, speeds)
        if result.check.safe:
            return _with_reason(result, stop_m)
        tried.append(result)
    # nothing is safe: the latest first violation, then the least distance (the most caution)
    return _with_reason(max(tried, key=lambda r: (r.check.first_bad_step or 0, -r.check.progress_m)), stop_m)


def _with_reason(repair: Repair, stop_m: float | None) -> Repair:
    lon = repair.corrections.longitudinal
    if lon is None:
        return repair
    head = "the ground-truth speeds" if repair.label == "expert" else repair.label
    if repair.check.safe:
        reason = f"{head}: clear of every object along the corrected path"
    else:
        when = (repair.check.first_bad_step or 0) * 0.1
        reason = (
            f"{head}: no fully safe profile; this one delays the first {repair.check.what} to {when:.1f} s"
        )
    if stop_m is not None:
        reason += f"; the conflict point is {stop_m:.1f} m ahead along the path"
    lon = lon.model_copy(update={"reason": reason})
    return Repair(repair.corrections.model_copy(update={"longitudinal": lon}), repair.check, repair.label)


def _stop_distance(facts: SceneFacts, plan: np.ndarray, conflict: tuple[int, int] | None) -> float | None:
    """[m] how far the rear axle may travel along the failed path before the ego's front reaches the
    conflicting object's near end at the conflict time."""
    if conflict is None:
        return None
    index, step = conflict
    row = facts.tracks[index, min(step, facts.tracks.shape[1] - 1)]
    if not np.isfinite(row[0]):
        return None
    local = global_to_local(row[None, :3], facts.origin)[0]
    s, _ = base_path(plan).project(np.array(local[0]), np.array(local[1]))
    return max(float(s) - float(row[5]) - EGO_FRONT_LENGTH, 0.0)
