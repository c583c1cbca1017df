"""NAVSIM's ego simulation: a batch LQR tracker driving a kinematic bicycle model (PDMSimulator).

The plan's poses are the reference; the *simulated* states are what gets scored. Same constants, same
loop order, same stopping controller and first-order actuator lags as NAVSIM's `BatchLQRTracker` and
`BatchKinematicBicycleModel`, including its batch "difference" matrix (see `_velocity_fit_operator`).
Rewrites for speed, equal to NAVSIM up to float rounding:

* The velocity fit's normal matrix `AᵀA + λRᵀR` does not depend on the headings (cos² + sin² = 1), so its
  pseudo-inverse is computed once per process. The curvature fit's normal equations are written out from
  the fit matrix's structure (sums over the rows below each column) and solved by Cholesky (they are
  positive definite) where NAVSIM uses `pinv`.
* The lateral LQR propagates the 10-step linear time-varying system in closed form: the step matrices
  are unipotent upper triangular, so the 10-fold products are sums over the horizon, which with the
  horizon's velocity profile v_k = v0 + k·a·dt become quadratics in (v0, a·dt) whose coefficients
  (including the curvature terms) are weighted sums of the curvature over the horizon.
* The heading is wrapped to [-π, π) once after the loop instead of after every step (sin, cos and
  tan are periodic; NAVSIM's per-step wrap only adds rounding noise).
* Each row of a batch is computed on its own, so a trajectory simulates to the same bits alone or in a
  group.

All of it is compiled (numba, `_simulate`): the tracker is sequential in time, so numpy could only
vectorise it over the K rows, and on K ≈ 16 its ~40 calls per step cost ~50× the arithmetic; the fits are
40 × 40 systems per row. Each value of the step loop is still NAVSIM's expression in NAVSIM's order (numba
does not fuse multiply-adds without fastmath). sin, cos, tan and atan2 come from the C library there,
where numpy may use its own SIMD versions, and the fits' sums run in another order than BLAS/LAPACK's:
the states differ from the former numpy code's by ~1e-15 relative.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from scorer.constants import (
    ACCEL_TIME_CONSTANT,
    CURVATURE_RATE_PENALTY,
    DT,
    INITIAL_CURVATURE_PENALTY,
    JERK_PENALTY,
    MAX_STEERING_ANGLE,
    Q_LAT,
    Q_LON,
    R_LAT,
    R_LON,
    STATE_SIZE,
    STEERING_TIME_CONSTANT,
    STOPPING_GAIN,
    STOPPING_VELOCITY,
    TRACKING_HORIZON,
    WHEEL_BASE,
    S,
)
from scorer.interp import wrap_angle

TWO_PI = 2.0 * np.pi
H = TRACKING_HORIZON
_K = np.arange(H, dtype=np.float64)  # horizon step index
_AFTER = np.array([_K[k + 1 :].sum() for k in range(H)])  # Σ_{j>k} j
_PAIRS = [(i, j) for j in range(H) for i in range(j)]  # i < j
# Σ_{j>i} v_j v_i and Σ_{j>i} i v_j v_i as quadratics in (v0, δ): coefficients of v0², v0·δ, δ²
_VV = np.array([len(_PAIRS), sum(i + j for i, j in _PAIRS), sum(i * j for i, j in _PAIRS)], dtype=np.float64)
_IVV = np.array(
    [sum(i for i, _ in _PAIRS), sum(i * (i + j) for i, j in _PAIRS), sum(i * i * j for i, j in _PAIRS)]
)
# Σ_k κ_k v_k Σ_{j>k} v_j: per-k weights of v0², v0·δ, δ²
_KVV = np.stack([H - 1 - _K, _AFTER + _K * (H - 1 - _K), _K * _AFTER])
LON_GAIN = (-1.0 / ((H * DT) * Q_LON * (H * DT) + R_LON)) * (H * DT) * Q_LON  # accel per m/s of error
ACCEL_LAG = DT / (DT + ACCEL_TIME_CONSTANT)
STEERING_LAG = DT / (DT + STEERING_TIME_CONSTANT)
# the lateral system's horizon sums as polynomials in (v0, δ = a·dt); tuples of floats, constants in `_track`
A01 = (DT * H, DT * float(_K.sum()))  # a01 = Σ v_k·dt: coefficients of v0, δ
B1 = (DT**2 / WHEEL_BASE * float(_K.sum()), DT**2 / WHEEL_BASE * float((_K * _K).sum()))
A02 = tuple(float(c) for c in DT**2 / WHEEL_BASE * _VV)  # coefficients of v0², v0δ, δ²
B0 = tuple(float(c) for c in DT**3 / WHEEL_BASE * _IVV)


@lru_cache(maxsize=4)
def _velocity_fit_operator(num_displacements: int) -> np.ndarray:
    """(M, M) W with [v0, a_0..a_{M-2}] = W @ p, p_m = displacement m projected on heading m."""
    m = num_displacements
    c = np.tril(np.full((m, m), DT**2), k=0)
    c[:, 0] = DT
    # NAVSIM's batch "difference" matrix: the second assignment overwrites the first one's +1s except in
    # the last column, so the jerk penalty is nearly a ridge on the accelerations. Reproduced on purpose.
    banded = np.zeros((m - 2, m - 1))
    banded[:, 1:] = np.eye(m - 2)
    banded[:, :-1] = -np.eye(m - 2)
    r = np.hstack([np.zeros((m - 2, 1)), banded])
    return np.linalg.pinv(c.T @ c + JERK_PENALTY * (r.T @ r)) @ c.T


# per-step weights of the curvature over the horizon: Σ κ_k, Σ k·κ_k, and the three of `_KVV`
HORIZON_WEIGHTS = np.vstack([np.ones(H), _K, _KVV])  # (5, H)


@njit(cache=True, error_model="numpy")
def _profiles(poses: np.ndarray, fit: np.ndarray, velocity: np.ndarray, curvature: np.ndarray) -> None:
    """(N, 3) reference poses of one row -> velocity (N-1,) [m/s] and curvature (N-1,) [1/m] profiles,
    fitted by regularised least squares as NAVSIM's tracker utilities: the velocity with the fixed operator
    `fit`, the curvature from its normal equations (written out from the fit matrix's structure, solved by
    Cholesky: they are positive definite)."""
    m = len(velocity)
    proj, heading_disp = np.empty(m), np.empty(m)
    for i in range(m):
        h = poses[i, 2]
        heading_disp[i] = wrap_angle(poses[i + 1, 2] - h)
        proj[i] = np.cos(h) * (poses[i + 1, 0] - poses[i, 0]) + np.sin(h) * (poses[i + 1, 1] - poses[i, 1])
    sol = np.zeros(m)  # [v0, a_0..a_{M-2}] = fit @ proj
    for i in range(m):
        for j in range(m):
            sol[i] += fit[i, j] * proj[j]
    _integrate(sol, velocity)
    # the fit matrix A (M, M): column 0 is v_i·dt, entry (i, j ≥ 1) is v_i·dt² where j ≤ i (0 above the
    # diagonal), so AᵀA and Aᵀb are sums over the rows i ≥ j: running sums from the bottom row up
    col0, rest = np.empty(m), np.empty(m)
    for i in range(m):
        col0[i], rest[i] = velocity[i] * DT, velocity[i] * DT**2
    normal, rhs = np.empty((m, m)), np.empty(m)
    rest_rest = np.zeros(m)  # Σ_{i ≥ j} rest_i², for j ≥ 1
    sum_00 = sum_0r = sum_rr = sum_0b = sum_rb = 0.0
    for j in range(m - 1, 0, -1):
        sum_0r += col0[j] * rest[j]
        sum_rr += rest[j] * rest[j]
        sum_rb += rest[j] * heading_disp[j]
        normal[0, j] = normal[j, 0] = sum_0r
        rest_rest[j], rhs[j] = sum_rr, sum_rb
    for j in range(m - 1, -1, -1):
        sum_00 += col0[j] * col0[j]
        sum_0b += col0[j] * heading_disp[j]
    normal[0, 0], rhs[0] = sum_00 + INITIAL_CURVATURE_PENALTY, sum_0b
    for j in range(1, m):
        for col in range(1, m):
            normal[j, col] = rest_rest[max(j, col)]
        normal[j, j] += CURVATURE_RATE_PENALTY
    _integrate(_cholesky_solve(normal, rhs), curvature)


@njit(cache=True, error_model="numpy")
def _integrate(sol: np.ndarray, out: np.ndarray) -> None:
    """[x0, d_0..d_{M-2}] -> out (M,): x0 plus the running sum of d × DT."""
    total = 0.0
    out[0] = sol[0]
    for i in range(1, len(out)):
        total += sol[i] * DT
        out[i] = sol[0] + total


@njit(cache=True, error_model="numpy")
def _cholesky_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a @ x = b for a symmetric positive definite (M, M) a."""
    m = len(b)
    low = np.zeros((m, m))
    for j in range(m):
        diag = a[j, j]
        for k in range(j):
            diag -= low[j, k] * low[j, k]
        low[j, j] = np.sqrt(diag)
        for i in range(j + 1, m):
            value = a[i, j]
            for k in range(j):
                value -= low[i, k] * low[j, k]
            low[i, j] = value / low[j, j]
    y = np.empty(m)
    for i in range(m):
        value = b[i]
        for k in range(i):
            value -= low[i, k] * y[k]
        y[i] = value / low[i, i]
    x = np.empty(m)
    for i in range(m - 1, -1, -1):
        value = y[i]
        for k in range(i + 1, m):
            value -= low[k, i] * x[k]
        x[i] = value / low[i, i]
    return x


def simulate(initial_state: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Track (K, T, 3) reference poses from the ego's initial state (11,) -> (K, T, 11) states."""
    k_count, t_count, _ = poses.shape
    init = np.asarray(initial_state, dtype=np.float64)
    out = np.zeros((k_count, t_count, STATE_SIZE))
    out[:, 0] = init
    if t_count > 1 and k_count:
        fit = _velocity_fit_operator(t_count - 1)
        _simulate(init, np.ascontiguousarray(poses, dtype=np.float64), fit, HORIZON_WEIGHTS, out)
        out[:, 1:, S.HEADING] = (out[:, 1:, S.HEADING] + np.pi) % TWO_PI - np.pi
    return out


@njit(cache=True, error_model="numpy")
def _simulate(
    init: np.ndarray, poses: np.ndarray, fit: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    """Each row of `poses` (K, T, 3): fit its profiles, then track it; `out` (K, T, 11) has row 0 set."""
    n = poses.shape[1] - 1  # tracker steps
    velocity, curvature = np.empty(n), np.empty(n)
    for k in range(len(poses)):
        _profiles(poses[k], fit, velocity, curvature)
        _track(init, poses[k], velocity, curvature, weights, out[k])


@njit(cache=True, error_model="numpy")
def _track(
    init: np.ndarray,
    poses: np.ndarray,
    velocity: np.ndarray,
    curvature: np.ndarray,
    weights: np.ndarray,
    out: np.ndarray,
) -> None:
    """The tracker + bicycle loop of one row: reference poses (T, 3) with their velocity and curvature
    profiles (T-1,), `out` (T, 11) with row 0 the initial state."""
    n = len(velocity)
    x, y, h, v = init[0], init[1], init[2], init[3]  # S.X, S.Y, S.HEADING, S.VX
    accel, steer, yaw_rate = init[5], init[7], init[9]  # S.AX, S.STEERING, S.YAW_RATE
    bicycle_yaw_rate = v * np.tan(steer) / WHEEL_BASE  # the heading's rate of change in the next step
    sums = np.empty(len(weights))
    for t in range(n):
        # --- the reference at this step: horizon end, curvature sums over the horizon -------------
        ref = min(t + H, n - 1)
        for w in range(len(weights)):
            total = curvature[min(t, ref)] * weights[w, 0]
            for j in range(1, H):
                total = total + curvature[min(t + j, ref)] * weights[w, j]
            sums[w] = total
        g1_v, g1_d = -DT * sums[0], -DT * sums[1]  # g1 = Σ c_k = g1_v·v0 + g1_d·δ
        g0_vv, g0_vd, g0_dd = -(DT**2) * sums[2], -(DT**2) * sums[3], -(DT**2) * sums[4]
        # --- tracker (LQR) -----------------------------------------------------------------------
        ref_h = poses[t, 2]
        lateral = (x - poses[t, 0]) * -np.sin(ref_h) + (y - poses[t, 1]) * np.cos(ref_h)
        heading_err = wrap_angle(h - ref_h)
        v_ref = velocity[ref]
        v_err = v - v_ref
        stop = v_ref <= STOPPING_VELOCITY and v <= STOPPING_VELOCITY
        accel_cmd = -STOPPING_GAIN * v_err if stop else LON_GAIN * v_err
        d = accel_cmd * DT
        vv, vd, dd = v * v, v * d, d * d
        a01 = A01[0] * v + A01[1] * d
        b0 = B0[0] * vv + B0[1] * vd + B0[2] * dd
        b1 = B1[0] * v + B1[1] * d
        e0 = lateral + a01 * heading_err + (A02[0] * vv + A02[1] * vd + A02[2] * dd) * steer
        e0 = e0 + (g0_vv * vv + g0_vd * vd + g0_dd * dd)
        e1 = wrap_angle(heading_err + a01 / WHEEL_BASE * steer + (g1_v * v + g1_d * d))
        b0q, b1q = b0 * Q_LAT[0], b1 * Q_LAT[1]
        steer_cmd = 0.0 if stop else -(b0q * e0 + b1q * e1) / (b0q * b0 + b1q * b1 + R_LAT)
        # --- kinematic bicycle with actuator lags (heading wrapped once, after the loop) ----------
        new_accel = ACCEL_LAG * (accel_cmd - accel) + accel
        new_steer = STEERING_LAG * ((DT * steer_cmd + steer) - steer) + steer
        rate = (new_steer - steer) / DT
        x = x + v * np.cos(h) * DT
        y = y + v * np.sin(h) * DT
        h = h + bicycle_yaw_rate * DT
        v = v + new_accel * DT
        steer = min(max(steer + rate * DT, -MAX_STEERING_ANGLE), MAX_STEERING_ANGLE)
        bicycle_yaw_rate = v * np.tan(steer) / WHEEL_BASE
        row = out[t + 1]
        row[0], row[1], row[2], row[3], row[5] = x, y, h, v, new_accel  # S.X .. S.AX
        row[7], row[8], row[9] = steer, rate, bicycle_yaw_rate  # S.STEERING, S.STEERING_RATE, S.YAW_RATE
        row[10] = (bicycle_yaw_rate - yaw_rate) / DT  # S.YAW_ACCEL
        accel, yaw_rate = new_accel, bicycle_yaw_rate
