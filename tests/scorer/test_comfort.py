"""Comfort: the Savitzky–Golay operators against scipy, and each of the six bounds on its own."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.comfort import CHECKS, comfort_checks, is_comfortable, savgol_matrix
from scorer.constants import DT, STATE_SIZE, S


@pytest.mark.parametrize(
    ("n", "window", "order", "deriv"),
    [
        (41, 41, 2, 0),
        (41, 8, 2, 0),
        (41, 41, 2, 1),
        (41, 5, 2, 1),
        (41, 5, 3, 2),
        (55, 8, 2, 0),
        (55, 55, 2, 1),
    ],
)
def test_savgol_matrix_matches_scipy(n, window, order, deriv):
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(n + window + deriv).normal(size=(3, n))
    delta = float(np.diff(np.arange(n) * DT).mean())
    expected = signal.savgol_filter(x, window, order, deriv=deriv, delta=delta, axis=-1, mode="interp")
    np.testing.assert_allclose(
        x @ savgol_matrix(n, window, order, deriv, delta).T, expected, rtol=0, atol=1e-9
    )


def _states(ax=None, ay=None, heading=None) -> np.ndarray:
    states = np.zeros((1, 41, STATE_SIZE))
    for col, values in ((S.AX, ax), (S.AY, ay), (S.HEADING, heading)):
        if values is not None:
            states[0, :, col] = values
    return states


T = np.arange(41) * DT


@pytest.mark.parametrize(
    ("check", "states"),
    [
        ("lon_accel", _states(ax=np.full(41, 2.5))),  # above 2.40
        ("lon_accel", _states(ax=np.full(41, -4.2))),  # below -4.05
        ("lat_accel", _states(ay=np.full(41, -5.0))),
        # |a| grows like 3 (t - 2)² while the sign of a_y alternates, so its own fit stays near 0
        ("jerk", _states(ay=(-1.0) ** np.arange(41) * 3.0 * (T - 2.0) ** 2)),
        ("lon_jerk", _states(ax=1.1 * (T - 2.0) ** 2 - 3.0)),
        ("yaw_accel", _states(heading=0.08 * np.sin(5.0 * T))),
        ("yaw_rate", _states(heading=1.0 * T)),
    ],
)
def test_each_bound_fails_alone(check, states):
    failed = [name for name, ok in zip(CHECKS, comfort_checks(states)[0]) if not ok]
    assert failed == [check]


def test_smooth_driving_is_comfortable():
    states = _states(ax=np.full(41, 1.0), ay=np.full(41, 2.0), heading=0.3 * T)
    assert is_comfortable(states)[0]


def test_bounds_are_strict_and_rounded():
    """A constant longitudinal acceleration of exactly 2.40 m/s² is out of bounds (strict inequality)."""
    assert not is_comfortable(_states(ax=np.full(41, 2.40)))[0]
    assert is_comfortable(_states(ax=np.full(41, 2.399999)))[0]
