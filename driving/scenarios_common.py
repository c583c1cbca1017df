"""Building blocks shared by the scenario families: the draft a family returns, agent motion along
paths, the ego's state and history, and small samplers.

Agents are simulated at 0.1 s (speed from an acceleration profile, lateral offset from a profile) and
written as 11 frames at 0.5 s (0-5 s), global frame, velocity as global vx/vy. Simplified: agents move
kinematically along their lane paths (no dynamics, no reaction to the ego), which is what a log replay
looks like to the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

from driving.expert import PathOption
from driving.roads import Path

AGENT_DT = 0.1  # [s]
AGENT_STEPS = 51  # 0 .. 5 s
FRAME_EVERY = 5  # write every 5th step (0.5 s)

VEHICLE_SIZES = {  # (length, width) ranges [m]
    "car": ((4.2, 5.0), (1.75, 2.0)),
    "suv": ((4.6, 5.3), (1.9, 2.1)),
    "van": ((5.0, 6.2), (2.0, 2.2)),
    "truck": ((7.5, 12.0), (2.4, 2.6)),
    "bus": ((11.0, 13.0), (2.5, 2.6)),
}


@dataclass
class Draft:
    """What a family function returns; the generator adds the expert plan and the `sample` block."""

    map: dict  # JSON-ready MapData
    ego: dict  # JSON-ready EgoState (with history)
    agents: list[dict]
    options: list[PathOption]  # lateral choices for the expert (first = the route's own lane)
    drivable: shapely.Geometry
    command: str
    description: str
    tags: list[str] = field(default_factory=list)
    traffic_lights: list[dict] | None = None
    cv_fails_by: tuple[str, ...] = ()  # long-tail: constant velocity must fail by one of these
    stop_s: float | None = None  # red stop line on options[0].path (for the constant-velocity check)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def choice(rng: np.random.Generator, items: list | tuple, p: list[float] | None = None):  # noqa: ANN201
    return items[int(rng.choice(len(items), p=p))]


def vehicle_size(
    rng: np.random.Generator, kinds: tuple[str, ...] = ("car", "car", "car", "suv", "van")
) -> tuple[float, float]:
    (l0, l1), (w0, w1) = VEHICLE_SIZES[choice(rng, kinds)]
    return round(uniform(rng, l0, l1), 2), round(uniform(rng, w0, w1), 2)


def speed_profile(v0: float, accel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Speed [m/s] and distance [m] at each 0.1 s step from an acceleration profile; stops at 0."""
    v = np.empty(AGENT_STEPS)
    s = np.empty(AGENT_STEPS)
    v[0], s[0] = v0, 0.0
    for k in range(1, AGENT_STEPS):
        v[k] = max(0.0, v[k - 1] + accel[k - 1] * AGENT_DT)
        s[k] = s[k - 1] + 0.5 * (v[k] + v[k - 1]) * AGENT_DT
    return v, s


def accel_steps(*pieces: tuple[float, float]) -> np.ndarray:
    """(51,) acceleration from (start time [s], acceleration [m/s²]) pieces, smoothed over 0.5 s so
    agents' jerk stays finite."""
    t = np.arange(AGENT_STEPS) * AGENT_DT
    a = np.zeros(AGENT_STEPS)
    for t0, value in sorted(pieces):
        a[t >= t0 - 1e-9] = value
    kernel = np.ones(5) / 5
    return np.convolve(np.concatenate([np.full(2, a[0]), a, np.full(2, a[-1])]), kernel, mode="valid")


def smooth_step(t: np.ndarray, t0: float, duration: float) -> np.ndarray:
    """0 before t0, 1 after t0 + duration, quintic in between."""
    u = np.clip((t - t0) / max(duration, 1e-6), 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u**2)


def agent_on_path(
    agent_id: str,
    kind: str,
    size: tuple[float, float],
    path: Path,
    s0: float,
    v0: float,
    accel: np.ndarray | None = None,
    lateral: np.ndarray | None = None,
) -> dict:
    """A JSON agent driving along `path` from arc length s0 [m] (centre), with an acceleration profile
    and a lateral offset profile (left positive) at 0.1 s."""
    accel = np.zeros(AGENT_STEPS) if accel is None else accel
    v, ds = speed_profile(v0, accel)
    s = s0 + ds
    d = np.zeros(AGENT_STEPS) if lateral is None else lateral
    xy = path.point(s, d)
    _, _, h_path = path.pose(s)
    dd = np.gradient(d, AGENT_DT)
    heading = h_path + np.arctan2(dd, np.maximum(v, 0.5))
    return _agent_json(agent_id, kind, size, xy, heading)


def walker(
    agent_id: str,
    kind: str,
    size: tuple[float, float],
    start: np.ndarray,
    heading: float,
    speed: np.ndarray,
    max_dist: float = np.inf,
) -> dict:
    """A JSON agent moving in a straight line with a speed profile (51,) [m/s] (e.g. waits, then walks),
    stopping after `max_dist` m (e.g. on the far kerb)."""
    dist = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * AGENT_DT)])
    dist = np.minimum(dist, max_dist)
    xy = start[None, :] + dist[:, None] * np.array([np.cos(heading), np.sin(heading)])[None, :]
    return _agent_json(agent_id, kind, size, xy, np.full(AGENT_STEPS, heading))


def static_object(
    agent_id: str, kind: str, size: tuple[float, float], x: float, y: float, heading: float
) -> dict:
    xy = np.tile(np.array([[x, y]]), (AGENT_STEPS, 1))
    return _agent_json(agent_id, kind, size, xy, np.full(AGENT_STEPS, heading))


def _agent_json(
    agent_id: str, kind: str, size: tuple[float, float], xy: np.ndarray, heading: np.ndarray
) -> dict:
    vel = np.gradient(xy, AGENT_DT, axis=0)
    frames = np.concatenate([xy, heading[:, None], vel], axis=1)[::FRAME_EVERY]
    frames[:, 2] = (frames[:, 2] + np.pi) % (2 * np.pi) - np.pi
    return {
        "id": agent_id,
        "type": kind,
        "length": size[0],
        "width": size[1],
        "states": np.round(frames, 3).tolist(),
    }


def ego_on_path(path: Path, s0: float, v0: float, a0: float, d0: float = 0.0, dh: float = 0.0) -> dict:
    """The ego's JSON state at arc length s0 with speed v0 [m/s] and acceleration a0 [m/s²]; its history
    (-1.5, -1.0, -0.5 s) replays constant acceleration backwards along the path (standing still before
    it would have started). History rows: global x, y, heading; vx, vy, ax, ay in the ego frame."""
    x, y = path.point(np.array(s0), d0)
    _, _, h = path.pose(np.array(s0))
    kappa = float(path.curvature(np.array(s0)))
    rows = []
    for t in (-1.5, -1.0, -0.5):
        if a0 > 0 and v0 + a0 * t < 0:  # it was standing still then (it started at t = -v0/a0)
            s_t, v_t, a_t = s0 - v0**2 / (2 * a0), 0.0, 0.0
        else:
            s_t, v_t, a_t = s0 + v0 * t + 0.5 * a0 * t * t, v0 + a0 * t, a0
        hx, hy = path.point(np.array(s_t), d0)
        _, _, hh = path.pose(np.array(s_t))
        k_t = float(path.curvature(np.array(s_t)))
        rows.append([float(hx), float(hy), float(hh) + dh, v_t, 0.0, a_t, v_t**2 * k_t])
    return {
        "x": round(float(x), 3),
        "y": round(float(y), 3),
        "heading": round(float(h) + dh, 5),
        "vx": round(v0, 3),
        "vy": 0.0,
        "ax": round(a0, 3),
        "ay": round(v0**2 * kappa, 3),
        "history": [[round(float(val), 4) for val in row] for row in rows],
    }


def union_polygons(rings: list[list[list[float]]]) -> shapely.Geometry:
    """Drivable area from JSON polygons (roadblocks, intersections)."""
    return shapely.union_all([shapely.make_valid(Polygon(r)) for r in rings])


def road_speed_limit(rng: np.random.Generator, urban: bool = False) -> float:
    """A speed limit [m/s] from common signposted values (30-100 km/h; urban up to 60)."""
    kmh = (30, 40, 50, 60) if urban else (40, 50, 60, 70, 80, 100)
    return round(choice(rng, kmh) / 3.6, 3)
