"""Map-based sub-metrics: where the ego is (ego areas), DAC, DDC, raw ego progress and lane keeping.

Follows NAVSIM's `_calculate_ego_area` and friends. "Inside" means strictly inside (shapely
`contains_xy`, as NAVSIM's `points_in_polygons` and `is_in_layer`). v2 leaves the steps whose centre is
in an intersection out of the driving-direction sum (NAVSIM v2.2); v1 does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorer.constants import DDC_COMPLIANT, DDC_HORIZON_STEPS, DDC_VIOLATION, LK_DEVIATION, LK_STEPS
from scorer.mapdata import DRIVABLE_TYPES, INTERSECTION, LANE_TYPES, DrivableMap
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
    lanes = np.isin(drivable.types, LANE_TYPES)
    areas = np.isin(drivable.types, DRIVABLE_TYPES)
    on_route = lanes & np.isin(np.array(drivable.tokens, dtype=object), route_lane_ids)
    intersections = drivable.types == INTERSECTION
    k, t = coords.shape[:2]
    points = np.concatenate([coords, rear_axle[:, :, None]], axis=2).reshape(-1, 2)  # 6 per box
    tested = np.array([np.ones_like(lanes)] * 4 + [on_route | intersections, intersections])  # (6, P)
    inside = drivable.contains(points, np.tile(tested, (k * t, 1))).reshape(k, t, 6, -1)
    corners, center, rear = inside[:, :, :4], inside[:, :, 4], inside[:, :, 5]
    corners_per_lane = corners[..., lanes].sum(axis=2)  # (K, T, L)
    multiple = ((corners_per_lane > 0).sum(axis=-1) > 1) & np.all(corners_per_lane != 4, axis=-1)
    off_road = corners[..., areas].any(axis=-1).sum(axis=-1) < 4
    oncoming = ~center[..., on_route].any(axis=-1)
    in_intersection = center[..., intersections].any(axis=-1)
    rear_in_intersection = rear[..., intersections].any(axis=-1)
    return EgoAreas(multiple, off_road, oncoming, in_intersection, rear_in_intersection)


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
    """(K, T, 2) centres -> progress [m] along the centerline from the first to the last step, ≥ 0."""
    along = centerline.project(centers[:, [0, -1]])
    return np.clip(along[:, 1] - along[:, 0], 0.0, None)


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
