"""The privileged expert planner that writes the ground-truth plan of every generated scene.

It knows every agent's future (the scene's `states`) and searches a small set of candidate plans:

* lateral plans: follow the route's lane (or turn), ±1 m nudges inside it (as PDM-Closed's proposals),
  a change to an adjacent lane over 3.5 s or 5 s, and on curves a "sporty" speed envelope up to
  NAVSIM's comfort bounds;
* longitudinal profiles: an IDM-like follower with a *predictive* leader (an agent that will enter the
  ego's corridor within 0, 1.5 or 3 s counts as a leader now, standing where it will enter), several
  headways and decelerations; constant accelerations; speed caps lifted after 1.5-2.5 s (let a
  crossing agent pass, then go). Red stop lines are leaders that never move. Every profile is
  jerk-limited from the ego's current acceleration, so a plan starts consistent with the ego's state.

Candidates are checked as NAVSIM scores them, at 0.1 s: box overlap with every agent (with a speed-
dependent margin), NAVSIM's TTC rule (ego box translated by v·0.3/0.6/0.9 s against agents ahead, or
not behind while across lane lines or in the intersection), red stop lines, a terminal check that the
ego can still stop behind its leader, and the whole ego box inside the drivable area. The safe
candidates with the most progress (lane changes, nudges and sporty curves pay a few metres) are then
driven through the scorer's own LQR-tracker simulation and re-checked on the *tracked* states
(collision, drivable area, TTC, NAVSIM's six comfort bounds); the first that passes is the plan.

Simplified (and why): the candidate search works on the plan itself (fast, vectorised) and only the
shortlist is tracked; at-fault classification is not replicated (the expert avoids every contact,
which is stricter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from driving.geometry import global_to_local, interpolate_poses, local_to_global
from driving.roads import Path
from driving.scene import (
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
    EGO_WIDTH,
    NUM_PLAN_POSES,
    POSE_INTERVAL_S,
    Agent,
    EgoState,
)

DT = 0.1  # [s] planning and checking step
N_STEPS = 41  # 0 .. 4 s
N_TRACK = 50  # agent frames at 0.1 s: 0 .. 4.9 s (TTC looks 0.9 s past the plan)
EGO_FRONT = EGO_REAR_AXLE_TO_CENTER + EGO_LENGTH / 2  # [m] rear axle -> front bumper
TTC_STEPS = (3, 6, 9)  # 0.3, 0.6, 0.9 s
A_LAT_MAX, YAW_RATE_MAX = 3.0, 0.8  # [m/s²], [rad/s] curve speed envelope (NAVSIM: 4.89, 0.95)
TTC_MARGIN = 0.25  # [m] added around the projected ego box
A_MAX, J_MAX = 1.8, 3.0  # [m/s²], [m/s³] plan limits (NAVSIM: 2.40 accel, 4.13 lon. jerk)
B_ENVELOPE = 1.6  # [m/s²] deceleration used to anticipate lower speed limits ahead
NUDGE_COST = 2.0  # [m] progress a ±1 m nudge inside the lane must gain
SHORTLIST = 8  # best safe candidates driven through the tracker (first 2, then the rest)
TRACK_MARGIN = 0.15  # [m] around the tracked ego box


@dataclass
class PathOption:
    """One lateral choice: follow `path` (a lane sequence's centerline) from the ego's position."""

    label: str  # keep_lane | change_left | change_right | turn_left | turn_right
    path: Path
    speed_limit: np.ndarray  # (len(path.s),) [m/s]
    lane_width: float  # [m] of the target lane (multi-lane detection for TTC)
    stop_s: float | None = None  # [m] red stop line on the path: the front bumper stays behind it
    junction: tuple[float, float] | None = None  # [m] s-range inside the intersection polygon
    change_cost: float = 0.0  # [m] of progress this option must gain over the others


@dataclass
class Plan:
    poses: np.ndarray  # (8, 3) local frame, 0.5 .. 4 s
    fine: np.ndarray  # (41, 5) global x, y, heading, speed, acceleration at 0.1 s
    label: str
    ok: bool
    reason: str
    progress: float  # [m] along the chosen path


# ------------------------------------------------------------------------------------ agents ---


def margin_lon(v: np.ndarray) -> np.ndarray:
    """[m] added ahead of and behind the ego box at speed v [m/s]: the tracker lags more when fast."""
    return 0.3 + 0.04 * v


def margin_lat(v: np.ndarray) -> np.ndarray:
    """[m] added beside the ego box at speed v [m/s]."""
    return 0.2 + 0.015 * v


def agent_tracks(agents: list[Agent], n_steps: int = N_TRACK) -> np.ndarray:
    """(N, n_steps, 7) x, y, heading, vx, vy, half length, half width at 0.1 s; NaN where absent.
    States are interpolated linearly between the 0.5 s frames, as the scorer does."""
    out = np.full((len(agents), n_steps, 7), np.nan)
    t = np.arange(n_steps) * DT
    for i, ag in enumerate(agents):
        frames = [ag.state_at_frame(f) for f in range(int(np.ceil(t[-1] / POSE_INTERVAL_S)) + 1)]
        known = [(f * POSE_INTERVAL_S, s) for f, s in enumerate(frames) if s is not None]
        if not known:
            continue
        ft = np.array([k[0] for k in known])
        fs = np.array([k[1] for k in known], dtype=np.float64)
        fs[:, 2] = np.unwrap(fs[:, 2])
        inside = (t >= ft[0] - 1e-9) & (t <= ft[-1] + 1e-9)
        for col in range(5):
            out[i, inside, col] = np.interp(t[inside], ft, fs[:, col])
        out[i, :, 5], out[i, :, 6] = ag.length / 2, ag.width / 2
    return out


def boxes_overlap(
    ax: np.ndarray,
    ay: np.ndarray,
    ah: np.ndarray,
    al: np.ndarray,
    aw: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
    bh: np.ndarray,
    bl: np.ndarray,
    bw: np.ndarray,
) -> np.ndarray:
    """Separating-axis test of oriented boxes (centre, heading, half length, half width); broadcasts.
    NaN (absent) boxes never overlap."""
    dx, dy = bx - ax, by - ay
    ca, sa, cb, sb = np.cos(ah), np.sin(ah), np.cos(bh), np.sin(bh)
    cab = np.abs(ca * cb + sa * sb)  # |cos(ha - hb)|
    sab = np.abs(sa * cb - ca * sb)
    sep = np.abs(dx * ca + dy * sa) > al + bl * cab + bw * sab
    sep |= np.abs(-dx * sa + dy * ca) > aw + bl * sab + bw * cab
    sep |= np.abs(dx * cb + dy * sb) > bl + al * cab + aw * sab
    sep |= np.abs(-dx * sb + dy * cb) > bw + al * sab + aw * cab
    return ~sep & np.isfinite(bx)


def ego_box_corners(x: np.ndarray, y: np.ndarray, h: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """(..., 4, 2) corners of the ego box for rear-axle poses."""
    c, s = np.cos(h)[..., None], np.sin(h)[..., None]
    cx = x[..., None] + EGO_REAR_AXLE_TO_CENTER * c
    cy = y[..., None] + EGO_REAR_AXLE_TO_CENTER * s
    lon = np.array([1, -1, -1, 1]) * (EGO_LENGTH / 2 + grow)
    lat = np.array([1, 1, -1, -1]) * (EGO_WIDTH / 2 + grow)
    return np.stack([cx + c * lon - s * lat, cy + s * lon + c * lat], axis=-1)


def _hits(
    cx: np.ndarray,
    cy: np.ndarray,
    h: np.ndarray,
    hl: np.ndarray | float,
    hw: np.ndarray | float,
    tr: np.ndarray,
) -> tuple:
    """Sparse box test of ego boxes (C, T) (centres, heading, half sizes: scalars or (C, T)) against
    tracks (N, T, 7): (c, n, t) index arrays of the overlapping pairs. A radius test picks the pairs
    worth an SAT test."""
    hl, hw = np.broadcast_to(hl, cx.shape), np.broadcast_to(hw, cx.shape)
    dx = tr[None, :, :, 0] - cx[:, None, :]
    dy = tr[None, :, :, 1] - cy[:, None, :]
    reach = np.hypot(hl, hw)[:, None, :] + np.hypot(tr[None, :, :, 5], tr[None, :, :, 6])
    c, n, t = np.nonzero(dx * dx + dy * dy < reach * reach)  # NaN (absent) compares False
    trs = tr[n, t]
    ok = boxes_overlap(
        cx[c, t], cy[c, t], h[c, t], hl[c, t], hw[c, t], trs[:, 0], trs[:, 1], trs[:, 2], trs[:, 5], trs[:, 6]
    )
    return c[ok], n[ok], t[ok]


def ego_collides(
    poses: np.ndarray,
    tracks: np.ndarray,
    grow_lon: np.ndarray | float = 0.0,
    grow_lat: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(C, T, 3) or (T, 3) rear-axle poses vs (N, >=T, 7) tracks -> (C, T) / (T,) any overlap at that
    step; the ego box grows by `grow_lon`/`grow_lat` [m] (scalars or shaped like the poses' steps)."""
    single = poses.ndim == 2
    poses = poses[None] if single else poses
    t_len = poses.shape[1]
    h = poses[..., 2]
    cx = poses[..., 0] + EGO_REAR_AXLE_TO_CENTER * np.cos(h)
    cy = poses[..., 1] + EGO_REAR_AXLE_TO_CENTER * np.sin(h)
    out = np.zeros(poses.shape[:2], dtype=bool)
    if len(tracks):
        hl = EGO_LENGTH / 2 + np.broadcast_to(grow_lon, poses.shape[:2])
        hw = EGO_WIDTH / 2 + np.broadcast_to(grow_lat, poses.shape[:2])
        c, _, t = _hits(cx, cy, h, hl, hw, tracks[:, :t_len])
        out[c, t] = True
    return out[0] if single else out


# ----------------------------------------------------------------------------------- planning ---


@dataclass
class _Lateral:
    """A lateral plan: a path plus the ego's offset d(s) from it, moving from d0 to `target`."""

    option: PathOption
    s0: float
    d0: float
    length: float  # [m] over which d moves to the target
    sporty: bool = False  # curve speeds up to NAVSIM's comfort bounds (the tracked check decides)
    target: float = 0.0  # [m] final offset: 0, or ±1 m nudges inside the lane (as PDM-Closed's proposals)

    def offset(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d(s) [m] and dd/ds."""
        u = np.clip((s - self.s0) / self.length, 0.0, 1.0)
        q = u**3 * (10 - 15 * u + 6 * u**2)
        dq = 30 * u**2 * (1 - u) ** 2 / self.length
        return self.target + (self.d0 - self.target) * (1 - q), -(self.d0 - self.target) * dq

    @property
    def cost(self) -> float:
        """[m] of progress this lateral plan must gain over staying on the lane centre."""
        return self.option.change_cost + NUDGE_COST * (self.target != 0.0) + 1.0 * self.sporty


def _lateral_plans(options: list[PathOption], ego: EgoState) -> list[_Lateral]:
    v0 = max(ego.vx, 0.0)
    out = []
    for opt in options:
        s0, d0 = opt.path.project(np.array(ego.x), np.array(ego.y))
        s0, d0 = float(s0), float(d0)
        if opt.label.startswith("change"):
            for dur in (3.5, 5.0):
                out.append(_Lateral(opt, s0, d0, max(18.0, v0 * dur)))
            continue
        length = max(8.0, v0 * 2.0)
        out.append(_Lateral(opt, s0, d0, length))
        ahead = (opt.path.s > s0) & (opt.path.s < s0 + 80.0)
        if ahead.any() and np.abs(opt.path.curvature(opt.path.s[ahead])).max() > 0.02:
            out.append(_Lateral(opt, s0, d0, length, sporty=True))
        out += [_Lateral(opt, s0, d0, max(12.0, v0 * 2.5), target=t) for t in (-1.0, 1.0)]
    return out


def speed_envelope(opt: PathOption, sporty: bool = False) -> np.ndarray:
    """(len(path.s),) the speed [m/s] the ego may have at each vertex: limit, curvature, and
    anticipation of lower limits ahead: v(s)² = min over s' >= s of v_lim(s')² + 2 b (s' - s)."""
    k = np.abs(opt.path.curvature(opt.path.s)) + 1e-6
    a_lat, yaw_rate = (4.5, 0.95) if sporty else (A_LAT_MAX, YAW_RATE_MAX)
    v = np.minimum(opt.speed_limit, np.minimum(np.sqrt(a_lat / k), yaw_rate / k))
    reach = v**2 + 2 * B_ENVELOPE * opt.path.s
    return np.sqrt(np.minimum.accumulate(reach[::-1])[::-1] - 2 * B_ENVELOPE * opt.path.s)


@dataclass
class _Candidates:
    lat: np.ndarray  # (C,) index into lateral plans
    mode_idm: np.ndarray  # (C,) bool: IDM follower, else constant target acceleration
    headway: np.ndarray  # (C,) [s]
    decel: np.ndarray  # (C,) [m/s²] IDM comfortable deceleration
    horizon: np.ndarray  # (C,) index into PREDICTION
    const_a: np.ndarray  # (C,) [m/s²]
    cap: np.ndarray  # (C,) [m/s] speed cap until `release` (inf: none): let a crossing agent pass first
    release: np.ndarray  # (C,) [s]


PREDICTION = (0, 15, 30)  # [steps] of 0.1 s an agent may be ahead of entering the corridor
CONST_ACCELS = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0)
CAPS = (0.2, 0.5)  # speed caps as a fraction of the current speed ...
RELEASES = (1.5, 2.5)  # [s] ... lifted after these times


def _candidates(lats: list[_Lateral], v0: float) -> _Candidates:
    """The full profile set for lateral plans that follow a lane's centre, a lighter one for nudges
    and sporty curve speeds (they rarely win and only need the main behaviours)."""
    rows = []
    for lat, plan in enumerate(lats):
        full = plan.target == 0.0 and not plan.sporty
        for hw in (0.6, 1.0, 1.5) if full else (1.0,):
            for b in (2.0, 3.0) if full else (2.5,):
                for hz in range(len(PREDICTION)):
                    rows.append((lat, True, hw, b, hz, 0.0, np.inf, 0.0))
        for a in CONST_ACCELS if full else (-2.0, 0.0, 1.0):
            rows.append((lat, False, 1.0, 2.0, 0, a, np.inf, 0.0))
        for cap in CAPS:
            for rel in RELEASES if full else (2.0,):
                rows.append((lat, True, 1.0, 2.0, 0, 0.0, cap * v0, rel))
    cols = [np.array(col) for col in zip(*rows)]
    return _Candidates(*cols)


def _corridor_leaders(
    lat: _Lateral, tracks: np.ndarray, projected: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """For each prediction horizon: (H, N+1, T) arc length of each agent's rear along the path while it
    will be in the ego's corridor within the horizon (inf otherwise) and its speed along the path.
    Row N is the red stop line (if any). `projected`: the tracks on the path (s, d, path heading)."""
    n = tracks.shape[0]
    s_a, d_a, h_path = projected
    rel = tracks[..., 2] - h_path
    half_lon = tracks[..., 5] * np.abs(np.cos(rel)) + tracks[..., 6] * np.abs(np.sin(rel))
    half_lat = tracks[..., 5] * np.abs(np.sin(rel)) + tracks[..., 6] * np.abs(np.cos(rel))
    d_ego, _ = lat.offset(s_a)
    inside = (np.abs(d_a - d_ego) < half_lat + EGO_WIDTH / 2 + 0.6) & np.isfinite(s_a)
    rear = np.where(inside, s_a - half_lon, np.inf)
    v_along = np.nan_to_num(tracks[..., 3] * np.cos(h_path) + tracks[..., 4] * np.sin(h_path))
    out_rear = np.full((len(PREDICTION), n + 1, N_STEPS), np.inf)
    out_v = np.zeros((len(PREDICTION), n + 1, N_STEPS))
    padded = np.concatenate([rear, np.repeat(rear[:, -1:], max(PREDICTION), axis=1)], axis=1)
    for hz, w in enumerate(PREDICTION):
        win = np.lib.stride_tricks.sliding_window_view(padded[:, : N_STEPS + w], w + 1, axis=1).min(axis=-1)
        out_rear[hz, :n] = win
        out_v[hz, :n] = np.where(np.isfinite(win), np.minimum(v_along[:, :N_STEPS], 40.0), 0.0)
        if w:  # an agent that is not in the corridor yet is taken as standing where it will be
            out_v[hz, :n] = np.where(np.isfinite(rear[:, :N_STEPS]), out_v[hz, :n], 0.0)
    if lat.option.stop_s is not None:
        out_rear[:, n, :] = lat.option.stop_s
    return out_rear, out_v


def _project_tracks(path: Path, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, T) arc length, offset and path heading at agent centres on `path`: projected at every 0.5 s
    (agents move linearly in between) and interpolated."""
    t_len = tracks.shape[1]
    key = np.unique(np.concatenate([np.arange(0, t_len, 5), [t_len - 1]]))
    s_k, d_k = path.project(tracks[:, key, 0], tracks[:, key, 1])
    idx = np.arange(t_len)
    seg = np.clip(np.searchsorted(key, idx, side="right") - 1, 0, len(key) - 2)
    w = (idx - key[seg]) / (key[seg + 1] - key[seg])
    s_a = s_k[:, seg] * (1 - w) + s_k[:, seg + 1] * w
    d_a = d_k[:, seg] * (1 - w) + d_k[:, seg + 1] * w
    return s_a, d_a, path.pose(s_a)[2]


def _simulate(
    cand: _Candidates,
    lats: list[_Lateral],
    envs: list[np.ndarray],
    leaders: np.ndarray,
    lead_v: np.ndarray,
    v0: float,
    a0: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jerk-limited longitudinal rollouts: (C, 41) arc length, speed, acceleration."""
    c = len(cand.lat)
    s = np.array([lats[i].s0 for i in cand.lat])
    v, a = np.full(c, max(v0, 0.0)), np.full(c, a0)
    s_out, v_out, a_out = np.zeros((c, N_STEPS)), np.zeros((c, N_STEPS)), np.zeros((c, N_STEPS))
    env_paths = [(lats[i].option.path.s, envs[i]) for i in range(len(lats))]
    groups = [np.flatnonzero(cand.lat == i) for i in range(len(lats))]
    sqrt_ab = np.sqrt(A_MAX * cand.decel)
    for k in range(N_STEPS):
        s_out[:, k], v_out[:, k], a_out[:, k] = s, v, a
        if k == N_STEPS - 1:
            break
        v_target = np.empty(c)
        for i, g in enumerate(groups):
            v_target[g] = np.interp(s[g] + v[g] * 1.0, *env_paths[i])
        v_target = np.where(k * DT < cand.release, np.minimum(v_target, cand.cap), v_target)
        a_free = np.clip((v_target - v) / 1.0, -3.0, A_MAX)
        gap_all = leaders[:, :, k] - (s + EGO_FRONT)[:, None]
        gap_all = np.where(gap_all > -2.0, gap_all, np.inf)
        j = np.argmin(gap_all, axis=1)
        gap = np.maximum(gap_all[np.arange(c), j], 0.1)
        vl = lead_v[np.arange(c), j, k]
        s_star = 1.0 + v * cand.headway + v * (v - vl) / (2 * sqrt_ab)
        a_idm = np.where(np.isfinite(gap), A_MAX * (1 - (np.maximum(s_star, 0.0) / gap) ** 2), np.inf)
        a_des = np.where(cand.mode_idm, np.minimum(a_free, a_idm), np.minimum(cand.const_a, a_free))
        a_des = np.clip(a_des, -4.5, A_MAX)
        a = a + np.clip(a_des - a, -J_MAX * DT, J_MAX * DT)
        v_new = v + a * DT
        stopped = v_new <= 0.0
        ds = np.where(stopped, np.where(a < 0, v**2 / (2 * np.maximum(-a, 1e-6)), 0.0), (v + v_new) / 2 * DT)
        s, v = s + ds, np.maximum(v_new, 0.0)
        a = np.where(stopped & (a_des <= 0), 0.0, a)
    return s_out, v_out, a_out


def _poses(lat: _Lateral, s: np.ndarray) -> np.ndarray:
    """(..., 3) rear-axle poses on a lateral plan at arc lengths s."""
    d, dd = lat.offset(s)
    xy = lat.option.path.point(s, d)
    _, _, h = lat.option.path.pose(s)
    return np.concatenate([xy, (h + np.arctan(dd))[..., None]], axis=-1)


def _ttc_violations(
    poses: np.ndarray, speed: np.ndarray, strict: np.ndarray, tracks: np.ndarray, margin: float = TTC_MARGIN
) -> np.ndarray:
    """(C,) NAVSIM's TTC rule on the plan: the ego box translated by v·δ hits an agent at t + δ that is
    ahead (within 30° of the heading), or not behind (150°) while `strict` (multi-lane / intersection)."""
    bad = np.zeros(poses.shape[0], dtype=bool)
    if not len(tracks):
        return bad
    h = poses[..., 2]
    ch, sh = np.cos(h), np.sin(h)
    for step in TTC_STEPS:
        shift = speed * step * DT + EGO_REAR_AXLE_TO_CENTER
        tr = tracks[:, step : step + poses.shape[1]]
        c, n, t = _hits(
            poses[..., 0] + ch * shift,
            poses[..., 1] + sh * shift,
            h,
            EGO_LENGTH / 2 + margin,
            EGO_WIDTH / 2 + margin,
            tr,
        )
        vx, vy = tr[n, t, 0] - poses[c, t, 0], tr[n, t, 1] - poses[c, t, 1]
        cos_rel = (vx * ch[c, t] + vy * sh[c, t]) / np.maximum(np.hypot(vx, vy), 1e-6)
        ahead = cos_rel > np.cos(np.radians(30))
        not_behind = cos_rel > np.cos(np.radians(150))
        viol = (ahead | (strict[c, t] & not_behind)) & (speed[c, t] > 5e-3)
        bad[c[viol]] = True
    return bad


def _all_poses(lats: list[_Lateral], cand_lat: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(C, T, 3) rear-axle poses of every candidate (one path lookup per lateral plan)."""
    out = np.empty(s.shape + (3,))
    for i, lat in enumerate(lats):
        g = cand_lat == i
        out[g] = _poses(lat, s[g])
    return out


def plan_expert(
    ego: EgoState, options: list[PathOption], agents: list[Agent], drivable: shapely.Geometry
) -> Plan:
    """The best safe plan over all options (see the module docstring); `ok` is False if none is safe."""
    lats = _lateral_plans(options, ego)
    tracks = _nearby(agent_tracks(agents), ego)
    envs, projected = {}, {}
    for lat in lats:
        key = id(lat.option)
        envs.setdefault((key, lat.sporty), speed_envelope(lat.option, lat.sporty))
        if key not in projected:
            projected[key] = _project_tracks(lat.option.path, tracks)
    cand = _candidates(lats, max(ego.vx, 0.0))
    lead = [_corridor_leaders(lat, tracks, projected[id(lat.option)]) for lat in lats]
    leaders = np.stack([lead[i][0][h] for i, h in zip(cand.lat, cand.horizon)])  # (C, N+1, T)
    lead_v = np.stack([lead[i][1][h] for i, h in zip(cand.lat, cand.horizon)])
    env_list = [envs[(id(lat.option), lat.sporty)] for lat in lats]
    s, v, a = _simulate(cand, lats, env_list, leaders, lead_v, ego.vx, ego.ax)
    poses = _all_poses(lats, cand.lat, s)  # (C, T, 3)
    safe, reasons, strict = _cheap_checks(cand, lats, s, v, poses, tracks, leaders, lead_v)
    score = (s[:, -1] - s[:, 0]) - np.array([lats[i].cost for i in cand.lat])
    score -= 0.3 * np.maximum(-a.min(axis=1) - 2.0, 0.0)
    shapely.prepare(drivable)
    order, seen = [], set()
    for c in np.lexsort((-score, ~safe)):
        key = (cand.lat[c], round(float(s[c, -1]), 1), round(float(s[c, 20]), 1))
        if safe[c] and key not in seen:  # many profiles coincide (no leader, same behaviour)
            order.append(c)
            seen.add(key)
        if len(order) == SHORTLIST or not safe[c]:
            break
    for batch in (order[:2], order[2:SHORTLIST]):  # most scenes pass with the first candidate
        on_road = [c for c in batch if _inside(drivable, poses[c], grow=0.1).all()]
        for c in set(batch) - set(on_road):
            reasons[c] = "offroad"
        plans = [
            _make_plan(ego, poses[c], v[c], a[c], lats[cand.lat[c]].option.label, True, "", s[c])
            for c in on_road
        ]
        tracked = _tracked(ego, [p.poses for p in plans])
        for k, c in enumerate(on_road):
            written = plan_fine_poses(plans[k].poses, ego)  # what the 8 written poses say, at 0.1 s
            if ego_collides(written, tracks).any() or not _inside(drivable, written).all():
                reasons[c] = "interpolated"
            elif _tracked_ok(tracked[k], tracks, drivable, strict[c]):
                return plans[k]
            else:
                reasons[c] = "tracked"
    c = order[0] if order else int(np.argmax(score))
    label = lats[cand.lat[c]].option.label
    return _make_plan(ego, poses[c], v[c], a[c], label, False, reasons[c] or "offroad", s[c])


def _nearby(tracks: np.ndarray, ego: EgoState, radius: float = 140.0) -> np.ndarray:
    """Tracks that come within `radius` m of the ego's start (the ego covers < 120 m in 4 s)."""
    if not len(tracks):
        return tracks
    dist = np.hypot(tracks[..., 0] - ego.x, tracks[..., 1] - ego.y)
    return tracks[np.nanmin(np.where(np.isfinite(dist), dist, np.inf), axis=1) < radius]


def _inside(drivable: shapely.Geometry, poses: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """(T,) whether the whole ego box (grown by `grow` m) is inside the drivable area."""
    corners = ego_box_corners(poses[:, 0], poses[:, 1], poses[:, 2], grow=grow)
    return shapely.contains_xy(drivable, corners[..., 0], corners[..., 1]).all(axis=-1)


def _tracked(ego: EgoState, plans: list[np.ndarray]) -> np.ndarray:
    """(K, 41, 5) x, y, heading, speed and comfort (1/0, NAVSIM's six bounds) of the plans as NAVSIM's
    LQR tracker drives them (the scorer's own simulation, imported here: scorer depends on driving)."""
    if not plans:
        return np.zeros((0, N_STEPS, 5))
    from scorer.comfort import is_comfortable
    from scorer.constants import STATE_SIZE, S
    from scorer.interp import plan_to_poses
    from scorer.simulation import simulate

    origin = np.array([ego.x, ego.y, ego.heading])
    state = np.zeros(STATE_SIZE)
    state[[S.X, S.Y, S.HEADING, S.VX, S.VY, S.AX, S.AY]] = [
        ego.x,
        ego.y,
        ego.heading,
        ego.vx,
        ego.vy,
        ego.ax,
        ego.ay,
    ]
    states = simulate(state, plan_to_poses(origin, np.stack(plans), POSE_INTERVAL_S))
    speed = np.hypot(states[..., S.VX], states[..., S.VY])
    comfortable = np.broadcast_to(is_comfortable(states)[:, None, None], speed.shape + (1,))
    return np.concatenate([states[..., [S.X, S.Y, S.HEADING]], speed[..., None], comfortable], axis=-1)


def _tracked_ok(
    states: np.ndarray, tracks: np.ndarray, drivable: shapely.Geometry, strict: np.ndarray
) -> bool:
    """The tracked plan is comfortable, touches no agent, stays on the road and keeps the TTC rule."""
    poses = states[:, :3]
    if not states[0, 4]:
        return False
    if ego_collides(poses, tracks, TRACK_MARGIN, TRACK_MARGIN).any() or not _inside(drivable, poses).all():
        return False
    return not _ttc_violations(poses[None], states[None, :, 3], strict[None], tracks, TRACK_MARGIN / 3)[0]


def _cheap_checks(
    cand: _Candidates,
    lats: list[_Lateral],
    s: np.ndarray,
    v: np.ndarray,
    poses: np.ndarray,
    tracks: np.ndarray,
    leaders: np.ndarray,
    lead_v: np.ndarray,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Every check but the drivable area: (C,) safe, a reason per unsafe candidate, and (C, T) where
    NAVSIM's stricter TTC rule applies (ego across lane lines or in the intersection)."""
    c = len(cand.lat)
    reasons = [""] * c
    hit = ego_collides(poses, tracks, margin_lon(v), margin_lat(v)).any(axis=-1)
    strict = np.zeros((c, N_STEPS), dtype=bool)
    red = np.zeros(c, dtype=bool)
    for i, lat in enumerate(lats):
        g = cand.lat == i
        d, _ = lat.offset(s[g])
        strict[g] = np.abs(d) + EGO_WIDTH / 2 > lat.option.lane_width / 2
        if lat.option.junction is not None:
            j0, j1 = lat.option.junction
            strict[g] |= (s[g] > j0) & (s[g] < j1)
        if lat.option.stop_s is not None:
            red[g] = (s[g, :] + EGO_FRONT > lat.option.stop_s).any(axis=1)
    ttc = _ttc_violations(poses, v, strict, tracks)
    # terminal: from 4 s the ego can still stop behind its current leader at 3.5 m/s²
    gap_end = leaders[:, :, -1] - (s[:, -1] + EGO_FRONT)[:, None]
    gap_end = np.where(gap_end > -2.0, gap_end, np.inf)
    need = np.maximum(v[:, -1, None] ** 2 - lead_v[:, :, -1] ** 2, 0.0) / 7.0 + 1.0
    terminal = (gap_end < need).any(axis=1)
    for k in range(c):
        reasons[k] = (
            "collision"
            if hit[k]
            else "ttc"
            if ttc[k]
            else "red_light"
            if red[k]
            else "terminal"
            if terminal[k]
            else ""
        )
    return ~(hit | ttc | red | terminal), reasons, strict


def _make_plan(
    ego: EgoState,
    poses: np.ndarray,
    v: np.ndarray,
    a: np.ndarray,
    label: str,
    ok: bool,
    reason: str,
    s: np.ndarray,
) -> Plan:
    origin = np.array([ego.x, ego.y, ego.heading])
    idx = np.arange(1, NUM_PLAN_POSES + 1) * int(round(POSE_INTERVAL_S / DT))
    local = global_to_local(poses[idx], origin)
    fine = np.concatenate([poses, v[:, None], a[:, None]], axis=1)
    return Plan(local, fine, label, ok, reason, float(s[-1] - s[0]))


def plan_fine_poses(plan_local: np.ndarray, ego: EgoState) -> np.ndarray:
    """(41, 3) global rear-axle poses at 0.1 s, linearly interpolated from the 8-pose plan as the
    scorer does before tracking (t = 0 is the ego's pose)."""
    origin = np.array([ego.x, ego.y, ego.heading])
    local = np.concatenate([np.zeros((1, 3)), plan_local], axis=0)
    times = np.arange(NUM_PLAN_POSES + 1) * POSE_INTERVAL_S
    fine = interpolate_poses(times, local, np.arange(N_STEPS) * DT)
    return local_to_global(fine, origin)
