"""Geometric facts about a failed plan in its scene, as the analytic teacher reads them.

Everything is computed on the plan interpolated to 0.1 s (as the scorer does before tracking), not on
the scorer's LQR-simulated states: the teacher explains the plan the student wrote. Where the score
breakdown already says what happened (time of the first at-fault collision and its object, time of the
first TTC breach) that is used, and geometry fills in the rest (where, which side, which lane).
Simplified w.r.t. NAVSIM: at-fault classification is not replicated (the first overlap with the ego
moving is reported), and the comfort quantities are read off the 0.5 s poses, not Savitzky–Golay
filtered simulated states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from driving.expert import DT, N_TRACK, agent_tracks, boxes_overlap, ego_box_corners, plan_fine_poses
from driving.geometry import (
    drivable_area,
    ego_origin,
    global_to_local,
    lane_polygon,
    points_global_to_local,
    wrap_angle,
)
from driving.scene import (
    EGO_FRONT_LENGTH,
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
    EGO_WIDTH,
    POSE_INTERVAL_S,
    Scene,
)
from teacher_service.schema import ObjectRef

EGO_STOPPED_MPS = 0.05  # [m/s] a stopped ego is never at fault
TTC_STEPS = (3, 6, 9)  # 0.3, 0.6, 0.9 s
AHEAD_COS = math.cos(math.radians(30.0))
KEY_OBJECT_RADIUS_M = 6.0  # [m] an object this close to the ego's path (centre to centre) is a key object
LIGHT_RANGE_M = 60.0  # [m] a red light this far ahead on the route is something the think must mention
# NAVSIM's comfort bounds (PDMS), the names the diagnosis uses
COMFORT_BOUNDS = {
    "longitudinal_acceleration": (-4.05, 2.40),  # [m/s²]
    "lateral_acceleration": (-4.89, 4.89),  # [m/s²]
    "jerk": (-8.37, 8.37),  # [m/s³]
    "longitudinal_jerk": (-4.13, 4.13),  # [m/s³]
    "yaw_acceleration": (-1.93, 1.93),  # [rad/s²]
    "yaw_rate": (-0.95, 0.95),  # [rad/s]
}
COMFORT_UNITS = {
    "longitudinal_acceleration": "m/s²",
    "lateral_acceleration": "m/s²",
    "jerk": "m/s³",
    "longitudinal_jerk": "m/s³",
    "yaw_acceleration": "rad/s²",
    "yaw_rate": "rad/s",
}


@dataclass(eq=False)
class SceneFacts:
    """Per-scene geometry shared by every plan checked in it."""

    scene: Scene
    origin: np.ndarray  # (3,) ego rear axle at t = 0, global
    tracks: np.ndarray  # (N, 50, 7) agents at 0.1 s: x, y, heading, vx, vy, half length, half width
    drivable: shapely.Geometry  # prepared
    ego_speed: float  # [m/s]

    @classmethod
    def of(cls, scene: Scene) -> SceneFacts:
        area = drivable_area(scene)
        shapely.prepare(area)
        return cls(
            scene=scene,
            origin=ego_origin(scene.ego),
            tracks=agent_tracks(scene.agents, N_TRACK),
            drivable=area,
            ego_speed=float(math.hypot(scene.ego.vx, scene.ego.vy)),
        )

    def fine(self, plan: np.ndarray) -> np.ndarray:
        """(41, 3) global rear-axle poses at 0.1 s."""
        return plan_fine_poses(np.asarray(plan, dtype=np.float64), self.scene.ego)

    def object_ref(self, index: int, step: int = 0) -> ObjectRef:
        """Agent `index` at 0.1 s step `step` (its first known step if absent then), in the ego frame."""
        agent = self.scene.agents[index]
        row = self.tracks[index, min(step, N_TRACK - 1)]
        if not np.isfinite(row[0]):
            known = np.flatnonzero(np.isfinite(self.tracks[index, :, 0]))
            row = self.tracks[index, known[0]] if len(known) else row
        local = global_to_local(np.nan_to_num(row[None, :3]), self.origin)[0]
        speed = float(np.hypot(row[3], row[4])) if np.isfinite(row[3]) else 0.0
        return ObjectRef(
            id=agent.id,
            type=agent.type,
            x_m=round(float(local[0]), 2),
            y_m=round(float(local[1]), 2),
            distance_m=round(float(np.hypot(local[0], local[1])), 2),
            speed_mps=round(speed, 2),
            motion=motion_of(agent.is_static, float(local[2]), speed, self.ego_speed),
        )

    def index_of(self, agent_id: str | None) -> int | None:
        for i, agent in enumerate(self.scene.agents):
            if agent.id == agent_id:
                return i
        return None

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        return points_global_to_local(np.asarray(xy, dtype=np.float64), self.origin)


def motion_of(is_static: bool, local_heading: float, speed: float, ego_speed: float) -> str:
    """How an object moves relative to the ego (the words the student's think uses)."""
    if is_static:
        return "static"
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
    return "same_direction"


def fine_speeds(fine: np.ndarray, initial_speed: float) -> np.ndarray:
    """(41,) speed [m/s] of 0.1 s poses (backward differences; the first is the ego's speed)."""
    v = np.hypot(*np.diff(fine[:, :2], axis=0).T) / DT
    return np.concatenate([[initial_speed], v])


def _centres(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = fine[:, 2]
    return (
        fine[:, 0] + EGO_REAR_AXLE_TO_CENTER * np.cos(h),
        fine[:, 1] + EGO_REAR_AXLE_TO_CENTER * np.sin(h),
        h,
    )


def overlaps(
    fine: np.ndarray, tracks: np.ndarray, grow_lon: float = 0.0, grow_lat: float = 0.0
) -> np.ndarray:
    """(N, T) ego box (grown by margins) overlaps agent n at step t."""
    cx, cy, h = _centres(fine)
    tr = tracks[:, : len(fine)]
    return boxes_overlap(
        cx[None], cy[None], h[None], EGO_LENGTH / 2 + grow_lon, EGO_WIDTH / 2 + grow_lat,
        tr[..., 0], tr[..., 1], tr[..., 2], tr[..., 5], tr[..., 6],
    )  # fmt: skip


def first_collision(facts: SceneFacts, fine: np.ndarray) -> tuple[int, int] | None:
    """(agent index, step) of the first overlap while the ego moves, or None."""
    hit = overlaps(fine, facts.tracks)
    hit &= fine_speeds(fine, facts.ego_speed)[None] > EGO_STOPPED_MPS
    if not hit.any():
        return None
    step = int(np.argmax(hit.any(axis=0)))
    return int(np.argmax(hit[:, step])), step


def ttc_hits(facts: SceneFacts, fine: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N, T) NAVSIM's TTC projection: the ego box moved ahead by v·0.3/0.6/0.9 s hits agent n at t + δ
    while n is ahead (within 30° of the heading). Agents the ego already overlaps are skipped."""
    speed = fine_speeds(fine, facts.ego_speed)
    cx, cy, h = _centres(fine)
    touching = overlaps(fine, facts.tracks).cumsum(axis=1) > 0
    out = np.zeros((facts.tracks.shape[0], len(fine)), dtype=bool)
    for step in TTC_STEPS:
        shift = speed * step * DT
        tr = facts.tracks[:, step : step + len(fine)]
        hit = boxes_overlap(
            (cx + np.cos(h) * shift)[None], (cy + np.sin(h) * shift)[None], h[None],
            EGO_LENGTH / 2 + margin, EGO_WIDTH / 2 + margin,
            tr[..., 0], tr[..., 1], tr[..., 2], tr[..., 5], tr[..., 6],
        )  # fmt: skip
        dx, dy = tr[..., 0] - cx[None], tr[..., 1] - cy[None]
        cos_rel = (dx * np.cos(h)[None] + dy * np.sin(h)[None]) / np.maximum(np.hypot(dx, dy), 1e-6)
        out |= hit & (cos_rel > AHEAD_COS) & (speed[None] > 5e-3)
    return out & ~touching


def ttc_object(facts: SceneFacts, fine: np.ndarray, time_s: float | None) -> tuple[int, int] | None:
    """(agent index, step) of the TTC breach: at the scorer's time if given, else the first one found."""
    hits = ttc_hits(facts, fine)
    if time_s is not None:
        step = min(int(round(time_s / DT)), len(fine) - 1)
        if hits[:, step].any():
            return int(np.argmax(hits[:, step])), step
        return nearest_ahead(facts, fine, step)
    if not hits.any():
        return None
    step = int(np.argmax(hits.any(axis=0)))
    return int(np.argmax(hits[:, step])), step


def nearest_ahead(facts: SceneFacts, fine: np.ndarray, step: int) -> tuple[int, int] | None:
    """The agent nearest ahead of the ego (within 30°) at `step`."""
    cx, cy, h = _centres(fine)
    tr = facts.tracks[:, step]
    dx, dy = tr[:, 0] - cx[step], tr[:, 1] - cy[step]
    dist = np.hypot(dx, dy)
    ahead = (dx * np.cos(h[step]) + dy * np.sin(h[step])) / np.maximum(dist, 1e-6) > AHEAD_COS
    dist = np.where(ahead & np.isfinite(dist), dist, np.inf)
    if not np.isfinite(dist).any():
        return None
    return int(np.argmin(dist)), step


def side_of(fine: np.ndarray, step: int, point: np.ndarray) -> str:
    """Which side of the ego box at `step` faces a global point: front, rear, left or right."""
    cx, cy, h = _centres(fine)
    dx, dy = point[0] - cx[step], point[1] - cy[step]
    lon = dx * math.cos(h[step]) + dy * math.sin(h[step])
    lat = -dx * math.sin(h[step]) + dy * math.cos(h[step])
    if abs(lon) / (EGO_LENGTH / 2) >= abs(lat) / (EGO_WIDTH / 2):
        return "front" if lon > 0 else "rear"
    return "left" if lat > 0 else "right"


def offroad(facts: SceneFacts, fine: np.ndarray) -> tuple[int, np.ndarray, str] | None:
    """(step, global corner, side) where an ego box corner first leaves the drivable area, or None."""
    corners = ego_box_corners(fine[:, 0], fine[:, 1], fine[:, 2])  # (T, 4, 2) FL, RL, RR, FR
    inside = shapely.contains_xy(facts.drivable, corners[..., 0], corners[..., 1])
    if inside.all():
        return None
    step = int(np.argmax(~inside.all(axis=1)))
    corner = int(np.argmax(~inside[step]))
    return step, corners[step, corner], "left" if corner in (0, 1) else "right"


def wrong_way(facts: SceneFacts, fine: np.ndarray) -> tuple[int, str] | None:
    """(step, lane id) where the ego centre first lies in a lane (off the route) whose direction opposes
    the ego's heading."""
    route = set(facts.scene.map.route_roadblock_ids)
    cx, cy, h = _centres(fine)
    for rb in facts.scene.map.all_roadblocks():
        if rb.id in route:
            continue
        for lane in rb.lanes:
            inside = shapely.contains_xy(lane_polygon(lane), cx, cy)
            if not inside.any():
                continue
            line = np.asarray(lane.centerline)
            seg_h = np.arctan2(*np.diff(line, axis=0).T[::-1])
            for step in np.flatnonzero(inside):
                nearest = int(np.argmin(np.hypot(line[:-1, 0] - cx[step], line[:-1, 1] - cy[step])))
                if abs(float(wrap_angle(seg_h[nearest] - h[step]))) > math.pi / 2:
                    return int(step), lane.id
    return None


def red_lights_ahead(facts: SceneFacts) -> list[tuple[str, np.ndarray]]:
    """(connector lane id, stop point global) of red lights on route connectors, nearest first."""
    route = set(facts.scene.map.route_roadblock_ids)
    red = facts.scene.red_connector_ids()
    found = []
    for connector in facts.scene.map.roadblock_connectors or []:
        if connector.id not in route:
            continue
        for lane in connector.lanes:
            if lane.id in red:
                stop = np.asarray(lane.centerline[0], dtype=np.float64)
                x = facts.to_local(stop)[0]
                if -2.0 <= x <= LIGHT_RANGE_M:
                    found.append((x, lane.id, stop))
    return [(lane_id, stop) for _, lane_id, stop in sorted(found, key=lambda f: f[0])]


def red_light_crossing(facts: SceneFacts, fine: np.ndarray) -> tuple[int, str, np.ndarray] | None:
    """(step, connector lane id, stop point) where the ego's front bumper first enters a red route
    connector lane, or None."""
    front = fine[:, :2] + EGO_FRONT_LENGTH * np.stack([np.cos(fine[:, 2]), np.sin(fine[:, 2])], axis=-1)
    for lane_id, stop in red_lights_ahead(facts):
        inside = shapely.contains_xy(lane_polygon(facts.scene.lane(lane_id)), front[:, 0], front[:, 1])
        if inside.any():
            return int(np.argmax(inside)), lane_id, stop
    return None


def key_objects(facts: SceneFacts, paths: list[np.ndarray], first: list[int], limit: int = 4) -> list[int]:
    """Agent indices that matter for this plan: `first` (conflicts), then those that come within
    KEY_OBJECT_RADIUS_M (plus their half length) of the ego on any of `paths` (41, 3) at the same step,
    closest first."""
    closest = np.full(len(facts.scene.agents), np.inf)
    for fine in paths:
        cx, cy, _ = _centres(fine)
        tr = facts.tracks[:, : len(fine)]
        gap = np.hypot(tr[..., 0] - cx[None], tr[..., 1] - cy[None]) - tr[..., 5]
        closest = np.minimum(closest, np.nan_to_num(gap, nan=np.inf).min(axis=1))
    order = [int(i) for i in np.argsort(closest) if closest[i] < KEY_OBJECT_RADIUS_M]
    chosen = list(dict.fromkeys([*first, *order]))
    return chosen[:limit]


def comfort_excess(plan: np.ndarray, initial_speed: float) -> tuple[str, float, float] | None:
    """(quantity, measured value, bound) of the comfort bound the 0.5 s plan exceeds most, relative to
    the bound, or None."""
    pts = np.vstack([np.zeros((1, 3)), np.asarray(plan, dtype=np.float64)])
    step = np.diff(pts[:, :2], axis=0)
    v = np.concatenate([[initial_speed], np.hypot(step[:, 0], step[:, 1]) / POSE_INTERVAL_S])
    heading = np.unwrap(pts[:, 2])
    yaw_rate = np.gradient(heading, POSE_INTERVAL_S)
    values = {
        "longitudinal_acceleration": np.diff(v) / POSE_INTERVAL_S,
        "lateral_acceleration": v * yaw_rate,
        "yaw_rate": yaw_rate,
        "yaw_acceleration": np.diff(yaw_rate) / POSE_INTERVAL_S,
    }
    values["longitudinal_jerk"] = np.diff(values["longitudinal_acceleration"]) / POSE_INTERVAL_S
    worst: tuple[float, str, float, float] | None = None
    for name, series in values.items():
        low, high = COMFORT_BOUNDS[name]
        i = int(np.argmax(np.abs(series)))
        value = float(series[i])
        bound = high if value > 0 else low
        ratio = value / bound
        if ratio > 1.0 and (worst is None or ratio > worst[0]):
            worst = (ratio, name, value, bound)
    return None if worst is None else (worst[1], worst[2], worst[3])
