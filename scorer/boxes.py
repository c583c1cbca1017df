"""Oriented boxes: corners with nuPlan's arithmetic, and exact intersection tests.

Corners are computed as nuPlan's `translate_longitudinally_and_laterally` does, so they are the same floats
as NAVSIM's polygons. Intersections are decided by GEOS (`shapely.intersects`, touching counts) on those
corners; vectorised tests with a 1 µm margin (separating axes, bounding boxes) only discard pairs that are
certainly apart, so the answer is GEOS's while most pairs never reach it.
"""

from __future__ import annotations

import numpy as np
import shapely

from scorer.constants import EGO_HALF_LENGTH, EGO_HALF_WIDTH, EGO_REAR_AXLE_TO_CENTER

SAT_MARGIN = 1e-6  # [m] pairs separated by more than this are certainly disjoint
_HALF_PI = np.pi / 2.0


_LON_SIGN = np.array([1.0, -1.0, -1.0, 1.0])  # front-left, rear-left, rear-right, front-right
_LAT_SIGN = np.array([1.0, 1.0, -1.0, -1.0])


def box_corners(
    cx: np.ndarray,
    cy: np.ndarray,
    heading: np.ndarray,
    half_l: np.ndarray | float,
    half_w: np.ndarray | float,
) -> np.ndarray:
    """(...,) box centres and half sizes -> (..., 4, 2) corners front-left, rear-left, rear-right,
    front-right (half sizes broadcast against the centres' leading dimensions)."""
    heading = np.asarray(heading)[..., None]
    lon = np.asarray(half_l, dtype=np.float64)[..., None] * _LON_SIGN  # ±half length, exact
    lat = np.asarray(half_w, dtype=np.float64)[..., None] * _LAT_SIGN
    out = np.empty(np.broadcast_shapes(np.shape(cx), np.shape(lon)[:-1]) + (4, 2))
    out[..., 0] = np.asarray(cx)[..., None] + (lat * np.cos(heading + _HALF_PI) + lon * np.cos(heading))
    out[..., 1] = np.asarray(cy)[..., None] + (lat * np.sin(heading + _HALF_PI) + lon * np.sin(heading))
    return out


def ego_centers(states: np.ndarray) -> np.ndarray:
    """(..., ≥3) rear-axle states -> (..., 2) box centres."""
    h = states[..., 2]
    out = np.empty(states.shape[:-1] + (2,))
    out[..., 0] = states[..., 0] + EGO_REAR_AXLE_TO_CENTER * np.cos(h)
    out[..., 1] = states[..., 1] + EGO_REAR_AXLE_TO_CENTER * np.sin(h)
    return out


def ego_coords(states: np.ndarray) -> np.ndarray:
    """(..., ≥3) rear-axle states -> (..., 5, 2): the four corners (FL, RL, RR, FR) and the centre."""
    out = np.empty(states.shape[:-1] + (5, 2))
    out[..., 4, :] = centers = ego_centers(states)
    out[..., :4, :] = box_corners(
        centers[..., 0], centers[..., 1], states[..., 2], EGO_HALF_LENGTH, EGO_HALF_WIDTH
    )
    return out


def polygons(corners: np.ndarray) -> np.ndarray:
    """(..., 4, 2) corners -> (...,) shapely polygons (GEOS closes the ring on the first corner)."""
    return shapely.polygons(corners)


def obb_maybe_intersect(
    d: np.ndarray, h1: np.ndarray, size1: np.ndarray, h2: np.ndarray, size2: np.ndarray
) -> np.ndarray:
    """Separating-axis test of oriented boxes from centre offsets d = c2 - c1 (M, 2), headings (M,) and
    half sizes (M, 2) [half length, half width]: False only where an axis separates them by > margin."""
    c1, s1, c2, s2 = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    cc, ss = np.abs(c1 * c2 + s1 * s2), np.abs(s2 * c1 - c2 * s1)  # |cos|, |sin| of h2 - h1
    a1, b1, a2, b2 = size1[:, 0], size1[:, 1], size2[:, 0], size2[:, 1]
    dx, dy = d[:, 0], d[:, 1]
    return (
        (np.abs(dx * c1 + dy * s1) <= a1 + a2 * cc + b2 * ss + SAT_MARGIN)
        & (np.abs(dy * c1 - dx * s1) <= b1 + a2 * ss + b2 * cc + SAT_MARGIN)
        & (np.abs(dx * c2 + dy * s2) <= a2 + a1 * cc + b1 * ss + SAT_MARGIN)
        & (np.abs(dy * c2 - dx * s2) <= b2 + a1 * ss + b1 * cc + SAT_MARGIN)
    )


def intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4, 2) vs (N, 4, 2) corner sets -> (N,) GEOS `intersects` of the two box polygons (pairs whose
    bounding boxes are apart by more than the margin skip GEOS)."""
    near = (a.min(axis=1) <= b.max(axis=1) + SAT_MARGIN).all(axis=1) & (
        b.min(axis=1) <= a.max(axis=1) + SAT_MARGIN
    ).all(axis=1)
    out = np.zeros(a.shape[0], dtype=bool)
    idx = np.nonzero(near)[0]
    if idx.size:
        out[idx] = shapely.intersects(polygons(a[idx]), polygons(b[idx]))
    return out
