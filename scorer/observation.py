"""The other road users, as NAVSIM's scorer and PDM-Closed see them.

Two observations are built from a scene's agents:

* `scoring_observation` is the metric cache's: agent frames every 0.5 s (11 for v1, 9 for v2), linearly
  interpolated to 10 Hz with scipy's formula and unwrapped headings; a track seen in one frame only is
  kept at every step with that box (as NAVSIM does). v2 (log replay) drops the tracks that overlap the
  ego at t = 0 and adds the red on-route lane connectors as obstacles.
* `forecast_observation` is PDM-Closed's: the objects at t = 0 within 100 m of the ego, nearest first and
  capped per type, moved at constant velocity along their heading (reversed when they drive backwards),
  sampled every 0.2 s; objects overlapping the ego at t = 0 are ignored.

Boxes are kept as corner arrays (nuPlan's arithmetic) with their centres and headings for fast
pre-tests; where NAVSIM reads a polygon's centroid, the scorer asks GEOS for it whenever the last bits
could matter. Ids containing "red_light" are not given NAVSIM's red-light treatment (NAVSIM recognises
red lights by that substring of their token): only the traffic lights of the scene are red lights here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon

from driving.scene import Scene
from scorer.boxes import box_corners, intersects, polygons
from scorer.constants import (
    AGENT_TYPES,
    DT,
    MAP_RADIUS,
    MAX_DYNAMIC_OBJECTS,
    MAX_STATIC_OBJECTS,
    PLANNER_HORIZON_POSES,
)
from scorer.interp import interp_linear, normalize_angle

FRAME_INTERVAL = 0.5  # [s] between agent frames


@dataclass(eq=False)
class Observation:
    """Objects over time. Frame f of `corners` is what the scorer sees at the steps mapped to f."""

    ids: list[str]
    is_agent: np.ndarray  # (O,) vehicle / pedestrian / bicycle (NC at fault -> 0, else 0.5)
    corners: np.ndarray  # (O, F, 4, 2)
    centers: np.ndarray  # (O, F, 2)
    headings: np.ndarray  # (O, F) box headings [rad]
    half_size: np.ndarray  # (O, 2) half length, half width [m]
    present: np.ndarray  # (O, F) bool
    frame_of_step: np.ndarray  # (T,) step index -> frame index
    heading0: np.ndarray  # (O,) heading of the track's first box [rad] (NAVSIM's unique object)
    speed0: np.ndarray  # (O,) its speed [m/s]; 0 for static objects
    collided: np.ndarray  # (O,) bool: ignored from the start (overlapping the ego at t = 0)
    red_ids: list[str]
    red_polygons: np.ndarray  # (R,) shapely polygons of red on-route lane connectors
    red_collided: np.ndarray  # (R,) bool
    _at: dict = field(default_factory=dict)  # steps -> at_step's arrays (read-only, shared)

    def at_step(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Corners (O, S, 4, 2), centres (O, S, 2), headings (O, S) and presence (O, S) at the steps (kept
        for the next call with the same steps)."""
        key = steps.tobytes()
        if key not in self._at:
            frames = self.frame_of_step[steps]
            self._at[key] = (
                self.corners[:, frames],
                self.centers[:, frames],
                self.headings[:, frames],
                self.present[:, frames],
            )
        return self._at[key]


def _agent_frames(agents: list, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, F, 5) frames [x, y, heading, vx, vy] every 0.5 s, and (A, F) presence."""
    frames = np.zeros((len(agents), num_frames, 5))
    have = np.zeros((len(agents), num_frames), dtype=bool)
    for a, agent in enumerate(agents):
        for f in range(num_frames):
            state = agent.state_at_frame(f)
            if state is not None:
                frames[a, f], have[a, f] = state, True
    return frames, have


def _interpolate_tracks(
    frames: np.ndarray, have: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tracks (A, F, 5) seen in `have` -> states (A, T, 5) at `times` and presence (A, T). Tracks seen in the
    same frames share their knots and are interpolated together."""
    states = np.zeros((len(frames), len(times), 5))
    present = np.zeros((len(frames), len(times)), dtype=bool)
    patterns: dict[tuple, list[int]] = {}
    for a, row in enumerate(have):
        patterns.setdefault(tuple(row), []).append(a)
    for pattern, members in patterns.items():
        seen = np.nonzero(pattern)[0]
        if len(seen) == 1:  # NAVSIM keeps a once-seen track at every step
            states[members] = frames[members][:, seen]
            present[members] = True
        elif len(seen) > 1:
            knots = seen * FRAME_INTERVAL
            values = frames[members][:, seen].copy()
            values[..., 2] = np.unwrap(values[..., 2], axis=1)
            track = interp_linear(knots, values, times)
            track[..., 2] = normalize_angle(track[..., 2])
            states[members] = track
            present[members] = (knots[0] <= times) & (times <= knots[-1])
    return states, present


def red_light_polygons(scene: Scene, lane_ids: list[str], lanes: dict) -> tuple[list[str], list[Polygon]]:
    """Tokens and polygons of the red lane connectors among `lane_ids`, in the scene's light order."""
    red = scene.red_connector_ids()
    ids = [lane_id for lane_id in lane_ids if lane_id in red]
    order = [
        tl.lane_connector_id for tl in scene.traffic_lights or [] if tl.red and tl.lane_connector_id in ids
    ]
    ordered = list(dict.fromkeys(order))
    return [f"red_light_{i}" for i in ordered], [lanes[i].polygon for i in ordered]


def scoring_observation(
    scene: Scene,
    num_frames: int,
    num_steps: int,
    ego_box: np.ndarray,
    red: tuple[list[str], list[Polygon]] | None,
) -> Observation:
    """The metric cache's observation: tracks at 10 Hz for `num_steps` steps. With `red` (v2), tracks that
    overlap the ego's box (4, 2) at t = 0 are dropped and the red lights are added."""
    times = np.arange(0, num_steps, dtype=float) * DT
    frames, have = _agent_frames(scene.agents, num_frames)
    seen = have.any(axis=1)  # tracks never seen are not in the observation
    agents = [a for a, k in zip(scene.agents, seen) if k]
    states, present = _interpolate_tracks(frames[seen], have[seen], times)
    first = states[np.arange(len(agents)), np.argmax(present, axis=1)]  # NAVSIM's unique object
    ids = [a.id for a in agents]
    is_agent = np.array([a.type in AGENT_TYPES for a in agents], dtype=bool)
    heading0 = first[:, 2]
    speed0 = np.where(is_agent, np.hypot(first[:, 3], first[:, 4]), 0.0)
    sizes = np.array([(a.length, a.width) for a in agents], dtype=np.float64).reshape(-1, 2)
    obs = _observation(ids, is_agent, states, present, heading0, speed0, sizes, num_steps)
    if red is not None:
        overlap = obs.present[:, 0] & intersects(
            obs.corners[:, 0], np.broadcast_to(ego_box, obs.corners[:, 0].shape)
        )
        obs = _subset(obs, ~overlap)
        obs.red_ids, obs.red_polygons = red[0], np.array(red[1], dtype=object)
        obs.red_collided = np.zeros(len(red[0]), dtype=bool)
    return obs


def _observation(ids, is_agent, states, present, heading0, speed0, sizes, num_steps) -> Observation:  # noqa: ANN001
    n = len(ids)
    st = np.array(states, dtype=np.float64).reshape(n, num_steps, 5)
    corners = box_corners(
        st[..., 0], st[..., 1], st[..., 2], (sizes[:, 0] / 2.0)[:, None], (sizes[:, 1] / 2.0)[:, None]
    )
    return Observation(
        ids=list(ids),
        is_agent=np.array(is_agent, dtype=bool),
        corners=corners,
        centers=st[..., :2].copy(),
        headings=st[..., 2].copy(),
        half_size=sizes / 2.0,
        present=np.array(present, dtype=bool).reshape(n, num_steps),
        frame_of_step=np.arange(num_steps),
        heading0=np.array(heading0, dtype=np.float64),
        speed0=np.array(speed0, dtype=np.float64),
        collided=np.zeros(n, dtype=bool),
        red_ids=[],
        red_polygons=np.array([], dtype=object),
        red_collided=np.zeros(0, dtype=bool),
    )


def _subset(obs: Observation, keep: np.ndarray) -> Observation:
    return Observation(
        ids=[i for i, k in zip(obs.ids, keep) if k],
        is_agent=obs.is_agent[keep],
        corners=obs.corners[keep],
        centers=obs.centers[keep],
        headings=obs.headings[keep],
        half_size=obs.half_size[keep],
        present=obs.present[keep],
        frame_of_step=obs.frame_of_step,
        heading0=obs.heading0[keep],
        speed0=obs.speed0[keep],
        collided=obs.collided[keep],
        red_ids=obs.red_ids,
        red_polygons=obs.red_polygons,
        red_collided=obs.red_collided,
    )


def _nearest_first(scene_agents: list, ego_center: np.ndarray) -> list:
    """NAVSIM's object manager: static objects then vehicles, pedestrians, bicycles, each nearest first."""
    groups: dict[str, list] = {"static": [], "vehicle": [], "pedestrian": [], "bicycle": []}
    for agent in scene_agents:
        groups[agent.type if agent.type in AGENT_TYPES else "static"].append(agent)
    out = []
    for kind, cap in (("static", MAX_STATIC_OBJECTS), *MAX_DYNAMIC_OBJECTS.items()):
        members = groups["static" if kind == "static" else kind]
        centers = np.array([a.state_at_frame(0)[:2] for a in members], dtype=np.float64).reshape(-1, 2)
        dist = ((centers - ego_center[None]) ** 2.0).sum(axis=-1) ** 0.5
        out += [members[i] for i in np.argsort(dist)[:cap]]
    return out


def forecast_observation(
    scene: Scene, ego_center: np.ndarray, ego_box: np.ndarray, red: tuple[list[str], list[Polygon]]
) -> Observation:
    """PDM-Closed's constant-velocity forecast of the objects at t = 0 (frames every 0.2 s, 5 s)."""
    seen = [a for a in scene.agents if a.state_at_frame(0) is not None]
    xy = np.array([a.state_at_frame(0)[:2] for a in seen], dtype=np.float64).reshape(-1, 2) - ego_center
    visible = [a for a, near in zip(seen, np.hypot(xy[:, 0], xy[:, 1]) <= MAP_RADIUS) if near]
    agents = _nearest_first(visible, ego_center)
    samples = np.arange(0, PLANNER_HORIZON_POSES + 2, 2)
    x, y, h, vx, vy = np.array([a.state_at_frame(0) for a in agents], dtype=np.float64).reshape(-1, 5).T
    dynamic = np.array([a.type in AGENT_TYPES for a in agents], dtype=bool)
    speed = np.where(dynamic, np.hypot(vx, vy), 0.0)
    forward = np.abs(normalize_angle(h - np.arctan2(vy, vx))) < np.pi / 2
    track_h = np.where(forward, h, normalize_angle(h + np.pi))  # reversed when driving backwards
    dxy = np.where(dynamic[:, None], np.stack([np.cos(track_h) * speed, np.sin(track_h) * speed], 1), 0.0)
    sizes = np.array([[a.length, a.width] for a in agents]).reshape(-1, 2)
    obs = _forecast_boxes([a.id for a in agents], dynamic, np.stack([x, y], 1), dxy, h, speed, sizes, samples)
    obs.collided = obs.present[:, 0] & intersects(
        obs.corners[:, 0], np.broadcast_to(ego_box, obs.corners[:, 0].shape)
    )
    obs.red_ids, obs.red_polygons = red[0], np.array(red[1], dtype=object)
    ego_poly = polygons(ego_box)
    obs.red_collided = np.array([ego_poly.within(p) for p in obs.red_polygons], dtype=bool)
    return obs


def _forecast_boxes(
    ids: list[str],
    is_agent: np.ndarray,
    pos0: np.ndarray,
    dxy: np.ndarray,
    heading: np.ndarray,
    speed: np.ndarray,
    sizes: np.ndarray,
    samples: np.ndarray,
) -> Observation:
    """Boxes at t = 0 (positions (O, 2), headings (O,)), translated by (sample × 0.1 s) × velocity dxy (O, 2),
    one frame per sample."""
    n = len(ids)
    delta = samples * DT
    corners0 = box_corners(pos0[:, 0], pos0[:, 1], heading, sizes[:, 0] / 2.0, sizes[:, 1] / 2.0)
    corners = corners0[:, None] + delta[None, :, None, None] * dxy[:, None, None, :]
    centers = pos0[:, None] + delta[None, :, None] * dxy[:, None, :]
    steps = np.arange(PLANNER_HORIZON_POSES + 2)
    return Observation(
        ids=list(ids),
        is_agent=is_agent,
        corners=corners,
        centers=centers,
        headings=np.repeat(heading[:, None], len(samples), axis=1),
        half_size=sizes / 2.0,
        present=np.ones((n, len(samples)), dtype=bool),
        frame_of_step=steps // 2,
        heading0=heading.copy(),
        speed0=speed,
        collided=np.zeros(n, dtype=bool),
        red_ids=[],
        red_polygons=np.array([], dtype=object),
        red_collided=np.zeros(0, dtype=bool),
    )
