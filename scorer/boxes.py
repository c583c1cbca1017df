"""Oriented boxes: corners with nuPlan's arithmetic, and exact intersection tests.

Corners are computed as nuPlan's `translate_longitudinally_and_laterally` does, so they are the same floats
as NAVSIM's polygons. Intersections are GEOS's (`shapely.intersects`, touching counts) on those corners: vectorised tests with
a 1 µm margin (separating axes, bounding boxes) first discard pairs that are certainly apart, then
`box_intersects` decides the rest with exact orientation signs (Shewchuk's error bound; compiled with
numba, as it runs on every candidate contact of every step), and only the pairs within rounding of
touching reach GEOS.
"""

from __future__ import annotations

import numpy as np
import shapely
from numba import njit

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


_EGO_LON = EGO_HALF_LENGTH * _LON_SIGN  # the ego's corners along and across its heading, as `box_corners`
_EGO_LAT = EGO_HALF_WIDTH * _LAT_SIGN
_TO_CENTER = np.array(EGO_REAR_AXLE_TO_CENTER)


def ego_coords(states: np.ndarray) -> np.ndarray:
    """(..., ≥3) rear-axle states -> (..., 5, 2): the four corners (FL, RL, RR, FR) and the centre —
    `box_corners` of `ego_centers`, with the cosines and sines shared."""
    h = states[..., 2]
    cos, sin = np.cos(h), np.sin(h)
    turned = h + _HALF_PI
    cos_lat, sin_lat = np.cos(turned)[..., None], np.sin(turned)[..., None]
    out = np.empty(states.shape[:-1] + (5, 2))
    cx = np.add(states[..., 0], _TO_CENTER * cos, out=out[..., 4, 0])
    cy = np.add(states[..., 1], _TO_CENTER * sin, out=out[..., 4, 1])
    np.add(cx[..., None], _EGO_LAT * cos_lat + _EGO_LON * cos[..., None], out=out[..., :4, 0])
    np.add(cy[..., None], _EGO_LAT * sin_lat + _EGO_LON * sin[..., None], out=out[..., :4, 1])
    return out


def polygons(corners: np.ndarray) -> np.ndarray:
    """(..., 4, 2) corners -> (...,) shapely polygons (GEOS closes the ring on the first corner)."""
    return shapely.polygons(corners)


# Shewchuk's bound on the error of the floating-point orientation determinant (robust predicates, 1997):
# beyond it the sign of the determinant is exact
ORIENTATION_ERROR = (3.0 + 16.0 * 2.0**-53) * 2.0**-53
MIN_EDGE2 = 1e-12  # [m²] boxes with a shorter edge are left to GEOS


def box_intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, 4, 2) vs (M, 4, 2) anticlockwise box corners (`box_corners` order) -> (M,) GEOS `intersects` of
    the two polygons (touching counts). Convex polygons are disjoint iff the line of an edge of one has all
    corners of the other strictly on its outer side; each side is decided by the sign of an orientation
    determinant where rounding cannot flip it (compiled, `_box_contact`), and by GEOS itself for the pairs
    where it could."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    contact = _box_contact(
        np.ascontiguousarray(a, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64)
    )
    out = contact == TOUCHING
    unsure = np.flatnonzero(contact == UNSURE)
    if unsure.size:
        out[unsure] = shapely.intersects(polygons(a[unsure]), polygons(b[unsure]))
    return out


APART, TOUCHING, UNSURE = 0, 1, 2


@njit(cache=True, error_model="numpy")
def _edge_sides(a: np.ndarray, b: np.ndarray) -> tuple[bool, bool]:
    """For the edges of anticlockwise quadrilateral a (4, 2): does some edge's line certainly have all four
    corners of b (4, 2) strictly on its right (separating them), and does every edge certainly have one
    corner of b on its left?"""
    separated, all_open = False, True
    for e in range(4):
        sx, sy, ex, ey = a[e, 0], a[e, 1], a[(e + 1) % 4, 0], a[(e + 1) % 4, 1]
        all_right, one_left = True, False
        for c in range(4):
            px, py = b[c, 0], b[c, 1]
            left = (sx - px) * (ey - py)
            right = (sy - py) * (ex - px)
            det, bound = left - right, ORIENTATION_ERROR * (abs(left) + abs(right))
            all_right &= -det >= bound and det < 0.0
            one_left |= det >= bound
        separated |= all_right
        all_open &= one_left
    return separated, all_open


@njit(cache=True, error_model="numpy")
def _box_contact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) APART, TOUCHING or UNSURE (rounding could flip a side, or an edge is shorter than 1 µm) for the
    box pairs a, b (M, 4, 2)."""
    out = np.empty(len(a), dtype=np.int8)
    for m in range(len(a)):
        separated_a, open_a = _edge_sides(a[m], b[m])
        separated_b, open_b = _edge_sides(b[m], a[m])
        separated, touching = separated_a or separated_b, open_a and open_b
        degenerate = False
        for box in (a[m], b[m]):
            for e in range(4):
                dx, dy = box[e, 0] - box[(e + 1) % 4, 0], box[e, 1] - box[(e + 1) % 4, 1]
                degenerate |= dx * dx + dy * dy < MIN_EDGE2
        out[m] = UNSURE if separated == touching or degenerate else (TOUCHING if touching else APART)
    return out


def intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4, 2) vs (N, 4, 2) corner sets -> (N,) GEOS `intersects` of the two box polygons (pairs whose
    bounding boxes are apart by more than the margin skip the exact test)."""
    near = (a.min(axis=1) <= b.max(axis=1) + SAT_MARGIN).all(axis=1) & (
        b.min(axis=1) <= a.max(axis=1) + SAT_MARGIN
    ).all(axis=1)
    out = np.zeros(a.shape[0], dtype=bool)
    idx = np.nonzero(near)[0]
    out[idx] = box_intersects(a[idx], b[idx])
    return out
