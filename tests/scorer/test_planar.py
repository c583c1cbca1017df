"""The compiled planar arithmetic (`scorer.planar`, `scorer.paths`) gives GEOS's numbers to the bit: polygon
distances, point location, projection on a path and distance tests, on random and adversarial inputs
(vertices, edge midpoints, zero-length segments, polygons with holes)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from scorer import planar
from scorer.boxes import box_corners, polygons
from scorer.paths import Path


def _blobs(rng: np.random.Generator, count: int) -> np.ndarray:
    """Buffered random polylines: curved polygons with many vertices, some with holes; every fifth is a
    multipolygon (as a roadblock made of lanes that do not quite touch), with a part elsewhere."""
    lines = [
        shapely.LineString(np.cumsum(rng.normal(0.0, 3.0, (rng.integers(3, 12), 2)), axis=0))
        for _ in range(count)
    ]
    out = shapely.buffer(np.array(lines), rng.uniform(0.5, 4.0, count), cap_style="flat", join_style="round")
    for i in range(0, count, 5):
        far = shapely.box(30.0, 30.0, 31.0 + i % 7, 32.0)
        out[i] = shapely.MultiPolygon([out[i], far]) if out[i].geom_type == "Polygon" else out[i]
    assert (shapely.get_type_id(out) == 6).any()
    return out


def test_polygon_distance_is_geos():
    rng = np.random.default_rng(0)
    n = 3000
    c, h = rng.uniform(-5, 5, (n, 2, 2)), rng.uniform(-np.pi, np.pi, (n, 2))
    size = rng.uniform(0.3, 3.0, (n, 2, 2))
    corners = box_corners(c[..., 0], c[..., 1], h, size[..., 0], size[..., 1])  # (n, 2, 4, 2)
    boxes_a, boxes_b = polygons(corners[:, 0]), polygons(corners[:, 1])
    blobs = _blobs(rng, 100)
    assert (shapely.get_num_interior_rings(shapely.get_parts(blobs)) > 0).any()  # some have holes
    for first, second in ((boxes_a, boxes_b), (boxes_a[:1000], np.resize(blobs, 1000))):
        a, a_start, a_poly = planar.rings(first)
        b, b_start, b_poly = planar.rings(second)
        got = [
            planar.polygon_distance(
                a, a_start, a_poly[i], a_poly[i + 1], b, b_start, b_poly[i], b_poly[i + 1]
            )
            for i in range(len(first))
        ]
        want = shapely.distance(first, second)
        assert (want == 0).any() and (want > 0).any()
        np.testing.assert_array_equal(got, want)


def test_point_location_is_geos():
    rng = np.random.default_rng(1)
    blobs = _blobs(rng, 200)
    ring = shapely.get_coordinates(shapely.get_exterior_ring(blobs[1:40:5]))
    points = np.concatenate([rng.uniform(-15, 35, (20000, 2)), ring, (ring[1:] + ring[:-1]) / 2])
    points = points[: len(points) - len(points) % 3]
    tested = rng.random((len(blobs), 3)) < 0.8  # kinds: point n is of kind n % 3
    poly, point = planar.PolygonIndex(blobs).inside_pairs(points, tested)
    inside = shapely.contains_xy(blobs[:, None], points[None, :, 0], points[None, :, 1])
    want = inside & np.tile(tested, len(points) // 3)
    assert set(zip(poly.tolist(), point.tolist())) == set(zip(*np.nonzero(want)))


def _paths(rng: np.random.Generator) -> list[Path]:
    wiggly = np.column_stack([np.cumsum(rng.uniform(0.0, 1.0, (300, 2)), axis=0), np.zeros(300)])
    repeated = np.repeat(wiggly[:40], 2, axis=0)  # zero-length segments (lane joints)
    loop = np.column_stack(
        [np.cos(np.linspace(0, 6, 200)) * 20, np.sin(np.linspace(0, 6, 200)) * 20, np.zeros(200)]
    )
    return [Path(wiggly), Path(repeated), Path(loop), Path(wiggly[:2])]


@pytest.mark.parametrize("which", range(4))
def test_projection_and_distance_test_are_geos(which):
    rng = np.random.default_rng(2)
    path = _paths(rng)[which]
    xy = path.states[:, :2]
    points = np.concatenate(
        [rng.uniform(xy.min(0) - 5, xy.max(0) + 5, (3000, 2)), xy, (xy[1:] + xy[:-1]) / 2, xy[:5] + 1e-12]
    )
    want = shapely.line_locate_point(path.linestring, shapely.points(points))
    np.testing.assert_array_equal(path.project(points), want)
    for distance in (0.5, 2.0):
        np.testing.assert_array_equal(
            path.within(points, distance), shapely.dwithin(path.linestring, shapely.points(points), distance)
        )
