"""Comfort (v1) and history comfort (v2): NAVSIM's `ego_is_comfortable` on 10 Hz states.

Every quantity is a Savitzky–Golay filter of one state column, which for a fixed length is a linear map.
`savgol_matrix` builds that map once per (length, window, order, derivative) with scipy's `mode="interp"`
conventions (edge windows fitted by a polynomial, even windows evaluated half a step to the right), so a
batch of trajectories is filtered by one (stacked) matrix product. NAVSIM's choices are kept as they are: the
acceleration and its magnitude use windows of the full length, the jerks differentiate an acceleration
smoothed with a window of 8, and the yaw rate and yaw acceleration use a window of 5 whatever length is
asked for. Values are rounded to 8 decimals before the strict bound checks.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from scorer.constants import DT, S

MAX_ABS_JERK = 8.37  # [m/s³]
MAX_ABS_LAT_ACCEL = 4.89  # [m/s²]
MAX_LON_ACCEL = 2.40  # [m/s²]
MIN_LON_ACCEL = -4.05  # [m/s²]
MAX_ABS_YAW_ACCEL = 1.93  # [rad/s²]
MAX_ABS_LON_JERK = 4.13  # [m/s³]
MAX_ABS_YAW_RATE = 0.95  # [rad/s]
DECIMALS = 8


def _poly_row(t: float, order: int, deriv: int) -> np.ndarray:
    """Row evaluating the `deriv`-th derivative of a polynomial (coefficients low to high) at t."""
    row = np.zeros(order + 1)
    for k in range(deriv, order + 1):
        row[k] = math.factorial(k) / math.factorial(k - deriv) * t ** (k - deriv)
    return row


@lru_cache(maxsize=64)
def savgol_matrix(n: int, window: int, order: int, deriv: int, delta: float) -> np.ndarray:
    """(n, n) M with savgol_filter(x, window, order, deriv, delta, mode="interp") == M @ x."""
    window = min(window, n)
    half = window // 2
    fit = np.linalg.pinv(np.arange(window, dtype=float)[:, None] ** np.arange(order + 1)[None, :])
    mat = np.zeros((n, n))
    for i in range(n):
        if i < half:
            start, t = 0, float(i)
        elif i >= n - half:
            start, t = n - window, float(i - (n - window))
        else:
            start = i - half + (1 - window % 2)
            t = half - 0.5 if window % 2 == 0 else float(half)
        mat[i, start : start + window] = _poly_row(t, order, deriv) @ fit / delta**deriv
    return mat


@lru_cache(maxsize=64)
def _time_step(n: int) -> float:
    """NAVSIM's filter time step for n samples: the mean of their 0.1 s spacings."""
    return float(np.diff(np.arange(n, dtype=float) * DT).mean())


def _filter(values: np.ndarray, window: int, order: int, deriv: int = 0) -> np.ndarray:
    """Savitzky–Golay filter along the last axis of (..., n) values, NAVSIM's time step, rounded. One
    matrix-vector product per row (a stacked matmul: BLAS gemv per row), so a trajectory's result does not
    depend on the others in its batch."""
    n = values.shape[-1]
    mat = savgol_matrix(n, window, order, deriv, _time_step(n))
    return np.round(np.matmul(mat, values[..., None])[..., 0], DECIMALS)


def _within(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return ((values > low) & (values < high)).all(axis=-1)


def _unwrap_phase(headings: np.ndarray) -> np.ndarray:
    two_pi = 2.0 * np.pi
    adjust = np.zeros_like(headings)
    adjust[..., 1:] = np.cumsum(np.round(np.diff(headings, axis=-1) / two_pi), axis=-1)
    return headings - two_pi * adjust


CHECKS = ("lon_accel", "lat_accel", "jerk", "lon_jerk", "yaw_accel", "yaw_rate")  # NAVSIM's order


def comfort_checks(states: np.ndarray) -> np.ndarray:
    """(K, n, 11) states at 10 Hz -> (K, 6) bool, one column per bound (CHECKS), True = within bounds.
    Signals that go through the same filter are filtered in one call."""
    n = states.shape[1]
    ax, ay = states[..., S.AX], states[..., S.AY]
    headings = _unwrap_phase(states[..., S.HEADING])
    lon_lat = _filter(np.stack([ax, ay]), n, 2)  # (2, K, n)
    smoothed = _filter(np.stack([np.hypot(ax, ay), ax]), 8, 2)
    jerks = _filter(smoothed, n, 2, deriv=1)  # (2, K, n): jerk magnitude, longitudinal jerk
    return np.stack(
        [
            _within(lon_lat[0], MIN_LON_ACCEL, MAX_LON_ACCEL),
            _within(lon_lat[1], -MAX_ABS_LAT_ACCEL, MAX_ABS_LAT_ACCEL),
            _within(jerks[0], -MAX_ABS_JERK, MAX_ABS_JERK),
            _within(jerks[1], -MAX_ABS_LON_JERK, MAX_ABS_LON_JERK),
            _within(_filter(headings, 5, 3, deriv=2), -MAX_ABS_YAW_ACCEL, MAX_ABS_YAW_ACCEL),
            _within(_filter(headings, 5, 2, deriv=1), -MAX_ABS_YAW_RATE, MAX_ABS_YAW_RATE),
        ],
        axis=-1,
    )


def is_comfortable(states: np.ndarray) -> np.ndarray:
    """(K, n, 11) states at 10 Hz -> (K,) bool: all six comfort bounds hold at every step."""
    return comfort_checks(states).all(axis=-1)
