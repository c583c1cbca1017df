"""Plans to 10 Hz states, with NAVSIM's interpolation arithmetic.

NAVSIM puts the initial ego state in front of the 8 plan poses (a nuPlan `InterpolatedTrajectory`) and
samples it every 0.1 s with scipy's `interp1d`; headings are unwrapped first and wrapped to [-π, π)
afterwards. `interp_linear` repeats scipy's formula (left neighbour from `searchsorted(side="left")`), so
values at the knots carry the same rounding as NAVSIM's. Times are integer microseconds, as in nuPlan.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scorer.constants import DT, NUM_STATES

TWO_PI = 2.0 * np.pi


def normalize_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap to [-π, π] with atan2 (NAVSIM's `normalize_angle`)."""
    return np.arctan2(np.sin(angle), np.cos(angle))


@njit(cache=True, error_model="numpy")
def wrap_angle(angle: float) -> float:
    """`normalize_angle` of one angle, for compiled code (the C library's sin, cos and atan2)."""
    return np.arctan2(np.sin(angle), np.cos(angle))


def principal_value(angle: np.ndarray) -> np.ndarray:
    """Wrap to [-π, π) (nuPlan's `principal_value`)."""
    return (angle + np.pi) % TWO_PI - np.pi


def interp_linear(xp: np.ndarray, fp: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy `interp1d(xp, fp, axis=-2)(x)`: xp (N,) sorted, fp (..., N, D), x (M...) -> (..., M..., D)
    (one of fp's leading dimensions and x's dimensions must be empty)."""
    hi = np.minimum(np.maximum(np.searchsorted(xp, x, side="left"), 1), len(xp) - 1)
    lo = hi - 1
    slope = (fp[..., hi, :] - fp[..., lo, :]) / (xp[hi] - xp[lo])[..., None]
    return slope * (x - xp[lo])[..., None] + fp[..., lo, :]


def sample_times_us(num_states: int = NUM_STATES) -> np.ndarray:
    """(T,) query times [µs] of the 10 Hz samples, as NAVSIM's `get_trajectory_as_array` (start time 0)."""
    times_s = np.arange(0.0, (num_states - 1) * DT + DT, DT)[:num_states]
    return np.array([int(t * 1e6) for t in times_s], dtype=np.float64)


def local_to_global(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """(..., 3) poses relative to `origin` (3,) -> global, as nuPlan's matrix composition."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    cp, sp = np.cos(poses[..., 2]), np.sin(poses[..., 2])
    out = np.empty(poses.shape, dtype=np.float64)
    out[..., 0] = c * poses[..., 0] + -s * poses[..., 1] + origin[0]
    out[..., 1] = s * poses[..., 0] + c * poses[..., 1] + origin[1]
    out[..., 2] = np.arctan2(s * cp + c * sp, c * cp + -s * sp)
    return out


def global_to_local(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """(..., 3) global poses -> relative to `origin` (3,)."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = poses[..., 0] - origin[0], poses[..., 1] - origin[1]
    out = np.empty(poses.shape, dtype=np.float64)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    out[..., 2] = normalize_angle(poses[..., 2] - origin[2])
    return out


def plan_to_poses(origin: np.ndarray, local_poses: np.ndarray, interval: float) -> np.ndarray:
    """(K, N, 3) plan poses in the ego frame, one every `interval` s -> (K, 41, 3) global poses at 10 Hz.

    The knots are the ego pose at t = 0 and the plan poses; samples beyond the last knot are clamped to
    it (NAVSIM clips the query times to the trajectory's end)."""
    k, n, _ = local_poses.shape
    knots = np.empty((k, n + 1, 3), dtype=np.float64)
    knots[:, 0] = origin
    knots[:, 1:] = local_to_global(origin, local_poses)
    knot_us = np.array([0.0] + [float(int((i + 1) * interval * 1e6)) for i in range(n)])
    query_us = np.minimum(sample_times_us(), knot_us[-1])
    knots[..., 2] = np.unwrap(knots[..., 2], axis=-1)
    out = interp_linear(knot_us, knots, query_us)
    out[..., 2] = principal_value(out[..., 2])
    return out
