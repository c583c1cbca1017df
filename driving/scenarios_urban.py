"""Urban scenario families: pedestrian crossing, cyclist, unprotected left turn, right turn, red light.

Junction scenes use `roads.build_intersection` (3 or 4 arms at right angles, kerb radius 8-14 m); the
ego always arrives from the west arm. The route runs approach roadblocks -> one connector -> the exit
arm, so the PDM-Closed reference and the expert follow the same lane sequence. Simplified: no
crosswalk or sidewalk polygons (the format has none); pedestrians start up to a few metres outside
the drivable area ("on the kerb"), which `check_scene` allows for pedestrians and cyclists only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driving.expert import EGO_FRONT, PathOption, speed_envelope
from driving.roads import IntersectionParts, Path, build_intersection, join_paths
from driving.scenarios_common import (
    AGENT_STEPS,
    Draft,
    accel_steps,
    agent_on_path,
    choice,
    ego_on_path,
    road_speed_limit,
    uniform,
    union_polygons,
    vehicle_size,
    walker,
)
from driving.scenarios_road import (
    background,
    ego_state,
    lane_counts,
    make_road,
    road_draft,
    road_options,
)

T = np.arange(AGENT_STEPS) * 0.1  # [s]
TURN_OF = {"left": "N", "right": "S", "straight": "E"}


@dataclass
class Junction:
    parts: IntersectionParts
    out: dict[str, list[str]]  # lane id -> outgoing lane ids
    route_lanes: list[str]
    path: Path  # the ego's route path
    s_mouth: float  # [m] arc length of the approach mouth (start of the connector)
    s_exit: float  # [m] arc length where the connector ends
    limit: float
    width: float


def make_junction(rng: np.random.Generator, turn: str, approach: float, keep: str = "") -> Junction:
    """A junction with the ego's route from arm W through the `turn` connector; `approach` [m] of
    road before the mouth; arms in `keep` always exist."""
    n_ew = choice(rng, (1, 1, 2, 2, 3))
    n_ns = choice(rng, (1, 1, 2))
    limit = road_speed_limit(rng, urban=True)
    arms = {
        "W": (n_ew, approach, limit),
        "E": (n_ew, 70.0, limit),
        "N": (n_ns, 70.0, limit),
        "S": (n_ns, 70.0, limit),
    }
    exit_arm = TURN_OF[turn]
    if rng.random() < 0.25:  # a T junction: drop an arm the route does not use
        droppable = [a for a in ("N", "S", "E") if a != exit_arm and a not in keep]
        if droppable:
            del arms[choice(rng, droppable)]
    arms[exit_arm] = (arms[exit_arm][0], 110.0, limit)
    width = round(uniform(rng, 3.1, 3.7), 2)
    parts = build_intersection(arms, width, uniform(rng, 8.0, 14.0), approach_cut=min(30.0, approach / 2))
    out = {
        ln["id"]: ln.get("outgoing", []) for rb in parts.roadblocks + parts.connectors for ln in rb["lanes"]
    }
    i = {"left": 0, "right": n_ew - 1}.get(turn) if turn != "straight" else int(rng.integers(n_ew))
    conn = parts.conn_id[("W", exit_arm, i)]
    lanes = chain(out, parts.arms["W"].lane_ids[f"f{i}"][0], conn)
    path = join_paths([parts.lane_xy[lid] for lid in lanes])
    k = lanes.index(conn)
    s_mouth = float(sum(Path(parts.lane_xy[lid]).length for lid in lanes[:k]))
    s_exit = s_mouth + Path(parts.lane_xy[conn]).length
    return Junction(parts, out, lanes, path, s_mouth, s_exit, limit, width)


def chain(out: dict[str, list[str]], start: str, via: str | None = None) -> list[str]:
    """Lane ids from `start` following outgoing links (through connector `via` where there is a choice)."""
    lanes = [start]
    while out.get(lanes[-1]):
        nxt = out[lanes[-1]]
        lanes.append(via if via in nxt else nxt[0])
    return lanes


def junction_draft(
    j: Junction,
    rng: np.random.Generator,
    ego: dict,
    agents: list[dict],
    command: str,
    desc: str,
    tags: list[str],
    red: bool = False,
    cv: tuple[str, ...] = (),
) -> Draft:
    blocks = {rb["id"]: rb for rb in j.parts.roadblocks + j.parts.connectors}
    owner = {ln["id"]: rb_id for rb_id, rb in blocks.items() for ln in rb["lanes"]}
    route = list(dict.fromkeys(owner[lid] for lid in j.route_lanes))
    ego_xy = np.array([ego["x"], ego["y"]])
    s_ego = float(j.path.project(*ego_xy)[0])
    first = next(k for k, lid in enumerate(j.route_lanes) if _lane_end_s(j, k) > s_ego)
    route = list(dict.fromkeys(owner[lid] for lid in j.route_lanes[first:]))
    m = {
        "roadblocks": j.parts.roadblocks,
        "roadblock_connectors": j.parts.connectors,
        "intersections": [{"id": "junction", "polygon": j.parts.polygon}],
        "route_roadblock_ids": route,
    }
    drivable = union_polygons([rb["polygon"] for rb in j.parts.roadblocks] + [j.parts.polygon])
    w_lanes = [ln["id"] for rb in j.parts.connectors if rb["id"].startswith("CW") for ln in rb["lanes"]]
    lights = [{"lane_connector_id": lid, "red": red} for lid in w_lanes]
    stop = j.s_mouth - 0.5 if red else None
    opt = PathOption(
        f"turn_{command}" if command != "straight" else "keep_lane",
        j.path,
        np.full(len(j.path.s), j.limit),
        j.width,
        stop_s=stop,
        junction=(j.s_mouth, j.s_exit),
    )
    return Draft(m, ego, agents, [opt], drivable, command, desc, tags, lights, cv_fails_by=cv, stop_s=stop)


def _lane_end_s(j: Junction, k: int) -> float:
    return float(sum(Path(j.parts.lane_xy[lid]).length for lid in j.route_lanes[: k + 1]))


def junction_ego(
    j: Junction, rng: np.random.Generator, dist: float, v_max: float, a0: float
) -> tuple[dict, float]:
    """The ego `dist` m (front bumper) before the mouth (negative: already inside), at a speed its path
    allows within 2 s."""
    s0 = j.s_mouth - dist - EGO_FRONT
    env = speed_envelope(PathOption("x", j.path, np.full(len(j.path.s), j.limit), j.width))
    ahead = (j.path.s > s0) & (j.path.s < s0 + 2.0 * v_max)
    v0 = min(v_max, float(env[ahead].min()) if ahead.any() else v_max)
    return ego_on_path(j.path, s0, v0, a0, d0=uniform(rng, -0.15, 0.15)), v0


def vehicle_through(
    j: Junction,
    agent_id: str,
    arm: str,
    lane: int,
    to: str,
    point: np.ndarray,
    at: float,
    v: float,
    rng: np.random.Generator,
) -> dict:
    """A vehicle from `arm` lane `lane` through the junction towards arm `to` at constant speed v
    [m/s], its centre passing (nearest to) `point` at time `at` [s]."""
    conn = j.parts.conn_id[(arm, to, lane)]
    lanes = chain(j.out, j.parts.arms[arm].lane_ids[f"f{lane}"][0], conn)
    path = join_paths([j.parts.lane_xy[lid] for lid in lanes])
    s_c = float(path.project(*point)[0])
    size = vehicle_size(rng)
    return agent_on_path(agent_id, "vehicle", size, path, max(s_c - at * v, size[0] / 2 + 1.0), v)


def crossing_point(j: Junction, arm: str, lane: int, to: str, s_from: float) -> tuple[float, np.ndarray]:
    """Where the ego's path (from arc length s_from on) first meets the centerline of the connector
    (arm, to, lane): (arc length on the ego path, point)."""
    conn = Path(j.parts.lane_xy[j.parts.conn_id[(arm, to, lane)]])
    s = np.arange(s_from, j.path.length, 0.5)
    pts = j.path.point(s)
    _, d = conn.project(pts[:, 0], pts[:, 1])
    k = int(np.argmax(np.abs(d) < 0.5)) if (np.abs(d) < 0.5).any() else int(np.argmin(np.abs(d)))
    return float(s[k]), pts[k]


# ------------------------------------------------------------------------------------ families ---


def right_turn(rng: np.random.Generator) -> Draft:
    j = make_junction(rng, "right", uniform(rng, 60.0, 90.0))
    ego, v0 = junction_ego(
        j, rng, uniform(rng, 0.0, 30.0), j.limit * uniform(rng, 0.4, 0.9), uniform(rng, -0.6, 0.2)
    )
    agents = []
    if "E" in j.parts.arms:  # oncoming traffic going straight does not conflict with a right turn
        mouth_e = np.array([j.parts.mouth["E"], j.width / 2])
        agents.append(
            vehicle_through(
                j,
                "oncoming",
                "E",
                0,
                "W",
                mouth_e,
                uniform(rng, 0.5, 4.0),
                j.limit * uniform(rng, 0.6, 0.9),
                rng,
            )
        )
    if rng.random() < 0.5:  # a lead turning right ahead of us
        size = vehicle_size(rng)
        s_lead = (
            float(j.path.project(ego["x"], ego["y"])[0]) + EGO_FRONT + uniform(rng, 8.0, 20.0) + size[0] / 2
        )
        agents.append(
            agent_on_path("lead", "vehicle", size, j.path, s_lead, max(0.5, v0 * uniform(rng, 0.6, 1.0)))
        )
    desc = f"right turn at a junction, {j.s_mouth - float(j.path.project(ego['x'], ego['y'])[0]) - EGO_FRONT:.0f} m to the mouth; ego at {v0:.1f} m/s"
    return junction_draft(j, rng, ego, agents, "right", desc, ["junction", "right_turn"])


def unprotected_left(rng: np.random.Generator) -> Draft:
    j = make_junction(rng, "left", uniform(rng, 60.0, 90.0), keep="ES")
    ego, v0 = junction_ego(
        j, rng, uniform(rng, -10.0, 6.0), j.limit * uniform(rng, 0.35, 0.7), uniform(rng, -0.5, 0.3)
    )
    s_ego = float(j.path.project(ego["x"], ego["y"])[0])
    n_e = sum(1 for k in j.parts.arms["E"].lane_ids if k.startswith("f"))
    agents = []
    v_on = j.limit * uniform(rng, 0.7, 1.0)
    first_lane = 0
    if rng.random() < 0.7:  # an opposing left-turner crosses the straight-ahead path (not ours)
        agents.append(_opposing_left_turner(j, rng, ego, v0))
        first_lane = 1 if n_e > 1 else 0
    lane = int(rng.integers(first_lane, n_e))
    s_c, point = crossing_point(j, "E", lane, "W", s_ego)
    # the first oncoming car passes the conflict point just before an ego that speeds up like PDM-Closed's
    # IDM (1.5 m/s² to the limit, ignoring the curve) would get there: no one may turn in front of it
    at = max(_arrival(s_c - s_ego - EGO_FRONT, v0, j.limit) * uniform(rng, 0.7, 1.0), 0.4)
    if agents and first_lane == 0:
        at += 3.0  # behind the left-turner in the same lane
    for k in range(int(rng.integers(1, 4))):  # a platoon of oncoming vehicles
        agents.append(vehicle_through(j, f"oncoming{k}", "E", lane, "W", point, at, v_on, rng))
        at += uniform(rng, 1.2, 3.0)
        lane = int(rng.integers(first_lane, n_e))
        point = crossing_point(j, "E", lane, "W", s_ego)[1]
    desc = f"unprotected left turn across oncoming traffic at {v_on:.1f} m/s; ego at {v0:.1f} m/s"
    tags = ["junction", "unprotected_left", "oncoming_traffic"]
    return junction_draft(j, rng, ego, agents, "left", desc, tags, cv=("collision", "offroad", "off_route"))


def _opposing_left_turner(j: Junction, rng: np.random.Generator, ego: dict, v0: float) -> dict:
    """An oncoming vehicle turning left (E -> S), timed to cross the ego's straight-ahead line when an
    ego keeping its speed and heading would be there."""
    conn = j.parts.lane_xy[j.parts.conn_id[("E", "S", 0)]]
    h = ego["heading"]
    # where the connector meets the line ahead of the ego (least lateral distance, ahead of us)
    rel = conn - np.array([ego["x"], ego["y"]])
    lon = rel[:, 0] * np.cos(h) + rel[:, 1] * np.sin(h)
    lat = -rel[:, 0] * np.sin(h) + rel[:, 1] * np.cos(h)
    k = int(np.argmin(np.where(lon > EGO_FRONT, np.abs(lat), np.inf)))
    t_cv = (lon[k] - EGO_FRONT + uniform(rng, 0.5, 2.5)) / max(v0, 1.0)
    v_turn = uniform(rng, 4.0, 7.0)
    agent = vehicle_through(j, "left_turner", "E", 0, "S", conn[k], t_cv, v_turn, rng)
    agent["id"] = "opposing_left"
    return agent


def _arrival(dist: float, v0: float, limit: float, accel: float = 1.5) -> float:
    """[s] to cover `dist` m from speed v0 accelerating at `accel` up to `limit`."""
    t = np.arange(0.0, 8.0, 0.05)
    v = np.minimum(v0 + accel * t, limit)
    s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * 0.05)])
    return float(t[min(np.searchsorted(s, dist), len(t) - 1)])


def red_light(rng: np.random.Generator) -> Draft:
    turn = choice(rng, ("straight", "straight", "left", "right"))
    j = make_junction(rng, turn, uniform(rng, 80.0, 110.0), keep="NS")
    v_max = j.limit * uniform(rng, 0.6, 1.0)
    dist = uniform(rng, v_max**2 / 5.0 + 4.0, max(v_max**2 / 5.0 + 6.0, v_max * 3.0))
    ego, v0 = junction_ego(j, rng, dist, v_max, uniform(rng, -0.3, 0.3))
    y_ego = ego["y"]
    x_front = ego["x"] + EGO_FRONT
    n_ns = sum(1 for k in j.parts.arms["N"].lane_ids if k.startswith("f"))
    v_x = j.limit * uniform(rng, 0.7, 1.0)
    agents = []
    for k, arm in enumerate(choice(rng, (("S",), ("N",), ("S", "N")))):
        lane = int(rng.integers(n_ns))
        x_lane = (lane + 0.5) * j.width * (1.0 if arm == "S" else -1.0)
        t_hit = (x_lane - x_front + uniform(rng, 0.5, 3.0)) / max(v0, 1.0)  # constant velocity is there then
        to = "N" if arm == "S" else "S"
        agents.append(
            vehicle_through(j, f"cross{k}", arm, lane, to, np.array([x_lane, y_ego]), t_hit, v_x, rng)
        )
    desc = f"red light {dist:.0f} m ahead ({turn}), cross traffic at {v_x:.1f} m/s; ego at {v0:.1f} m/s"
    return junction_draft(
        j,
        rng,
        ego,
        agents,
        turn,
        desc,
        ["junction", "red_light", "cross_traffic"],
        red=True,
        cv=("collision", "red_light"),
    )


def pedestrian_crossing(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng)
    n_fwd, n_back = min(n_fwd, 2), max(n_back, 1)
    limit = road_speed_limit(rng, urban=True)
    road = make_road(rng, n_fwd, n_back, limit, 140.0, rng.random() < 0.3, int(rng.integers(n_fwd)))
    v0 = limit * uniform(rng, 0.6, 1.0)
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.3), rng)
    path = road.paths[road.ego_lane]
    cross = road.s_ego + EGO_FRONT + uniform(rng, max(10.0, v0**2 / 6.0 + 4.0), max(14.0, v0 * 3.6))
    t_cv = (cross - road.s_ego - EGO_FRONT) / v0  # when constant velocity reaches the crossing
    side = choice(rng, (-1.0, 1.0))  # start right (-1) or left (+1) of the ego lane
    w_right = (
        sum(road.widths[f"f{i}"] for i in range(int(road.ego_lane[1:]) + 1, n_fwd))
        + road.widths[road.ego_lane] / 2
    )
    w_left = sum(road.widths[f"f{i}"] for i in range(int(road.ego_lane[1:]))) + road.widths[road.ego_lane] / 2
    w_left += sum(road.widths[f"b{j}"] for j in range(n_back))
    kerb = (w_left if side > 0 else w_right) + uniform(rng, 0.5, 2.5)
    agents = []
    for k in range(int(rng.integers(1, 4))):
        v_p = uniform(rng, 1.0, 1.8)
        start_d = side * (kerb + uniform(rng, 0.0, 1.0))
        arrive = t_cv + uniform(rng, -0.6, 0.4)  # at the ego lane's centre
        t_walk = arrive - abs(start_d) / v_p
        s_k = cross + uniform(rng, -1.5, 1.5)
        start = path.point(np.array(s_k), start_d)
        if t_walk < 0:  # already on the road
            start = path.point(np.array(s_k), start_d + side * t_walk * v_p)
        h_road = float(path.pose(np.array(s_k))[2])
        speed = v_p * (T >= max(t_walk, 0.0))
        agents.append(
            walker(
                f"ped{k}",
                "pedestrian",
                (round(uniform(rng, 0.5, 0.8), 2), round(uniform(rng, 0.5, 0.8), 2)),
                start,
                h_road - side * np.pi / 2,
                speed,
            )
        )
    agents += background(
        rng, road, v0, {road.ego_lane} | ({f"b{j}" for j in range(n_back)} if rng.random() < 0.5 else set())
    )
    agents = [a for a in agents if a["type"] == "pedestrian" or not _blocks_crossing(a, path, cross)]
    desc = f"{len([a for a in agents if a['type'] == 'pedestrian'])} pedestrian(s) cross {cross - road.s_ego - EGO_FRONT:.0f} m ahead; ego at {v0:.1f} m/s"
    keep = [
        o for o in road_options(road) if o.label == "keep_lane"
    ]  # nobody dodges pedestrians by changing lanes
    return road_draft(
        road,
        ego,
        agents,
        desc,
        ["pedestrian", "crossing", "vulnerable_road_user"],
        cv=("collision",),
        options=keep,
    )


def _blocks_crossing(agent: dict, path: Path, cross: float) -> bool:
    """Background vehicles near the crossing would run the pedestrians over: leave them out."""
    xy = np.array([s[:2] for s in agent["states"]])
    s, _ = path.project(xy[:, 0], xy[:, 1])
    return bool((np.abs(s - cross) < 10.0).any())


def cyclist(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng)
    n_fwd = min(n_fwd, 2)
    limit = road_speed_limit(rng, urban=True)
    road = make_road(rng, n_fwd, max(n_back, 1), limit, 140.0, rng.random() < 0.3, n_fwd - 1)
    v0 = limit * uniform(rng, 0.6, 1.0)
    path = road.paths[road.ego_lane]
    size = (round(uniform(rng, 1.6, 1.9), 2), round(uniform(rng, 0.5, 0.7), 2))
    crossing = rng.random() < 0.35
    if crossing:  # from a cycle path on the right, across the road
        cross = road.s_ego + EGO_FRONT + uniform(rng, max(10.0, v0**2 / 6.0 + 4.0), max(14.0, v0 * 3.4))
        t_cv = (cross - road.s_ego - EGO_FRONT) / v0
        v_c = uniform(rng, 3.0, 5.5)
        start_d = -(road.widths[road.ego_lane] / 2 + uniform(rng, 1.0, 3.0))
        t_go = t_cv + uniform(rng, -0.5, 0.3) - abs(start_d) / v_c
        start = path.point(np.array(cross), start_d + (max(-t_go, 0.0) * v_c))
        speed = v_c * np.clip((T - max(t_go, 0.0)) / 0.8 + 0.3, 0.0, 1.0) * (T >= max(t_go, 0.0))
        left_edge = sum(road.widths.values()) - road.widths[road.ego_lane] / 2  # [m] left of our centre
        far_kerb = left_edge - float(path.project(*start)[1]) + 3.0  # stop on the far side
        heading = float(path.pose(np.array(cross))[2]) + np.pi / 2
        bike = walker("cyclist", "bicycle", size, start, heading, speed, max_dist=far_kerb)
        desc = f"cyclist crosses from the right {cross - road.s_ego - EGO_FRONT:.0f} m ahead; ego at {v0:.1f} m/s"
    else:  # riding ahead near the right edge of our lane
        v_c = uniform(rng, 2.5, min(6.0, v0 * 0.6))
        gap = uniform(rng, 8.0, max(10.0, (v0 - v_c) * 3.6))
        lateral = np.full(AGENT_STEPS, -(road.widths[road.ego_lane] / 2 - uniform(rng, 0.6, 1.0)))
        bike = agent_on_path(
            "cyclist",
            "bicycle",
            size,
            path,
            road.s_ego + EGO_FRONT + gap + size[0] / 2,
            v_c,
            accel_steps((0.0, uniform(rng, -0.3, 0.3))),
            lateral,
        )
        desc = f"cyclist {gap:.0f} m ahead in the ego's lane at {v_c:.1f} m/s; ego at {v0:.1f} m/s"
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.3), rng)
    agents = [bike] + background(rng, road, v0, {road.ego_lane})
    tag = "crossing" if crossing else "slow_lead"
    return road_draft(road, ego, agents, desc, ["cyclist", tag, "vulnerable_road_user"], cv=("collision",))
