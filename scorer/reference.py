"""PDM-Closed, the reference planner whose progress normalises EP (NAVSIM's PDMGenerator + BatchIDMPolicy).

15 proposals: the centerline and its ±1 m offsets × IDM target speeds of 0.2–1.0 × the starting lane's
speed limit. Each is unrolled 40 steps along its path; every second step the leading object is looked
up in the path's corridor (path ahead, buffered by half the ego width) among PDM-Closed's forecast
objects and red on-route connectors, and IDM accelerates towards the target speed or brakes behind it.

What does not depend on the unrolled states (which objects are in which corridor at which step, and
where along the path) is computed for all steps before the loop, with shapely: the corridors' candidate
objects are tested against all three corridors with one GEOS call, and their arc lengths come from
`Path.project`. NAVSIM quirks kept on purpose: the first step always sees a zero leading state (full
braking); the leading-agent record is one array reused by the five proposals of a path in turn, so a
proposal inherits the velocity or rear length its predecessor set when it does not set them itself.
Among objects at equal distance the first in observation order wins (NAVSIM: STRtree order); equal
distances practically only occur at contact, where IDM brakes fully either way.

The 40-step unroll itself is compiled (numba, `_unroll`): each step depends on the last, and every
second one measures ego-to-object distances from the poses just reached, so numpy could only vectorise
over the 15 proposals (~100 calls and a GEOS round trip per step). The distances are GEOS's own
arithmetic (`scorer.planar`), the interpolation is scipy's formula with the paths' segment slopes
precomputed; sin, cos, atan2 and pow come from the C library, where numpy may use its SIMD versions, so
a pose can differ from the numpy loop's in the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit

from scorer.boxes import polygons
from scorer.constants import (
    DT,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
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
from scorer.interp import wrap_angle
from scorer.observation import Observation
from scorer.paths import Path
from scorer.planar import polygon_distance, rings

N_POLICIES = len(SPEED_LIMIT_FRACTIONS)
IDM_COMFORT = float(2 * np.sqrt(IDM_ACCEL_MAX * IDM_DECEL_MAX))
# compiled, a float exponent is pow(), as numpy's power; an integer one would be repeated products
IDM_EXPONENT_F = float(IDM_EXPONENT)


def proposal_paths(centerline: Path) -> list[Path]:
    return [centerline] + [centerline.offset(offset) for offset in LATERAL_OFFSETS]


@dataclass(eq=False)
class _Leaders:
    """Candidate leading objects per update step and proposal (the 5 proposals of a path share theirs),
    padded to a common width n: objects in observation order, then red lights."""

    progress: np.ndarray  # (F, 15, n) object centre's arc length on the proposal's path [m], -inf: none
    geometry: np.ndarray  # (F, 15, n) index of its polygon in `coords` (-1 where there is no candidate)
    # (F, 15, n, 4): heading [rad], speed [m/s], is agent (agents get a projected velocity, static objects
    # 0), is red light (red lights leave the record's velocity as it was)
    attributes: np.ndarray
    # the polygons as `scorer.planar` reads them: coords (C, 2), ring_start (R + 1,), polygon_start (G + 1,)
    coords: np.ndarray
    ring_start: np.ndarray
    polygon_start: np.ndarray


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
    progress_table, geometry = np.full(shape, -np.inf), np.full(shape, -1, dtype=np.int64)
    attributes = np.zeros(shape + (4,))
    where = (frame, path_of, slot)
    progress_table[where], geometry[where] = progress, cand  # candidate c is polygon c
    attributes[where + (slice(0, 3),)] = np.stack([obs.heading0[obj], obs.speed0[obj], obs.is_agent[obj]], 1)
    every = np.arange(n_frames)
    for p, (path, red) in enumerate(zip(paths, reds)):  # after the objects of each frame
        if red:
            red_polys = obs.red_polygons[red]
            red_progress = path.project(shapely.get_coordinates(shapely.centroid(red_polys)))
            for r in range(len(red)):
                slot_r = counts[p * n_frames : (p + 1) * n_frames] + r
                progress_table[every, p, slot_r] = red_progress[r]
                geometry[every, p, slot_r] = len(polys) + red[r]  # red light r follows the candidates
                attributes[every, p, slot_r, 3] = 1.0
    # the polygons' rings: the candidates' boxes (closed on their first corner, as GEOS's), then red lights
    boxes = corners[o_idx, f_idx]
    box_coords = np.concatenate([boxes, boxes[:, :1]], axis=1).reshape(-1, 2)
    red_coords, red_ring_start, red_polygon_start = rings(obs.red_polygons)
    coords = np.concatenate([box_coords, red_coords])
    ring_start = np.concatenate([np.arange(len(boxes)) * 5, red_ring_start + len(box_coords)])
    polygon_start = np.concatenate([np.arange(len(boxes)), red_polygon_start + len(boxes)])
    return _Leaders(
        *(np.repeat(table, N_POLICIES, axis=1) for table in (progress_table, geometry, attributes)),
        coords,
        ring_start,
        polygon_start,
    )


class _PathSet:
    """The three proposal paths, stacked: proposal j reads path j // 5, whose points are
    `progress`/`states`/`slope`[start[p]:start[p + 1]] (NAVSIM's PDMPath.interpolate per path, scipy's
    formula: the slope of each segment is computed once)."""

    def __init__(self, paths: list[Path]) -> None:
        self.lengths = np.array([path.length for path in paths])
        self.progress = np.concatenate([path.progress for path in paths])
        self.states = np.concatenate([path.states for path in paths])
        self.start = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum([len(path.progress) for path in paths], out=self.start[1:])
        with np.errstate(invalid="ignore", divide="ignore"):  # slope[i]: segment i-1 -> i of its path
            self.slope = np.zeros_like(self.states)
            self.slope[1:] = (self.states[1:] - self.states[:-1]) / (self.progress[1:] - self.progress[:-1])[
                :, None
            ]


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
    lead = _leaders(obs, paths, corridors, obs.frame_of_step[np.arange(2, steps, 2)])
    poses = np.empty((len(target), steps, 3))
    _unroll(
        np.repeat(start, N_POLICIES),
        float(speed),
        target,
        path_set.progress,
        path_set.states,
        path_set.slope,
        path_set.start,
        path_set.lengths,
        lead.progress,
        lead.geometry,
        lead.attributes,
        lead.coords,
        lead.ring_start,
        lead.polygon_start,
        poses,
    )
    return poses


# the ego's box corners (FL, RL, RR, FR) along and across its heading [m], as `boxes.ego_coords`
_EGO_LON = (EGO_HALF_LENGTH, -EGO_HALF_LENGTH, -EGO_HALF_LENGTH, EGO_HALF_LENGTH)
_EGO_LAT = (EGO_HALF_WIDTH, EGO_HALF_WIDTH, -EGO_HALF_WIDTH, -EGO_HALF_WIDTH)
_HALF_PI = np.pi / 2.0
_EGO_RING_START = np.array([0, 5], dtype=np.int64)


@njit(cache=True, error_model="numpy")
def _interpolate(
    distance: float,
    lo: int,
    hi: int,
    length: float,
    progress: np.ndarray,
    states: np.ndarray,
    slope: np.ndarray,
) -> tuple[float, float, float]:
    """The pose at arc length `distance` [m] on the path stored at [lo, hi) (`_PathSet`): clipped to
    [1e-5 m, length], scipy's interp1d (left neighbour from searchsorted "left"), heading wrapped."""
    d = min(max(distance, 1e-5), length)
    first, last = lo, hi  # searchsorted(side="left"): the first point at or beyond d
    while first < last:
        mid = (first + last) // 2
        if progress[mid] < d:
            first = mid + 1
        else:
            last = mid
    i = min(max(first, lo + 1), hi - 1)
    x = slope[i, 0] * (d - progress[i - 1]) + states[i - 1, 0]
    y = slope[i, 1] * (d - progress[i - 1]) + states[i - 1, 1]
    h = slope[i, 2] * (d - progress[i - 1]) + states[i - 1, 2]
    return x, y, wrap_angle(h)


@njit(cache=True, error_model="numpy")
def _ego_ring(x: float, y: float, h: float, out: np.ndarray) -> None:
    """The ego box at rear-axle pose (x, y, h) as a closed ring (5, 2): `boxes.ego_coords`' arithmetic."""
    cos, sin = np.cos(h), np.sin(h)
    cos_lat, sin_lat = np.cos(h + _HALF_PI), np.sin(h + _HALF_PI)
    cx, cy = x + EGO_REAR_AXLE_TO_CENTER * cos, y + EGO_REAR_AXLE_TO_CENTER * sin
    for i in range(4):
        out[i, 0] = cx + (_EGO_LAT[i] * cos_lat + _EGO_LON[i] * cos)
        out[i, 1] = cy + (_EGO_LAT[i] * sin_lat + _EGO_LON[i] * sin)
    out[4, 0], out[4, 1] = out[0, 0], out[0, 1]


@njit(cache=True, error_model="numpy")
def _lead_update(
    f: int,
    progress: np.ndarray,
    poses: np.ndarray,
    path_end: np.ndarray,
    lead_progress: np.ndarray,
    lead_geometry: np.ndarray,
    lead_attributes: np.ndarray,
    coords: np.ndarray,
    ring_start: np.ndarray,
    polygon_start: np.ndarray,
    record: np.ndarray,
) -> None:
    """The leading record (15, 3) [progress m, velocity m/s, rear length m] of every proposal at update
    step f, from its progress (15,) and pose (15, 3): the nearest candidate ahead (first on ties), its
    velocity along the ego's heading; the record's velocity and rear length carry over from the previous
    proposal of the same path when a proposal does not set them (NAVSIM's shared record)."""
    ego = np.empty((5, 2))
    for j in range(len(progress)):
        if j % N_POLICIES == 0:  # a new path: a fresh record
            velocity, rear = 0.0, 0.0
        best, nearest = np.inf, -1
        for s in range(lead_progress.shape[2]):
            if lead_progress[f, j, s] > progress[j]:
                if nearest < 0:  # the first candidate ahead: the ego's box is needed
                    _ego_ring(poses[j, 0], poses[j, 1], poses[j, 2], ego)
                g = lead_geometry[f, j, s]
                d = polygon_distance(
                    ego, _EGO_RING_START, 0, 1, coords, ring_start, polygon_start[g], polygon_start[g + 1]
                )
                if d < best:
                    best, nearest = d, s
        if nearest >= 0:
            record[j, 0] = progress[j] + best
            heading, speed = lead_attributes[f, j, nearest, 0], lead_attributes[f, j, nearest, 1]
            if lead_attributes[f, j, nearest, 3] == 0.0:  # not a red light
                relative = heading - poses[j, 2]
                along = np.cos(wrap_angle(relative)) * speed
                velocity = along if lead_attributes[f, j, nearest, 2] > 0.0 else 0.0  # agents move
        else:
            record[j, 0] = path_end[j // N_POLICIES]
            rear = EGO_LENGTH / 2
        record[j, 1], record[j, 2] = velocity, rear


@njit(cache=True, error_model="numpy")
def _unroll(
    start: np.ndarray,
    speed: float,
    target: np.ndarray,
    path_progress: np.ndarray,
    path_states: np.ndarray,
    path_slope: np.ndarray,
    path_start: np.ndarray,
    path_end: np.ndarray,
    lead_progress: np.ndarray,
    lead_geometry: np.ndarray,
    lead_attributes: np.ndarray,
    coords: np.ndarray,
    ring_start: np.ndarray,
    polygon_start: np.ndarray,
    poses: np.ndarray,
) -> None:
    """IDM unrolled along each proposal's path from `start` (15,) [m] at `speed` [m/s] towards `target`
    (15,) [m/s] (NAVSIM's BatchIDMPolicy.propagate, explicit Euler), the leading record updated every second
    step; writes the poses at every step into `poses` (15, T, 3)."""
    n, steps = len(target), poses.shape[1]
    progress, velocity = start.copy(), np.full(n, speed)
    record = np.zeros((n, 3))  # the first step sees a zero leading state
    for j in range(n):
        p = j // N_POLICIES
        poses[j, 0, 0], poses[j, 0, 1], poses[j, 0, 2] = _interpolate(
            progress[j], path_start[p], path_start[p + 1], path_end[p], path_progress, path_states, path_slope
        )
    for t in range(1, steps):
        if t % 2 == 0:
            _lead_update(
                t // 2 - 1,
                progress,
                poses[:, t - 1],
                path_end,
                lead_progress,
                lead_geometry,
                lead_attributes,
                coords,
                ring_start,
                polygon_start,
                record,
            )
        for j in range(n):
            v, lead_v = velocity[j], record[j, 1]
            s_star = IDM_MIN_GAP + v * IDM_HEADWAY + (v * (v - lead_v)) / IDM_COMFORT
            s_alpha = max(record[j, 0] - progress[j] - record[j, 2], IDM_MIN_GAP)
            ratio = s_star / s_alpha
            accel = IDM_ACCEL_MAX * (1.0 - (v / target[j]) ** IDM_EXPONENT_F - ratio * ratio)
            accel = min(max(accel, -IDM_DECEL_MAX), IDM_ACCEL_MAX)
            progress[j], velocity[j] = progress[j] + DT * v, v + DT * accel
            p = j // N_POLICIES
            poses[j, t, 0], poses[j, t, 1], poses[j, t, 2] = _interpolate(
                progress[j],
                path_start[p],
                path_start[p + 1],
                path_end[p],
                path_progress,
                path_states,
                path_slope,
            )
