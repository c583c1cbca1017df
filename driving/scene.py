"""The Scene: one driving scene as SCENE_FORMAT.md defines it, with strict JSON read/write.

The pydantic models below mirror the JSON keys one to one, so a scene read from a file and written
back gives the same JSON (optional keys that were absent stay absent). Everything is SI: m, s, m/s, rad,
in one global frame unless a field says otherwise.

Structural errors (types, counts) and semantic errors (unknown ids, duplicate ids) both raise
`SceneError`, whose message names the JSON path of each bad field, e.g.
`map.roadblocks[2].lanes[0].centerline: need >= 2 points`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# nuPlan's Pacifica, the ego vehicle NAVSIM scores [m]
EGO_LENGTH = 5.176
EGO_WIDTH = 2.297
EGO_FRONT_LENGTH = 4.049  # rear axle -> front bumper
EGO_REAR_LENGTH = 1.127  # rear axle -> rear bumper
EGO_WHEELBASE = 3.089
EGO_REAR_AXLE_TO_CENTER = 1.461  # rear axle -> box centre

POSE_INTERVAL_S = 0.5  # [s] between trajectory poses and agent frames
NUM_PLAN_POSES = 8  # 8 poses at 0.5 s -> 4 s
HISTORY_TIMES_S = (-1.5, -1.0, -0.5)

AgentType = Literal[
    "vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign", "generic_object"
]
STATIC_AGENT_TYPES = frozenset({"traffic_cone", "barrier", "czone_sign", "generic_object"})
BRAKING_DECEL = 1.0  # [m/s2] a vehicle slowing harder than this over its first 0.5 s frame shows brake lights
Command = Literal["left", "straight", "right", "unknown"]
LateralAction = Literal["keep_lane", "change_left", "change_right", "turn_left", "turn_right"]
LongitudinalAction = Literal["accelerate", "keep_speed", "decelerate", "stop"]

Point = tuple[float, float]
Pose = tuple[float, float, float]  # (x [m], y [m], heading [rad])


class SceneError(ValueError):
    """A scene that cannot be read. `problems` holds one `path: message` string per bad field."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class _Strict(BaseModel):
    """Frozen, no unknown keys: a typo in a key is an error, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(values: list[float], what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers")


# --------------------------------------------------------------------------------------- ego ---


class EgoState(_Strict):
    x: float
    y: float
    heading: float
    vx: float  # [m/s] ego frame
    vy: float
    ax: float  # [m/s²] ego frame
    ay: float
    # 3 rows [x, y, heading, vx, vy, ax, ay] at -1.5, -1.0, -0.5 s (global frame)
    history: list[tuple[float, float, float, float, float, float, float]] | None = None

    @field_validator("history")
    @classmethod
    def _three_history_states(cls, v: list | None) -> list | None:
        if v is not None:
            if len(v) != 3:
                raise ValueError(f"need exactly 3 states (at -1.5, -1.0, -0.5 s), got {len(v)}")
            for row in v:
                _finite(list(row), "history values")
        return v

    @model_validator(mode="after")
    def _finite_state(self) -> EgoState:
        _finite([self.x, self.y, self.heading, self.vx, self.vy, self.ax, self.ay], "ego state")
        return self


# ---------------------------------------------------------------------------------- trajectory ---


class Trajectory(_Strict):
    poses: list[Pose]
    frame: Literal["local", "global"] = "local"
    interval_length: float = Field(default=POSE_INTERVAL_S, gt=0.0)

    @field_validator("poses")
    @classmethod
    def _poses(cls, v: list[Pose]) -> list[Pose]:
        if len(v) < 1:
            raise ValueError("need >= 1 pose")
        for p in v:
            _finite(list(p), "poses")
        return v


# --------------------------------------------------------------------------------------- map ---


def _polyline(v: list[Point], minimum: int, what: str) -> list[Point]:
    if len(v) < minimum:
        raise ValueError(f"need >= {minimum} points")
    for p in v:
        _finite(list(p), what)
    return v


class Lane(_Strict):
    id: str
    centerline: list[Point]  # in driving direction
    polygon: list[Point] | None = None
    width: float | None = Field(default=None, gt=0.0)  # [m] builds the polygon by buffering
    speed_limit_mps: float | None = Field(default=None, gt=0.0)
    outgoing: list[str] | None = None

    @field_validator("centerline")
    @classmethod
    def _centerline(cls, v: list[Point]) -> list[Point]:
        return _polyline(v, 2, "centerline")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point] | None) -> list[Point] | None:
        return None if v is None else _polyline(v, 3, "polygon")

    @model_validator(mode="after")
    def _shape_given(self) -> Lane:
        if self.polygon is None and self.width is None:
            raise ValueError("a lane needs `polygon` or `width` (the polygon is built by buffering)")
        return self


class Roadblock(_Strict):
    id: str
    lanes: list[Lane]
    polygon: list[Point] | None = None  # default: union of the lanes' polygons
    outgoing: list[str] | None = None

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point] | None) -> list[Point] | None:
        return None if v is None else _polyline(v, 3, "polygon")


class Area(_Strict):
    id: str
    polygon: list[Point]

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return _polyline(v, 3, "polygon")


class MapData(_Strict):
    roadblocks: list[Roadblock]
    roadblock_connectors: list[Roadblock] | None = None
    intersections: list[Area] | None = None
    carpark_areas: list[Area] | None = None
    route_roadblock_ids: list[str]
    densify_m: float | None = Field(default=None, gt=0.0)  # centerline spacing; default 0.5 m

    def all_roadblocks(self) -> Iterator[Roadblock]:
        yield from self.roadblocks
        yield from self.roadblock_connectors or []

    def all_lanes(self) -> Iterator[Lane]:
        for rb in self.all_roadblocks():
            yield from rb.lanes


# ------------------------------------------------------------------------------------ agents ---

AgentStateRow = tuple[float, float, float, float, float]  # [x, y, heading, vx, vy], global frame


class Agent(_Strict):
    id: str
    type: AgentType
    length: float = Field(gt=0.0)
    width: float = Field(gt=0.0)
    height: float | None = Field(default=None, gt=0.0)
    # either one state per 0.5 s frame from t = 0 (None where absent) ...
    states: list[AgentStateRow | None] | None = None
    # ... or constant-velocity motion from t = 0
    x: float | None = None
    y: float | None = None
    heading: float | None = None
    vx: float | None = None
    vy: float | None = None

    @field_validator("states")
    @classmethod
    def _states(cls, v: list | None) -> list | None:
        if v is not None:
            if len(v) < 1:
                raise ValueError("need >= 1 frame")
            for row in v:
                if row is not None:
                    _finite(list(row), "agent states")
        return v

    @model_validator(mode="after")
    def _one_motion_form(self) -> Agent:
        cv = [self.x, self.y, self.heading, self.vx, self.vy]
        if self.states is None:
            missing = [k for k, v in zip(("x", "y", "heading", "vx", "vy"), cv) if v is None]
            if missing:
                raise ValueError(
                    "an agent needs `states` or all of x, y, heading, vx, vy; missing: " + ", ".join(missing)
                )
            _finite([float(v) for v in cv], "agent pose")
        elif any(v is not None for v in cv):
            raise ValueError("give either `states` or x/y/heading/vx/vy, not both")
        return self

    @property
    def is_static(self) -> bool:
        return self.type in STATIC_AGENT_TYPES

    @property
    def braking(self) -> bool:
        """A moving vehicle that slows by more than BRAKING_DECEL over its first 0.5 s frame: its brake
        lights are on at t = 0 (what a camera sees of its deceleration)."""
        if self.type != "vehicle":
            return False
        now, nxt = self.state_at_frame(0), self.state_at_frame(1)
        if now is None or nxt is None:
            return False
        drop = math.hypot(now[3], now[4]) - math.hypot(nxt[3], nxt[4])
        return drop > BRAKING_DECEL * POSE_INTERVAL_S

    def state_at_frame(self, frame: int) -> AgentStateRow | None:
        """State at 0.5 s frame `frame` (None where the agent is absent)."""
        if self.states is not None:
            return self.states[frame] if frame < len(self.states) else None
        t = frame * POSE_INTERVAL_S
        assert self.x is not None and self.y is not None and self.heading is not None
        assert self.vx is not None and self.vy is not None
        return (self.x + self.vx * t, self.y + self.vy * t, self.heading, self.vx, self.vy)


class TrafficLight(_Strict):
    lane_connector_id: str
    red: bool


# ---------------------------------------------------------------------- project's own block ---


class MetaAction(_Strict):
    lateral: LateralAction
    longitudinal: LongitudinalAction


class CameraImage(_Strict):
    path: str  # relative to the scene file's dataset root
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class Sample(_Strict):
    """What training needs beyond scoring. A scorer ignores this block."""

    command: Command
    expert: Trajectory  # the privileged planner's ground-truth plan (local frame)
    family: str
    difficulty: Literal["common", "long_tail"]
    tags: list[str] = Field(default_factory=list)
    meta_action: MetaAction | None = None
    seed: int | None = None
    images: dict[str, CameraImage] | None = None  # e.g. {"front": ..., "bev": ...}


# ------------------------------------------------------------------------------------- scene ---


class Scene(_Strict):
    ego: EgoState
    map: MapData
    agents: list[Agent] = Field(default_factory=list)
    trajectory: Trajectory | None = None  # the plan to score
    traffic_lights: list[TrafficLight] | None = None
    human_trajectory: Trajectory | None = None
    two_frame_extended_comfort: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    traffic: Literal["log_replay", "reactive"] | None = None
    description: str | None = None
    id: str | None = None
    sample: Sample | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Scene:
        problems = _reference_problems(self)
        if problems:
            raise SceneError(problems)
        return self

    # convenience accessors used everywhere ------------------------------------------------
    def lane(self, lane_id: str) -> Lane:
        for lane in self.map.all_lanes():
            if lane.id == lane_id:
                return lane
        raise KeyError(lane_id)

    def red_connector_ids(self) -> set[str]:
        return {t.lane_connector_id for t in self.traffic_lights or [] if t.red}


def _reference_problems(scene: Scene) -> list[str]:
    """Ids unique across layers; every id that is referred to exists."""
    problems: list[str] = []
    seen: dict[str, str] = {}

    def claim(obj_id: str, path: str) -> None:
        if obj_id in seen:
            problems.append(f"{path}.id: duplicate id {obj_id!r} (also at {seen[obj_id]})")
        else:
            seen[obj_id] = path

    m = scene.map
    layers: list[tuple[str, list[Roadblock]]] = [("roadblocks", m.roadblocks)]
    layers.append(("roadblock_connectors", m.roadblock_connectors or []))
    for layer, blocks in layers:
        for i, rb in enumerate(blocks):
            claim(rb.id, f"map.{layer}[{i}]")
            for j, lane in enumerate(rb.lanes):
                claim(lane.id, f"map.{layer}[{i}].lanes[{j}]")
    for layer in ("intersections", "carpark_areas"):
        for i, area in enumerate(getattr(m, layer) or []):
            claim(area.id, f"map.{layer}[{i}]")

    block_ids = {rb.id for rb in m.all_roadblocks()}
    lane_ids = {lane.id for lane in m.all_lanes()}
    for i, rid in enumerate(m.route_roadblock_ids):
        if rid not in block_ids:
            problems.append(
                f"map.route_roadblock_ids[{i}]: unknown roadblock {rid!r}; "
                "use an id from map.roadblocks or map.roadblock_connectors"
            )
    if not m.route_roadblock_ids:
        problems.append("map.route_roadblock_ids: need >= 1 roadblock id")
    for layer, blocks in layers:
        for i, rb in enumerate(blocks):
            for k, out in enumerate(rb.outgoing or []):
                if out not in block_ids:
                    problems.append(f"map.{layer}[{i}].outgoing[{k}]: unknown roadblock {out!r}")
            for j, lane in enumerate(rb.lanes):
                for k, out in enumerate(lane.outgoing or []):
                    if out not in lane_ids:
                        problems.append(f"map.{layer}[{i}].lanes[{j}].outgoing[{k}]: unknown lane {out!r}")
    connector_lanes = {lane.id for rb in m.roadblock_connectors or [] for lane in rb.lanes}
    for i, tl in enumerate(scene.traffic_lights or []):
        if tl.lane_connector_id not in connector_lanes:
            problems.append(
                f"traffic_lights[{i}].lane_connector_id: {tl.lane_connector_id!r} is not a lane "
                "of map.roadblock_connectors"
            )
    agent_ids: set[str] = set()
    for i, agent in enumerate(scene.agents):
        if agent.id in agent_ids:
            problems.append(f"agents[{i}].id: duplicate agent id {agent.id!r}")
        agent_ids.add(agent.id)
    return problems


# ------------------------------------------------------------------------------------- JSON I/O ---


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "tagged-union")):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(scene)"


def _problems_from(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "too_short" and "List should have at least" in msg:
            msg = msg.replace("List should have at least", "need >=").replace(" items after validation", "")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (see SCENE_FORMAT.md; project fields go under `sample`)"
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, SceneError):
            problems.extend(ctx_err.problems)
            continue
        problems.append(f"{_json_path(e['loc'])}: {msg}")
    return problems


def scene_from_dict(data: object, source: str | None = None) -> Scene:
    """Validate a decoded JSON object into a Scene; raises SceneError naming every bad field."""
    if not isinstance(data, dict):
        raise SceneError([f"(scene): expected a JSON object, got {type(data).__name__}"], source)
    try:
        return Scene.model_validate(data)
    except ValidationError as err:
        raise SceneError(_problems_from(err), source) from None
    except SceneError as err:
        raise SceneError(err.problems, source) from None


def scene_to_dict(scene: Scene) -> dict:
    """The scene's JSON object: keys that were never set are left out, so files round-trip."""
    return scene.model_dump(mode="json", exclude_unset=True)


def load_scene(path: str | Path) -> Scene:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SceneError(
            [f"(file): not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"], str(path)
        ) from None
    except OSError as err:
        raise SceneError([f"(file): cannot read: {err.strerror}"], str(path)) from None
    return scene_from_dict(data, str(path))


def dumps_scene(scene: Scene) -> str:
    """Deterministic JSON text (same scene -> byte-identical text)."""
    return json.dumps(scene_to_dict(scene), separators=(",", ":"), allow_nan=False) + "\n"


def save_scene(scene: Scene, path: str | Path) -> None:
    Path(path).write_text(dumps_scene(scene))
