"""No at-fault collisions (NC), time to collision (TTC) and traffic-light compliance (TLC).

NAVSIM walks time steps in order and, per proposal, forgets an object after its first collision that is
not the ego's fault. Here every (proposal, step, object) contact is found at once — centre distances
first, then boxes (exactly as GEOS decides, see `boxes`) — and that rule becomes: a contact at fault counts only if it
comes before the first contact with the same object that is not (for TTC, events are ordered by step,
then by projection 0, 0.3, 0.6, 0.9 s, as NAVSIM's nested loop). Collision classes follow nuPlan:
ego stopped (≤ 0.05 m/s) → not at fault; object stopped (≤ 5e-3 m/s at its first box) or static → at
fault; object more than 150° off the ego's heading, seen from the rear axle → rear, not at fault; ego's
front edge touches → front, at fault; otherwise lateral, at fault only when the ego spans several lanes
or leaves the drivable area.

The search for contacts runs compiled (numba, `_candidate_pairs`): it is a filter over every (proposal,
step, object) triple, ~10⁵ per call, whose survivors (a few dozen) go to the exact box test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit

from scorer.boxes import SAT_MARGIN, box_intersects, polygons
from scorer.constants import (
    AHEAD_ANGLE_DEG,
    BEHIND_ANGLE_DEG,
    DT,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    EGO_STOPPED_SPEED,
    TRACK_STOPPED_SPEED,
    TTC_FUTURE_STEPS,
    TTC_STOPPED_SPEED,
    S,
)
from scorer.observation import Observation
from scorer.planar import grown

EGO_RADIUS = float(np.hypot(EGO_HALF_LENGTH, EGO_HALF_WIDTH))  # [m]
NO_EVENT = np.iinfo(np.int64).max


@dataclass
class CollisionResult:
    score: np.ndarray  # (K,) 1, 0.5 (static object) or 0
    step: np.ndarray  # (K,) first at-fault step, or -1
    object_index: np.ndarray  # (K,) index of the object hit at that step, or -1


def relative_angle(poses: np.ndarray, corners: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(M, ≥3) rear-axle poses, (M, 4, 2) object boxes and their (M, 2) centres -> (M,) angle [rad] between
    the ego's heading and the direction to the object's polygon centroid (nuPlan's relative angle).

    For an object straight ahead (or behind) the cosine can round to just beyond ±1, which makes NAVSIM's
    angle NaN (neither ahead nor behind); near the 20° and 150° thresholds the last bits decide too. There,
    the angle is recomputed event by event with NAVSIM's exact numpy calls on the GEOS centroid."""
    v = centers - poses[:, :2]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (np.cos(poses[:, 2]) * v[:, 0] + np.sin(poses[:, 2]) * v[:, 1]) / np.sqrt((v * v).sum(axis=1))
        out = np.arccos(cos)
        edge = ~(np.abs(cos) < 1.0 - 1e-9) | (np.abs(out - _AHEAD) < 1e-9) | (np.abs(out - _BEHIND) < 1e-9)
        idx = np.nonzero(edge)[0]
        if idx.size == 0:
            return out
        centroids = shapely.get_coordinates(shapely.centroid(polygons(corners[idx])))
        for i, pose, centroid in zip(idx, poses[idx].tolist(), centroids.tolist()):
            agent_vector = np.array([centroid[0] - pose[0], centroid[1] - pose[1]])
            ego_vector = np.array([np.cos(pose[2]), np.sin(pose[2])])
            out[i] = np.arccos(np.dot(ego_vector, agent_vector / np.linalg.norm(agent_vector)))
    return out


_AHEAD, _BEHIND = np.deg2rad(AHEAD_ANGLE_DEG), np.deg2rad(BEHIND_ANGLE_DEG)


def _candidates(
    ego_centers: np.ndarray,
    ego_headings: np.ndarray,
    obj_centers: np.ndarray,
    obj_headings: np.ndarray,
    half_size: np.ndarray,
    present: np.ndarray,
    moving: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, o, n) of the ego boxes (K, N) and object boxes (O, N) at the same index n that may touch, where
    the object is `present` (O, N) and the ego `moving` (K, N): centre distances first, then a
    separating-axis test with a margin; ordered by k, o, n. Both tests only discard pairs farther apart
    than the margin, which the exact test would find apart too."""
    radius = np.hypot(half_size[:, 0], half_size[:, 1])
    reach = EGO_RADIUS + radius + SAT_MARGIN  # (O,)
    return _candidate_pairs(
        np.ascontiguousarray(ego_centers),
        np.ascontiguousarray(ego_headings),
        np.ascontiguousarray(obj_centers),
        np.ascontiguousarray(obj_headings),
        np.ascontiguousarray(half_size),
        reach,
        np.ascontiguousarray(present),
        np.ascontiguousarray(moving),
    )


@njit(cache=True, error_model="numpy")
def _candidate_pairs(
    ego_centers: np.ndarray,
    ego_headings: np.ndarray,
    obj_centers: np.ndarray,
    obj_headings: np.ndarray,
    half_size: np.ndarray,
    reach: np.ndarray,
    present: np.ndarray,
    moving: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_candidates`' loops (compiled: K·O·N pairs, ~10⁵ per call, of which a few dozen survive)."""
    k_count, n_count = ego_headings.shape
    lo_x, lo_y, hi_x, hi_y = np.inf, np.inf, -np.inf, -np.inf  # box around all ego centres
    for k in range(k_count):
        for n in range(n_count):
            lo_x, hi_x = min(lo_x, ego_centers[k, n, 0]), max(hi_x, ego_centers[k, n, 0])
            lo_y, hi_y = min(lo_y, ego_centers[k, n, 1]), max(hi_y, ego_centers[k, n, 1])
    near = []  # objects whose centres come within their reach of that box
    for o in range(len(reach)):
        margin = reach[o] * (1.0 + 1e-9) + 1e-9
        x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
        for n in range(n_count):
            x0, x1 = min(x0, obj_centers[o, n, 0]), max(x1, obj_centers[o, n, 0])
            y0, y1 = min(y0, obj_centers[o, n, 1]), max(y1, obj_centers[o, n, 1])
        if x0 - margin <= hi_x and x1 + margin >= lo_x and y0 - margin <= hi_y and y1 + margin >= lo_y:
            near.append(o)
    out_k, out_o, out_n = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64)
    found = 0
    for k in range(k_count):
        for o in near:
            for n in range(n_count):
                if not (present[o, n] and moving[k, n]):
                    continue
                dx = obj_centers[o, n, 0] - ego_centers[k, n, 0]
                dy = obj_centers[o, n, 1] - ego_centers[k, n, 1]
                if dx * dx + dy * dy > reach[o] * reach[o]:
                    continue
                if not _may_touch(
                    dx, dy, ego_headings[k, n], obj_headings[o, n], half_size[o, 0], half_size[o, 1]
                ):
                    continue
                if found == len(out_k):
                    out_k, out_o, out_n = grown(out_k), grown(out_o), grown(out_n)
                out_k[found], out_o[found], out_n[found] = k, o, n
                found += 1
    return out_k[:found], out_o[:found], out_n[:found]


@njit(cache=True, error_model="numpy")
def _may_touch(dx: float, dy: float, h1: float, h2: float, a2: float, b2: float) -> bool:
    """Separating-axis test of the ego box (heading h1) and an object box (heading h2, half length a2 and
    half width b2 [m]) whose centre is (dx, dy) from the ego's: False only where an axis separates them by
    more than SAT_MARGIN."""
    a1, b1 = EGO_HALF_LENGTH, EGO_HALF_WIDTH
    c1, s1, c2, s2 = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    cc, ss = abs(c1 * c2 + s1 * s2), abs(s2 * c1 - c2 * s1)  # |cos|, |sin| of h2 - h1
    return (
        abs(dx * c1 + dy * s1) <= a1 + a2 * cc + b2 * ss + SAT_MARGIN
        and abs(dy * c1 - dx * s1) <= b1 + a2 * ss + b2 * cc + SAT_MARGIN
        and abs(dx * c2 + dy * s2) <= a2 + a1 * cc + b1 * ss + SAT_MARGIN
        and abs(dy * c2 - dx * s2) <= b2 + a1 * ss + b1 * cc + SAT_MARGIN
    )


def _first_count(keys: np.ndarray, order: np.ndarray, at_fault: np.ndarray) -> np.ndarray:
    """Mask of at-fault events that precede the first not-at-fault event with the same key."""
    if keys.size == 0:
        return np.zeros(0, dtype=bool)
    uniq, inv = np.unique(keys, return_inverse=True)
    first_free = np.full(uniq.size, NO_EVENT, dtype=np.int64)
    np.minimum.at(first_free, inv[~at_fault], order[~at_fault])
    return at_fault & (order < first_free[inv])


def no_at_fault_collisions(
    states: np.ndarray,
    ego_corners: np.ndarray,
    ego_centers: np.ndarray,
    multiple_lanes: np.ndarray,
    off_road: np.ndarray,
    obs: Observation,
) -> CollisionResult:
    """NC for (K, T) ego states against the observation's objects at the same steps."""
    k_count, t_count = states.shape[:2]
    corners, centers, headings, present = obs.at_step(np.arange(t_count))
    present = present & ~obs.collided[:, None]
    moving = np.ones((k_count, t_count), dtype=bool)  # NC: whatever the ego's speed
    k, o, t = _candidates(
        ego_centers, states[..., S.HEADING], centers, headings, obs.half_size, present, moving
    )
    hit = box_intersects(ego_corners[k, t], corners[o, t])
    k, t, o = k[hit], t[hit], o[hit]
    if k.size == 0:
        return CollisionResult(np.ones(k_count), np.full(k_count, -1), np.full(k_count, -1))

    st = states[k, t]
    ego_stopped = np.hypot(st[:, S.VX], st[:, S.VY]) <= EGO_STOPPED_SPEED
    track_stopped = obs.speed0[o] <= TRACK_STOPPED_SPEED
    rear = relative_angle(st, corners[o, t], centers[o, t]) > np.deg2rad(BEHIND_ANGLE_DEG)
    front_edges = shapely.linestrings(ego_corners[k, t][:, [0, 3]])
    front = shapely.intersects(front_edges, polygons(corners[o, t]))
    lateral_at_fault = multiple_lanes[k, t] | off_road[k, t]
    at_fault = ~ego_stopped & (track_stopped | (~rear & (front | lateral_at_fault)))

    counted = _first_count(k * len(obs.ids) + o, t, at_fault)
    score = np.ones(k_count)
    step = np.full(k_count, -1)
    obj = np.full(k_count, -1)
    for i in np.nonzero(counted)[0][np.lexsort((o[counted], t[counted]))]:
        value = 0.0 if obs.is_agent[o[i]] else 0.5
        score[k[i]] = min(score[k[i]], value)
        if step[k[i]] < 0:
            step[k[i]], obj[k[i]] = t[i], o[i]
    return CollisionResult(score, step, obj)


def time_to_collision(
    states: np.ndarray,
    ego_corners: np.ndarray,
    ego_centers: np.ndarray,
    multiple_lanes: np.ndarray,
    off_road: np.ndarray,
    rear_axle_in_intersection: np.ndarray,
    obs: Observation,
    last_step: int,
) -> tuple[np.ndarray, np.ndarray]:
    """TTC (K,) and first infraction step (K,) (or -1): ego boxes at steps 0..last_step projected ahead
    at constant speed by 0, 0.3, 0.6, 0.9 s against the objects at the matching future step."""
    k_count = states.shape[0]
    steps = np.arange(last_step + 1)
    future = np.array(TTC_FUTURE_STEPS)
    speed = np.hypot(states[:, : last_step + 1, S.VX], states[:, : last_step + 1, S.VY])  # (K, T)
    heading = states[:, : last_step + 1, S.HEADING]
    dxy = np.stack([np.cos(heading) * speed, np.sin(heading) * speed], axis=-1)  # (K, T, 2)
    shift = dxy[:, :, None] * (future * DT)[None, None, :, None]  # (K, T, F, 2)
    proj_centers = ego_centers[:, steps, None] + shift  # (K, T, F, 2)

    obs_steps = steps[:, None] + future[None, :]  # (T, F)
    corners, centers, headings, present = obs.at_step(obs_steps.ravel())  # events flattened as t·F + f
    o_count, f_count = len(obs.ids), len(future)
    present = present & ~obs.collided[:, None]
    moving = np.repeat(speed >= TTC_STOPPED_SPEED, f_count, axis=1)  # (K, T·F)
    ego_headings = np.repeat(heading, f_count, axis=1)
    k, o, n = _candidates(
        proj_centers.reshape(k_count, -1, 2), ego_headings, centers, headings, obs.half_size, present, moving
    )
    t, f = np.divmod(n, f_count)  # step and projection
    hit = box_intersects(ego_corners[k, t] + shift[k, t, f][:, None], corners[o, n])  # projected boxes
    k, n, o, t = k[hit], n[hit], o[hit], t[hit]
    if k.size == 0:
        return np.ones(k_count), np.full(k_count, -1)

    rear_axle = states[k, t, :3]
    angle = relative_angle(rear_axle, corners[o, n], centers[o, n])
    ahead = angle < np.deg2rad(AHEAD_ANGLE_DEG)
    behind = angle > np.deg2rad(BEHIND_ANGLE_DEG)
    exposed = multiple_lanes[k, t] | off_road[k, t] | rear_axle_in_intersection[k, t]
    at_fault = ahead | (exposed & ~behind)

    counted = _first_count(k * o_count + o, n, at_fault)
    ttc = np.ones(k_count)
    step = np.full(k_count, -1)
    for i in np.nonzero(counted)[0]:
        ttc[k[i]] = 0.0
        step[k[i]] = t[i] if step[k[i]] < 0 else min(step[k[i]], t[i])
    return ttc, step


def traffic_light_compliance(ego_corners: np.ndarray, obs: Observation) -> np.ndarray:
    """TLC (K,): 0 if the ego's box touches a red on-route lane connector at any step."""
    score = np.ones(ego_corners.shape[0])
    if len(obs.red_ids) == 0:
        return score
    flat = ego_corners.reshape(-1, 4, 2)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    for poly in obs.red_polygons:
        x0, y0, x1, y1 = poly.bounds
        cand = np.nonzero((hi[:, 0] >= x0) & (lo[:, 0] <= x1) & (hi[:, 1] >= y0) & (lo[:, 1] <= y1))[0]
        if cand.size:
            touched = cand[shapely.intersects(polygons(flat[cand]), poly)]
            score[np.unique(touched // ego_corners.shape[1])] = 0.0
    return score
