"""The scene's map as NAVSIM's scorer sees it: lane graph, baseline paths and the drivable-area map.

NAVSIM reads these from nuPlan's map API; here they come from the scene JSON (SCENE_FORMAT.md):
polygons from `driving.geometry`, baseline paths are the centerlines densified to 0.5 m with the
heading of each segment (the last point repeats the last segment's heading, as nuPlan's baseline paths).
`DrivableMap` mirrors `PDMDrivableMap.from_simulation`: roadblock polygons, lane and lane-connector
polygons, intersections and car parks within 100 m of the ego's box centre (objects that touch a
`buffer(100)` disk, as the map API's proximity query). Roadblock-connector polygons are not part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from driving.geometry import DEFAULT_DENSIFY_M, lane_polygon, polyline_headings
from driving.scene import Lane, Roadblock, Scene

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
        disk = Point(point[0], point[1]).buffer(radius)
        return [
            rb
            for rb in self.roadblocks.values()
            if rb.is_connector == connectors and rb.polygon.intersects(disk)
        ]

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


def _lane_polygon(lane: Lane) -> Polygon:
    """`driving.geometry.lane_polygon`, with given polygons built without shapely's per-point Python."""
    if lane.polygon is not None:
        return shapely.polygons(np.asarray(lane.polygon, dtype=np.float64))
    return lane_polygon(lane)


def _block_polygon(rb: Roadblock, lane_polys: list[Polygon]) -> Polygon:
    if rb.polygon is not None:
        return shapely.polygons(np.asarray(rb.polygon, dtype=np.float64))
    return shapely.union_all(lane_polys)


def build_map(scene: Scene) -> MapModel:
    """Lane graph (with incoming roadblock edges derived from `outgoing`) and polygons of the scene."""
    spacing = scene.map.densify_m or DEFAULT_DENSIFY_M
    lanes: dict[str, LaneInfo] = {}
    roadblocks: dict[str, RoadblockInfo] = {}
    connector_ids = {rb.id for rb in scene.map.roadblock_connectors or []}
    for rb in scene.map.all_roadblocks():
        polys = [_lane_polygon(lane) for lane in rb.lanes]
        for lane, poly in zip(rb.lanes, polys):
            centerline = np.asarray(lane.centerline, dtype=np.float64)
            lanes[lane.id] = LaneInfo(
                lane.id, rb.id, poly, centerline, spacing, lane.speed_limit_mps, lane.outgoing or []
            )
        roadblocks[rb.id] = RoadblockInfo(
            rb.id, _block_polygon(rb, polys), [lane.id for lane in rb.lanes], list(rb.outgoing or [])
        )
        roadblocks[rb.id].is_connector = rb.id in connector_ids
    for rb in roadblocks.values():
        for out in rb.outgoing:
            roadblocks[out].incoming.append(rb.id)
    intersections = [(a.id, shapely.polygons(np.asarray(a.polygon))) for a in scene.map.intersections or []]
    carparks = [(a.id, shapely.polygons(np.asarray(a.polygon))) for a in scene.map.carpark_areas or []]
    return MapModel(lanes, roadblocks, intersections, carparks)


@dataclass(eq=False)
class DrivableMap:
    """NAVSIM's PDMDrivableMap: polygons with their map type, and point-in-polygon queries."""

    tokens: list[str]
    types: np.ndarray  # (P,) map type per polygon
    polygons: np.ndarray  # (P,) shapely polygons, prepared
    bounds: np.ndarray  # (P, 4)
    tree: shapely.STRtree

    def contains(self, points: np.ndarray, tested: np.ndarray | None = None) -> np.ndarray:
        """(N, 2) points -> (N, P) bool: point strictly inside polygon (shapely `contains_xy`). `tested`
        (N, P) bool limits which pairs are tested (the others are False)."""
        x, y = points[:, 0:1], points[:, 1:2]
        b = self.bounds
        near = (x >= b[:, 0]) & (x <= b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 3])  # (N, P)
        if tested is not None:
            near &= tested
        out = np.zeros(near.shape, dtype=bool)
        for i in np.nonzero(near.any(axis=0))[0]:
            rows = np.nonzero(near[:, i])[0]
            out[rows, i] = shapely.contains_xy(self.polygons[i], points[rows, 0], points[rows, 1])
        return out

    def intersecting_tokens(self, point: np.ndarray) -> list[str]:
        idx = np.sort(self.tree.query(Point(point[0], point[1]), predicate="intersects"))
        return [self.tokens[i] for i in idx]


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

    near = [rb for rb in model.roadblocks.values() if rb.polygon.intersects(disk)]
    for rb in near:
        if not rb.is_connector:
            add(rb.id, ROADBLOCK, rb.polygon)
    for connectors in (False, True):
        for rb in near:
            if rb.is_connector == connectors:
                for lane_id in rb.lane_ids:
                    add(lane_id, LANE_CONNECTOR if connectors else LANE, model.lanes[lane_id].polygon)
    for kind, areas in ((INTERSECTION, model.intersections), (CARPARK, model.carparks)):
        for area_id, poly in areas:
            if poly.intersects(disk):
                add(area_id, kind, poly)
    geoms = np.array(polys, dtype=object)
    shapely.prepare(geoms)
    bounds = shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4))
    return DrivableMap(
        tokens, np.array(types, dtype=int), geoms, bounds, shapely.STRtree(geoms, node_capacity=10)
    )
