"""What the camera and the bird's-eye view both draw: the map cut to a region and moved into the ego's
local frame (x forward, y left, metres), and the colours that identify agents and plans in both views.

Lane markings are derived, since the scene format has none: a lane's left edge is dashed where it borders
another lane of the same roadblock (same direction), a yellow centre line where it borders another
roadblock (usually the oncoming one), absent where it opens into an intersection, connector or carpark,
and a solid white road edge elsewhere. Connector lanes carry no markings; a red connector gets a stop line.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from driving.geometry import (
    ego_origin,
    lane_polygon,
    points_global_to_local,
    points_local_to_global,
    polyline_headings,
    roadblock_polygon,
    wrap_angle,
)
from driving.scene import Lane, Roadblock, Scene

RGB = tuple[int, int, int]
SurfaceKind = Literal["carpark", "roadblock", "intersection", "connector"]
MarkingKind = Literal["dashed", "solid", "centre", "stop"]

DASH_M, GAP_M = 3.0, 6.0  # [m] dashed lane line pattern
MARKING_SPACING_M = 1.0  # [m] sample spacing along lane edges
PROBE_M = 0.4  # [m] how far outside a lane edge we look to classify it
SEAM_M = 0.1  # [m] tolerance for probes on the boundary between consecutive roadblocks
LAMP_SPACING_M = 1.0  # [m] between signal heads of connectors that share a start
LIGHT_PATH_M = 8.0  # [m] of a signalled connector coloured by its light in the BEV

# ------------------------------------------------------------------------------------ colours ---

# no black or asphalt grey: a car must stand out from the road, in the camera and at 64 px
VEHICLE_PALETTE: tuple[RGB, ...] = (
    (200, 40, 40),  # red
    (40, 90, 200),  # blue
    (225, 225, 225),  # white
    (150, 170, 200),  # pale blue-grey
    (30, 140, 80),  # green
    (230, 180, 30),  # yellow
    (120, 60, 150),  # purple
    (150, 40, 70),  # maroon
)
TYPE_COLOURS: dict[str, RGB] = {
    "pedestrian": (235, 90, 170),
    "bicycle": (40, 200, 210),
    "traffic_cone": (255, 120, 0),
    "barrier": (225, 60, 40),
    "czone_sign": (250, 200, 0),
    "generic_object": (150, 110, 70),
}
EGO_COLOUR: RGB = (240, 240, 245)
LIGHT_COLOURS: dict[bool, RGB] = {True: (255, 30, 30), False: (30, 230, 60)}  # red? -> lamp colour
# plans avoid the lights' red and green
PLAN_COLOURS: dict[str, RGB] = {"expert": (255, 60, 210), "trajectory": (255, 140, 0), "plan": (0, 215, 255)}
_SPARE_PLAN_COLOURS: tuple[RGB, ...] = ((255, 240, 60), (160, 100, 255), (255, 255, 255), (150, 90, 40))


def agent_colour(agent_id: str, agent_type: str) -> RGB:
    """Vehicles get a car colour picked by a stable hash of their id (so the same car has the same
    colour in the camera and the BEV); other types have one colour each."""
    if agent_type == "vehicle":
        return VEHICLE_PALETTE[zlib.crc32(agent_id.encode()) % len(VEHICLE_PALETTE)]
    return TYPE_COLOURS[agent_type]


def plan_colours(names: list[str]) -> dict[str, RGB]:
    """A distinct colour per plan name: fixed ones for expert/trajectory/plan, then spares in order."""
    spare = iter(_SPARE_PLAN_COLOURS * (1 + len(names) // len(_SPARE_PLAN_COLOURS)))
    return {name: PLAN_COLOURS.get(name) or next(spare) for name in names}


# ------------------------------------------------------------------------------- map in view ---


@dataclass(frozen=True)
class Surface:
    kind: SurfaceKind
    rings: list[np.ndarray]  # exterior then holes, each (N, 2) local [m]
    route: bool


@dataclass(frozen=True)
class Marking:
    kind: MarkingKind
    points: np.ndarray  # (N, 2) local polyline [m]


@dataclass(frozen=True)
class LightMarker:
    x: float  # local pose of the connector lane's start [m, m, rad]
    y: float
    heading: float
    lane_width: float  # [m]
    lamp_offset: float  # [m] to the left of the lane centre, so heads sharing a start sit side by side
    red: bool
    path: np.ndarray  # (N, 2) local: the connector's first LIGHT_PATH_M metres, where the BEV shows the state


@dataclass(frozen=True)
class LaneLine:
    points: np.ndarray  # (N, 2) local centerline [m]
    route: bool
    connector: bool


@dataclass(frozen=True)
class MapView:
    surfaces: list[Surface]  # in drawing order: carparks, roadblocks, intersections, connectors
    markings: list[Marking]
    lanes: list[LaneLine]
    lights: list[LightMarker]


def map_view(scene: Scene, region: Polygon) -> MapView:
    """The scene's map inside `region` (a local-frame polygon), in the local frame."""
    origin = ego_origin(scene.ego)
    region_global = Polygon(points_local_to_global(np.asarray(region.exterior.coords), origin))
    box = np.asarray(region_global.bounds)  # (4,) xmin, ymin, xmax, ymax
    m = scene.map
    route = set(m.route_roadblock_ids)
    blocks = [rb for rb in m.roadblocks if _near(rb, box)]
    connectors = [rb for rb in m.roadblock_connectors or [] if _near(rb, box)]
    block_polys = {rb.id: _valid(roadblock_polygon(rb)) for rb in blocks}
    conn_polys = {rb.id: _valid(roadblock_polygon(rb)) for rb in connectors}
    inters = [_valid(Polygon(a.polygon)) for a in m.intersections or []]
    carparks = [_valid(Polygon(a.polygon)) for a in m.carpark_areas or []]

    layers: list[tuple[SurfaceKind, list[tuple[BaseGeometry, bool]]]] = [
        ("carpark", [(p, False) for p in carparks]),
        ("roadblock", [(block_polys[rb.id], rb.id in route) for rb in blocks]),
        ("intersection", [(p, False) for p in inters]),
        ("connector", [(conn_polys[rb.id], rb.id in route) for rb in connectors]),
    ]
    surfaces = [
        Surface(kind, rings, on_route)
        for kind, polys in layers
        for poly, on_route in polys
        for rings in _rings(poly, region_global, origin)
    ]
    junction = shapely.union_all([*conn_polys.values(), *inters, *carparks])
    markings = _road_markings(blocks, block_polys, junction, box, origin)
    lights = _light_markers(scene, origin)
    lanes = [
        LaneLine(_local_run(np.asarray(lane.centerline, dtype=np.float64), box, origin), rb.id in route, conn)
        for conn, group in ((False, blocks), (True, connectors))
        for rb in group
        for lane in rb.lanes
    ]
    return MapView(
        surfaces, markings + _stop_lines(lights), [ln for ln in lanes if len(ln.points) >= 2], lights
    )


def _road_markings(
    blocks: list[Roadblock],
    block_polys: dict[str, BaseGeometry],
    junction: BaseGeometry,
    box: np.ndarray,
    origin: np.ndarray,
) -> list[Marking]:
    all_blocks = shapely.union_all(list(block_polys.values()))
    shapely.prepare(all_blocks)
    shapely.prepare(junction)
    out: list[Marking] = []
    for rb in blocks:
        # grown a little so that probes on the seam with the next roadblock along the road count as own
        own = block_polys[rb.id].buffer(SEAM_M)
        shapely.prepare(own)
        for lane in rb.lanes:
            out += _lane_markings(lane, own, all_blocks, junction, box, origin)
    return out


def _valid(geom: BaseGeometry) -> BaseGeometry:
    """Given polygons may self-intersect (e.g. a tight turn's outline); GEOS refuses to cut those."""
    return geom if geom.is_valid else shapely.make_valid(geom)


def _near(rb: Roadblock, box: np.ndarray, margin: float = 10.0) -> bool:
    """Whether the roadblock or any of its lanes comes within `margin` [m] of the region's bounding box."""
    outlines = [rb.polygon] if rb.polygon is not None else []
    outlines += [lane.polygon if lane.polygon is not None else lane.centerline for lane in rb.lanes]
    for outline in outlines:
        pts = np.asarray(outline)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        if (
            lo[0] <= box[2] + margin
            and hi[0] >= box[0] - margin
            and lo[1] <= box[3] + margin
            and hi[1] >= box[1] - margin
        ):
            return True
    return False


def _rings(geom: BaseGeometry, region_global: Polygon, origin: np.ndarray) -> list[list[np.ndarray]]:
    """The polygons of `geom` inside the region, each as [exterior, *holes] in the local frame."""
    out = []
    for part in shapely.get_parts(shapely.intersection(geom, region_global)):
        if isinstance(part, Polygon) and not part.is_empty:
            rings = [part.exterior, *part.interiors]
            out.append([points_global_to_local(np.asarray(r.coords)[:-1], origin) for r in rings])
    return out


def _local_run(points: np.ndarray, box: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """The longest run of a polyline's points inside `box` (grown by 5 m), in the local frame."""
    runs = _runs(_in_box(points, box, 5.0))
    if not runs:
        return np.zeros((0, 2))
    a, b = max(runs, key=lambda r: r[1] - r[0])
    return points_global_to_local(points[a:b], origin)


def _in_box(points: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (x >= box[0] - margin) & (x <= box[2] + margin) & (y >= box[1] - margin) & (y <= box[3] + margin)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where `mask` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


# ----------------------------------------------------------------------------- lane markings ---


def _lane_edges(lane: Lane) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 2) left edge, (N, 2) right edge, (N, 2) left unit normals of a lane [m]."""
    centre = _densify(np.asarray(lane.centerline, dtype=np.float64), MARKING_SPACING_M)
    heading = polyline_headings(centre)
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
    half = _half_widths(lane, centre)[:, None]
    return centre + normal * half, centre - normal * half, normal


def _half_widths(lane: Lane, centre: np.ndarray) -> np.ndarray:
    """(N,) [m] half width at each centerline point: half the given width, or for a polygon lane the
    distance to its outline (so edges follow tapers); within a lane width of either end that distance
    would measure to the end cap, so the nearest interior value is used there."""
    if lane.width is not None:
        return np.full(len(centre), lane.width / 2.0)
    outline = lane_polygon(lane).buffer(0).boundary  # buffer(0): a valid (Multi)Polygon whatever was given
    dist = shapely.distance(shapely.points(centre), outline)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(centre, axis=0).T))])
    mean_width = lane_width(lane)
    interior = (s >= mean_width) & (s <= s[-1] - mean_width)
    if not interior.any():
        return np.full(len(centre), mean_width / 2.0)
    return np.interp(s, s[interior], dist[interior])


def _densify(points: np.ndarray, spacing: float) -> np.ndarray:
    """Vectorised `geometry.densify_polyline`: (N, 2) -> points at most `spacing` [m] apart, every
    original vertex kept (the loop version costs ~0.5 ms per long lane)."""
    seg = np.diff(points, axis=0)
    n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / spacing)).astype(int)  # (N-1,) pieces
    start = np.repeat(np.arange(len(seg)), n)
    frac = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1) / np.repeat(n, n)
    return np.concatenate([points[:1], points[start] + frac[:, None] * seg[start]])


def lane_width(lane: Lane) -> float:
    """[m] the given width, or for a polygon lane its mean width (area / centerline length)."""
    if lane.width is not None:
        return lane.width
    length = float(np.hypot(*np.diff(np.asarray(lane.centerline), axis=0).T).sum())
    return float(lane_polygon(lane).area / max(length, 1e-6))


def _lane_markings(
    lane: Lane,
    own: BaseGeometry,
    all_blocks: BaseGeometry,
    junction: BaseGeometry,
    box: np.ndarray,
    origin: np.ndarray,
) -> list[Marking]:
    """Markings along both edges of a lane of a (non-connector) roadblock; see the module docstring.
    A boundary between two lanes of one roadblock is drawn once, from the lane on its right."""
    left, right, normal = _lane_edges(lane)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(left, axis=0).T))])  # [m] along the edge
    out = []
    for edge, outward, is_left in ((left, normal, True), (right, -normal, False)):
        probe = edge + outward * PROBE_M
        px, py = probe[:, 0], probe[:, 1]
        in_own = shapely.contains_xy(own, px, py)
        kind = np.where(in_own, 1 if is_left else 0, np.where(shapely.contains_xy(all_blocks, px, py), 2, 3))
        kind = np.where(~in_own & (kind == 3) & shapely.contains_xy(junction, px, py), 0, kind)
        kind = np.where(_in_box(edge, box, 5.0), kind, 0)  # 0: none, 1: dashed, 2: centre, 3: solid
        for a, b in _runs(kind > 0):
            for k in np.unique(kind[a:b]).tolist():
                for c, d in _runs(kind[a:b] == k):
                    piece = edge[a + c : min(a + d + 1, len(edge))]  # +1 closes the gap to the next run
                    out += _pieces(int(k), piece, float(arc[a + c]), origin)
    return out


def _pieces(kind: int, piece: np.ndarray, s0: float, origin: np.ndarray) -> list[Marking]:
    """Markings of one run of an edge; `s0` [m] is where the run starts along the lane, so dashes keep
    their place on the road whatever the region cut off."""
    if len(piece) < 2:
        return []
    local = points_global_to_local(piece, origin)
    if kind == 2:
        return [Marking("centre", local)]
    if kind == 3:
        return [Marking("solid", local)]
    return [Marking("dashed", d) for d in _dashes(local, s0)]


def _dashes(points: np.ndarray, s0: float) -> list[np.ndarray]:
    """Split a polyline that starts `s0` [m] along its lane into DASH_M pieces every DASH_M + GAP_M
    metres of the lane, cut exactly at arc length."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = s0 + np.concatenate([[0.0], np.cumsum(seg)])
    period = DASH_M + GAP_M
    out = []
    for start in np.arange(np.floor(s0 / period) * period, s[-1], period):
        stops = np.clip([start, start + DASH_M], s[0], s[-1])
        inner = (s > stops[0]) & (s < stops[1])
        ends = np.stack([np.interp(stops, s, points[:, 0]), np.interp(stops, s, points[:, 1])], axis=-1)
        dash = np.concatenate([ends[:1], points[inner], ends[1:]])
        if stops[1] - stops[0] > 0.2:
            out.append(dash)
    return out


# ---------------------------------------------------------------------------- traffic lights ---


def _light_markers(scene: Scene, origin: np.ndarray) -> list[LightMarker]:
    """One signal head per traffic light at its connector's start; heads whose connectors share a start
    are placed side by side, ordered by the connector's turn (left turns on the left)."""
    items = []
    for tl in sorted(scene.traffic_lights or [], key=lambda t: t.lane_connector_id):
        lane = scene.lane(tl.lane_connector_id)
        centre = np.asarray(lane.centerline, dtype=np.float64)
        heading = polyline_headings(centre)
        turn = float(wrap_angle(heading[-1] - heading[0]))
        items.append(
            (centre[0], float(heading[0]), turn, lane_width(lane), tl.red, _head(centre, LIGHT_PATH_M))
        )
    groups: list[list[int]] = []
    for i, item in enumerate(items):
        group = next((g for g in groups if np.hypot(*(items[g[0]][0] - item[0])) < 1.0), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    out = []
    for group in groups:
        ordered = sorted(group, key=lambda i: (items[i][2], i))  # right turns first (rightmost)
        for rank, i in enumerate(ordered):
            start, heading, _, width, red, path = items[i]
            local = points_global_to_local(start, origin)
            offset = (rank - (len(ordered) - 1) / 2.0) * LAMP_SPACING_M
            h = float(wrap_angle(heading - origin[2]))
            path = points_global_to_local(path, origin)
            out.append(LightMarker(float(local[0]), float(local[1]), h, width, offset, red, path))
    return out


def _head(points: np.ndarray, length: float) -> np.ndarray:
    """The first `length` [m] of a polyline, cut exactly."""
    dense = _densify(points, 0.5)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(dense, axis=0).T))])
    return dense[s <= min(length, s[-1])]


def _stop_lines(lights: list[LightMarker]) -> list[Marking]:
    """A stop line across the lane just before each red connector's start."""
    out = []
    for lt in lights:
        if not lt.red:
            continue
        c, s = np.cos(lt.heading), np.sin(lt.heading)
        centre = np.array([lt.x, lt.y]) - 0.3 * np.array([c, s])
        half = np.array([-s, c]) * lt.lane_width / 2.0
        out.append(Marking("stop", np.stack([centre - half, centre + half])))
    return out
