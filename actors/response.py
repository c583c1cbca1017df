"""The student's answer: a short `think`, a meta action and 8 poses, in one strict text grammar.

    response := ws? "<think>" THINK "</think>" ws? "<action>" LAT "," LON "</action>" ws? "<traj>" POSE{8} "</traj>" ws?
    POSE     := "(" NUM "," NUM "," NUM ")"          x [m], y [m], heading [rad] in the ego frame at t = 0.5 ... 4 s
    NUM      := [+-] DIGITS "." DIGIT DIGIT          rendered with an explicit sign and 2 decimals; the parser also
                                                     accepts [+-]? DIGITS ("." DIGITS)? (ASCII digits), and reads
                                                     nan / inf as numbers only to report them as NON_FINITE
    LAT      := keep_lane | change_left | change_right | turn_left | turn_right
    LON      := accelerate | keep_speed | decelerate | stop
    THINK    := any text without "<"

Example (no whitespace between sections, which is how `render_response` writes it):

    <think>road straight; vehicle 14 m ahead slower; red light 31 m ahead; intent: keep lane, decelerate, go
    straight.</think>
    <action>keep_lane,decelerate</action><traj>(+4.95,+0.02,+0.00)(+9.60,+0.05,+0.01)...(+30.12,+0.40,+0.02)</traj>

`parse_response` never raises: any string gives a `Response` or a `ParseError` whose kind says what is wrong.
Checks, in this order: sections present (MISSING_SECTION), each once, in order, nothing outside them
(BAD_LAYOUT), the meta action (BAD_ACTION), each pose's syntax (BAD_POSE), 8 poses (WRONG_POSE_COUNT),
finite numbers (NON_FINITE), then plausibility (ABSURD_VALUE): no step longer than 25 m in 0.5 s (180 km/h),
|heading| <= π, no pose more than 2 m behind the start (the ego never reverses in these scenes).

The ground-truth `think` is generated from the scene (`scene_think`): the shape of the road ahead (how far
the route's lane bends sideways over the next 4 s of travel), up to 3 nearest relevant agents with their
distance, bearing and motion, the state of a signal on the route ahead, and the intent (meta action and
command). It is derived, not annotated, so it says only what the scene data knows. The meta action is the
generator's (`sample.meta_action`); `derive_meta_action` reads one off the plan for scenes without it
(e.g. NAVSIM exports), by thresholds on the final heading, lateral offset and speed, blind to the map.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

import numpy as np

from driving.geometry import ego_origin, global_to_local, trajectory_local, wrap_angle
from driving.scene import (
    NUM_PLAN_POSES,
    POSE_INTERVAL_S,
    Agent,
    LateralAction,
    LongitudinalAction,
    MetaAction,
    Scene,
)

LATERAL_ACTIONS: tuple[str, ...] = get_args(LateralAction)
LONGITUDINAL_ACTIONS: tuple[str, ...] = get_args(LongitudinalAction)
SECTIONS = ("think", "action", "traj")
RESPONSE_TAGS = tuple(t for s in SECTIONS for t in (f"<{s}>", f"</{s}>"))

MAX_STEP_M = 25.0  # [m] per 0.5 s step: 50 m/s
MAX_BEHIND_M = 2.0  # [m] a pose this far behind the start is absurd
MAX_THINK_AGENTS = 3
RELEVANT_BEHIND_M = 4.0  # [m] agents further behind than this are not mentioned
RELEVANT_AHEAD_S = 3.0  # [s] agents up to this many seconds of ego travel ahead (+ 20 m) are mentioned
RELEVANT_SIDE_M = 6.0  # [m] |local y| of agents the think mentions at t = 0
ENTERING_SIDE_M = 3.0  # [m] |local y| at t = 2 s of agents entering the ego's path (crossing, cut-in)
LIGHT_RANGE_M = 60.0  # [m] a signal on the route this close ahead is mentioned
ROAD_HORIZON_S = 4.0  # [s] the road's bend is read over the distance covered in this time at current speed
ROAD_MIN_REACH_M = 10.0  # [m] ... but at least this far
ROAD_STRAIGHT_M = 0.3  # [m] a smaller sideways bend over that distance reads "road straight"


# --------------------------------------------------------------------------------- containers ---


class ParseErrorKind(StrEnum):
    MISSING_SECTION = "missing_section"
    BAD_LAYOUT = "bad_layout"
    BAD_ACTION = "bad_action"
    BAD_POSE = "bad_pose"
    WRONG_POSE_COUNT = "wrong_pose_count"
    NON_FINITE = "non_finite"
    ABSURD_VALUE = "absurd_value"


@dataclass(frozen=True)
class ParseError:
    kind: ParseErrorKind
    message: str
    text: str


@dataclass(frozen=True, eq=False)
class Response:
    text: str  # exactly what the model wrote
    think: str  # stripped
    meta_action: MetaAction
    poses: np.ndarray  # (8, 3) float64 (x [m], y [m], heading [rad]), ego frame at t = 0.5 ... 4 s


# ---------------------------------------------------------------------------------- rendering ---


def format_number(value: float) -> str:
    """`+4.95`: explicit sign, 2 decimals; -0.00 is written +0.00."""
    return f"{round(float(value), 2) + 0.0:+.2f}"


def format_poses(poses: np.ndarray) -> str:
    """(N, 3) poses -> `(x,y,h)(x,y,h)...`, the form shared by the response and the prompt's history."""
    return "".join("(" + ",".join(format_number(v) for v in row) + ")" for row in np.asarray(poses))


def render_response(think: str, meta_action: MetaAction, poses: np.ndarray) -> str:
    """The response text; `poses` is (8, 3) in the ego frame. `think` must not contain '<'."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape != (NUM_PLAN_POSES, 3):
        raise ValueError(f"need ({NUM_PLAN_POSES}, 3) poses, got {poses.shape}")
    if "<" in think:
        raise ValueError("think text must not contain '<'")
    action = f"{meta_action.lateral},{meta_action.longitudinal}"
    return f"<think>{think}</think><action>{action}</action><traj>{format_poses(poses)}</traj>"


def ground_truth_response(scene: Scene) -> str:
    """The target answer for a scene with a `sample`: generated think, its meta action, the expert plan."""
    poses, meta = ground_truth_plan(scene)
    return render_response(scene_think(scene, meta), meta, poses)


def ground_truth_plan(scene: Scene) -> tuple[np.ndarray, MetaAction]:
    """The expert plan of a scene with a `sample`, (8, 3) in the ego frame, and its meta action (the
    sample's own, else read off the plan)."""
    if scene.sample is None:
        raise ValueError(f"scene {scene.id}: no `sample` block, so no expert plan to render")
    poses = wrap_poses(trajectory_local(scene.sample.expert, scene.ego))
    return poses, scene.sample.meta_action or derive_meta_action(poses, scene.ego.vx)


def wrap_poses(poses: np.ndarray) -> np.ndarray:
    out = np.array(poses, dtype=np.float64)
    out[:, 2] = wrap_angle(out[:, 2])
    return out


def derive_meta_action(poses: np.ndarray, speed: float) -> MetaAction:
    """A meta action read off an (8, 3) local plan, for scenes whose `sample` has none.
    Turn: final heading beyond ±0.5 rad; lane change: ≥ 2 m sideways with little heading change.
    Speed [m/s] at the end from the last step; stop below 0.5 m/s; a ±1 m/s change is (de)celeration."""
    poses = np.asarray(poses, dtype=np.float64)
    heading, lateral = float(poses[-1, 2]), float(poses[-1, 1])
    if abs(heading) > 0.5:
        lat = "turn_left" if heading > 0 else "turn_right"
    elif abs(lateral) > 2.0:
        lat = "change_left" if lateral > 0 else "change_right"
    else:
        lat = "keep_lane"
    v_end = float(np.hypot(*(poses[-1, :2] - poses[-2, :2]))) / POSE_INTERVAL_S
    if v_end < 0.5:
        lon = "stop"
    elif v_end > speed + 1.0:
        lon = "accelerate"
    elif v_end < speed - 1.0:
        lon = "decelerate"
    else:
        lon = "keep_speed"
    return MetaAction(lateral=lat, longitudinal=lon)


# ------------------------------------------------------------------------------------- think ---

_TYPE_WORDS = {
    "vehicle": "vehicle",
    "pedestrian": "pedestrian",
    "bicycle": "cyclist",
    "traffic_cone": "cone",
    "barrier": "barrier",
    "czone_sign": "sign",
    "generic_object": "object",
}
_COMMAND_WORDS = {
    "left": "turn left",
    "straight": "go straight",
    "right": "turn right",
    "unknown": "follow road",
}


def _bearing(x: float, y: float) -> str:
    angle = math.degrees(math.atan2(y, x))
    if abs(angle) <= 15.0:
        return "ahead"
    if abs(angle) <= 60.0:
        return "ahead left" if angle > 0 else "ahead right"
    if abs(angle) <= 120.0:
        return "left" if angle > 0 else "right"
    return "behind"


def _motion(agent: Agent, local_heading: float, speed: float, ego_speed: float) -> str | None:
    """How the agent moves relative to the ego; None for static objects."""
    if agent.is_static:
        return None
    if speed < 0.5:
        return "stopped"
    h = abs(float(wrap_angle(local_heading)))
    if h > 2.4:
        return "oncoming"
    if h > 0.7:
        return "crossing"
    if speed < ego_speed - 1.0:
        return "slower"
    if speed > ego_speed + 1.0:
        return "faster"
    return "same speed"


def _agent_phrases(scene: Scene) -> list[str]:
    """Phrases for the nearest agents near the ego's path at t = 0, or entering it by t = 2 s."""
    origin = ego_origin(scene.ego)
    ahead = 20.0 + RELEVANT_AHEAD_S * max(scene.ego.vx, 0.0)  # [m]
    found: list[tuple[float, str]] = []
    for agent in scene.agents:
        now = agent.state_at_frame(0)
        if now is None:
            continue
        later = agent.state_at_frame(4) or now
        (x, y, h), (x2, y2, _) = global_to_local(np.array([now[:3], later[:3]], dtype=np.float64), origin)
        near_now = -RELEVANT_BEHIND_M <= x <= ahead and abs(y) <= RELEVANT_SIDE_M
        entering = 0.0 <= x <= ahead and 0.0 <= x2 <= ahead and abs(y2) <= ENTERING_SIDE_M
        if not (near_now or entering):
            continue
        dist = float(math.hypot(x, y))
        words = [_TYPE_WORDS[agent.type], f"{round(dist)} m", _bearing(x, y)]
        motion = _motion(agent, h, float(math.hypot(now[3], now[4])), scene.ego.vx)
        if motion:
            words.append(motion)
        if agent.braking:
            words.append("braking")  # its brake lights are on in the image
        found.append((dist, " ".join(words)))
    return [phrase for _, phrase in sorted(found)[:MAX_THINK_AGENTS]]


def _light_phrase(scene: Scene) -> str | None:
    """The nearest signal on the route ahead: `red light 23 m ahead`."""
    route = set(scene.map.route_roadblock_ids)
    origin = ego_origin(scene.ego)
    best: tuple[float, bool] | None = None
    for connector in scene.map.roadblock_connectors or []:
        if connector.id not in route:
            continue
        for lane in connector.lanes:
            light = next((t for t in scene.traffic_lights or [] if t.lane_connector_id == lane.id), None)
            if light is None:
                continue
            start = np.array([[*lane.centerline[0], 0.0]], dtype=np.float64)
            x, y, _ = global_to_local(start, origin)[0]
            if 0.0 <= x <= LIGHT_RANGE_M and abs(y) <= 2 * RELEVANT_SIDE_M and (best is None or x < best[0]):
                best = (float(x), light.red)
    if best is None:
        return None
    return f"{'red' if best[1] else 'green'} light {round(best[0])} m ahead"


def road_ahead_offset(scene: Scene) -> float:
    """[m] How far the route's centerline (PDM-Closed's, from the ego's lane) bends to the left (+) over the
    distance the ego covers in 4 s at its current speed (at least 10 m): the centerline's lateral position
    there minus its lateral position beside the ego, in the ego frame."""
    from scorer import prepare  # lazy: the compiled scorer is not needed to parse or render responses

    line = prepare(scene).route.centerline
    ego = scene.ego
    start = float(line.project(np.array([ego.x, ego.y], dtype=np.float64)))
    reach = max(ROAD_HORIZON_S * ego.vx, ROAD_MIN_REACH_M)
    beside, ahead = global_to_local(line.interpolate(np.array([start, start + reach])), ego_origin(ego))
    return float(ahead[1] - beside[1])


def road_phrase(scene: Scene) -> str:
    """`road straight` or `road bends right 1.4 m`: what the camera shows of the lane ahead."""
    offset = road_ahead_offset(scene)
    if abs(offset) < ROAD_STRAIGHT_M:
        return "road straight"
    return f"road bends {'left' if offset > 0 else 'right'} {abs(offset):.1f} m"


def scene_think(scene: Scene, meta_action: MetaAction) -> str:
    """`road straight; vehicle 14 m ahead slower; red light 23 m ahead; intent: keep lane, decelerate, go
    straight.`"""
    seen = _agent_phrases(scene)
    light = _light_phrase(scene)
    if light:
        seen.append(light)
    parts = [road_phrase(scene), *(seen or ["road clear"])]
    command = scene.sample.command if scene.sample else "unknown"
    intent = (
        f"intent: {meta_action.lateral.replace('_', ' ')}, {meta_action.longitudinal.replace('_', ' ')}, "
        f"{_COMMAND_WORDS[command]}."
    )
    return "; ".join(parts) + "; " + intent


# ------------------------------------------------------------------------------------ parsing ---

_LAYOUT = re.compile(
    r"\s*<think>(?P<think>.*?)</think>\s*<action>(?P<action>.*?)</action>\s*<traj>(?P<traj>.*?)</traj>\s*",
    re.DOTALL,
)
_POSE_SEQUENCE = re.compile(r"(?:\s*\([^()]*\))*\s*")
_POSE = re.compile(r"\(([^()]*)\)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def parse_response(text: str) -> Response | ParseError:
    """Parse a model's answer (see the module docstring); never raises."""
    try:
        return _parse(text)
    except Exception as err:  # a bug here must cost a format error, never a crashed rollout
        return ParseError(ParseErrorKind.BAD_LAYOUT, f"unparseable: {type(err).__name__}: {err}", str(text))


def _parse(text: str) -> Response | ParseError:
    def error(kind: ParseErrorKind, message: str) -> ParseError:
        return ParseError(kind, message, text)

    if not isinstance(text, str):
        return error(ParseErrorKind.BAD_LAYOUT, f"expected text, got {type(text).__name__}")
    for section in SECTIONS:
        opened, closed = text.count(f"<{section}>"), text.count(f"</{section}>")
        if opened == 0 or closed == 0:
            return error(ParseErrorKind.MISSING_SECTION, f"no <{section}>...</{section}> section")
        if opened > 1 or closed > 1:
            return error(ParseErrorKind.BAD_LAYOUT, f"<{section}> section appears more than once")
    layout = _LAYOUT.fullmatch(text)
    if layout is None:
        return error(ParseErrorKind.BAD_LAYOUT, "sections must be think, action, traj in order, nothing else")
    think = layout["think"].strip()
    if "<" in think:
        return error(ParseErrorKind.BAD_LAYOUT, "think contains '<'")
    meta = _parse_action(layout["action"])
    if isinstance(meta, str):
        return error(ParseErrorKind.BAD_ACTION, meta)
    poses = _parse_poses(layout["traj"])
    if isinstance(poses, ParseError):
        return ParseError(poses.kind, poses.message, text)
    return Response(text=text, think=think, meta_action=meta, poses=poses)


def _parse_action(body: str) -> MetaAction | str:
    """`keep_lane,decelerate` -> MetaAction, or an error message."""
    fields = body.split(",")
    if len(fields) != 2:
        return f"action must be `lateral,longitudinal`, got {body[:60]!r}"
    lat, lon = (f.strip() for f in fields)
    if lat not in LATERAL_ACTIONS:
        return f"unknown lateral action {lat[:40]!r}; allowed: {', '.join(LATERAL_ACTIONS)}"
    if lon not in LONGITUDINAL_ACTIONS:
        return f"unknown longitudinal action {lon[:40]!r}; allowed: {', '.join(LONGITUDINAL_ACTIONS)}"
    return MetaAction(lateral=lat, longitudinal=lon)


def _parse_poses(body: str) -> np.ndarray | ParseError:
    def error(kind: ParseErrorKind, message: str) -> ParseError:
        return ParseError(kind, message, body)

    if _POSE_SEQUENCE.fullmatch(body) is None:
        return error(ParseErrorKind.BAD_POSE, "trajectory must be a sequence of (x,y,heading)")
    rows: list[list[float]] = []
    non_finite = False
    for i, match in enumerate(_POSE.finditer(body)):
        fields = match[1].split(",")
        if len(fields) != 3:
            return error(ParseErrorKind.BAD_POSE, f"pose {i} has {len(fields)} fields, need 3 (x,y,heading)")
        row = []
        for field in fields:
            if _NON_FINITE.fullmatch(field):
                non_finite = True
                row.append(math.nan)
            elif _NUMBER.fullmatch(field):
                row.append(float(field))  # a very long digit string overflows to inf: caught below
            else:
                return error(ParseErrorKind.BAD_POSE, f"pose {i}: {field[:40]!r} is not a number like +4.95")
        rows.append(row)
    if len(rows) != NUM_PLAN_POSES:
        return error(ParseErrorKind.WRONG_POSE_COUNT, f"{len(rows)} poses, need {NUM_PLAN_POSES}")
    poses = np.array(rows, dtype=np.float64)
    if non_finite or not np.isfinite(poses).all():
        return error(ParseErrorKind.NON_FINITE, "poses contain nan or inf")
    problem = _absurdity(poses)
    if problem:
        return error(ParseErrorKind.ABSURD_VALUE, problem)
    poses.setflags(write=False)  # a Response is immutable
    return poses


def _absurdity(poses: np.ndarray) -> str | None:
    """What makes an (8, 3) plan physically absurd, or None."""
    steps = np.hypot(*np.diff(np.vstack([np.zeros((1, 3)), poses])[:, :2], axis=0).T)  # (8,) [m]
    if steps.max() > MAX_STEP_M:
        i = int(steps.argmax())
        return f"pose {i} moves {steps[i]:.1f} m in {POSE_INTERVAL_S} s (max {MAX_STEP_M} m)"
    if np.abs(poses[:, 2]).max() > math.pi:
        return "a heading is beyond ±π rad"
    if poses[:, 0].min() < -MAX_BEHIND_M:
        return f"a pose is more than {MAX_BEHIND_M} m behind the start"
    return None
