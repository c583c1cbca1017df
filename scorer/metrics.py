"""Map-based sub-metrics: where the ego is (ego areas), DAC, DDC, raw ego progress and lane keeping.

Follows NAVSIM's `_calculate_ego_area` and friends. "Inside" means strictly inside (shapely
`contains_xy`, as NAVSIM's `points_in_polygons` and `is_in_layer`). v2 leaves the steps whose centre is
in an intersection out of the driving-direction sum (NAVSIM v2.2); v1 does not. The areas are counted
from the (polygon, point) pairs found inside, never from a dense points × polygons table, in a compiled
loop (numba: it runs on every footprint, ~4000 points, and in numpy took a dozen passes over them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from scorer.constants import DDC_COMPLIANT, DDC_HORIZON_STEPS, DDC_VIOLATION, LK_DEVIATION, LK_STEPS
from scorer.mapdata import DrivableMap
from scorer.paths import Path


@dataclass
class EgoAreas:
    multiple_lanes: np.ndarray  # (K, T) corners in several lanes, none containing all four
    off_road: np.ndarray  # (K, T) a corner outside every drivable polygon
    oncoming: np.ndarray  # (K, T) centre in no on-route lane
    center_in_intersection: np.ndarray  # (K, T)
    rear_axle_in_intersection: np.ndarray  # (K, T)


def ego_areas(
    coords: np.ndarray, rear_axle: np.ndarray, drivable: DrivableMap, route_lane_ids: list[str]
) -> EgoAreas:
    """(K, T, 5, 2) ego corners + centre and (K, T, 2) rear axle -> the areas the ego occupies. Each point
    is tested only against the polygons its areas need (corners: all; centre: on-route lanes and
    intersections; rear axle: intersections)."""
    layer = drivable.layers(route_lane_ids)
    k, t = coords.shape[:2]
    points = np.concatenate([coords, rear_axle[:, :, None]], axis=2).reshape(-1, 2)  # point 6·box + kind
    tested = np.ones((len(layer.lanes), 6), dtype=bool)  # kinds: 4 corners, centre, rear axle
    tested[:, 4], tested[:, 5] = layer.on_route | layer.intersections, layer.intersections
    poly, point = drivable.inside_pairs(points, tested)
    lane_slot = np.full(len(layer.lanes), -1, dtype=np.int64)
    lane_slot[layer.lane_index] = np.arange(len(layer.lane_index))
    flags = _areas(
        poly,
        point,
        k * t,
        lane_slot,
        max(1, len(layer.lane_index)),
        layer.drivable,
        layer.on_route,
        layer.intersections,
    )
    multiple, off_road, oncoming, center_int, rear_int = flags.reshape(5, k, t)
    return EgoAreas(multiple, off_road, oncoming, center_int, rear_int)


@njit(cache=True, error_model="numpy")
def _areas(
    poly: np.ndarray,
    point: np.ndarray,
    boxes: int,
    lane_slot: np.ndarray,
    n_lanes: int,
    drivable: np.ndarray,
    on_route: np.ndarray,
    intersection: np.ndarray,
) -> np.ndarray:
    """(5, boxes) bool: multiple lanes, off road, oncoming, centre and rear axle in an intersection, from
    the (polygon, point) pairs with the point inside (point 6·box + kind: 4 corners, centre, rear axle)."""
    corners_in_lane = np.zeros((boxes, n_lanes), dtype=np.int64)
    on_road = np.zeros((boxes, 4), dtype=np.bool_)
    out = np.zeros((5, boxes), dtype=np.bool_)
    centre_on_route = np.zeros(boxes, dtype=np.bool_)
    for p, n in zip(poly, point):
        box, kind = n // 6, n % 6
        if kind < 4:
            if lane_slot[p] >= 0:
                corners_in_lane[box, lane_slot[p]] += 1
            on_road[box, kind] |= drivable[p]
        elif kind == 4:
            centre_on_route[box] |= on_route[p]
            out[3, box] |= intersection[p]
        else:
            out[4, box] |= intersection[p]
    for box in range(boxes):
        lanes = whole = 0
        for lane in range(n_lanes):
            lanes += corners_in_lane[box, lane] > 0
            whole += corners_in_lane[box, lane] == 4
        out[0, box] = lanes > 1 and whole == 0  # corners in several lanes, none holding all four
        out[1, box] = not (on_road[box, 0] and on_road[box, 1] and on_road[box, 2] and on_road[box, 3])
        out[2, box] = not centre_on_route[box]
    return out


def drivable_area_compliance(areas: EgoAreas) -> np.ndarray:
    return np.where(areas.off_road.any(axis=1), 0.0, 1.0)


def driving_direction_compliance(
    centers: np.ndarray, areas: EgoAreas, skip_intersections: bool
) -> np.ndarray:
    """(K, T, 2) centres -> DDC (K,): max distance [m] driven against traffic within any 1 s window."""
    step = np.zeros(centers.shape[:2])
    step[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    counted = areas.oncoming & ~areas.center_in_intersection if skip_intersections else areas.oncoming
    step[~counted] = 0.0
    cum = np.concatenate([np.zeros((step.shape[0], 1)), np.cumsum(step, axis=1)], axis=1)
    t = np.arange(step.shape[1])
    window = cum[:, t + 1] - cum[:, np.maximum(0, t - DDC_HORIZON_STEPS)]
    worst = window.max(axis=1)
    return np.where(worst < DDC_COMPLIANT, 1.0, np.where(worst < DDC_VIOLATION, 0.5, 0.0))


def raw_progress(centers: np.ndarray, centerline: Path) -> np.ndarray:
    """(K, T, 2) centres -> progress [m] along the centerline from the first to the last step, ≥ 0. The
    first centres are usually all the ego's at t = 0, projected once then."""
    first = centers[:, 0]
    if len(first) > 1 and (first == first[0]).all():
        start = centerline.project(first[:1])
    else:
        start = centerline.project(first)
    return np.clip(centerline.project(centers[:, -1]) - start, 0.0, None)


def lane_keeping(centers: np.ndarray, areas: EgoAreas, centerline: Path) -> np.ndarray:
    """LK (K,): 0 if the centre stays > 0.5 m from the centerline for 2 s in a row (intersections skipped
    without breaking the run)."""
    close = centerline.within(centers, LK_DEVIATION)
    skip = areas.center_in_intersection
    exceed = ~close & ~skip
    reset = close & ~skip
    count = np.cumsum(exceed, axis=1)
    at_reset = np.maximum.accumulate(np.where(reset, count, 0), axis=1)
    run = count - at_reset
    return np.where((run >= LK_STEPS).any(axis=1), 0.0, 1.0)
