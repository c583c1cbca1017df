"""Route, starting lane and centerline, as PDM-Closed derives them before planning.

Follows NAVSIM's `route_roadblock_correction` (start off-route: backward then forward BFS; unlinked
consecutive roadblocks: forward BFS for the missing links; loops through intersections cut), the
starting-lane choice (on-route lane under the rear axle with the smallest heading error, else the
closest on-route lane) and the lane-level Dijkstra whose baseline paths form the centerline. The BFS
is done level by level with each (roadblock, depth) expanded once: NAVSIM's queue holds duplicates, but
they produce the same goal test, the same parents (last writer wins) and the same path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from scorer.interp import normalize_angle
from scorer.mapdata import DrivableMap, LaneInfo, MapModel, RoadblockInfo
from scorer.paths import Path

HEADING_ERROR_MAX = np.pi / 4  # [rad] roadblock candidates
DISPLACEMENT_ERROR_MAX = 3.0  # [m]
BFS_BACKWARD_DEPTH = 15
BFS_FORWARD_DEPTH = 30
DIJKSTRA_DEPTH = 30  # roadblocks ahead searched for the centerline


@dataclass(eq=False)
class Route:
    roadblock_ids: list[str]
    lane_ids: list[str]  # lanes of the route roadblocks, in route order (NAVSIM's route_lane_dict)
    start_lane: LaneInfo
    centerline: Path


def _nearest_point(path: np.ndarray, point: np.ndarray) -> tuple[int, float]:
    dist = ((path[:, :2] - point[None, :2]) ** 2).sum(axis=-1) ** 0.5
    i = int(np.argmin(dist))
    return i, float(dist[i])


def _roadblock_candidates(
    pose: np.ndarray, model: MapModel, route_ids: list[str]
) -> tuple[RoadblockInfo, list[RoadblockInfo]]:
    """The roadblock the rear axle is on (preferring on-route ones), and all candidates."""
    blocks = model.roadblocks_near(pose, 1.0, connectors=False) + model.roadblocks_near(
        pose, 1.0, connectors=True
    )
    if not blocks:
        blocks = [b for b in (model.nearest_roadblock(pose, c) for c in (False, True)) if b is not None]
    on_route, on_route_err, others, others_err, block_err = [], [], [], [], []
    for block in blocks:
        best_disp, _ = np.inf, np.inf
        for lane_id in block.lane_ids:
            path = model.lanes[lane_id].path
            i, disp = _nearest_point(path, pose)
            heading_err = abs(normalize_angle(path[i, 2] - pose[2]))
            best_disp = min(best_disp, disp)
            if heading_err < HEADING_ERROR_MAX and disp < DISPLACEMENT_ERROR_MAX:
                (on_route if block.id in route_ids else others).append(block)
                (on_route_err if block.id in route_ids else others_err).append(disp)
        block_err.append(best_disp)
    if on_route:
        return on_route[int(np.argmin(on_route_err))], on_route
    if others:
        return others[int(np.argmin(others_err))], others
    return blocks[int(np.argmin(block_err))], blocks


def _bfs(model: MapModel, start: str, targets: list[str], max_depth: int, forward: bool) -> list[str] | None:
    """Roadblock ids from `start` to the first target found (breadth first), or None.

    Each level keeps every roadblock once with the queue positions of its first and last copy in
    NAVSIM's duplicate-holding queue: the goal test follows first copies, parents follow last ones."""
    parent: dict[tuple[str, int], str | None] = {(start, 1): None}
    level = {start: ((0,), (0,))}  # id -> (first position, last position), lexicographic keys
    for depth in range(1, max_depth + 1):
        in_order = sorted(level, key=lambda b: level[b][0])
        for block_id in in_order:
            if block_id in targets:
                path = [block_id]
                d = depth
                while parent[(path[-1], d)] is not None:
                    path.append(parent[(path[-1], d)])
                    d -= 1
                return path[::-1] if forward else path
        nxt: dict[str, tuple[tuple, tuple]] = {}
        for block_id, (first, last) in level.items():
            block = model.roadblocks[block_id]
            for k, n in enumerate(block.outgoing if forward else block.incoming):
                f, la = first + (k,), last + (k,)
                if n not in nxt:
                    nxt[n] = (f, la)
                else:
                    nxt[n] = (min(nxt[n][0], f), max(nxt[n][1], la))
                if nxt[n][1] == la:
                    parent[(n, depth + 1)] = block_id
        if not nxt:
            return None
        level = nxt
    return None


def _remove_loops(model: MapModel, route: list[str]) -> list[str]:
    """Cut the route where a roadblock connector overlaps (> 1 m²) an earlier connector."""
    seen: list[shapely.Geometry] = []
    for idx, block_id in enumerate(route):
        block = model.roadblocks[block_id]
        if not block.is_connector:
            continue
        if seen and idx > 0:
            tree = shapely.STRtree(seen)
            for j in tree.query(block.polygon):
                if seen[j].intersection(block.polygon).area > 1:
                    return route[:idx]
        seen.append(block.polygon)
    return route


def correct_route(model: MapModel, pose: np.ndarray, route_ids: list[str]) -> list[str]:
    """NAVSIM's route_roadblock_correction for the rear-axle pose (x, y, heading)."""
    route = list(dict.fromkeys(route_ids))
    start, candidates = _roadblock_candidates(pose, model, route)
    if start.id not in route:
        path = _bfs(model, route[0], [c.id for c in candidates], BFS_BACKWARD_DEPTH, forward=False)
        if path is not None:
            route = path[:-1] + route
        else:
            path = _bfs(model, start.id, route[:3], BFS_FORWARD_DEPTH, forward=True)
            if path is not None:
                end = route.index(path[-1])
                route = path + route[end + 1 :]
    inserts: dict[int, list[str]] = {}
    for i in range(len(route) - 1):
        if route[i] in model.roadblocks[route[i + 1]].incoming:
            continue
        path = _bfs(model, route[i], [route[i + 1]], BFS_FORWARD_DEPTH, forward=True)
        if path is not None and len(path) >= 3:
            inserts[i] = path[1:-1]
    offset = 1
    for i, missing in inserts.items():
        route[i + offset : i + offset] = missing
        offset += len(missing)
    return _remove_loops(model, route)


def route_lanes(model: MapModel, route: list[str]) -> list[str]:
    return list(
        dict.fromkeys(lane_id for block_id in route for lane_id in model.roadblocks[block_id].lane_ids)
    )


def starting_lane(
    model: MapModel,
    drivable: DrivableMap,
    lane_ids: list[str],
    pose: np.ndarray,
    ego_center: np.ndarray,
    ego_box: shapely.Geometry,
) -> LaneInfo:
    """On-route lane under the rear axle with the smallest heading error, else the nearest one."""
    candidates, errors = [], []
    for token in drivable.intersecting_tokens(pose):
        if token in lane_ids:
            lane = model.lanes[token]
            i, _ = _nearest_point(lane.path, pose)
            candidates.append(lane)
            errors.append(abs(normalize_angle(lane.path[i, 2] - pose[2])))
    if candidates:
        return candidates[int(np.argmin(np.abs(errors)))]
    best, best_dist = None, np.inf
    center = shapely.Point(ego_center[0], ego_center[1])
    for lane_id in lane_ids:
        lane = model.lanes[lane_id]
        if lane.polygon.contains(center):
            return lane
        dist = lane.polygon.distance(ego_box)
        if dist < best_dist:
            best, best_dist = lane, dist
    assert best is not None, "route has no lanes"
    return best


def _dijkstra(model: MapModel, start: LaneInfo, lane_ids: list[str], target_block: str) -> list[LaneInfo]:
    """NAVSIM's lane-level Dijkstra (edge cost = lane length) to any lane of `target_block`."""
    queue, frontier, dist, depth = [start], [start.id], [1.0], [1]
    parent: dict[str, LaneInfo | None] = {start.id: None}
    expanded, expanded_ids, expanded_dist, expanded_depth = [], [], [], []
    end, found = start, False
    while queue:
        d, idx = min((val, i) for i, val in enumerate(dist))
        current, current_depth = queue[idx], depth[idx]
        del dist[idx], queue[idx], frontier[idx], depth[idx]
        if current.roadblock_id == target_block:
            end, found = current, True
            break
        expanded.append(current)
        expanded_ids.append(current.id)
        expanded_dist.append(d)
        expanded_depth.append(current_depth)
        for nxt_id in current.outgoing:
            if nxt_id not in lane_ids:
                continue
            nxt = model.lanes[nxt_id]
            alt = d + nxt.length
            if nxt_id not in expanded_ids and nxt_id not in frontier:
                parent[nxt_id] = current
                queue.append(nxt)
                frontier.append(nxt_id)
                dist.append(alt)
                depth.append(current_depth + 1)
            elif nxt_id in frontier:
                j = frontier.index(nxt_id)
                if alt < dist[j]:
                    parent[nxt_id], dist[j], depth[j] = current, alt, current_depth + 1
    if not found:
        deepest = max(expanded_depth)
        at_depth = [i for i, dep in enumerate(expanded_depth) if dep == deepest]
        _, j = min((expanded_dist[i], k) for k, i in enumerate(at_depth))
        end = expanded[at_depth[j]]
    plan = [end]
    while parent[plan[-1].id] is not None:
        plan.append(parent[plan[-1].id])
    return plan[::-1]


def build_route(
    model: MapModel,
    drivable: DrivableMap,
    route_ids: list[str],
    pose: np.ndarray,
    ego_center: np.ndarray,
    ego_box: shapely.Geometry,
) -> Route:
    """Corrected route, its lanes, the starting lane and the centerline path for the rear-axle pose."""
    blocks = correct_route(model, pose, route_ids)
    lane_ids = route_lanes(model, blocks)
    start = starting_lane(model, drivable, lane_ids, pose, ego_center, ego_box)
    start_idx = blocks.index(start.roadblock_id) if start.roadblock_id in blocks else 0
    window = blocks[start_idx : start_idx + DIJKSTRA_DEPTH]
    lanes = _dijkstra(model, start, lane_ids, window[-1])
    centerline = Path(np.concatenate([lane.path for lane in lanes], axis=0))
    return Route(blocks, lane_ids, start, centerline)
