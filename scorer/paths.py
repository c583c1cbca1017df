"""Paths along which PDM-Closed drives and against which progress is measured (NAVSIM's PDMPath)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.ops import substring as shapely_substring

from scorer.interp import interp_linear, normalize_angle


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
        shapely.prepare(self.linestring)
        self._segment_tree: shapely.STRtree | None = None

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points -> (...,) arc length [m] of their projection on the path."""
        flat = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out = shapely.line_locate_point(self.linestring, shapely.points(flat))
        return out.reshape(np.shape(points)[:-1])

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
