"""The scene's map as NAVSIM's scorer sees it: lane graph, baseline paths and the drivable-area map.

NAVSIM reads these from nuPlan's map API; here they come from the scene JSON (SCENE_FORMAT.md):
polygons from `driving.geometry`, baseline paths are the centerlines densified to 0.5 m with the
heading of each segment (the last point repeats the last segment's heading, as nuPlan's baseline paths).
`DrivableMap` mirrors `PDMDrivableMap.from_simulation`: roadblock polygons, lane and lane-connector
polygons, intersections and car parks within 100 m of the ego's box centre (objects that touch a
`buffer(100)` disk, as the map API's proximity query). Roadblock-connector polygons are not part of it.

The same geometries are built in few calls: polygons from given rings, lane buffers and the lanes'
densified baseline paths all at once (the points by a compiled loop, `_densified`), proximity tests as one
vectorised predicate. Point-in-polygon
queries (thousands per scene) run compiled on an index of the polygons' edges with GEOS's arithmetic
(`scorer.planar.PolygonIndex`), which asks GEOS itself about the rare points on the edge of deciding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from numba import njit
from shapely.geometry import Point, Polygon

from driving.geometry import DEFAULT_DENSIFY_M, polyline_headings
from driving.scene import Lane, Scene
from scorer.planar import PolygonIndex

ROADBLOCK, LANE, LANE_CONNECTOR, INTERSECTION, CARPARK = range(5)
DRIVABLE_TYPES = (ROADBLOCK, INTERSECTION, CARPARK)
LANE_TYPES = (LANE, LANE_CONNECTOR)


@dataclass(eq=False)
class LaneInfo:
    id: str
    roadblock_id: str
    polygon: Polygon
    centerline: np.ndarray  # (M, 2) as given [m]
    spacing: float  # [m] densification of the baseline path
    speed_limit: float | None  # [m/s]
    outgoing: list[str]

    @cached_property
    def path(self) -> np.ndarray:
        """(N, 3) baseline path: x [m], y [m], heading [rad] (built on first use)."""
        points = densify(self.centerline, self.spacing)
        return np.column_stack([points, polyline_headings(points)])

    @cached_property
    def length(self) -> float:
        """[m] length of the baseline path."""
        return float(np.linalg.norm(np.diff(self.path[:, :2], axis=0), axis=1).sum())


@dataclass(eq=False)
class RoadblockInfo:
    id: str
    polygon: Polygon
    lane_ids: list[str]
    outgoing: list[str]
    incoming: list[str] = field(default_factory=list)
    is_connector: bool = False


@dataclass(eq=False)
class MapModel:
    """Lane graph and map polygons of one scene, looked up by id."""

    lanes: dict[str, LaneInfo]
    roadblocks: dict[str, RoadblockInfo]
    intersections: list[tuple[str, Polygon]]
    carparks: list[tuple[str, Polygon]]

    def roadblocks_near(self, point: np.ndarray, radius: float, connectors: bool) -> list[RoadblockInfo]:
        blocks = [rb for rb in self.roadblocks.values() if rb.is_connector == connectors]
        disk = Point(point[0], point[1]).buffer(radius)
        hit = shapely.intersects(np.array([rb.polygon for rb in blocks], dtype=object), disk)
        return [rb for rb, h in zip(blocks, hit) if h]

    def nearest_roadblock(self, point: np.ndarray, connectors: bool) -> RoadblockInfo | None:
        blocks = [rb for rb in self.roadblocks.values() if rb.is_connector == connectors]
        if not blocks:
            return None
        p = Point(point[0], point[1])
        return blocks[int(np.argmin([rb.polygon.distance(p) for rb in blocks]))]


def densify(points: np.ndarray, spacing: float) -> np.ndarray:
    """`driving.geometry.densify_polyline`, vectorised: same points, same arithmetic."""
    a, b = points[:-1], points[1:]
    n = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / spacing).astype(int))
    seg = np.repeat(np.arange(len(a)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1
    frac = (k / n[seg])[:, None]
    return np.concatenate([points[:1], a[seg] + frac * (b[seg] - a[seg])], axis=0)


def _polygons(rings: list[np.ndarray]) -> np.ndarray:
    """Polygons from (n, 2) exterior rings (closed if they are not), built in one call."""
    if not rings:
        return np.zeros(0, dtype=object)
    sizes = [len(ring) for ring in rings]
    ring_index = np.repeat(np.arange(len(rings)), sizes)
    return shapely.polygons(shapely.linearrings(np.concatenate(rings), indices=ring_index))


def _lane_polygons(lanes: list[Lane]) -> np.ndarray:
    """`driving.geometry.lane_polygon` of each lane: given, or its centerline buffered by half its width
    with flat ends — each kind built in one call."""
    out = np.empty(len(lanes), dtype=object)
    given = [i for i, lane in enumerate(lanes) if lane.polygon is not None]
    out[given] = _polygons([np.asarray(lanes[i].polygon, dtype=np.float64) for i in given])
    built = [i for i, lane in enumerate(lanes) if lane.polygon is None]
    if built:
        lines = [np.asarray(lanes[i].centerline, dtype=np.float64) for i in built]
        index = np.repeat(np.arange(len(lines)), [len(line) for line in lines])
        widths = np.array([lanes[i].width for i in built], dtype=np.float64)
        axes = shapely.linestrings(np.concatenate(lines), indices=index)
        out[built] = shapely.buffer(axes, widths / 2.0, cap_style="flat", join_style="round")
    return out


def _lane_paths(lanes: list[LaneInfo]) -> None:
    """Fill each lane's baseline path (`LaneInfo.path`), densified and headed in one pass over all lanes:
    the same points and headings as `densify` and `polyline_headings` lane by lane."""
    if not lanes:
        return
    points = np.concatenate([lane.centerline for lane in lanes])
    sizes = np.array([len(lane.centerline) for lane in lanes])
    first = np.zeros(len(lanes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=first[1:])
    inner = np.ones(len(points) - 1, dtype=bool)
    inner[first[1:-1] - 1] = False  # the step from one lane's last point to the next lane's first
    a, b = points[:-1][inner], points[1:][inner]
    n = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / lanes[0].spacing).astype(np.int64))
    dense, ends = _densified(points, first, n)
    d = np.diff(dense, axis=0)
    heading = np.empty(len(dense))
    heading[:-1] = np.arctan2(d[:, 1], d[:, 0])
    heading[ends - 1] = heading[ends - 2]  # the last point repeats the last segment's heading
    paths = np.column_stack([dense, heading])
    for lane, start, end in zip(lanes, np.concatenate([[0], ends[:-1]]), ends):
        lane.__dict__["path"] = paths[start:end]


@njit(cache=True, error_model="numpy")
def _densified(points: np.ndarray, first: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lanes' points (lane l: points[first[l]:first[l + 1]]) with n[s] points on each of their segments s
    (in order), the last at the segment's end: `densify`'s points, and where each lane's end (L,)."""
    dense = np.empty((len(first) - 1 + n.sum(), 2))
    ends = np.empty(len(first) - 1, dtype=np.int64)
    w = s = 0
    for lane in range(len(first) - 1):
        dense[w, 0], dense[w, 1] = points[first[lane], 0], points[first[lane], 1]
        w += 1
        for i in range(first[lane], first[lane + 1] - 1):
            ax, ay, bx, by = points[i, 0], points[i, 1], points[i + 1, 0], points[i + 1, 1]
            for k in range(1, n[s] + 1):
                frac = k / n[s]
                dense[w, 0], dense[w, 1] = ax + frac * (bx - ax), ay + frac * (by - ay)
                w += 1
            s += 1
        ends[lane] = w
    return dense, ends


def build_map(scene: Scene) -> MapModel:
    """Lane graph (with incoming roadblock edges derived from `outgoing`) and polygons of the scene."""
    spacing = scene.map.densify_m or DEFAULT_DENSIFY_M
    lanes: dict[str, LaneInfo] = {}
    roadblocks: dict[str, RoadblockInfo] = {}
    connector_ids = {rb.id for rb in scene.map.roadblock_connectors or []}
    blocks = list(scene.map.all_roadblocks())
    all_lanes = [lane for rb in blocks for lane in rb.lanes]
    lane_polys = iter(_lane_polygons(all_lanes))
    given = iter(
        _polygons([np.asarray(rb.polygon, dtype=np.float64) for rb in blocks if rb.polygon is not None])
    )
    for rb in blocks:
        polys = [next(lane_polys) for _ in rb.lanes]
        for lane, poly in zip(rb.lanes, polys):
            centerline = np.asarray(lane.centerline, dtype=np.float64)
            lanes[lane.id] = LaneInfo(
                lane.id, rb.id, poly, centerline, spacing, lane.speed_limit_mps, lane.outgoing or []
            )
        polygon = next(given) if rb.polygon is not None else shapely.union_all(polys)
        roadblocks[rb.id] = RoadblockInfo(
            rb.id, polygon, [lane.id for lane in rb.lanes], list(rb.outgoing or [])
        )
        roadblocks[rb.id].is_connector = rb.id in connector_ids
    for rb in roadblocks.values():
        for out in rb.outgoing:
            roadblocks[out].incoming.append(rb.id)
    _lane_paths(list(lanes.values()))
    areas = [(a.id, np.asarray(a.polygon)) for a in scene.map.intersections or []]
    parks = [(a.id, np.asarray(a.polygon)) for a in scene.map.carpark_areas or []]
    area_polys = _polygons([ring for _, ring in areas + parks])
    intersections = [(area_id, poly) for (area_id, _), poly in zip(areas, area_polys)]
    carparks = [(area_id, poly) for (area_id, _), poly in zip(parks, area_polys[len(areas) :])]
    return MapModel(lanes, roadblocks, intersections, carparks)


@dataclass(eq=False)
class Layers:
    """(P,) bool masks over the polygons of a drivable map."""

    lanes: np.ndarray  # lanes and lane connectors
    drivable: np.ndarray  # roadblocks, intersections, car parks
    on_route: np.ndarray  # lanes and connectors of the route
    intersections: np.ndarray
    lane_index: np.ndarray  # (L,) indices of the lanes


@dataclass(eq=False)
class DrivableMap:
    """NAVSIM's PDMDrivableMap: polygons with their map type, and point-in-polygon queries."""

    tokens: list[str]
    types: np.ndarray  # (P,) map type per polygon
    polygons: np.ndarray  # (P,) shapely polygons, prepared
    _layers: dict = field(default_factory=dict)  # route lane ids -> Layers
    _index: PolygonIndex | None = None

    def inside_pairs(self, points: np.ndarray, tested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) points, point n of kind n % G, and (P, G) bool: which polygons each kind is tested against ->
        the (polygon, point) pairs with the point strictly inside the polygon (shapely `contains_xy`), in no
        particular order (`scorer.planar.PolygonIndex`, built on first use)."""
        if self._index is None:
            self._index = PolygonIndex(self.polygons)
        return self._index.inside_pairs(points, tested)

    def layers(self, route_lane_ids: list[str]) -> Layers:
        """Which polygons are lanes, drivable areas, on-route lanes and intersections (kept per route)."""
        key = tuple(route_lane_ids)
        if key not in self._layers:
            lanes = np.array([kind in LANE_TYPES for kind in self.types.tolist()], dtype=bool)
            route = set(route_lane_ids)
            on_route = lanes & np.array([token in route for token in self.tokens], dtype=bool)
            self._layers[key] = Layers(
                lanes,
                np.array([kind in DRIVABLE_TYPES for kind in self.types.tolist()], dtype=bool),
                on_route,
                self.types == INTERSECTION,
                np.flatnonzero(lanes),
            )
        return self._layers[key]

    def intersecting_tokens(self, point: np.ndarray) -> list[str]:
        hit = shapely.intersects(self.polygons, Point(point[0], point[1]))
        return [self.tokens[i] for i in np.flatnonzero(hit)]


def build_drivable_map(model: MapModel, center: np.ndarray, radius: float) -> DrivableMap:
    """Drivable-area map around the ego's box centre, in NAVSIM's layer order."""
    disk = Point(center[0], center[1]).buffer(radius)
    tokens: list[str] = []
    types: list[int] = []
    polys: list[Polygon] = []

    def add(token: str, kind: int, poly: Polygon) -> None:
        tokens.append(token)
        types.append(kind)
        polys.append(poly)

    blocks = list(model.roadblocks.values())
    hit = shapely.intersects(np.array([rb.polygon for rb in blocks], dtype=object), disk)
    near = [rb for rb, h in zip(blocks, hit) if h]
    for rb in near:
        if not rb.is_connector:
            add(rb.id, ROADBLOCK, rb.polygon)
    for connectors in (False, True):
        for rb in near:
            if rb.is_connector == connectors:
                for lane_id in rb.lane_ids:
                    add(lane_id, LANE_CONNECTOR if connectors else LANE, model.lanes[lane_id].polygon)
    for kind, areas in ((INTERSECTION, model.intersections), (CARPARK, model.carparks)):
        hit = shapely.intersects(np.array([poly for _, poly in areas], dtype=object), disk)
        for (area_id, poly), h in zip(areas, hit):
            if h:
                add(area_id, kind, poly)
    geoms = np.array(polys, dtype=object)
    shapely.prepare(geoms)
    return DrivableMap(tokens, np.array(types, dtype=int), geoms)
