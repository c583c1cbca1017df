"""Slow, loop-by-loop statements of NAVSIM's rules, used only to check the vectorised scorer.

Each function walks proposals, steps and objects one at a time with shapely geometries, in NAVSIM's order
(v1.1 / v2.2), keeping NAVSIM's per-proposal lists of ignored objects — the structure the scorer replaces
with array logic. Same inputs as the scorer's functions, so the two can be compared value for value.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Point, Polygon

from scorer.boxes import box_corners, ego_centers
from scorer.constants import (
    DT,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    EGO_LENGTH,
    EGO_WIDTH,
    IDM_ACCEL_MAX,
    IDM_DECEL_MAX,
    IDM_HEADWAY,
    IDM_MIN_GAP,
    NUM_POSES,
    PLANNER_HORIZON_POSES,
    S,
)
from scorer.mapdata import DRIVABLE_TYPES, INTERSECTION, LANE_TYPES, DrivableMap
from scorer.observation import Observation
from scorer.paths import Path


def _poly(corners: np.ndarray) -> Polygon:
    return Polygon([tuple(c) for c in corners])


def _angle(pose: np.ndarray, obj: Polygon) -> float:
    """nuPlan's relative angle from the pose's heading to the object's polygon centroid."""
    c = obj.centroid
    v = np.array([c.x - float(pose[0]), c.y - float(pose[1])])
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(
            np.arccos(
                np.dot(np.array([np.cos(float(pose[2])), np.sin(float(pose[2]))]), v / np.linalg.norm(v))
            )
        )


def ego_polygons(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centers = ego_centers(states[..., :3])
    corners = box_corners(centers[..., 0], centers[..., 1], states[..., 2], EGO_HALF_LENGTH, EGO_HALF_WIDTH)
    return corners, centers


def areas_loop(states: np.ndarray, drivable: DrivableMap, route_lane_ids: list[str]) -> dict:
    """Per (proposal, step): multiple lanes, off road, oncoming, centre / rear axle in an intersection."""
    corners, centers = ego_polygons(states)
    k_count, t_count = states.shape[:2]
    out = {name: np.zeros((k_count, t_count), dtype=bool) for name in ("multi", "off", "onc", "cint", "rint")}
    for k in range(k_count):
        for t in range(t_count):
            lanes_with_corner, full_lane, off = 0, False, 0
            for c in corners[k, t]:
                inside = [poly.contains(Point(*c)) for poly in drivable.polygons]
                off += not any(i for i, kind in zip(inside, drivable.types) if kind in DRIVABLE_TYPES)
            for poly, kind in zip(drivable.polygons, drivable.types):
                if kind in LANE_TYPES:
                    n = sum(poly.contains(Point(*c)) for c in corners[k, t])
                    lanes_with_corner += n > 0
                    full_lane |= n == 4
            out["multi"][k, t] = lanes_with_corner > 1 and not full_lane
            out["off"][k, t] = off > 0
            center = Point(*centers[k, t])
            out["onc"][k, t] = not any(
                poly.contains(center)
                for poly, kind, token in zip(drivable.polygons, drivable.types, drivable.tokens)
                if kind in LANE_TYPES and token in route_lane_ids
            )
            for name, point in (("cint", center), ("rint", Point(*states[k, t, :2]))):
                out[name][k, t] = any(
                    poly.contains(point)
                    for poly, kind in zip(drivable.polygons, drivable.types)
                    if kind == INTERSECTION
                )
    return out


def nc_loop(states: np.ndarray, obs: Observation, areas: dict) -> tuple[np.ndarray, np.ndarray]:
    """NAVSIM's at-fault collision loop: scores and first at-fault step (-1 if none)."""
    corners, _ = ego_polygons(states)
    k_count, t_count = states.shape[:2]
    scores, first = np.ones(k_count), np.full(k_count, -1)
    ignored = [{i for i in range(len(obs.ids)) if obs.collided[i]} for _ in range(k_count)]
    for t in range(t_count):
        f = obs.frame_of_step[t]
        for k in range(k_count):
            ego = _poly(corners[k, t])
            for o in range(len(obs.ids)):
                if not obs.present[o, f] or o in ignored[k] or not ego.intersects(_poly(obs.corners[o, f])):
                    continue
                speed = np.hypot(states[k, t, S.VX], states[k, t, S.VY])
                obj = _poly(obs.corners[o, f])
                if speed <= 0.05:
                    kind = "stopped_ego"
                elif obs.speed0[o] <= 5e-3:
                    kind = "stopped_track"
                elif _angle(states[k, t], obj) > np.deg2rad(150):
                    kind = "rear"
                elif LineString([corners[k, t, 0], corners[k, t, 3]]).intersects(obj):
                    kind = "front"
                else:
                    kind = "lateral"
                exposed = areas["multi"][k, t] or areas["off"][k, t]
                if kind in ("front", "stopped_track") or (kind == "lateral" and exposed):
                    scores[k] = min(scores[k], 0.0 if obs.is_agent[o] else 0.5)
                    first[k] = t if first[k] < 0 else min(first[k], t)
                else:
                    ignored[k].add(o)
    return scores, first


def ttc_loop(
    states: np.ndarray, obs: Observation, areas: dict, last_step: int
) -> tuple[np.ndarray, np.ndarray]:
    """NAVSIM's time-to-collision loop: scores and first infraction step (-1 if none)."""
    corners, _ = ego_polygons(states)
    k_count = states.shape[0]
    scores, first = np.ones(k_count), np.full(k_count, -1)
    ignored = [{i for i in range(len(obs.ids)) if obs.collided[i]} for _ in range(k_count)]
    speed = np.hypot(states[..., S.VX], states[..., S.VY])
    for t in range(last_step + 1):
        for step in (0, 3, 6, 9):
            f = obs.frame_of_step[t + step]
            for k in range(k_count):
                shift = (
                    np.array([np.cos(states[k, t, 2]), np.sin(states[k, t, 2])]) * speed[k, t] * (step * DT)
                )
                ego = _poly(corners[k, t] + shift)
                for o in range(len(obs.ids)):
                    if not obs.present[o, f] or not ego.intersects(_poly(obs.corners[o, f])):
                        continue
                    if o in ignored[k] or speed[k, t] < 5e-3:
                        continue
                    angle = _angle(states[k, t], _poly(obs.corners[o, f]))
                    exposed = areas["multi"][k, t] or areas["off"][k, t] or areas["rint"][k, t]
                    if angle < np.deg2rad(20) or (exposed and not angle > np.deg2rad(150)):
                        scores[k] = 0.0
                        first[k] = t if first[k] < 0 else min(first[k], t)
                    else:
                        ignored[k].add(o)
    return scores, first


def lk_loop(states: np.ndarray, areas: dict, centerline: Path) -> np.ndarray:
    _, centers = ego_polygons(states)
    out = np.ones(states.shape[0])
    for k in range(states.shape[0]):
        run = 0
        for t in range(states.shape[1]):
            if areas["cint"][k, t]:
                continue
            run = run + 1 if Point(*centers[k, t]).distance(centerline.linestring) > 0.5 else 0
            if run >= 20:
                out[k] = 0.0
                break
    return out


def ddc_loop(states: np.ndarray, areas: dict, skip_intersections: bool) -> np.ndarray:
    _, centers = ego_polygons(states)
    out = np.ones(states.shape[0])
    for k in range(states.shape[0]):
        steps = [0.0] + [
            float(np.linalg.norm(centers[k, t] - centers[k, t - 1])) for t in range(1, states.shape[1])
        ]
        for t in range(len(steps)):
            if not areas["onc"][k, t] or (skip_intersections and areas["cint"][k, t]):
                steps[t] = 0.0
        worst = max(sum(steps[max(0, t - 10) : t + 1]) for t in range(len(steps)))
        out[k] = 1.0 if worst < 2.0 else 0.5 if worst < 6.0 else 0.0
    return out


def proposals_loop(
    paths: list[Path], rear_axle: np.ndarray, speed: float, limit: float, obs: Observation
) -> np.ndarray:
    """PDM-Closed's generator: one path at a time, leading objects per proposal, one reused record."""
    fractions = (0.2, 0.4, 0.6, 0.8, 1.0)
    out = np.zeros((len(paths) * 5, NUM_POSES + 1, 3))
    for p, path in enumerate(paths):
        start = float(path.linestring.project(Point(*rear_axle[:2])))
        reach = start + limit * PLANNER_HORIZON_POSES * DT
        corridor = path.substring(start, reach).buffer(EGO_WIDTH / 2, cap_style="square")
        progress = np.full((5, NUM_POSES + 1), start)
        velocity = np.full((5, NUM_POSES + 1), float(speed))
        poses = np.zeros((5, NUM_POSES + 1, 3))
        poses[:, 0] = path.interpolate([start])[0]
        lead = np.zeros((5, 3))
        for t in range(1, NUM_POSES + 1):
            if t % 2 == 0:
                f = obs.frame_of_step[t]
                found = {}
                for o in range(len(obs.ids)):
                    poly = _poly(obs.corners[o, f])
                    if not obs.collided[o] and poly.intersects(corridor):
                        found[o] = (float(path.linestring.project(poly.centroid)), poly)
                for r, poly in enumerate(obs.red_polygons):
                    if not obs.red_collided[r] and poly.intersects(corridor):
                        found[-1 - r] = (float(path.linestring.project(poly.centroid)), poly)
                record = np.zeros(3)
                for j in range(5):
                    ahead = {key: v for key, v in found.items() if v[0] > progress[j, t - 1]}
                    if ahead:
                        pose = poses[j, t - 1]
                        c = ego_centers(pose[None])[0]
                        ego = _poly(box_corners(c[:1], c[1:], pose[2:], EGO_HALF_LENGTH, EGO_HALF_WIDTH)[0])
                        dists = [ego.distance(v[1]) for v in ahead.values()]
                        key = list(ahead)[int(np.argmin(dists))]
                        record[0] = progress[j, t - 1] + min(dists)
                        if key >= 0:
                            rel = np.arctan2(
                                np.sin(obs.heading0[key] - pose[2]), np.cos(obs.heading0[key] - pose[2])
                            )
                            record[1] = np.cos(rel) * obs.speed0[key] if obs.is_agent[key] else 0.0
                    else:
                        record[0] = path.length
                        record[2] = EGO_LENGTH / 2
                    lead[j] = record
            for j in range(5):
                v, x = velocity[j, t - 1], progress[j, t - 1]
                x_lead, v_lead, rear = lead[j]
                s_star = (
                    IDM_MIN_GAP
                    + v * IDM_HEADWAY
                    + (v * (v - v_lead)) / (2 * np.sqrt(IDM_ACCEL_MAX * IDM_DECEL_MAX))
                )
                s_alpha = max(x_lead - x - rear, IDM_MIN_GAP)
                accel = IDM_ACCEL_MAX * (1 - (v / (fractions[j] * limit)) ** 10 - (s_star / s_alpha) ** 2)
                accel = min(max(accel, -IDM_DECEL_MAX), IDM_ACCEL_MAX)
                progress[j, t], velocity[j, t] = x + DT * v, v + DT * accel
                poses[j, t] = path.interpolate([progress[j, t]])[0]
        out[p * 5 : (p + 1) * 5] = poses
    return out


def bfs_queue(
    model: object, start: str, targets: list[str], max_depth: int, forward: bool
) -> list[str] | None:
    """NAVSIM's roadblock BFS with its duplicate-holding queue and depth markers."""
    from collections import deque

    queue: deque = deque([start, None])
    parent: dict = {(start, 1): None}
    depth = 1
    while queue:
        current = queue.popleft()
        if depth > max_depth:
            break
        if current is None:
            depth += 1
            queue.append(None)
            if queue[0] is None:
                break
            continue
        if current in targets:
            path, d = [current], depth
            while parent[(path[-1], d)] is not None:
                path.append(parent[(path[-1], d)])
                d -= 1
            return path[::-1] if forward else path
        block = model.roadblocks[current]
        for nxt in block.outgoing if forward else block.incoming:
            queue.append(nxt)
            parent[(nxt, depth + 1)] = current
    return None


def simulate_loop(initial_state: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """The tracker and bicycle step by step as NAVSIM writes them: pinv least squares, ten 3×3 products
    per lateral LQR, heading wrapped every step."""
    from scorer.constants import TRACKING_HORIZON as H
    from scorer.constants import WHEEL_BASE as L

    k, n_poses, _ = poses.shape
    m = n_poses - 1
    diff = np.diff(poses, axis=1)
    heading_disp = np.arctan2(np.sin(diff[..., 2]), np.cos(diff[..., 2]))
    y = diff[..., :2].reshape(k, -1)
    col = np.zeros(y.shape)
    col[:, 0::2], col[:, 1::2] = np.cos(poses[:, :-1, 2]), np.sin(poses[:, :-1, 2])
    a = np.repeat(col[..., None] * DT**2, m, axis=2)
    a[..., 0] = col * DT
    a[:, np.repeat(np.triu(np.ones((m, m), dtype=bool), k=1), 2, axis=0)] = 0.0
    band = np.zeros((m - 2, m - 1))
    band[:, 1:] = np.eye(m - 2)
    band[:, :-1] = -np.eye(m - 2)
    r = np.hstack([np.zeros((m - 2, 1)), band])
    x = np.stack([np.linalg.pinv(a[i].T @ a[i] + 1e-4 * r.T @ r) @ a[i].T @ y[i] for i in range(k)])
    vel = x[:, :1] + np.hstack([np.zeros((k, 1)), np.cumsum(x[:, 1:] * DT, axis=1)])
    curv = np.zeros((k, m))
    for i in range(k):
        ac = np.tri(m)
        ac[:, 0] = vel[i] * DT
        ac[1:, 1:] *= (vel[i] * DT**2)[1:, None]
        q = 1e-2 * np.eye(m)
        q[0, 0] = 1e-10
        sol = np.linalg.pinv(ac.T @ ac + q) @ ac.T @ heading_disp[i]
        curv[i] = sol[0] + np.concatenate([[0.0], np.cumsum(sol[1:] * DT)])
    out = np.zeros((k, n_poses, 11))
    out[:, 0] = initial_state
    for i in range(k):
        s = np.array(initial_state, dtype=float)
        for t in range(m):
            ref = poses[i, t]
            lat = -(s[0] - ref[0]) * np.sin(ref[2]) + (s[1] - ref[1]) * np.cos(ref[2])
            herr = np.arctan2(np.sin(s[2] - ref[2]), np.cos(s[2] - ref[2]))
            ridx = min(t + H, m - 1)
            v_ref = vel[i, ridx]
            kap = np.array([curv[i, min(t + j, ridx)] for j in range(H)])
            stop = v_ref <= 0.2 and s[3] <= 0.2
            acc = -0.5 * (s[3] - v_ref) if stop else (-1 / (1.0 * 10 * 1.0 + 1)) * 1.0 * 10 * (s[3] - v_ref)
            rate = 0.0
            if not stop:
                vp = s[3] + np.concatenate([[0.0], np.cumsum(np.full(H - 1, acc * DT))])
                amat, bmat, g = np.eye(3), np.zeros(3), np.zeros(3)
                for j in range(H):
                    step = np.eye(3)
                    step[0, 1], step[1, 2] = vp[j] * DT, vp[j] * DT / L
                    amat, bmat = step @ amat, step @ bmat + np.array([0.0, 0.0, DT])
                    g = step @ g + np.array([0.0, -vp[j] * kap[j] * DT, 0.0])
                e = amat @ np.array([lat, herr, s[7]]) + g
                e[1:] = np.arctan2(np.sin(e[1:]), np.cos(e[1:]))
                qb = bmat * np.array([1.0, 10.0, 0.0])
                rate = -(qb @ e) / (qb @ bmat + 1.0)
            new = s.copy()
            na = DT / (DT + 0.2) * (acc - s[5]) + s[5]
            ideal = DT * rate + s[7]
            ns = DT / (DT + 0.05) * (ideal - s[7]) + s[7]
            srate = (ns - s[7]) / DT
            new[0] = s[0] + s[3] * np.cos(s[2]) * DT
            new[1] = s[1] + s[3] * np.sin(s[2]) * DT
            new[2] = (s[2] + s[3] * np.tan(s[7]) / L * DT + np.pi) % (2 * np.pi) - np.pi
            new[3] = s[3] + na * DT
            new[4] = 0.0
            new[7] = np.clip(s[7] + srate * DT, -np.pi / 3, np.pi / 3)
            new[9] = new[3] * np.tan(new[7]) / L
            new[5], new[6] = na, 0.0
            new[10] = (new[9] - s[9]) / DT
            new[8] = srate
            out[i, t + 1] = s = new
    return out
