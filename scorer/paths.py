"""Paths along which PDM-Closed drives and against which progress is measured (NAVSIM's PDMPath).

Projection (shapely's `line_locate_point`, GEOS's `LengthIndexOfPoint`) and the distance test of lane
keeping (shapely's `dwithin`) are recomputed in compiled loops (numba: a scene asks them for hundreds of
points along paths of hundreds of segments, a few calls each). GEOS scans every segment of the path for
every point; here only the chunks of segments that can hold the nearest one are evaluated, with GEOS's
own formulas (point-to-segment distance, first segment at the smallest distance, running sum of segment
lengths), so the arc lengths are GEOS's to the bit (checked against GEOS on random and adversarial
paths in tests/scorer/test_planar.py)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import shapely
from numba import njit
from shapely.geometry import LineString
from shapely.ops import substring as shapely_substring

from scorer.interp import interp_linear, normalize_angle
from scorer.planar import point_to_segment

CHUNK = 16  # segments per bounding box in `Path.project` and `Path.within`
SLACK = 1e-9  # relative and absolute [m] slack on the chunk pruning bounds, far above their rounding


class Path:
    """A discrete (x, y, heading) path with arc-length interpolation and projection.

    `interpolate` clips distances to [1e-5 m, length] and interpolates like scipy's `interp1d` (repeated
    arc lengths at lane joints resolve to the first of the repeated points, as in NAVSIM)."""

    def __init__(self, states: np.ndarray) -> None:
        self.discrete = np.ascontiguousarray(states, dtype=np.float64)  # (N, 3), headings as given
        self.states, self.progress = _unwrapped_and_arc_length(self.discrete)  # headings unwrapped; [m]
        self.length = float(self.progress[-1])
        self._segment_arrays: _Segments | None = None

    @cached_property
    def linestring(self) -> LineString:
        """The path's (x, y) polyline as a shapely geometry (built on first use)."""
        return shapely.linestrings(self.states[:, :2])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points -> (...,) arc length [m] of their projection on the path: shapely's
        `line_locate_point` (GEOS `LengthIndexOfPoint`: the first segment at the smallest distance, its
        start measure a running sum of segment lengths), evaluated on the few segments that can be nearest
        (chunks of segments whose bounding box is no farther than some vertex)."""
        flat = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 2)
        if len(self.states) < 2:  # a single point: GEOS itself
            out = shapely.line_locate_point(self.linestring, shapely.points(flat))
            return out.reshape(np.shape(points)[:-1])
        seg = self._segments()
        out = _project(flat, seg.a, seg.b, seg.length, seg.start, seg.lo, seg.hi, seg.first)
        return out.reshape(np.shape(points)[:-1])

    def _segments(self) -> _Segments:
        if self._segment_arrays is None:
            self._segment_arrays = _Segments(self.states[:, :2])
        return self._segment_arrays

    def within(self, points: np.ndarray, distance: float) -> np.ndarray:
        """(..., 2) points -> (...,) bool: distance to the path ≤ `distance` [m] (shapely `dwithin`: the
        path's distance is the minimum of GEOS's point-to-segment distances)."""
        flat = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 2)
        if len(self.states) < 2:
            out = shapely.dwithin(self.linestring, shapely.points(flat), distance)
            return out.reshape(np.shape(points)[:-1])
        seg = self._segments()
        out = _within(flat, float(distance), seg.a, seg.b, seg.lo, seg.hi)
        return out.reshape(np.shape(points)[:-1])

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """(M...) arc lengths [m] -> (M..., 3) poses on the path."""
        d = np.clip(np.atleast_1d(np.asarray(distances, dtype=np.float64)), 1e-5, self.length)
        out = interp_linear(self.progress, self.states, d)
        out[..., 2] = normalize_angle(out[..., 2])
        out[np.isnan(out)] = 0.0
        return out

    def substring(self, start: float, end: float) -> LineString:
        """The path between two arc lengths: its own vertices in range, else shapely's substring."""
        start = float(np.clip(start, 0.0, self.length))
        end = float(np.clip(end, 0.0, self.length))
        inside = (start <= self.progress) & (self.progress <= end)
        if inside.sum() > 1:
            return LineString(self.states[inside, :2])
        return shapely_substring(self.linestring, start, end)

    def offset(self, lateral: float) -> Path:
        """Parallel path shifted `lateral` metres to the left of each discrete pose."""
        heading = self.discrete[:, 2] + np.pi / 2
        shifted = self.discrete.copy()
        shifted[:, 0] = self.discrete[:, 0] + np.cos(heading) * lateral
        shifted[:, 1] = self.discrete[:, 1] + np.sin(heading) * lateral
        return Path(shifted)


@njit(cache=True, error_model="numpy")
def _unwrapped_and_arc_length(discrete: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) poses -> the poses with `np.unwrap`ped headings, and the arc length (N,) [m] at each point
    (running sum of the step lengths): numpy's arithmetic, in numpy's order."""
    states = discrete.copy()
    progress = np.zeros(len(states))
    correction = 0.0
    for i in range(1, len(states)):
        step = discrete[i, 2] - discrete[i - 1, 2]
        wrapped = (step + np.pi) % (2.0 * np.pi) - np.pi
        if wrapped == -np.pi and step > 0.0:
            wrapped = np.pi
        if abs(step) >= np.pi:
            correction += wrapped - step
        states[i, 2] = discrete[i, 2] + correction
        dx, dy = states[i, 0] - states[i - 1, 0], states[i, 1] - states[i - 1, 1]
        progress[i] = progress[i - 1] + np.sqrt(dx * dx + dy * dy)
    return states, progress


class _Segments:
    """A polyline's segments with GEOS's per-segment quantities, and bounding boxes of chunks of them."""

    def __init__(self, xy: np.ndarray) -> None:
        self.a, self.b = np.ascontiguousarray(xy[:-1]), np.ascontiguousarray(xy[1:])  # (N, 2) starts, ends
        d = self.a - self.b  # GEOS's segment length is p0.distance(p1)
        self.length = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        self.start = np.zeros(len(self.length))  # running sum, as GEOS accumulates it
        np.cumsum(self.length[:-1], out=self.start[1:])
        self.lo, self.hi = _chunk_boxes(self.a, self.b)  # (C, 2) each
        self.first = self.a[::CHUNK]  # (C, 2) a vertex of each chunk


@njit(cache=True, error_model="numpy")
def _chunk_boxes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (C, 2) low and high corners of the segments a -> b (N, 2) in chunks of CHUNK."""
    chunks = -(-len(a) // CHUNK)
    lo, hi = np.full((chunks, 2), np.inf), np.full((chunks, 2), -np.inf)
    for i in range(len(a)):
        c = i // CHUNK
        for axis in range(2):
            lo[c, axis] = min(lo[c, axis], a[i, axis], b[i, axis])
            hi[c, axis] = max(hi[c, axis], a[i, axis], b[i, axis])
    return lo, hi


@njit(cache=True, error_model="numpy")
def _chunk_gap(px: float, py: float, lo: np.ndarray, hi: np.ndarray, c: int) -> float:
    """Distance [m] from p to the bounding box of chunk c: a lower bound of its segments' distances."""
    gx = max(max(lo[c, 0] - px, px - hi[c, 0]), 0.0)
    gy = max(max(lo[c, 1] - py, py - hi[c, 1]), 0.0)
    return np.sqrt(gx * gx + gy * gy)


@njit(cache=True, error_model="numpy")
def _project(
    points: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    length: np.ndarray,
    start: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    first: np.ndarray,
) -> np.ndarray:
    """(M, 2) points -> (M,) GEOS `LengthIndexOfPoint` on segments a -> b (N, 2), chunked by CHUNK."""
    out = np.empty(len(points))
    n_seg, n_chunks = len(a), len(lo)
    for m in range(len(points)):
        px, py = points[m, 0], points[m, 1]
        upper = np.inf  # a chunk's first vertex: some segment is at least that close
        for c in range(n_chunks):
            vx, vy = first[c, 0] - px, first[c, 1] - py
            upper = min(upper, np.sqrt(vx * vx + vy * vy))
        bound = upper * (1.0 + SLACK) + SLACK
        best, nearest = np.inf, 0
        for c in range(n_chunks):
            if _chunk_gap(px, py, lo, hi, c) > bound:
                continue
            for i in range(c * CHUNK, min((c + 1) * CHUNK, n_seg)):
                d = point_to_segment(px, py, a[i, 0], a[i, 1], b[i, 0], b[i, 1])
                if d < best:
                    best, nearest = d, i
        out[m] = _measure(
            px,
            py,
            a[nearest, 0],
            a[nearest, 1],
            b[nearest, 0],
            b[nearest, 1],
            start[nearest],
            length[nearest],
        )
    return out


@njit(cache=True, error_model="numpy")
def _measure(
    px: float, py: float, ax: float, ay: float, bx: float, by: float, start: float, length: float
) -> float:
    """GEOS `segmentNearestMeasure`: arc length of p's projection on segment a -> b starting at `start` [m]
    (a NaN projection factor, from a zero-length segment, measures its end)."""
    if px == ax and py == ay:
        factor = 0.0
    elif px == bx and py == by:
        factor = 1.0
    else:
        dx, dy = bx - ax, by - ay
        factor = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
    if factor <= 0.0:
        return start
    if factor <= 1.0:
        return start + factor * length
    return start + length


@njit(cache=True, error_model="numpy")
def _within(
    points: np.ndarray, distance: float, a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """(M, 2) points -> (M,) bool: some segment a -> b (N, 2) is within `distance` [m] (GEOS distances)."""
    out = np.zeros(len(points), dtype=np.bool_)
    bound = distance * (1.0 + SLACK) + SLACK
    for m in range(len(points)):
        px, py = points[m, 0], points[m, 1]
        for c in range(len(lo)):
            if _chunk_gap(px, py, lo, hi, c) > bound:
                continue
            for i in range(c * CHUNK, min((c + 1) * CHUNK, len(a))):
                if point_to_segment(px, py, a[i, 0], a[i, 1], b[i, 0], b[i, 1]) <= distance:
                    out[m] = True
                    break
            if out[m]:
                break
    return out
