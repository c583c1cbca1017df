"""apply_corrections: the literal application of lateral offsets and target speeds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driving.geometry import densify_polyline
from teacher_service.corrections import apply_corrections, base_path, plan_stations, travel_distances
from teacher_service.schema import Corrections, LateralCorrection, LongitudinalCorrection

T = 0.5 * np.arange(1, 9)
STRAIGHT = np.stack([10.0 * T, np.zeros(8), np.zeros(8)], axis=-1)


def _lon(v0, speeds, action="keep_speed"):
    return LongitudinalCorrection(action=action, initial_speed_mps=v0, target_speeds_mps=speeds)


def test_no_correction_gives_the_plan_back():
    out = apply_corrections(STRAIGHT, Corrections(meta_action=None))
    np.testing.assert_array_equal(out, STRAIGHT)


def test_constant_offset_shifts_a_straight_plan_sideways():
    lat = LateralCorrection(direction="left", start_s=0.0, offsets_m=[3.5] * 8)
    out = apply_corrections(STRAIGHT, Corrections(meta_action=None, lateral=lat))
    # the shift ramps in between the origin and the first pose; each pose keeps its distance travelled
    assert 0.0 < out[0, 1] < 3.5
    np.testing.assert_allclose(out[1:, 1], 3.5, atol=1e-5)
    ramp = np.hypot(5.0, 3.5) - 5.0  # [m] extra length of the ramp
    np.testing.assert_allclose(out[1:, 0], STRAIGHT[1:, 0] - ramp, atol=1e-3)


def test_target_speeds_retime_the_plan():
    lon = _lon(10.0, [8.0, 6.0, 4.0, 2.0], "decelerate")
    out = apply_corrections(STRAIGHT, Corrections(meta_action=None, longitudinal=lon))
    expected = travel_distances(10.0, [8.0, 6.0, 4.0, 2.0])
    np.testing.assert_allclose(out[:, 0], expected, atol=1e-9)
    assert abs(expected[1] - 9.0) < 1e-9  # 1 s at 10 -> 8 m/s: 9 m
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-9)


def test_speeds_beyond_the_plan_extend_its_path():
    lon = _lon(10.0, [15.0, 15.0, 15.0, 15.0], "accelerate")
    out = apply_corrections(
        STRAIGHT[:, :] * np.array([0.5, 1, 1]), Corrections(meta_action=None, longitudinal=lon)
    )
    assert out[-1, 0] > 50.0 and abs(out[-1, 1]) < 1e-6


def test_a_standstill_plan_accepts_speeds():
    stopped = np.zeros((8, 3))
    lon = _lon(0.0, [1.0, 2.0, 3.0, 4.0], "accelerate")
    out = apply_corrections(stopped, Corrections(meta_action=None, longitudinal=lon))
    np.testing.assert_allclose(out[-1, 0], 8.0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    offset=st.floats(-3.0, 3.0),
    v0=st.floats(1.0, 20.0),
    curvature=st.floats(-0.02, 0.02),
)
def test_offsets_keep_their_distance_from_any_smooth_path(offset, v0, curvature):
    """On a smooth arc, a constant offset keeps every corrected pose |offset| from the plan's path."""
    s = v0 * T
    heading = curvature * s
    if abs(curvature) < 1e-6:
        xy = np.stack([s, np.zeros(8)], axis=-1)
    else:
        xy = np.stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature], axis=-1)
    plan = np.concatenate([xy, heading[:, None]], axis=-1)
    lat = LateralCorrection(direction="left", start_s=0.0, offsets_m=[offset] * 8)
    out = apply_corrections(plan, Corrections(meta_action=None, lateral=lat))
    # the path the offsets refer to: the plan's polyline, continued along its last heading (module doc)
    line = densify_polyline(base_path(plan).xy, 0.05)
    past_ramp = plan_stations(plan)[1:] > np.hypot(s[0], offset) + 0.5  # poses beyond the ramp-in
    dist = np.min(np.linalg.norm(out[past_ramp, None, :2] - line[None], axis=-1), axis=1)
    np.testing.assert_allclose(dist, abs(offset), atol=0.1)
    assert plan_stations(out)[-1] > 0
