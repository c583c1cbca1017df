"""The correction check: apply a diagnosis's corrections literally to the failed plan.

A path-velocity split: the lateral correction bends the failed plan's *path* (its offsets are attached
to the failed plan's poses, i.e. to arc lengths along its path; past the last pose the path runs on
along the last pose's heading), the longitudinal correction re-times the ego along the bent path (speeds
linear between knots at 0, 1, 2, 3, 4 s). With no longitudinal correction the ego keeps the failed
plan's speeds: pose i is as far along the bent path as the failed pose i was along its own.
Headings of the result follow the bent path's tangent. Nothing here knows the scene: whatever a teacher
says is applied as written, so a wrong diagnosis gives a worse plan.
"""

from __future__ import annotations

import numpy as np

from driving.geometry import wrap_angle
from driving.roads import Path
from driving.scene import NUM_PLAN_POSES, POSE_INTERVAL_S
from teacher_service.schema import SPEED_KNOTS_S, Corrections, LateralCorrection, LongitudinalCorrection

PLAN_TIMES_S = POSE_INTERVAL_S * np.arange(1, NUM_PLAN_POSES + 1)  # (8,) [s]
MIN_PATH_M = 0.5  # [m] a plan shorter than this is a standstill: its path is the ego's heading line
EXTEND_M = 200.0  # [m] the path is extended this far past the plan's end (speeds may exceed the plan's)
GRID_M = 0.5  # [m] station spacing of the bent path
MAX_STOP_M = 500.0  # [m] a conflict point farther along the path than this is not worth naming


def travel_distances(initial_speed: float, target_speeds: np.ndarray | list[float]) -> np.ndarray:
    """(8,) distance [m] travelled at t = 0.5 ... 4 s with the speed linear between (0 s, initial) and
    the knots at 1, 2, 3, 4 s. Exact: the speed is linear on each 0.5 s step."""
    knots_t = np.concatenate([[0.0], SPEED_KNOTS_S])
    knots_v = np.concatenate([[initial_speed], np.asarray(target_speeds, dtype=np.float64)])
    t = np.concatenate([[0.0], PLAN_TIMES_S])
    v = np.interp(t, knots_t, knots_v)
    return np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))


def plan_stations(plan: np.ndarray) -> np.ndarray:
    """(9,) arc length [m] of the origin and the 8 plan positions along the plan's polyline."""
    pts = np.vstack([np.zeros((1, 2)), np.asarray(plan, dtype=np.float64)[:, :2]])
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])


def base_path(plan: np.ndarray) -> Path:
    """The failed plan's path from the origin, continued EXTEND_M along its last pose's heading; a
    standstill plan's path is the line along that heading."""
    plan = np.asarray(plan, dtype=np.float64)
    h = float(plan[-1, 2])
    moving = plan_stations(plan)[-1] >= MIN_PATH_M
    end = plan[-1, :2] if moving else np.zeros(2)
    beyond = end + EXTEND_M * np.array([np.cos(h), np.sin(h)])
    return Path(np.vstack([np.zeros((1, 2)), plan[:, :2] if moving else np.zeros((0, 2)), beyond]))


def bent_path(plan: np.ndarray, lateral: LateralCorrection | None) -> Path:
    """The failed plan's path shifted sideways by the lateral correction's offsets."""
    base = base_path(plan)
    if lateral is None:
        return base
    stations = plan_stations(plan)
    grid = np.arange(0.0, base.length, GRID_M)
    knots = stations + 1e-6 * np.arange(len(stations))  # strictly increasing for a standstill plan
    offsets = np.interp(grid, knots, np.concatenate([[0.0], lateral.offsets_m]))
    return Path(base.point(grid, offsets))


def apply_corrections(plan: np.ndarray, corrections: Corrections) -> np.ndarray:
    """(8, 3) corrected plan in the ego frame. Corrections with neither part give the plan back."""
    plan = np.asarray(plan, dtype=np.float64)
    lateral, longitudinal = corrections.lateral, corrections.longitudinal
    if lateral is None and longitudinal is None:
        return plan.copy()
    if longitudinal is not None:
        along = travel_distances(longitudinal.initial_speed_mps, longitudinal.target_speeds_mps)
    else:
        along = plan_stations(plan)[1:]  # the plan's own distance travelled at each pose
    x, y, h = bent_path(plan, lateral).pose(along)
    return np.stack([x, y, wrap_angle(h)], axis=-1)


def speeds_of_plan(plan: np.ndarray, initial_speed: float) -> np.ndarray:
    """(4,) the plan's own speed [m/s] at 1, 2, 3, 4 s (central differences of arc length)."""
    s = plan_stations(plan)  # at 0, 0.5, ..., 4 s
    t = np.concatenate([[0.0], PLAN_TIMES_S])
    v = np.gradient(s, t)
    v[0] = initial_speed
    return np.maximum(np.interp(SPEED_KNOTS_S, t, v), 0.0)


def longitudinal_correction(
    initial_speed: float, targets: np.ndarray, reason: str = "", stop_before_m: float | None = None
) -> LongitudinalCorrection:
    """A LongitudinalCorrection with the action word read off the profile (±1 m/s, stop below 0.5 m/s)."""
    targets = np.clip(np.round(np.asarray(targets, dtype=np.float64), 2), 0.0, 60.0)
    v_end = float(targets[-1])
    if v_end < 0.5:
        action = "stop"
    elif v_end > initial_speed + 1.0:
        action = "accelerate"
    elif v_end < initial_speed - 1.0 or targets.min() < initial_speed - 2.0:
        action = "decelerate"
    else:
        action = "keep_speed"
    return LongitudinalCorrection(
        action=action,
        initial_speed_mps=round(max(initial_speed, 0.0), 2),
        target_speeds_mps=[float(v) for v in targets],
        stop_before_m=None
        if stop_before_m is None or stop_before_m > MAX_STOP_M
        else round(max(stop_before_m, 0.0), 2),
        reason=reason,
    )
