"""GEOS's planar arithmetic for polygons given as coordinate rings, compiled (numba).

Why compiled: PDM-Closed's reference planner measures ego-to-object distances inside a sequential
40-step loop, and the scorer locates thousands of points in map polygons per scene. Through shapely each
call is a GEOS round trip (~1 µs plus numpy bookkeeping per batch, and a batch per loop step); here they
are plain loops called from other compiled code.

The formulas are GEOS 3.x's, evaluated in its order, so the numbers are GEOS's to the bit:

* `point_to_segment`, `segment_to_segment`: `algorithm::Distance` (a segment pair that intersects is at
  distance 0).
* `polygon_distance`: `operation::distance::DistanceOp` — 0 when a first vertex of a part of either
  polygon is not outside the other (here: of any ring, which is 0 in the same cases: such a vertex is
  in both), else the smallest segment-to-segment distance. Both skip segment pairs whose bounding boxes
  are farther apart than the running minimum (here with a 1e-9 relative slack); that only skips pairs
  that cannot be nearer, so the minimum is the same number.
* `locate`: `algorithm::RayCrossingCounter` over all rings of all parts of a (multi)polygon, even-odd,
  as GEOS's prepared `IndexedPointInAreaLocator` (what shapely's `contains_xy` uses on prepared
  geometries). Its orientation test is GEOS's floating-point filter; where the filter cannot decide (a
  point within ~1e-15 relative of an edge's line) GEOS switches to double-double arithmetic and `locate`
  answers UNSURE instead, for the caller to ask GEOS.

A polygon is `coords` (C, 2) with closed rings (first point repeated last) at `ring_start` (R + 1,):
ring r is coords[ring_start[r]:ring_start[r + 1]], and a polygon is a range of rings [r0, r1). Kernels use
numpy's error model (a division by zero gives inf or NaN, as in the numpy code they replace).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numba import njit

EXTERIOR, BOUNDARY, INTERIOR, UNSURE = 0, 1, 2, 3
DP_SAFE_EPSILON = 1e-15  # GEOS's relative error bound of its orientation filter


@njit(cache=True, error_model="numpy")
def point_to_segment(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Distance [m] from p to segment ab (GEOS `Distance::pointToSegment`)."""
    if ax == bx and ay == by:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return math.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return math.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * math.sqrt(len2)


@njit(cache=True, error_model="numpy")
def segment_to_segment(
    ax: float, ay: float, bx: float, by: float, cx: float, cy: float, dx: float, dy: float
) -> float:
    """Distance [m] between segments ab and cd, 0 if they intersect (GEOS `Distance::segmentToSegment`)."""
    if ax == bx and ay == by:
        return point_to_segment(ax, ay, cx, cy, dx, dy)
    if cx == dx and cy == dy:
        return point_to_segment(dx, dy, ax, ay, bx, by)
    apart = (
        min(ax, bx) > max(cx, dx)
        or max(ax, bx) < min(cx, dx)
        or min(ay, by) > max(cy, dy)
        or max(ay, by) < min(cy, dy)
    )
    if not apart:
        denom = (bx - ax) * (dy - cy) - (by - ay) * (dx - cx)
        if denom == 0.0:
            apart = True
        else:
            r = ((ay - cy) * (dx - cx) - (ax - cx) * (dy - cy)) / denom
            s = ((ay - cy) * (bx - ax) - (ax - cx) * (by - ay)) / denom
            apart = r < 0.0 or r > 1.0 or s < 0.0 or s > 1.0
    if not apart:
        return 0.0
    return min(
        point_to_segment(ax, ay, cx, cy, dx, dy),
        min(
            point_to_segment(bx, by, cx, cy, dx, dy),
            min(point_to_segment(cx, cy, ax, ay, bx, by), point_to_segment(dx, dy, ax, ay, bx, by)),
        ),
    )


@njit(cache=True, error_model="numpy", inline="always")
def orientation(p1x: float, p1y: float, p2x: float, p2y: float, qx: float, qy: float) -> int:
    """Side of q relative to p1 -> p2: 1 left, -1 right, 0 collinear (GEOS's floating-point filter), or
    2 where the filter cannot decide."""
    left = (p1x - qx) * (p2y - qy)
    right = (p1y - qy) * (p2x - qx)
    det = left - right
    if left > 0.0:
        if right <= 0.0:
            return _sign(det)
        total = left + right
    elif left < 0.0:
        if right >= 0.0:
            return _sign(det)
        total = -left - right
    else:
        return _sign(det)
    bound = DP_SAFE_EPSILON * total
    if det >= bound or -det >= bound:
        return _sign(det)
    return 2


@njit(cache=True, error_model="numpy", inline="always")
def _sign(value: float) -> int:
    return 1 if value > 0.0 else (-1 if value < 0.0 else 0)


NO_CROSSING, CROSSING, ON_SEGMENT, UNDECIDED = 0, 1, 2, 3


@njit(cache=True, error_model="numpy", inline="always")
def _count_segment(px: float, py: float, x1: float, y1: float, x2: float, y2: float) -> int:
    """How segment (x1, y1) -> (x2, y2) meets the ray from p towards +x (GEOS `countSegment`): NO_CROSSING,
    CROSSING, ON_SEGMENT, or UNDECIDED where the orientation filter cannot decide."""
    if x1 < px and x2 < px:
        return NO_CROSSING
    if px == x2 and py == y2:
        return ON_SEGMENT
    if y1 == py and y2 == py:
        return ON_SEGMENT if min(x1, x2) <= px <= max(x1, x2) else NO_CROSSING
    if (y1 > py and y2 <= py) or (y2 > py and y1 <= py):
        sign = orientation(x1, y1, x2, y2, px, py)
        if sign == 2:
            return UNDECIDED
        if sign == 0:
            return ON_SEGMENT
        if y2 < y1:
            sign = -sign
        if sign > 0:
            return CROSSING
    return NO_CROSSING


@njit(cache=True, error_model="numpy", inline="always")
def _location(crossings: int, undecided: bool) -> int:
    if undecided:
        return UNSURE
    return INTERIOR if crossings % 2 == 1 else EXTERIOR


@njit(cache=True, error_model="numpy")
def locate(px: float, py: float, coords: np.ndarray, ring_start: np.ndarray, r0: int, r1: int) -> int:
    """EXTERIOR, BOUNDARY or INTERIOR of point p in the polygon of rings [r0, r1), or UNSURE."""
    crossings, undecided = 0, False
    for r in range(r0, r1):
        for i in range(ring_start[r], ring_start[r + 1] - 1):
            meets = _count_segment(px, py, coords[i, 0], coords[i, 1], coords[i + 1, 0], coords[i + 1, 1])
            if meets == ON_SEGMENT:
                return BOUNDARY
            crossings += meets == CROSSING
            undecided |= meets == UNDECIDED
    return _location(crossings, undecided)


@njit(cache=True, error_model="numpy")
def polygon_distance(
    a: np.ndarray, a_start: np.ndarray, a0: int, a1: int, b: np.ndarray, b_start: np.ndarray, b0: int, b1: int
) -> float:
    """Distance [m] between polygon a (rings [a0, a1) of `a`, `a_start`) and polygon b (GEOS `DistanceOp`:
    shapely.distance(a, b)). A first vertex whose location is UNSURE counts as inside (distance 0)."""
    for r in range(a0, a1):
        if locate(a[a_start[r], 0], a[a_start[r], 1], b, b_start, b0, b1) != EXTERIOR:
            return 0.0
    for r in range(b0, b1):
        if locate(b[b_start[r], 0], b[b_start[r], 1], a, a_start, a0, a1) != EXTERIOR:
            return 0.0
    best, reach2 = np.inf, np.inf  # reach2: squared box gap beyond which a segment pair cannot be nearer
    for ra in range(a0, a1):
        for i in range(a_start[ra], a_start[ra + 1] - 1):
            ax0, ax1 = min(a[i, 0], a[i + 1, 0]), max(a[i, 0], a[i + 1, 0])
            ay0, ay1 = min(a[i, 1], a[i + 1, 1]), max(a[i, 1], a[i + 1, 1])
            for rb in range(b0, b1):
                for j in range(b_start[rb], b_start[rb + 1] - 1):
                    gx = max(max(min(b[j, 0], b[j + 1, 0]) - ax1, ax0 - max(b[j, 0], b[j + 1, 0])), 0.0)
                    gy = max(max(min(b[j, 1], b[j + 1, 1]) - ay1, ay0 - max(b[j, 1], b[j + 1, 1])), 0.0)
                    if gx * gx + gy * gy > reach2:
                        continue
                    d = segment_to_segment(
                        a[i, 0], a[i, 1], a[i + 1, 0], a[i + 1, 1], b[j, 0], b[j, 1], b[j + 1, 0], b[j + 1, 1]
                    )
                    if d < best:
                        best = d
                        if best == 0.0:
                            return 0.0
                        reach2 = (best * (1.0 + 1e-9)) ** 2
    return best


def rings(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P,) shapely polygons or multipolygons -> coords (C, 2), ring_start (R + 1,), and polygon_start
    (P + 1,): polygon p is rings [polygon_start[p], polygon_start[p + 1]) (all rings of all its parts)."""
    parts, part_owner = shapely.get_parts(np.asarray(polygons, dtype=object), return_index=True)
    ring_geoms, ring_part = shapely.get_rings(parts, return_index=True)
    coords, index = shapely.get_coordinates(ring_geoms, return_index=True)
    ring_start = np.zeros(len(ring_geoms) + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=len(ring_geoms)), out=ring_start[1:])
    polygon_start = np.zeros(len(polygons) + 1, dtype=np.int64)
    np.cumsum(np.bincount(part_owner[ring_part], minlength=len(polygons)), out=polygon_start[1:])
    return coords, ring_start, polygon_start


# --------------------------------------------------------------------------- indexed point location ---
class PolygonIndex:
    """Polygons prepared for many point-in-polygon queries (GEOS's prepared locator does the same with an
    interval tree): each polygon's horizontal strips list the edges whose y-range overlaps the strip, so a
    query inside its bounding box visits only the few edges that can meet the ray from the point (those
    whose closed y-range holds the point's y). A map has few polygons (~15), each with up to ~1000 edges."""

    def __init__(self, polygons: np.ndarray) -> None:
        self.polygons = polygons  # (P,) shapely polygons
        self.coords, self.ring_start, self.polygon_start = rings(polygons)
        self.bounds = shapely.bounds(polygons).reshape(-1, 4)  # (P, 4) x0, y0, x1, y1
        self.strips = _strips(self.coords, self.ring_start, self.polygon_start, self.bounds)

    def inside_pairs(self, points: np.ndarray, tested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) points (N a multiple of G), point n of kind n % G, and (P, G) bool: which polygons each kind
        is tested against
        -> the (polygon, point) pairs with the point strictly inside the polygon (GEOS `contains_xy`); the
        pairs the orientation filter cannot decide are asked of GEOS."""
        poly, point, unsure_poly, unsure_point = _inside_pairs(
            np.ascontiguousarray(points, dtype=np.float64),
            np.ascontiguousarray(tested, dtype=np.bool_),
            self.coords,
            self.bounds,
            *self.strips,
        )
        if len(unsure_poly):
            x, y = points[unsure_point, 0], points[unsure_point, 1]
            inside = shapely.contains_xy(self.polygons[unsure_poly], x, y)
            poly = np.concatenate([poly, unsure_poly[inside]])
            point = np.concatenate([point, unsure_point[inside]])
        return poly, point


@njit(cache=True, error_model="numpy", inline="always")
def _strip_of(y: float, y0: float, per_metre: float, count: int) -> int:
    """Strip holding height y of a polygon whose lowest y is y0, `per_metre` strips per metre (monotonic in
    y, so an edge's strips span those of its end points)."""
    return min(max(int((y - y0) * per_metre), 0), count - 1)


@njit(cache=True, error_model="numpy")
def _strips(
    coords: np.ndarray, ring_start: np.ndarray, polygon_start: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per polygon p, strips [first[p], first[p + 1]), `per_metre[p]` per metre from its lowest y; strip s
    lists the edges (index i: coords[i] -> coords[i + 1]) at edges[start[s]:start[s + 1]]."""
    n_poly = len(polygon_start) - 1
    first = np.zeros(n_poly + 1, dtype=np.int64)
    per_metre = np.zeros(n_poly)
    for p in range(n_poly):
        n_edges = 0
        for r in range(polygon_start[p], polygon_start[p + 1]):
            n_edges += ring_start[r + 1] - ring_start[r] - 1
        count = max(1, n_edges // 2)  # ~2 edges per strip on a convex polygon
        first[p + 1] = first[p] + count
        extent = bounds[p, 3] - bounds[p, 1]
        per_metre[p] = count / extent if extent > 0.0 else 0.0
    start = np.zeros(first[-1] + 1, dtype=np.int64)
    cursor = np.zeros(first[-1], dtype=np.int64)
    edges = np.empty(0, dtype=np.int64)
    for fill in range(2):  # count, then fill
        if fill:
            for s in range(len(cursor)):
                start[s + 1] = start[s] + cursor[s]
                cursor[s] = start[s]
            edges = np.empty(start[-1], dtype=np.int64)
        for p in range(n_poly):
            count = first[p + 1] - first[p]
            for r in range(polygon_start[p], polygon_start[p + 1]):
                for i in range(ring_start[r], ring_start[r + 1] - 1):
                    lo_y, hi_y = min(coords[i, 1], coords[i + 1, 1]), max(coords[i, 1], coords[i + 1, 1])
                    s0 = _strip_of(lo_y, bounds[p, 1], per_metre[p], count)
                    s1 = _strip_of(hi_y, bounds[p, 1], per_metre[p], count)
                    for s in range(first[p] + s0, first[p] + s1 + 1):
                        if fill:
                            edges[cursor[s]] = i
                        cursor[s] += 1
    return first, per_metre, start, edges


@njit(cache=True, error_model="numpy", inline="always")
def _locate_indexed(
    px: float,
    py: float,
    p: int,
    coords: np.ndarray,
    bounds: np.ndarray,
    first: np.ndarray,
    per_metre: np.ndarray,
    start: np.ndarray,
    edges: np.ndarray,
) -> int:
    """`locate` of p in polygon p, visiting only the edges of the strip that holds py."""
    s = first[p] + _strip_of(py, bounds[p, 1], per_metre[p], first[p + 1] - first[p])
    crossings, undecided = 0, False
    for e in range(start[s], start[s + 1]):
        i = edges[e]
        meets = _count_segment(px, py, coords[i, 0], coords[i, 1], coords[i + 1, 0], coords[i + 1, 1])
        if meets == ON_SEGMENT:
            return BOUNDARY
        crossings += meets == CROSSING
        undecided |= meets == UNDECIDED
    return _location(crossings, undecided)


@njit(cache=True, error_model="numpy")
def grown(values: np.ndarray) -> np.ndarray:
    """A copy of the 1-d array `values` with room for twice as many (compiled code's growing buffers)."""
    out = np.empty(2 * len(values) + 16, dtype=values.dtype)
    for i in range(len(values)):
        out[i] = values[i]
    return out


@njit(cache=True, error_model="numpy")
def _inside_pairs(
    points: np.ndarray,
    tested: np.ndarray,
    coords: np.ndarray,
    bounds: np.ndarray,
    first: np.ndarray,
    per_metre: np.ndarray,
    start: np.ndarray,
    edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(polygon, point) pairs with the point INTERIOR, and the pairs left UNSURE (see `PolygonIndex`)."""
    n_kinds = tested.shape[1]
    poly, point = np.empty(len(points), dtype=np.int64), np.empty(len(points), dtype=np.int64)
    unsure_poly, unsure_point = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    found = unsure = 0
    for p in range(len(bounds)):
        x0, y0, x1, y1 = bounds[p, 0], bounds[p, 1], bounds[p, 2], bounds[p, 3]
        for base in range(0, len(points), n_kinds):
            for kind in range(n_kinds):
                n = base + kind
                x, y = points[n, 0], points[n, 1]
                if not (x0 <= x <= x1 and y0 <= y <= y1 and tested[p, kind]):
                    continue
                loc = _locate_indexed(x, y, p, coords, bounds, first, per_metre, start, edges)
                if loc == INTERIOR:
                    if found == len(poly):
                        poly, point = grown(poly), grown(point)
                    poly[found], point[found] = p, n
                    found += 1
                elif loc == UNSURE:
                    if unsure == len(unsure_poly):
                        unsure_poly, unsure_point = grown(unsure_poly), grown(unsure_point)
                    unsure_poly[unsure], unsure_point[unsure] = p, n
                    unsure += 1
    return poly[:found], point[:found], unsure_poly[:unsure], unsure_point[:unsure]
