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

The step loop runs on K-vectors, where numpy's cost per call dominates: scalar constants are 0-d arrays
(half the cost of Python floats in an operation) and the lateral error's two terms share one call; each
value is still NAVSIM's expression, evaluated in NAVSIM's order.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

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
        self.may_stop = (self.velocity <= STOPPING_VELOCITY).any(axis=1).tolist()
        sums = _weighted_sums(curv, np.vstack([np.ones(H), _K, _KVV]))
        self.g1_v, self.g1_d = -DT * sums[0], -DT * sums[1]  # g1 = Σ c_k = g1_v·v0 + g1_d·δ
        self.g0_vv, self.g0_vd, self.g0_dd = -(DT**2) * sums[2:]  # g0 coefficients of v0², v0δ, δ²


def _const(value: float) -> np.ndarray:
    """A 0-d array: numpy combines it with an array at the cost of an array, half that of a Python float."""
    return np.array(value, dtype=np.float64)


_DT, _WHEEL_BASE, _R_LAT = _const(DT), _const(WHEEL_BASE), _const(R_LAT)
_LON_GAIN, _STOP_GAIN = _const(LON_GAIN), _const(-STOPPING_GAIN)
_ACCEL_LAG, _STEERING_LAG = _const(ACCEL_LAG), _const(STEERING_LAG)
_MAX_STEER, _MIN_STEER = _const(MAX_STEERING_ANGLE), _const(-MAX_STEERING_ANGLE)
_Q0, _Q1 = _const(Q_LAT[0]), _const(Q_LAT[1])
_A01 = (_const(DT * H), _const(DT * _K.sum()))  # a01 = Σ v_k·dt in (v0, δ)
_B1 = (_const(DT**2 / WHEEL_BASE * _K.sum()), _const(DT**2 / WHEEL_BASE * (_K * _K).sum()))
_A02 = tuple(_const(c) for c in DT**2 / WHEEL_BASE * _VV)  # coefficients of v0², v0δ, δ²
_B0 = tuple(_const(c) for c in DT**3 / WHEEL_BASE * _IVV)


def simulate(initial_state: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Track (K, T, 3) reference poses from the ego's initial state (11,) -> (K, T, 11) states."""
    k_count, t_count, _ = poses.shape
    ref = _Reference(poses)
    init = np.asarray(initial_state, dtype=np.float64)
    x, y, h, v = (np.full(k_count, init[i]) for i in (S.X, S.Y, S.HEADING, S.VX))
    accel, steer, yaw_rate = (np.full(k_count, init[i]) for i in (S.AX, S.STEERING, S.YAW_RATE))
    bicycle_yaw_rate = v * np.tan(steer) / _WHEEL_BASE  # the heading's rate of change in the next step
    rows = []  # per step: x, y, heading, v, accel, steering, steering rate, yaw rate, yaw acceleration
    for t in range(t_count - 1):
        # --- tracker (LQR) -----------------------------------------------------------------------
        offset = np.stack([x, y]) - ref.xy[t]
        offset *= ref.normal[t]
        lateral = offset[0] + offset[1]
        heading_err = _wrap(h - ref.heading[t])
        v_err = v - ref.velocity[t]
        accel_cmd = _LON_GAIN * v_err
        stop = (ref.velocity[t] <= STOPPING_VELOCITY) & (v <= STOPPING_VELOCITY) if ref.may_stop[t] else None
        if stop is not None:
            np.copyto(accel_cmd, _STOP_GAIN * v_err, where=stop)
        d = accel_cmd * _DT
        vv, vd, dd = v * v, v * d, d * d
        a01 = _A01[0] * v + _A01[1] * d
        b0 = _B0[0] * vv + _B0[1] * vd + _B0[2] * dd
        b1 = _B1[0] * v + _B1[1] * d
        e0 = lateral + a01 * heading_err + (_A02[0] * vv + _A02[1] * vd + _A02[2] * dd) * steer
        e0 = e0 + (ref.g0_vv[t] * vv + ref.g0_vd[t] * vd + ref.g0_dd[t] * dd)
        e1 = _wrap(heading_err + a01 / _WHEEL_BASE * steer + (ref.g1_v[t] * v + ref.g1_d[t] * d))
        b0q, b1q = b0 * _Q0, b1 * _Q1
        steer_cmd = -(b0q * e0 + b1q * e1) / (b0q * b0 + b1q * b1 + _R_LAT)
        if stop is not None:
            np.copyto(steer_cmd, 0.0, where=stop)
        # --- kinematic bicycle with actuator lags (heading wrapped once, after the loop) ----------
        new_accel = _ACCEL_LAG * (accel_cmd - accel) + accel
        new_steer = _STEERING_LAG * ((_DT * steer_cmd + steer) - steer) + steer
        rate = (new_steer - steer) / _DT
        x = x + v * np.cos(h) * _DT
        y = y + v * np.sin(h) * _DT
        h = h + bicycle_yaw_rate * _DT
        v = v + new_accel * _DT
        steer = np.minimum(np.maximum(steer + rate * _DT, _MIN_STEER), _MAX_STEER)
        bicycle_yaw_rate = v * np.tan(steer) / _WHEEL_BASE
        rows.append(
            (x, y, h, v, new_accel, steer, rate, bicycle_yaw_rate, (bicycle_yaw_rate - yaw_rate) / _DT)
        )
        accel, yaw_rate = new_accel, bicycle_yaw_rate
    return _assemble(init, rows, k_count)


def _assemble(init: np.ndarray, rows: list[tuple], k_count: int) -> np.ndarray:
    """(K, T, 11) state array from the initial state and the per-step rows."""
    out = np.zeros((k_count, len(rows) + 1, STATE_SIZE))
    out[:, 0] = init
    if rows:
        cols = np.array(rows)  # (T-1, 9, K)
        for i, col in enumerate(
            (S.X, S.Y, S.HEADING, S.VX, S.AX, S.STEERING, S.STEERING_RATE, S.YAW_RATE, S.YAW_ACCEL)
        ):
            out[:, 1:, col] = cols[:, i].T
        out[:, 1:, S.HEADING] = (out[:, 1:, S.HEADING] + np.pi) % TWO_PI - np.pi
    return out
