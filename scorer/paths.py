"""Paths along which PDM-Closed drives and against which progress is measured (NAVSIM's PDMPath).

Projection (shapely's `line_locate_point`, GEOS's `LengthIndexOfPoint`) is recomputed in numpy for more
than a few points: GEOS scans every segment of the path for every point; here only the chunks of segments
that can hold the nearest one are evaluated, with GEOS's own formulas (point-to-segment distance, first
segment at the smallest distance, running sum of segment lengths), so the arc lengths are GEOS's to the
bit (checked against GEOS on random and adversarial paths)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.ops import substring as shapely_substring

from scorer.interp import interp_linear, normalize_angle

CHUNK = 16  # segments per bounding box in `Path.project`
FEW_POINTS = 6  # fewer points are projected by GEOS (its per-point cost is lower than numpy's per-call one)


class Path:
    """A discrete (x, y, heading) path with arc-length interpolation and projection.

    `interpolate` clips distances to [1e-5 m, length] and interpolates like scipy's `interp1d` (repeated
    arc lengths at lane joints resolve to the first of the repeated points, as in NAVSIM)."""

    def __init__(self, states: np.ndarray) -> None:
        self.discrete = np.asarray(states, dtype=np.float64)  # (N, 3), headings as given
        self.states = self.discrete.copy()
        self.states[:, 2] = np.unwrap(self.states[:, 2])
        steps = np.linalg.norm(np.diff(self.states[:, :2], axis=0), axis=1)
        self.progress = np.cumsum(np.concatenate([[0.0], steps]))
        self.length = float(self.progress[-1])
        self.linestring = shapely.linestrings(self.states[:, :2])
        self._segment_tree: shapely.STRtree | None = None
        self._segment_arrays: _Segments | None = None

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points -> (...,) arc length [m] of their projection on the path: shapely's
        `line_locate_point` (GEOS `LengthIndexOfPoint`: the first segment at the smallest distance, its
        start measure a running sum of segment lengths), recomputed with GEOS's arithmetic on the few
        segments that can be nearest (chunks of segments whose bounding box is no farther than some vertex)."""
        flat = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(flat) < FEW_POINTS or len(self.states) < 2:  # GEOS itself: the same numbers
            out = shapely.line_locate_point(self.linestring, shapely.points(flat))
            return out.reshape(np.shape(points)[:-1])
        seg = self._segments()
        px, py = flat[:, 0:1], flat[:, 1:2]
        gx = np.maximum(np.maximum(seg.lo[:, 0] - px, px - seg.hi[:, 0]), 0.0)  # (M, C) gaps to chunk boxes
        gy = np.maximum(np.maximum(seg.lo[:, 1] - py, py - seg.hi[:, 1]), 0.0)
        lower = np.sqrt(gx * gx + gy * gy)
        vx, vy = seg.first[:, 0] - px, seg.first[:, 1] - py
        upper = np.sqrt(vx * vx + vy * vy).min(axis=1, keepdims=True)  # a segment is at least that close
        owner, chunk = np.nonzero(lower <= upper * (1.0 + 1e-9) + 1e-9)  # by point, then chunk
        index = chunk[:, None] * CHUNK + np.arange(CHUNK)  # (P, CHUNK) candidate segments, in order
        index = np.minimum(index, len(seg.length) - 1)  # the last chunk's padding repeats its last segment
        dist = _segment_distance(flat[owner][:, None], seg, index)
        dist, index, owner = dist.ravel(), index.ravel(), np.repeat(owner, CHUNK)
        nearest = np.minimum.reduceat(dist, np.searchsorted(owner, np.arange(len(flat))))
        at_min = np.flatnonzero(dist == nearest[owner])
        first = at_min[np.concatenate([[True], owner[at_min[1:]] != owner[at_min[:-1]]])]
        out = _measure(flat, seg, index[first])
        return out.reshape(np.shape(points)[:-1])

    def _segments(self) -> _Segments:
        if self._segment_arrays is None:
            self._segment_arrays = _Segments(self.states[:, :2])
        return self._segment_arrays

    def within(self, points: np.ndarray, distance: float) -> np.ndarray:
        """(..., 2) points -> (...,) bool: distance to the path ≤ `distance` [m]. The path's distance is the
        minimum over its segments, so asking a segment index for any segment that close is exact."""
        if self._segment_tree is None:
            segments = shapely.linestrings(np.stack([self.states[:-1, :2], self.states[1:, :2]], axis=1))
            self._segment_tree = shapely.STRtree(segments)
        flat = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        hit, _ = self._segment_tree.query(shapely.points(flat), predicate="dwithin", distance=distance)
        out = np.zeros(len(flat), dtype=bool)
        out[hit] = True
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


class _Segments:
    """A polyline's segments with GEOS's per-segment quantities, and bounding boxes of chunks of them."""

    def __init__(self, xy: np.ndarray) -> None:
        self.a, self.b = xy[:-1], xy[1:]  # (N, 2) starts and ends
        self.ba = self.b - self.a
        self.len2 = self.ba[:, 0] * self.ba[:, 0] + self.ba[:, 1] * self.ba[:, 1]
        d = self.a - self.b  # GEOS's segment length is p0.distance(p1)
        self.length = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        self.start = np.zeros(len(self.length))  # running sum, as GEOS accumulates it
        np.cumsum(self.length[:-1], out=self.start[1:])
        n = len(self.length)
        pad = np.minimum(np.arange(-(-n // CHUNK) * CHUNK), max(n - 1, 0)).reshape(-1, CHUNK)
        ends = np.concatenate([self.a[pad], self.b[pad]], axis=1)  # (C, 2·CHUNK, 2)
        self.lo, self.hi = ends.min(axis=1), ends.max(axis=1)  # (C, 2)
        self.first = self.a[pad[:, 0]]  # (C, 2) a vertex of each chunk


def _segment_distance(p: np.ndarray, seg: _Segments, index: np.ndarray) -> np.ndarray:
    """GEOS `Distance::pointToSegment` of points p (..., 2) to the segments at `index` (broadcast)."""
    px, py = p[..., 0], p[..., 1]
    ax, ay, bx, by = seg.a[index, 0], seg.a[index, 1], seg.b[index, 0], seg.b[index, 1]
    bax, bay, len2 = seg.ba[index, 0], seg.ba[index, 1], seg.len2[index]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((px - ax) * bax + (py - ay) * bay) / len2
        to_a = np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
        to_b = np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
        across = np.abs(((ay - py) * bax - (ax - px) * bay) / len2) * np.sqrt(len2)
    return np.where((r <= 0.0) | (len2 == 0.0), to_a, np.where(r >= 1.0, to_b, across))


def _measure(p: np.ndarray, seg: _Segments, index: np.ndarray) -> np.ndarray:
    """GEOS `segmentNearestMeasure`: arc length of the projection of points p (M, 2) on segments (M,)."""
    px, py = p[:, 0], p[:, 1]
    ax, ay, bx, by = seg.a[index, 0], seg.a[index, 1], seg.b[index, 0], seg.b[index, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((px - ax) * seg.ba[index, 0] + (py - ay) * seg.ba[index, 1]) / seg.len2[index]
    factor = np.where((px == ax) & (py == ay), 0.0, np.where((px == bx) & (py == by), 1.0, r))
    start, length = seg.start[index], seg.length[index]
    with np.errstate(invalid="ignore"):
        along = np.where(factor <= 1.0, start + factor * length, start + length)  # NaN factor: the end
        return np.where(factor <= 0.0, start, along)
