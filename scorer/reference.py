"""PDM-Closed, the reference planner whose progress normalises EP (NAVSIM's PDMGenerator + BatchIDMPolicy).

15 proposals: the centerline and its ±1 m offsets × IDM target speeds of 0.2–1.0 × the starting lane's
speed limit. Each is unrolled 40 steps along its path; every second step the leading object is looked
up in the path's corridor (path ahead, buffered by half the ego width) among PDM-Closed's forecast
objects and red on-route connectors, and IDM accelerates towards the target speed or brakes behind it.

What does not depend on the unrolled states (which objects are in which corridor at which step, and
where along the path) is computed for all steps before the loop; the loop itself handles all 15
proposals at once. NAVSIM quirks kept on purpose: the first step always sees a zero leading state (full
braking); the leading-agent record is one array reused by the five proposals of a path in turn, so a
proposal inherits the velocity or rear length its predecessor set when it does not set them itself.
Among objects at equal distance the first in observation order wins (NAVSIM: STRtree order); equal
distances practically only occur at contact, where IDM brakes fully either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from scorer.boxes import box_corners, ego_centers, polygons
from scorer.constants import (
    DT,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    EGO_LENGTH,
    EGO_WIDTH,
    FALLBACK_TARGET_VELOCITY,
    IDM_ACCEL_MAX,
    IDM_DECEL_MAX,
    IDM_EXPONENT,
    IDM_HEADWAY,
    IDM_MIN_GAP,
    LATERAL_OFFSETS,
    NUM_POSES,
    PLANNER_HORIZON_POSES,
    SPEED_LIMIT_FRACTIONS,
)
from scorer.interp import normalize_angle
from scorer.observation import Observation
from scorer.paths import Path

N_POLICIES = len(SPEED_LIMIT_FRACTIONS)
IDM_COMFORT = 2 * np.sqrt(IDM_ACCEL_MAX * IDM_DECEL_MAX)


def proposal_paths(centerline: Path) -> list[Path]:
    return [centerline] + [centerline.offset(offset) for offset in LATERAL_OFFSETS]


@dataclass(eq=False)
class _Leaders:
    """Candidate leading objects per update step and proposal (the 5 proposals of a path share theirs),
    padded to a common width n: objects in observation order, then red lights."""

    valid: np.ndarray  # (F, 15, n) bool
    progress: np.ndarray  # (F, 15, n) arc length of the object's centre on the proposal's path [m]
    polygons: np.ndarray  # (F, 15, n) shapely polygons (None where not valid)
    speed: np.ndarray  # (F, 15, n) [m/s]
    heading: np.ndarray  # (F, 15, n) [rad]
    is_agent: np.ndarray  # (F, 15, n) agents get a projected velocity, static objects 0
    is_red: np.ndarray  # (F, 15, n) red lights leave the record's velocity as it was


def _corridor(path: Path, start: float, reach: float) -> shapely.Geometry:
    corridor = path.substring(start, reach).buffer(EGO_WIDTH / 2, cap_style="square")
    shapely.prepare(corridor)
    return corridor


def _corridor_objects(obs: Observation, path: Path, corridor: shapely.Geometry, frames: np.ndarray) -> tuple:
    """Objects in the corridor as (object, frame) pairs sorted by frame, with their arc lengths and
    polygons; and the red lights in it (index, arc length, polygon), present in every frame."""
    corners = obs.corners[:, frames]  # (O, F, 4, 2)
    lo, hi = corners.min(axis=2), corners.max(axis=2)
    x0, y0, x1, y1 = corridor.bounds
    box = (hi[..., 0] >= x0) & (lo[..., 0] <= x1) & (hi[..., 1] >= y0) & (lo[..., 1] <= y1)
    f_idx, o_idx = np.nonzero((box & ~obs.collided[:, None]).T)  # frame-major, objects in order
    polys = polygons(corners[o_idx, f_idx])
    inside = shapely.intersects(corridor, polys) if len(polys) else np.zeros(0, dtype=bool)
    o_idx, f_idx, polys = o_idx[inside], f_idx[inside], polys[inside]
    progress = np.zeros(0)
    if len(o_idx):  # static objects sit at the same centroid in every frame: project each place once
        places, where = np.unique(
            shapely.get_coordinates(shapely.centroid(polys)), axis=0, return_inverse=True
        )
        progress = path.project(places)[where.ravel()]
    red = [
        r for r, poly in enumerate(obs.red_polygons) if not obs.red_collided[r] and corridor.intersects(poly)
    ]
    red_polys = obs.red_polygons[red] if red else np.zeros(0, dtype=object)
    red_progress = path.project(shapely.get_coordinates(shapely.centroid(red_polys))) if red else np.zeros(0)
    return o_idx, f_idx, progress, polys, red_progress, red_polys


def _leaders(
    obs: Observation, paths: list[Path], corridors: list[shapely.Geometry], frames: np.ndarray
) -> _Leaders:
    found = [_corridor_objects(obs, path, c, frames) for path, c in zip(paths, corridors)]
    n_frames = len(frames)
    counts = [np.bincount(f_idx, minlength=n_frames) for _, f_idx, *_ in found]
    width = max([1] + [int(c.max(initial=0)) + len(item[4]) for c, item in zip(counts, found)])
    shape = (n_frames, len(paths), width)
    table = _Leaders(
        valid=np.zeros(shape, dtype=bool),
        progress=np.zeros(shape),
        polygons=np.full(shape, None, dtype=object),
        speed=np.zeros(shape),
        heading=np.zeros(shape),
        is_agent=np.zeros(shape, dtype=bool),
        is_red=np.zeros(shape, dtype=bool),
    )
    for p, ((o_idx, f_idx, progress, polys, red_progress, red_polys), count) in enumerate(zip(found, counts)):
        slot = np.arange(len(f_idx)) - np.repeat(np.cumsum(count) - count, count)  # position in its frame
        table.valid[f_idx, p, slot] = True
        table.progress[f_idx, p, slot] = progress
        table.polygons[f_idx, p, slot] = polys
        table.speed[f_idx, p, slot] = obs.speed0[o_idx]
        table.heading[f_idx, p, slot] = obs.heading0[o_idx]
        table.is_agent[f_idx, p, slot] = obs.is_agent[o_idx]
        for r in range(len(red_polys)):  # after the objects of each frame
            frame, slot_r = np.arange(n_frames), count + r
            table.valid[frame, p, slot_r] = table.is_red[frame, p, slot_r] = True
            table.progress[frame, p, slot_r] = red_progress[r]
            table.polygons[frame, p, slot_r] = red_polys[r]
    for name in ("valid", "progress", "polygons", "speed", "heading", "is_agent", "is_red"):
        setattr(table, name, np.repeat(getattr(table, name), N_POLICIES, axis=1))  # one row per proposal
    return table


def _forward_fill(values: np.ndarray, is_set: np.ndarray) -> np.ndarray:
    """(P·5,) values written only where `is_set`, read by the five proposals of a path in turn: each
    proposal sees the latest value written by itself or a predecessor of its path (0 before any write)."""
    idx = np.where(is_set, _SLOT[: len(values)], -1).reshape(-1, N_POLICIES)
    last = np.maximum.accumulate(idx, axis=1).ravel()
    return np.where(last >= 0, values[_BASE[: len(values)] + np.maximum(last, 0)], 0.0)


_SLOT = np.tile(np.arange(N_POLICIES), 3)  # proposal's position within its path
_BASE = np.repeat(np.arange(3) * N_POLICIES, N_POLICIES)  # index of its path's first proposal


def _free_record(path_lengths: np.ndarray) -> np.ndarray:
    """The leading record when nothing is ahead of any proposal: the path's end, no velocity written."""
    n = len(path_lengths) * N_POLICIES
    return np.stack([np.repeat(path_lengths, N_POLICIES), np.zeros(n), np.full(n, EGO_LENGTH / 2)], axis=1)


def _lead_update(
    lead: _Leaders, f: int, path_lengths: np.ndarray, ego_progress: np.ndarray, ego_poses: np.ndarray
) -> np.ndarray:
    """(15, 3) leading (progress, velocity, rear length) of all proposals at update step f."""
    ahead = lead.valid[f] & (lead.progress[f] > ego_progress[:, None])  # (15, n)
    rows, cols = np.nonzero(ahead)
    if rows.size == 0:
        return _free_record(path_lengths)
    dist = np.full(ahead.shape, np.inf)
    centers = ego_centers(ego_poses[rows])
    corners = box_corners(centers[:, 0], centers[:, 1], ego_poses[rows, 2], EGO_HALF_LENGTH, EGO_HALF_WIDTH)
    dist[rows, cols] = shapely.distance(polygons(corners), lead.polygons[f][rows, cols])
    every = np.arange(len(dist))
    nearest = np.argmin(dist, axis=1)
    gap = dist[every, nearest]
    has_lead = gap < np.inf
    rel = normalize_angle(lead.heading[f][every, nearest] - ego_poses[:, 2])
    velocity = np.where(lead.is_agent[f][every, nearest], np.cos(rel) * lead.speed[f][every, nearest], 0.0)
    path_end = np.repeat(path_lengths, N_POLICIES)
    record = np.empty((len(dist), 3))
    record[:, 0] = np.where(has_lead, ego_progress + np.where(has_lead, gap, 0.0), path_end)
    record[:, 1] = _forward_fill(velocity, has_lead & ~lead.is_red[f][every, nearest])
    record[:, 2] = _forward_fill(np.full(len(dist), EGO_LENGTH / 2), ~has_lead)
    return record


def _idm_step(progress: np.ndarray, velocity: np.ndarray, lead: np.ndarray, target: np.ndarray) -> tuple:
    """One explicit Euler step of the IDM (NAVSIM's BatchIDMPolicy.propagate)."""
    s_star = IDM_MIN_GAP + velocity * IDM_HEADWAY + (velocity * (velocity - lead[:, 1])) / IDM_COMFORT
    s_alpha = np.maximum(lead[:, 0] - progress - lead[:, 2], IDM_MIN_GAP)
    accel = IDM_ACCEL_MAX * (1 - (velocity / target) ** IDM_EXPONENT - (s_star / s_alpha) ** 2)
    accel = np.minimum(np.maximum(accel, -IDM_DECEL_MAX), IDM_ACCEL_MAX)
    return progress + DT * velocity, velocity + DT * accel


class _PathSet:
    """The three proposal paths, interpolated together (NAVSIM's PDMPath.interpolate per path)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.lengths = np.array([path.length for path in paths])
        self.offsets = np.cumsum([0] + [len(path.progress) for path in paths])[:-1]
        self.progress = np.concatenate([path.progress for path in paths])
        self.states = np.concatenate([path.states for path in paths])
        self.path_of = np.repeat(np.arange(len(paths)), N_POLICIES)

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """(15, ...) arc lengths, path-major -> (15, ..., 3) poses."""
        extra = (1,) * (distances.ndim - 1)
        d = np.minimum(np.maximum(distances, 1e-5), self.lengths[self.path_of].reshape(-1, *extra))
        hi = np.concatenate(
            [np.searchsorted(path.progress, d[r], side="left") for path, r in zip(self.paths, _path_rows(3))]
        )
        n_points = np.array([len(path.progress) for path in self.paths])[self.path_of].reshape(-1, *extra)
        hi = np.minimum(np.maximum(hi, 1), n_points - 1) + self.offsets[self.path_of].reshape(-1, *extra)
        lo = hi - 1
        slope = (self.states[hi] - self.states[lo]) / (self.progress[hi] - self.progress[lo])[..., None]
        out = slope * (d - self.progress[lo])[..., None] + self.states[lo]
        out[..., 2] = normalize_angle(out[..., 2])
        return out


def _path_rows(num_paths: int) -> list[slice]:
    return [slice(p * N_POLICIES, (p + 1) * N_POLICIES) for p in range(num_paths)]


def generate_proposals(
    paths: list[Path], rear_axle: np.ndarray, speed: float, speed_limit: float | None, obs: Observation
) -> np.ndarray:
    """(15, 41, 3) proposal poses: path-major, IDM policy-minor (NAVSIM's proposal order)."""
    limit = speed_limit if speed_limit is not None else FALLBACK_TARGET_VELOCITY
    target = np.tile(np.array(SPEED_LIMIT_FRACTIONS) * limit, len(paths))
    path_set = _PathSet(paths)
    start = np.array([float(path.project(rear_axle[None, :2])[0]) for path in paths])
    reach = start + abs(target.max()) * PLANNER_HORIZON_POSES * DT
    corridors = [_corridor(path, s, r) for path, s, r in zip(paths, start, reach)]
    steps = NUM_POSES + 1
    lead_table = _leaders(obs, paths, corridors, obs.frame_of_step[np.arange(2, steps, 2)])
    progress = np.zeros((len(target), steps))
    progress[:, 0] = np.repeat(start, N_POLICIES)
    v = np.full(len(target), float(speed))
    any_leader = lead_table.valid.any(axis=(1, 2)).tolist()  # per update step
    poses_prev = None
    lead = np.zeros((len(target), 3))
    for t in range(1, steps):
        if t % 2 == 0:
            f = t // 2 - 1
            if any_leader[f]:
                lead = _lead_update(lead_table, f, path_set.lengths, progress[:, t - 1], poses_prev)
            else:
                lead = _free_record(path_set.lengths)
        progress[:, t], v = _idm_step(progress[:, t - 1], v, lead, target)
        if t % 2 == 1 and any_leader[(t + 1) // 2 - 1]:  # poses only where an update will need them
            poses_prev = path_set.interpolate(progress[:, t])
    return path_set.interpolate(progress)
