"""Small hand-built scenes for the scorer's branch tests.

A straight road along +x: lanes `right` (y = 0) and `left` (y = 3.5) in roadblock `fwd` (the route), and
`oncoming` (y = -3.5, driving -x) in roadblock `onc`; lanes are 3.5 m wide, x from -60 to 260 m. Optionally
an intersection at x in [30, 50] with the forward road continuing behind it through connector `conn`.
The ego's rear axle starts at the origin heading +x.
"""

from __future__ import annotations

import numpy as np

from driving.scene import Scene, scene_from_dict

LANE_W = 3.5


def lane(
    lane_id: str, y: float, x0: float, x1: float, outgoing: list[str] | None = None, limit: float = 15.0
) -> dict:
    out = {"id": lane_id, "centerline": [[x0, y], [x1, y]], "width": LANE_W, "speed_limit_mps": limit}
    if outgoing:
        out["outgoing"] = outgoing
    return out


def road(intersection: bool = False, red_light: bool = False) -> dict:
    """The map block of a scene (see module docstring)."""
    if not intersection:
        return {
            "roadblocks": [
                {"id": "fwd", "lanes": [lane("right", 0.0, -60, 260), lane("left", LANE_W, -60, 260)]},
                {"id": "onc", "lanes": [lane("oncoming", -LANE_W, 260, -60)]},
            ],
            "route_roadblock_ids": ["fwd"],
        }
    square = [[30.0, -5.25], [50.0, -5.25], [50.0, 8.75], [30.0, 8.75]]
    return {
        "roadblocks": [
            {"id": "fwd", "lanes": [lane("right", 0.0, -60, 30, ["conn_lane"])], "outgoing": ["conn"]},
            {"id": "after", "lanes": [lane("right2", 0.0, 50, 260)]},
            {"id": "onc", "lanes": [lane("oncoming", -LANE_W, 260, -60)]},
        ],
        "roadblock_connectors": [
            {"id": "conn", "lanes": [lane("conn_lane", 0.0, 30, 50, ["right2"])], "outgoing": ["after"]}
        ],
        "intersections": [{"id": "junction", "polygon": square}],
        "route_roadblock_ids": ["fwd", "conn", "after"],
    }


def cv_agent(
    agent_id: str, x: float, y: float, vx: float = 0.0, vy: float = 0.0, kind: str = "vehicle", **kw
) -> dict:
    """Constant-velocity agent (4.5 × 2.0 m vehicle by default), heading along its velocity (or +x)."""
    heading = float(np.arctan2(vy, vx)) if (vx or vy) else 0.0
    size = {"vehicle": (4.5, 2.0), "pedestrian": (0.6, 0.6), "bicycle": (1.8, 0.6)}.get(kind, (0.5, 0.5))
    out = {
        "id": agent_id,
        "type": kind,
        "length": size[0],
        "width": size[1],
        "x": x,
        "y": y,
        "heading": heading,
    }
    out.update({"vx": vx, "vy": vy})
    out.update(kw)
    return out


def track_agent(agent_id: str, rows: list, kind: str = "vehicle", size: tuple = (4.5, 2.0)) -> dict:
    """Agent with explicit frames [x, y, heading, vx, vy] every 0.5 s (None where absent)."""
    return {"id": agent_id, "type": kind, "length": size[0], "width": size[1], "states": rows}


def straight_plan(speed: float, lateral: float = 0.0, accel: float = 0.0) -> list:
    """8 rear-axle poses (0.5 s apart) in the ego frame: constant acceleration along x (until standstill),
    y eased to `lateral` over 2 s."""
    t = np.arange(1, 9) * 0.5
    if accel < 0:
        t_stop = speed / -accel
        tx = np.minimum(t, t_stop)
        x = speed * tx + 0.5 * accel * tx * tx
    else:
        x = speed * t + 0.5 * accel * t * t
    y = lateral * np.clip(t / 2.0, 0.0, 1.0)
    h = np.arctan2(np.gradient(y, t), np.maximum(np.gradient(x, t), 1e-9)) if lateral else np.zeros(8)
    return np.column_stack([x, y, h]).round(6).tolist()


def cruise(speed: float, duration: float = 4.0) -> np.ndarray:
    """(8, 3) plan at constant speed straight ahead (array form for `score`)."""
    return np.asarray(straight_plan(speed))


def scene(
    agents: list | None = None,
    plan: list | None = None,
    speed: float = 10.0,
    intersection: bool = False,
    red: bool = False,
    **extra: object,
) -> Scene:
    data = {
        "ego": {"x": 0.0, "y": 0.0, "heading": 0.0, "vx": speed, "vy": 0.0, "ax": 0.0, "ay": 0.0},
        "map": road(intersection),
        "agents": agents or [],
        "trajectory": {"poses": plan if plan is not None else straight_plan(speed), "frame": "local"},
    }
    if red:
        data["traffic_lights"] = [{"lane_connector_id": "conn_lane", "red": True}]
    data.update(extra)
    return scene_from_dict(data)
