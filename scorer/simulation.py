"""NAVSIM's ego simulation: a batch LQR tracker driving a kinematic bicycle model (PDMSimulator).

The plan's poses are the reference; the *simulated* states are what gets scored. Same constants, same
loop order, same stopping controller and first-order actuator lags as NAVSIM's `BatchLQRTracker` and
`BatchKinematicBicycleModel`, including its batch "difference" matrix (see `_velocity_fit_operator`).
Rewrites for speed, equal to NAVSIM up to float rounding:

* The velocity fit's normal matrix `AᵀA + λRᵀR` does not depend on the headings (cos² + sin² = 1), so its
  pseudo-inverse is computed once per process. The curvature fit solves its positive definite normal
  equations with `solve` where NAVSIM uses `pinv`.
* The lateral LQR propagates the 10-step linear time-varying system in closed form: the step matrices
  are unipotent upper triangular, so the 10-fold products are sums over the horizon, which with the
  horizon's velocity profile v_k = v0 + k·a·dt become quadratics in (v0, a·dt) whose coefficients
  (including the curvature terms) are computed for all steps before the loop.
* The heading is wrapped to [-π, π) once after the loop instead of after every step (sin, cos and
  tan are periodic; NAVSIM's per-step wrap only adds rounding noise).
* Each row of a batch is computed independently of the others (matrix products row by row — one stacked
  `matmul`, which calls BLAS gemv per row — never one BLAS call across the batch, whose rounding depends
  on the batch size), so a trajectory simulates to the same bits alone or in a group.

The step loop is compiled (numba, `_track`): it is sequential in time, so numpy could only vectorise it
over the K rows, and on K ≈ 16 its ~40 calls per step cost ~50× the arithmetic. Compiled, each row is a
scalar loop; each value is still NAVSIM's expression, evaluated in NAVSIM's order (numba does not fuse
multiply-adds without fastmath). sin, cos, tan and atan2 come from the C library there, where numpy may
use its own SIMD versions: the states can differ from the numpy loop's in the last bit (~1e-16 relative).
What is computed for all steps at once (the fits, `_Reference`) stays in numpy.
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


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.arctan2(np.sin(angle), np.cos(angle))


def _integrate(initial: np.ndarray, derivatives: np.ndarray) -> np.ndarray:
    """(K,), (K, M) -> (K, M+1): initial value plus the running sum of derivative × DT."""
    out = np.zeros((derivatives.shape[0], derivatives.shape[1] + 1))
    np.cumsum(derivatives * DT, axis=-1, out=out[:, 1:])
    return initial[:, None] + out


def velocity_curvature_profiles(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, N, 3) reference poses -> velocity (K, N-1) [m/s] and curvature (K, N-1) [1/m] profiles,
    fitted by regularised least squares as NAVSIM's tracker utilities."""
    diff = np.diff(poses, axis=1)
    heading_disp = _wrap(diff[..., 2])
    headings = poses[:, :-1, 2]
    proj = np.cos(headings) * diff[..., 0] + np.sin(headings) * diff[..., 1]  # (K, M)
    fit = _velocity_fit_operator(proj.shape[1])
    sol = np.matmul(fit, proj[..., None])[..., 0]  # BLAS gemv row by row: see above
    velocity = _integrate(sol[:, 0], sol[:, 1:])

    k, m = heading_disp.shape
    a = np.repeat(np.tri(m)[None], k, axis=0)
    a[:, :, 0] = velocity * DT
    a[:, 1:, 1:] *= (velocity * DT**2)[:, 1:, None]
    q = CURVATURE_RATE_PENALTY * np.eye(m)
    q[0, 0] = INITIAL_CURVATURE_PENALTY
    at = a.transpose(0, 2, 1)
    x = np.linalg.solve(at @ a + q, at @ heading_disp[..., None])[..., 0]
    return velocity, _integrate(x[:, 0], x[:, 1:])


def _weighted_sums(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(..., H) values, (W, H) weights -> (W, ...): Σ_j values[..., j] · weights[w, j], accumulated in order
    (no reduction whose rounding depends on the batch size)."""
    w = weights.reshape(weights.shape[:1] + (1,) * (values.ndim - 1) + weights.shape[1:])
    out = values[None, ..., 0] * w[..., 0]
    for j in range(1, weights.shape[1]):
        out = out + values[None, ..., j] * w[..., j]
    return out


class _Reference:
    """Everything about the reference that the tracker needs at each step, computed before the loop.
    Arrays are (steps, K) or (steps, 2, K); the curvature terms of the lateral system are pre-multiplied."""

    def __init__(self, poses: np.ndarray) -> None:
        velocity, curvature = velocity_curvature_profiles(poses)
        n = velocity.shape[1]  # tracker steps (one fewer than poses)
        t = np.arange(n)
        ref = np.minimum(t + H, n - 1)
        window = np.minimum(np.minimum(t[:, None] + np.arange(H)[None, :], n - 1), ref[:, None])
        curv = curvature[:, window].transpose(1, 0, 2)  # (n, K, H) curvature over each step's horizon
        heading = poses[:, :n, 2].T
        self.xy = poses[:, :n, :2].transpose(1, 2, 0).copy()  # (n, 2, K)
        self.heading = heading.copy()
        self.normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)  # (n, 2, K) lateral axis
        self.velocity = velocity[:, ref].T.copy()  # velocity to reach at the horizon
        sums = _weighted_sums(curv, np.vstack([np.ones(H), _K, _KVV]))
        self.g1_v, self.g1_d = -DT * sums[0], -DT * sums[1]  # g1 = Σ c_k = g1_v·v0 + g1_d·δ
        self.g0_vv, self.g0_vd, self.g0_dd = -(DT**2) * sums[2:]  # g0 coefficients of v0², v0δ, δ²


@njit(cache=True, error_model="numpy")
def _wrap_scalar(angle: float) -> float:
    return np.arctan2(np.sin(angle), np.cos(angle))


@njit(cache=True, error_model="numpy")
def _track(
    init: np.ndarray,
    ref_xy: np.ndarray,
    ref_heading: np.ndarray,
    ref_normal: np.ndarray,
    ref_velocity: np.ndarray,
    g1_v: np.ndarray,
    g1_d: np.ndarray,
    g0_vv: np.ndarray,
    g0_vd: np.ndarray,
    g0_dd: np.ndarray,
    out: np.ndarray,
) -> None:
    """The tracker + bicycle loop, one row at a time: reference arrays (n, K) or (n, 2, K) as `_Reference`
    builds them, `out` (K, n + 1, 11) with row 0 already the initial state. Each value is NAVSIM's
    expression in NAVSIM's order (no fused multiply-adds: numba does not contract without fastmath)."""
    n, k_count = ref_heading.shape
    for k in range(k_count):
        x, y, h, v = init[0], init[1], init[2], init[3]  # S.X, S.Y, S.HEADING, S.VX
        accel, steer, yaw_rate = init[5], init[7], init[9]  # S.AX, S.STEERING, S.YAW_RATE
        bicycle_yaw_rate = v * np.tan(steer) / WHEEL_BASE  # the heading's rate of change in the next step
        for t in range(n):
            # --- tracker (LQR) -------------------------------------------------------------------
            lateral = (x - ref_xy[t, 0, k]) * ref_normal[t, 0, k] + (y - ref_xy[t, 1, k]) * ref_normal[
                t, 1, k
            ]
            heading_err = _wrap_scalar(h - ref_heading[t, k])
            v_ref = ref_velocity[t, k]
            v_err = v - v_ref
            stop = v_ref <= STOPPING_VELOCITY and v <= STOPPING_VELOCITY
            accel_cmd = -STOPPING_GAIN * v_err if stop else LON_GAIN * v_err
            d = accel_cmd * DT
            vv, vd, dd = v * v, v * d, d * d
            a01 = A01[0] * v + A01[1] * d
            b0 = B0[0] * vv + B0[1] * vd + B0[2] * dd
            b1 = B1[0] * v + B1[1] * d
            e0 = lateral + a01 * heading_err + (A02[0] * vv + A02[1] * vd + A02[2] * dd) * steer
            e0 = e0 + (g0_vv[t, k] * vv + g0_vd[t, k] * vd + g0_dd[t, k] * dd)
            e1 = _wrap_scalar(heading_err + a01 / WHEEL_BASE * steer + (g1_v[t, k] * v + g1_d[t, k] * d))
            b0q, b1q = b0 * Q_LAT[0], b1 * Q_LAT[1]
            steer_cmd = 0.0 if stop else -(b0q * e0 + b1q * e1) / (b0q * b0 + b1q * b1 + R_LAT)
            # --- kinematic bicycle with actuator lags (heading wrapped once, after the loop) ------
            new_accel = ACCEL_LAG * (accel_cmd - accel) + accel
            new_steer = STEERING_LAG * ((DT * steer_cmd + steer) - steer) + steer
            rate = (new_steer - steer) / DT
            x = x + v * np.cos(h) * DT
            y = y + v * np.sin(h) * DT
            h = h + bicycle_yaw_rate * DT
            v = v + new_accel * DT
            steer = min(max(steer + rate * DT, -MAX_STEERING_ANGLE), MAX_STEERING_ANGLE)
            bicycle_yaw_rate = v * np.tan(steer) / WHEEL_BASE
            row = out[k, t + 1]
            row[0], row[1], row[2], row[3], row[5] = x, y, h, v, new_accel  # S.X .. S.AX
            row[7], row[8], row[9] = steer, rate, bicycle_yaw_rate  # S.STEERING, S.STEERING_RATE, S.YAW_RATE
            row[10] = (bicycle_yaw_rate - yaw_rate) / DT  # S.YAW_ACCEL
            accel, yaw_rate = new_accel, bicycle_yaw_rate


def simulate(initial_state: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Track (K, T, 3) reference poses from the ego's initial state (11,) -> (K, T, 11) states."""
    k_count, t_count, _ = poses.shape
    init = np.asarray(initial_state, dtype=np.float64)
    out = np.zeros((k_count, t_count, STATE_SIZE))
    out[:, 0] = init
    if t_count > 1 and k_count:
        ref = _Reference(poses)
        _track(
            init,
            ref.xy,
            ref.heading,
            ref.normal,
            ref.velocity,
            ref.g1_v,
            ref.g1_d,
            ref.g0_vv,
            ref.g0_vd,
            ref.g0_dd,
            out,
        )
        out[:, 1:, S.HEADING] = (out[:, 1:, S.HEADING] + np.pi) % TWO_PI - np.pi
    return out
