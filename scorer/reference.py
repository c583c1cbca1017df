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

The corridors' candidate objects are tested against all three corridors with one GEOS call, and their
arc lengths come from `Path.project`; in the loop, scalar constants are 0-d arrays (half the cost of
Python floats in a numpy operation) and the paths' segment slopes are precomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from scorer.boxes import ego_coords, polygons
from scorer.constants import (
    DT,
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

    progress: np.ndarray  # (F, 15, n) object centre's arc length on the proposal's path [m], -inf: none
    polygons: np.ndarray  # (F, 15, n) shapely polygons (None where there is no candidate)
    # (F, 15, n, 4): heading [rad], speed [m/s], is agent (agents get a projected velocity, static objects
    # 0), is red light (red lights leave the record's velocity as it was): one gather reads all four
    attributes: np.ndarray


def _corridor(path: Path, start: float, reach: float) -> shapely.Geometry:
    corridor = path.substring(start, reach).buffer(EGO_WIDTH / 2, cap_style="square")
    shapely.prepare(corridor)
    return corridor


def _leaders(
    obs: Observation, paths: list[Path], corridors: list[shapely.Geometry], frames: np.ndarray
) -> _Leaders:
    """The objects in each path's corridor at each update frame, with their arc lengths, and the red lights
    in it (present in every frame). The polygons of the objects near any corridor are built once and tested
    against all three corridors in one call."""
    n_frames, n_paths = len(frames), len(paths)
    corners = obs.corners[:, frames]  # (O, F, 4, 2)
    lo, hi = corners.min(axis=2), corners.max(axis=2)
    corridor_array = np.array(corridors, dtype=object)
    x0, y0, x1, y1 = shapely.bounds(corridor_array).T[:, :, None, None]  # (P, 1, 1) each
    box = (hi[..., 0] >= x0) & (lo[..., 0] <= x1) & (hi[..., 1] >= y0) & (lo[..., 1] <= y1)  # (P, O, F)
    box &= ~obs.collided[:, None]
    f_idx, o_idx = np.nonzero(box.any(axis=0).T)  # candidates, frame-major, objects in order
    polys = polygons(corners[o_idx, f_idx])
    path_of, cand = np.nonzero(box[:, o_idx, f_idx])  # by path, then candidate
    if len(cand):
        hit = shapely.intersects(corridor_array[path_of], polys[cand])
        path_of, cand = path_of[hit], cand[hit]
    progress = np.empty(len(cand))
    if len(cand):
        centroids = shapely.get_coordinates(shapely.centroid(polys[cand]))
        for p, path in enumerate(paths):
            mine = path_of == p
            if mine.any():
                progress[mine] = path.project(centroids[mine])
    frame, obj = f_idx[cand], o_idx[cand]
    group = path_of * n_frames + frame  # entries are sorted by group
    counts = np.bincount(group, minlength=n_paths * n_frames)
    slot = np.arange(len(group)) - (np.cumsum(counts) - counts)[group]  # position in its frame
    reds = [
        [r for r in np.flatnonzero(~obs.red_collided) if corridor.intersects(obs.red_polygons[r])]
        for corridor in corridors
    ]
    width = max(1, int((counts.reshape(n_paths, n_frames) + np.array([len(r) for r in reds])[:, None]).max()))
    shape = (n_frames, n_paths, width)
    table = _Leaders(np.full(shape, -np.inf), np.full(shape, None, dtype=object), np.zeros(shape + (4,)))
    where = (frame, path_of, slot)
    table.progress[where], table.polygons[where] = progress, polys[cand]
    table.attributes[where + (slice(0, 3),)] = np.stack(
        [obs.heading0[obj], obs.speed0[obj], obs.is_agent[obj]], 1
    )
    every = np.arange(n_frames)
    for p, (path, red) in enumerate(zip(paths, reds)):  # after the objects of each frame
        if red:
            red_polys = obs.red_polygons[red]
            red_progress = path.project(shapely.get_coordinates(shapely.centroid(red_polys)))
            for r in range(len(red)):
                slot_r = counts[p * n_frames : (p + 1) * n_frames] + r
                table.progress[every, p, slot_r] = red_progress[r]
                table.polygons[every, p, slot_r] = red_polys[r]
                table.attributes[every, p, slot_r, 3] = 1.0
    for name in ("progress", "polygons", "attributes"):
        setattr(table, name, np.repeat(getattr(table, name), N_POLICIES, axis=1))  # one row per proposal
    return table


def _forward_fill(values: np.ndarray, is_set: np.ndarray) -> np.ndarray:
    """(P·5,) values written only where `is_set`, read by the five proposals of a path in turn: each
    proposal sees the latest value written by itself or a predecessor of its path (0 before any write)."""
    idx = np.where(is_set, _SLOT[: len(is_set)], -1).reshape(-1, N_POLICIES)
    last = np.maximum.accumulate(idx, axis=1).ravel()
    return np.where(last >= 0, values[_BASE[: len(values)] + np.maximum(last, 0)], 0.0)


_SLOT = np.tile(np.arange(N_POLICIES), 3)  # proposal's position within its path
_BASE = np.repeat(np.arange(3) * N_POLICIES, N_POLICIES)  # index of its path's first proposal
_HALF_EGO_LENGTH = np.array(EGO_LENGTH / 2)


@dataclass(eq=False)
class _Record:
    """The leading record each proposal's IDM reads (15,) each: progress [m], velocity [m/s], rear length [m]."""

    progress: np.ndarray
    velocity: np.ndarray
    rear: np.ndarray


def _free_record(path_end: np.ndarray) -> _Record:
    """The leading record when nothing is ahead of any proposal: the path's end, no velocity written."""
    return _Record(path_end, np.zeros(len(path_end)), np.full(len(path_end), EGO_LENGTH / 2))


def _lead_update(
    lead: _Leaders, f: int, path_end: np.ndarray, ego_progress: np.ndarray, ego_poses: np.ndarray
) -> _Record:
    """The leading record of all proposals at update step f; `path_end` (15,) [m]."""
    ahead = lead.progress[f] > ego_progress[:, None]  # (15, n)
    rows, cols = np.nonzero(ahead)
    if rows.size == 0:
        return _free_record(path_end)
    ego = polygons(ego_coords(ego_poses)[:, :4])
    dist = np.full(ahead.shape, np.inf)
    dist[rows, cols] = shapely.distance(ego[rows], lead.polygons[f][rows, cols])
    nearest = np.argmin(dist, axis=1)
    flat = _ROWS[: len(dist)] * dist.shape[1] + nearest  # the nearest object of each proposal
    gap = dist.ravel()[flat]
    has_lead = gap < np.inf
    heading, speed, is_agent, is_red = lead.attributes[f].reshape(-1, 4)[flat].T
    velocity = np.where(is_agent > 0.0, np.cos(normalize_angle(heading - ego_poses[:, 2])) * speed, 0.0)
    no_lead_yet = np.logical_or.accumulate(~has_lead.reshape(-1, N_POLICIES), axis=1).ravel()  # in its path
    return _Record(
        np.where(has_lead, ego_progress + gap, path_end),  # gap is inf where there is no leader
        _forward_fill(velocity, has_lead & (is_red == 0.0)),
        np.where(no_lead_yet, _HALF_EGO_LENGTH, 0.0),
    )


_ROWS = np.arange(3 * N_POLICIES)
# IDM constants as 0-d arrays: numpy combines them with an array at the cost of an array, half that of a
# Python float
_MIN_GAP, _HEADWAY, _COMFORT = np.array(IDM_MIN_GAP), np.array(IDM_HEADWAY), np.array(IDM_COMFORT)
_ACCEL_MAX, _DECEL_MAX, _ONE, _DT = (
    np.array(IDM_ACCEL_MAX),
    np.array(-IDM_DECEL_MAX),
    np.array(1.0),
    np.array(DT),
)


def _idm_step(progress: np.ndarray, velocity: np.ndarray, lead: _Record, target: np.ndarray) -> tuple:
    """One explicit Euler step of the IDM (NAVSIM's BatchIDMPolicy.propagate)."""
    s_star = _MIN_GAP + velocity * _HEADWAY + (velocity * (velocity - lead.velocity)) / _COMFORT
    s_alpha = np.maximum(lead.progress - progress - lead.rear, _MIN_GAP)
    ratio = s_star / s_alpha
    accel = _ACCEL_MAX * (_ONE - (velocity / target) ** IDM_EXPONENT - ratio * ratio)
    accel = np.minimum(np.maximum(accel, _DECEL_MAX), _ACCEL_MAX)
    return progress + _DT * velocity, velocity + _DT * accel


class _PathSet:
    """The three proposal paths, interpolated together (NAVSIM's PDMPath.interpolate per path, scipy's
    formula: the slope of each segment is computed once)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.lengths = np.array([path.length for path in paths])
        self.path_of = np.repeat(np.arange(len(paths)), N_POLICIES)
        self.progress = np.concatenate([path.progress for path in paths])
        self.states = np.concatenate([path.states for path in paths])
        sizes = np.array([len(path.progress) for path in paths])
        self.row_end = self.lengths[self.path_of]  # (15,) per proposal
        self.row_last = (sizes - 1)[self.path_of]
        self.row_offset = (np.cumsum(sizes) - sizes)[self.path_of]
        with np.errstate(invalid="ignore", divide="ignore"):  # slope[i]: segment i-1 -> i of its path
            self.slope = np.zeros_like(self.states)
            self.slope[1:] = (self.states[1:] - self.states[:-1]) / (self.progress[1:] - self.progress[:-1])[
                :, None
            ]
        self.rows = _path_rows(len(paths))

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """(15, ...) arc lengths, path-major -> (15, ..., 3) poses."""
        extra = (1,) * (distances.ndim - 1)
        d = np.minimum(np.maximum(distances, 1e-5), self.row_end.reshape(-1, *extra))
        hi = np.concatenate(
            [np.searchsorted(path.progress, d[r], side="left") for path, r in zip(self.paths, self.rows)]
        )
        hi = np.minimum(np.maximum(hi, 1), self.row_last.reshape(-1, *extra)) + self.row_offset.reshape(
            -1, *extra
        )
        lo = hi - 1
        out = self.slope[hi] * (d - self.progress[lo])[..., None] + self.states[lo]
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
    progress = np.zeros((steps, len(target)))  # step-major: each step's row is contiguous
    progress[0] = np.repeat(start, N_POLICIES)
    v = np.full(len(target), float(speed))
    any_leader = (lead_table.progress > -np.inf).any(axis=(1, 2)).tolist()  # per update step
    path_end = path_set.lengths[path_set.path_of]
    poses_prev = None
    lead = _Record(np.zeros(len(target)), np.zeros(len(target)), np.zeros(len(target)))
    for t in range(1, steps):
        if t % 2 == 0:
            f = t // 2 - 1
            if any_leader[f]:
                lead = _lead_update(lead_table, f, path_end, progress[t - 1], poses_prev)
            else:
                lead = _free_record(path_end)
        progress[t], v = _idm_step(progress[t - 1], v, lead, target)
        if t % 2 == 1 and any_leader[(t + 1) // 2 - 1]:  # poses only where an update will need them
            poses_prev = path_set.interpolate(progress[t])
    return path_set.interpolate(progress.T)
