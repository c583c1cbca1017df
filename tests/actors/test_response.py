"""The response grammar: ground truth renders and parses back exactly; the parser never raises."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.response import (
    LATERAL_ACTIONS,
    LONGITUDINAL_ACTIONS,
    ParseError,
    ParseErrorKind,
    Response,
    derive_meta_action,
    format_number,
    ground_truth_response,
    parse_response,
    render_response,
    road_ahead_offset,
    road_phrase,
    scene_think,
)
from driving.geometry import trajectory_local, wrap_angle
from driving.scene import MetaAction, Sample, load_scene

GOOD_POSES = "".join(f"({x:+.2f},+0.10,+0.01)" for x in np.arange(1, 9) * 5.0)
GOOD = f"<think>road clear</think><action>keep_lane,keep_speed</action><traj>{GOOD_POSES}</traj>"


def _expected_poses(scene) -> np.ndarray:
    poses = trajectory_local(scene.sample.expert, scene.ego).copy()
    poses[:, 2] = wrap_angle(poses[:, 2])
    return np.array([[float(format_number(v)) for v in row] for row in poses])


def test_ground_truth_round_trip(scenes):
    for scene in scenes:
        text = ground_truth_response(scene)
        parsed = parse_response(text)
        assert isinstance(parsed, Response), (scene.id, parsed)
        assert parsed.text == text
        assert parsed.meta_action == scene.sample.meta_action
        assert parsed.poses.shape == (8, 3)
        np.testing.assert_array_equal(parsed.poses, _expected_poses(scene))
        assert render_response(parsed.think, parsed.meta_action, parsed.poses) == text


def test_hand_built_sample_round_trip(shared_scene_path):
    """A scene without a generator-made sample: the meta action is read off the plan."""
    scene = load_scene(shared_scene_path)
    sample = Sample(command="straight", expert=scene.trajectory, family="shared", difficulty="common")
    scene = scene.model_copy(update={"id": shared_scene_path.stem, "sample": sample})
    parsed = parse_response(ground_truth_response(scene))
    assert isinstance(parsed, Response)
    np.testing.assert_array_equal(parsed.poses, _expected_poses(scene))


def test_think_names_objects_and_intent(scenes):
    for scene in scenes:
        think = scene_think(scene, scene.sample.meta_action)
        assert "intent:" in think and "<" not in think
        assert scene.sample.meta_action.longitudinal.replace("_", " ") in think


def test_road_shape_read_off_the_route():
    """The shared curved scene is an arc of R = 80 m followed at 10 m/s: over the 40 m covered in 4 s the lane
    bends R (1 - cos(40 / R)) = 9.79 m to the left; the straight scene's lane does not bend."""
    data = Path(__file__).parents[1] / "data" / "scenes"
    curved = load_scene(data / "01_safe_curved.json")
    expected = 80.0 * (1.0 - math.cos(40.0 / 80.0))
    assert road_ahead_offset(curved) == pytest.approx(expected, abs=0.05)
    assert road_phrase(curved) == f"road bends left {expected:.1f} m"
    assert road_phrase(load_scene(data / "02_collision_lead_vehicle.json")) == "road straight"


def test_derive_meta_action():
    t = np.arange(1, 9)[:, None] * 0.5
    straight = np.hstack([10.0 * t, 0 * t, 0 * t])
    assert derive_meta_action(straight, 10.0) == MetaAction(lateral="keep_lane", longitudinal="keep_speed")
    stopped = np.zeros((8, 3))
    assert derive_meta_action(stopped, 5.0).longitudinal == "stop"
    left = straight.copy()
    left[:, 2] = np.linspace(0.1, 1.2, 8)
    assert derive_meta_action(left, 10.0).lateral == "turn_left"


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.949, "+4.95"), (-0.001, "+0.00"), (-0.006, "-0.01"), (0.0, "+0.00"), (-12.3, "-12.30")],
)
def test_format_number(value, text):
    assert format_number(value) == text


# ----------------------------------------------------------------------------- malformed cases ---


def _with_traj(poses: str) -> str:
    return f"<think>x</think><action>keep_lane,stop</action><traj>{poses}</traj>"


MALFORMED = {
    "no think": (GOOD.replace("<think>road clear</think>", ""), ParseErrorKind.MISSING_SECTION),
    "no traj close": (GOOD.replace("</traj>", ""), ParseErrorKind.MISSING_SECTION),
    "empty": ("", ParseErrorKind.MISSING_SECTION),
    "twice": (GOOD + GOOD, ParseErrorKind.BAD_LAYOUT),
    "out of order": (
        f"<action>keep_lane,stop</action><think>x</think><traj>{GOOD_POSES}</traj>",
        ParseErrorKind.BAD_LAYOUT,
    ),
    "trailing text": (GOOD + " thanks", ParseErrorKind.BAD_LAYOUT),
    "unknown lateral": (GOOD.replace("keep_lane", "fly"), ParseErrorKind.BAD_ACTION),
    "one action": (GOOD.replace("keep_lane,keep_speed", "keep_lane"), ParseErrorKind.BAD_ACTION),
    "two fields": (_with_traj("(+1.00,+0.00)" * 8), ParseErrorKind.BAD_POSE),
    "not a number": (_with_traj("(+1.00,abc,+0.00)" * 8), ParseErrorKind.BAD_POSE),
    "unclosed pose": (_with_traj("(+1.00,+0.00,+0.00" * 8), ParseErrorKind.BAD_POSE),
    "seven poses": (_with_traj("(+1.00,+0.00,+0.00)" * 7), ParseErrorKind.WRONG_POSE_COUNT),
    "nine poses": (_with_traj("(+1.00,+0.00,+0.00)" * 9), ParseErrorKind.WRONG_POSE_COUNT),
    "no poses": (_with_traj(""), ParseErrorKind.WRONG_POSE_COUNT),
    "nan": (_with_traj("(+1.00,nan,+0.00)" * 8), ParseErrorKind.NON_FINITE),
    "overflow": (_with_traj(f"(+{'9' * 400}.00,+0.00,+0.00)" * 8), ParseErrorKind.NON_FINITE),
    "200 m in 0.5 s": (_with_traj("(+200.00,+0.00,+0.00)" * 8), ParseErrorKind.ABSURD_VALUE),
    "heading beyond pi": (_with_traj("(+1.00,+0.00,+3.20)" * 8), ParseErrorKind.ABSURD_VALUE),
    "far behind": (_with_traj("(-5.00,+0.00,+0.00)" * 8), ParseErrorKind.ABSURD_VALUE),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed(case):
    text, kind = MALFORMED[case]
    parsed = parse_response(text)
    assert isinstance(parsed, ParseError), case
    assert parsed.kind == kind, parsed.message
    assert parsed.text == text and parsed.message


def test_every_error_kind_is_exercised():
    assert {kind for _, kind in MALFORMED.values()} == set(ParseErrorKind)


def test_lenient_number_forms_and_whitespace_between_sections():
    poses = "".join(f"({x},0.1,-0)" for x in range(1, 9))
    parsed = parse_response(f"  <think> a </think>\n<action>turn_left , stop</action> <traj>{poses}</traj>\n")
    assert isinstance(parsed, Response)
    assert parsed.think == "a" and parsed.meta_action == MetaAction(lateral="turn_left", longitudinal="stop")
    assert parsed.poses[3, 0] == 4.0


# ------------------------------------------------------------------------------------------ fuzz ---

_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: f"{v:+.2f}" if math.isfinite(v) else str(v)),
    st.floats(-30, 30).map(format_number),
    st.text(alphabet="+-.0123456789e", max_size=8),
)
_pose = st.tuples(_number, _number, _number).map(lambda p: "(" + ",".join(p) + ")")
_fragment = st.one_of(
    st.sampled_from(
        ["<think>", "</think>", "<action>", "</action>", "<traj>", "</traj>", "(", ")", ",", " "]
    ),
    st.sampled_from(LATERAL_ACTIONS + LONGITUDINAL_ACTIONS),
    _pose,
    st.text(max_size=12),
)
_structured = st.builds(
    lambda think, lat, lon, poses: (
        f"<think>{think}</think><action>{lat},{lon}</action><traj>{''.join(poses)}</traj>"
    ),
    st.text(max_size=20),
    st.sampled_from(LATERAL_ACTIONS + ("bogus",)),
    st.sampled_from(LONGITUDINAL_ACTIONS),
    st.lists(_pose, min_size=6, max_size=10),
)


def _check_outcome(text: str) -> None:
    parsed = parse_response(text)
    assert isinstance(parsed, (Response, ParseError))
    if isinstance(parsed, Response):
        assert parsed.poses.shape == (8, 3) and np.isfinite(parsed.poses).all()
        assert np.abs(parsed.poses[:, 2]).max() <= math.pi
    else:
        assert isinstance(parsed.kind, ParseErrorKind)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_any_text_never_raises(text):
    _check_outcome(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fragment, max_size=30).map("".join))
def test_fuzz_grammar_fragments_never_raise(text):
    _check_outcome(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_structured)
def test_fuzz_near_valid_answers_never_raise(text):
    _check_outcome(text)
