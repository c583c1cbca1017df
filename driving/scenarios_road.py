"""Scenario families on roads without intersections: cruise (straight, curved), car following,
stop-and-go, stalled vehicle, cut-in, construction zone and merge.

Each family takes a `numpy.random.Generator` and returns a `Draft`. Geometry (lane count 1-4, widths
3.0-3.9 m, curvature, speed limits 30-100 km/h), speeds, gaps, agent kinds and sizes are drawn from
it. The ego drives on a forward lane; lanes are numbered from the road's centre line outwards (f0 is
the leftmost forward lane). Simplified: no shoulders or kerbs, constant lane count except for the
merge lane's taper, background traffic drives at constant speed on its lane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from driving.expert import EGO_FRONT, PathOption
from driving.roads import LaneSpec, Path, RoadParts, build_road, even_cuts, reference_line, uniform_lanes
from driving.scenarios_common import (
    Draft,
    accel_steps,
    agent_on_path,
    choice,
    ego_on_path,
    road_speed_limit,
    smooth_step,
    static_object,
    uniform,
    union_polygons,
    vehicle_size,
)

CHANGE_COST = 8.0  # [m] progress a lane change must gain (in 4 s)
BEHIND = 45.0  # [m] of road behind the ego


@dataclass
class Road:
    parts: RoadParts
    paths: dict[str, Path]  # lane name -> path in driving direction
    widths: dict[str, float]
    limit: float  # [m/s]
    n_fwd: int
    ego_lane: str
    s_ego: float  # [m] ego arc length on its lane path


def make_road(
    rng: np.random.Generator,
    n_fwd: int,
    n_back: int,
    limit: float,
    ahead: float,
    curved: bool,
    ego_lane: int,
    extra: Callable[[int, list[float]], list[LaneSpec]] | None = None,
    cut_at: list[int] | None = None,
) -> Road:
    """A straight or curved road with the ego's lane `ego_lane` BEHIND m from its start. `extra(n,
    widths)` adds lanes (e.g. a merge lane) once the lane widths are drawn."""
    length = BEHIND + ahead
    if curved:
        radius = max(45.0, limit**2 / 1.5, limit / 0.3) * uniform(rng, 1.0, 5.0)
        side = choice(rng, (-1.0, 1.0))
        lead = uniform(rng, 0.0, 40.0)
        arc = uniform(rng, 40.0, 120.0)
        pieces = [(BEHIND + lead, 0.0), (arc, side / radius)]
        pieces.append(
            (
                max(length - BEHIND - lead - arc, 10.0),
                choice(rng, (0.0, -side / radius * uniform(rng, 0.5, 1.0))),
            )
        )
    else:
        pieces = [(length, 0.0)]
    ref = reference_line((0.0, 0.0, uniform(rng, -np.pi, np.pi)), pieces)
    n = len(ref)
    widths = [round(uniform(rng, 3.0, 3.9), 2)] * (n_fwd + n_back)
    if rng.random() < 0.3:
        widths = [round(uniform(rng, 3.0, 3.9), 2) for _ in range(n_fwd + n_back)]
    specs = uniform_lanes(n, n_fwd, n_back, widths, limit, limit) + (extra(n, widths) if extra else [])
    cuts = even_cuts(n, int(uniform(rng, 20, BEHIND + 20)), int(uniform(rng, 40, 80)))
    # NAVSIM loads roadblocks within 100 m of the ego: the block covering 90-150 m ahead must start
    # inside that disk, or a fast ego leaves the loaded map
    cuts = sorted({c for c in cuts if not BEHIND + 90 < c < min(BEHIND + 150, n - 1)} | set(cut_at or []))
    parts = build_road("R", ref, specs, cuts)
    paths = {name: Path(xy) for name, xy in parts.lane_xy.items()}
    name = f"f{ego_lane}"
    s_ego = float(paths[name].project(*ref[int(BEHIND)])[0])
    return Road(parts, paths, {s.name: float(s.width[0]) for s in specs}, limit, n_fwd, name, s_ego)


def road_map(road: Road) -> tuple[dict, object]:
    """JSON map (route: forward roadblocks from the ego's on) and the drivable area."""
    ego_xy = road.paths[road.ego_lane].point(np.array(road.s_ego))
    route = list(road.parts.fwd_ids)
    for i, poly in enumerate(road.parts.fwd_polygon):
        if shapely.contains_xy(shapely.Polygon(poly), *ego_xy):
            route = route[i:]
            break
    m = {"roadblocks": road.parts.roadblocks, "route_roadblock_ids": route}
    return m, union_polygons([rb["polygon"] for rb in road.parts.roadblocks])


def road_options(road: Road, lanes: list[str] | None = None) -> list[PathOption]:
    """Keep the ego's lane, or change to an adjacent forward lane."""
    idx = int(road.ego_lane[1:])
    opts = []
    for name, label in (
        (road.ego_lane, "keep_lane"),
        (f"f{idx - 1}", "change_left"),
        (f"f{idx + 1}", "change_right"),
    ):
        if name in road.paths and (lanes is None or name in lanes):
            p = road.paths[name]
            opts.append(
                PathOption(
                    label,
                    p,
                    np.full(len(p.s), road.limit),
                    road.widths[name],
                    change_cost=0.0 if label == "keep_lane" else CHANGE_COST,
                )
            )
    return opts


def lane_s(road: Road, lane: str) -> float:
    """Arc length on `lane` abreast of the ego."""
    xy = road.paths[road.ego_lane].point(np.array(road.s_ego))
    return float(road.paths[lane].project(*xy)[0])


def traffic(
    rng: np.random.Generator,
    road: Road,
    lane: str,
    lo: float,
    hi: float,
    v_mean: float,
    prefix: str,
    keep_out: tuple[float, float] | None = None,
    density: float = 1.0,
) -> list[dict]:
    """Vehicles on `lane` between lo and hi m along the lane's driving direction, relative to abreast
    of the ego, at near-constant speeds that never close a gap within 5 s; all 5 s stay on the lane.
    `keep_out`: an interval (relative) left empty."""
    path = road.paths[lane]
    base = lane_s(road, lane)
    placed: list[tuple[float, float, tuple[float, float]]] = []  # (s centre, speed, size)
    s = lo + uniform(rng, 0.0, 15.0) / density
    while s < hi:
        size = vehicle_size(
            rng,
            ("car", "car", "car", "suv", "van", "truck") if road.limit > 15 else ("car", "car", "suv", "van"),
        )
        v = max(0.0, v_mean * uniform(rng, 0.9, 1.05))
        on_lane = size[0] / 2 + 1.0 < base + s and base + s + v * 5.0 + size[0] / 2 + 1.0 < path.length
        free = keep_out is None or not (keep_out[0] - size[0] < s < keep_out[1] + size[0])
        if on_lane and free:
            placed.append((s, v, size))
        s += size[0] + max(6.0, v_mean * uniform(rng, 1.2, 2.8)) / density
    # from the front back: a follower is never faster than its leader plus gap/5 s
    placed.sort(key=lambda p: -p[0])
    for k in range(1, len(placed)):
        s_f, v_f, size_f = placed[k]
        s_l, v_l, size_l = placed[k - 1]
        gap = s_l - s_f - (size_l[0] + size_f[0]) / 2
        placed[k] = (s_f, min(v_f, v_l + max(gap - 4.0, 0.0) / 5.0), size_f)
    return [
        agent_on_path(f"{prefix}{k}", "vehicle", size, path, base + sc, v)
        for k, (sc, v, size) in enumerate(placed)
    ]


def ego_state(road: Road, v0: float, a0: float, rng: np.random.Generator) -> dict:
    return ego_on_path(road.paths[road.ego_lane], road.s_ego, v0, a0, d0=uniform(rng, -0.2, 0.2))


def background(
    rng: np.random.Generator,
    road: Road,
    v0: float,
    skip: set[str],
    keep_out: dict[str, tuple[float, float]] | None = None,
) -> list[dict]:
    """Traffic on every lane except `skip`: forward lanes near the limit, oncoming lanes too."""
    agents: list[dict] = []
    keep_out = keep_out or {}
    for name in road.paths:
        if name in skip or name.startswith("m"):
            continue
        fwd = name.startswith("f")
        v = road.limit * uniform(rng, 0.75, 1.0)
        if not fwd:  # oncoming: negative = still ahead of the ego
            agents += traffic(rng, road, name, -160.0, 20.0, v, f"o{name}_", density=uniform(rng, 0.4, 1.0))
        else:
            lo, hi = -40.0, 110.0
            agents += traffic(
                rng, road, name, lo, hi, v, f"t{name}_", keep_out.get(name), density=uniform(rng, 0.3, 1.0)
            )
    return agents


def lane_counts(rng: np.random.Generator, lo: int = 1) -> tuple[int, int]:
    n_fwd = choice(rng, [n for n in (1, 2, 3, 4) if n >= lo], None)
    n_back = choice(rng, (0, 1, 2)) if n_fwd > 1 else choice(rng, (1, 1, 2))
    return n_fwd, n_back


def road_draft(
    road: Road,
    ego: dict,
    agents: list[dict],
    desc: str,
    tags: list[str],
    cv: tuple[str, ...] = (),
    options: list[PathOption] | None = None,
) -> Draft:
    m, drivable = road_map(road)
    tags = tags + [f"{road.n_fwd}_lane{'s' if road.n_fwd > 1 else ''}"]
    return Draft(
        m, ego, agents, options or road_options(road), drivable, "straight", desc, tags, cv_fails_by=cv
    )


# ------------------------------------------------------------------------------------ families ---


def cruise(rng: np.random.Generator, curved: bool) -> Draft:
    n_fwd, n_back = lane_counts(rng)
    limit = road_speed_limit(rng, urban=n_fwd == 1)
    road = make_road(rng, n_fwd, n_back, limit, max(130.0, limit * 4 + 70), curved, int(rng.integers(n_fwd)))
    v0 = limit * uniform(rng, 0.65, 1.03)
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.5), rng)
    agents = background(rng, road, v0, {road.ego_lane})
    if rng.random() < 0.6:  # a lead far ahead in our lane
        agents += traffic(
            rng, road, road.ego_lane, v0 * 2.5 + 25, 120.0, max(v0, limit * 0.9), "lead", density=0.5
        )
    shape = "curved" if curved else "straight"
    return road_draft(
        road,
        ego,
        agents,
        f"{shape} {n_fwd}-lane road at {limit * 3.6:.0f} km/h; ego cruises at {v0:.1f} m/s",
        [shape],
    )


def cruise_straight(rng: np.random.Generator) -> Draft:
    return cruise(rng, curved=False)


def cruise_curved(rng: np.random.Generator) -> Draft:
    return cruise(rng, curved=True)


def follow(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng)
    limit = road_speed_limit(rng)
    # the lead drives up to ~9 s worth of road ahead of the ego within the 5 s of its states
    road = make_road(
        rng, n_fwd, n_back, limit, max(130.0, limit * 9 + 60), rng.random() < 0.4, int(rng.integers(n_fwd))
    )
    v0 = limit * uniform(rng, 0.5, 1.0)
    gap = 4.0 + v0 * uniform(rng, 1.0, 2.5)
    behaviour = choice(rng, ("steady", "brake", "accelerate", "slower"))
    v_lead = v0 * (uniform(rng, 0.7, 0.9) if behaviour == "slower" else uniform(rng, 0.85, 1.1))
    pieces = {
        "steady": [(0.0, 0.0)],
        "slower": [(0.0, 0.0)],
        "brake": [
            (0.0, 0.0),
            (uniform(rng, 0.0, 2.0), -uniform(rng, 0.8, 2.2)),
            (uniform(rng, 2.5, 4.0), 0.0),
        ],
        "accelerate": [(0.0, uniform(rng, 0.5, 1.5))],
    }[behaviour]
    size = vehicle_size(rng, ("car", "car", "suv", "van", "truck", "bus"))
    lead = agent_on_path(
        "lead",
        "vehicle",
        size,
        road.paths[road.ego_lane],
        road.s_ego + EGO_FRONT + gap + size[0] / 2,
        v_lead,
        accel_steps(*pieces),
    )
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.3), rng)
    agents = [lead] + background(rng, road, v0, {road.ego_lane})
    tag = {
        "brake": "lead_braking",
        "accelerate": "lead_accelerating",
        "slower": "lead_slower",
        "steady": "lead_steady",
    }[behaviour]
    desc = f"{n_fwd}-lane road; lead {size[0]:.1f} m vehicle {gap:.0f} m ahead at {v_lead:.1f} m/s ({tag.replace('_', ' ')}); ego at {v0:.1f} m/s"
    return road_draft(road, ego, agents, desc, ["car_following", tag])


def stop_and_go(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng)
    limit = road_speed_limit(rng, urban=True)
    road = make_road(rng, n_fwd, n_back, limit, 130.0, rng.random() < 0.3, int(rng.integers(n_fwd)))
    v0 = uniform(rng, 0.5, 7.0)
    agents = []
    s = road.s_ego + EGO_FRONT + uniform(rng, 4.0, 6.0 + 1.5 * v0)
    v_lead = max(0.0, v0 + uniform(rng, -2.0, 1.5))
    a1, t1, a2 = uniform(rng, -2.0, 0.8), uniform(rng, 1.0, 3.0), uniform(rng, -1.0, 1.5)
    for k in range(int(rng.integers(1, 4))):  # the queue ahead, each a bit later in phase
        size = vehicle_size(rng)
        agents.append(
            agent_on_path(
                f"q{k}",
                "vehicle",
                size,
                road.paths[road.ego_lane],
                s + size[0] / 2,
                v_lead,
                accel_steps((0.0, a1 * (1 - 0.2 * k)), (t1 - 0.5 * k, a2)),
            )
        )
        s += size[0] + uniform(rng, 3.0, 5.0) + v_lead * 1.2
    for name in road.paths:
        if name.startswith("f") and name != road.ego_lane:
            agents += traffic(rng, road, name, -30.0, 80.0, uniform(rng, 0.5, 6.0), f"t{name}_", density=1.5)
    ego = ego_state(road, v0, uniform(rng, -0.5, 0.5), rng)
    desc = f"stop-and-go traffic on a {n_fwd}-lane road; queue ahead at {v_lead:.1f} m/s, ego at {v0:.1f} m/s"
    return road_draft(
        road, ego, agents, desc, ["traffic_jam", "lead_braking" if a1 < -0.5 else "lead_creeping"]
    )


def stalled_vehicle(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng, lo=2)
    limit = road_speed_limit(rng, urban=rng.random() < 0.5)
    road = make_road(
        rng, n_fwd, n_back, limit, max(140.0, limit * 4 + 80), rng.random() < 0.3, int(rng.integers(n_fwd))
    )
    v0 = limit * uniform(rng, 0.6, 1.0)
    lo = max(14.0, 0.5 * v0**2 / 3.0 + 0.5 * v0)
    gap = uniform(rng, lo, max(lo + 2.0, v0 * 4.0 - 6.0))
    kind = choice(rng, ("car", "car", "suv", "van", "truck", "bus"))
    size = vehicle_size(rng, (kind,))
    stalled = agent_on_path(
        "stalled",
        "vehicle",
        size,
        road.paths[road.ego_lane],
        road.s_ego + EGO_FRONT + gap + size[0] / 2,
        0.0,
        lateral=np.full(51, uniform(rng, -0.4, 0.4)),
    )
    idx = int(road.ego_lane[1:])
    escape = choice(rng, [f"f{i}" for i in (idx - 1, idx + 1) if 0 <= i < n_fwd])
    keep_out = {escape: (-25.0, gap + 30.0)} if rng.random() < 0.85 else {}
    agents = [stalled] + background(rng, road, v0, {road.ego_lane}, keep_out)
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.3), rng)
    desc = f"stalled {kind} {gap:.0f} m ahead in the ego's lane of a {n_fwd}-lane road; ego at {v0:.1f} m/s"
    return road_draft(road, ego, agents, desc, ["stalled_vehicle", "static_obstacle"], cv=("collision",))


def cut_in(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng, lo=2)
    limit = road_speed_limit(rng)
    road = make_road(
        rng, n_fwd, n_back, limit, max(140.0, limit * 4 + 80), rng.random() < 0.3, int(rng.integers(n_fwd))
    )
    v0 = limit * uniform(rng, 0.6, 1.0)
    idx = int(road.ego_lane[1:])
    side = choice(rng, [i for i in (idx - 1, idx + 1) if 0 <= i < n_fwd])
    from_lane = f"f{side}"
    offset = (road.widths[road.ego_lane] + road.widths[from_lane]) / 2 * (1.0 if side < idx else -1.0)
    size = vehicle_size(rng)
    ahead = uniform(rng, 1.0, 12.0) + v0 * uniform(rng, 0.0, 0.6)
    v_cut = v0 * uniform(rng, 0.55, 0.95)
    t_cut, dur = uniform(rng, 0.0, 1.2), uniform(rng, 1.5, 3.0)
    t = np.arange(51) * 0.1
    lateral = offset * (1 - smooth_step(t, t_cut, dur))
    brake = accel_steps((0.0, 0.0), (t_cut + dur * uniform(rng, 0.5, 1.0), -uniform(rng, 0.0, 2.0)))
    cutter = agent_on_path(
        "cut_in",
        "vehicle",
        size,
        road.paths[road.ego_lane],
        road.s_ego + EGO_FRONT + ahead + size[0] / 2,
        v_cut,
        brake,
        lateral,
    )
    agents = [cutter] + background(rng, road, v0, {road.ego_lane}, {from_lane: (-30.0, ahead + 40.0)})
    ego = ego_state(road, v0, uniform(rng, -0.2, 0.3), rng)
    desc = f"vehicle cuts in from the {'left' if side < idx else 'right'} {ahead:.0f} m ahead at {v_cut:.1f} m/s; ego at {v0:.1f} m/s"
    return road_draft(road, ego, agents, desc, ["cut_in", "lead_braking"], cv=("collision",))


def construction_zone(rng: np.random.Generator) -> Draft:
    n_fwd, n_back = lane_counts(rng, lo=2)
    limit = road_speed_limit(rng, urban=rng.random() < 0.6)
    road = make_road(rng, n_fwd, n_back, limit, max(150.0, limit * 4 + 90), False, int(rng.integers(n_fwd)))
    v0 = limit * uniform(rng, 0.55, 0.95)
    idx = int(road.ego_lane[1:])
    open_i = choice(rng, [i for i in (idx - 1, idx + 1) if 0 <= i < n_fwd])
    toward = 1.0 if open_i < idx else -1.0  # the open lane lies left (+) or right (-)
    w = road.widths[road.ego_lane]
    path = road.paths[road.ego_lane]
    start = road.s_ego + EGO_FRONT + uniform(rng, max(12.0, 0.4 * v0**2 / 3.0), max(14.0, v0 * 4.0 - 8.0))
    taper, zone = uniform(rng, 12.0, 25.0), uniform(rng, 30.0, 70.0)
    line = toward * (w / 2 - 0.9)  # the row stands inside the closed lane
    agents = [
        static_object(
            "sign", "czone_sign", (0.6, 0.6), *path.point(np.array(start - 8.0), -toward * (w / 2 - 0.4)), 0.0
        )
    ]
    spacing = uniform(rng, 2.5, 4.0)
    for k, s in enumerate(np.arange(0.0, taper + 1e-6, spacing)):
        d = -toward * (w / 2 - 0.4) + (line + toward * (w / 2 - 0.4)) * s / taper
        agents.append(
            static_object(f"cone{k}", "traffic_cone", (0.45, 0.45), *path.point(np.array(start + s), d), 0.0)
        )
    kind = choice(rng, ("barrier", "traffic_cone"))
    step = 2.2 if kind == "barrier" else spacing
    for k, s in enumerate(np.arange(start + taper + step, start + taper + zone, step)):
        x, y = path.point(np.array(s), line)
        h = float(path.pose(np.array(s))[2])
        agents.append(
            static_object(f"{kind}{k}", kind, (2.0, 0.5) if kind == "barrier" else (0.45, 0.45), x, y, h)
        )
    for a in agents:  # round headings to what JSON keeps
        a["states"] = [[*row[:2], round(row[2], 3), 0.0, 0.0] for row in a["states"]]
    agents += background(
        rng, road, v0, {road.ego_lane}, {f"f{open_i}": (-25.0, start - road.s_ego + taper + zone)}
    )
    ego = ego_state(road, v0, uniform(rng, -0.3, 0.2), rng)
    desc = f"construction zone closes the ego's lane {start - road.s_ego - EGO_FRONT:.0f} m ahead ({kind}s, {zone:.0f} m); ego at {v0:.1f} m/s"
    opts = [o for o in road_options(road) if o.label == "keep_lane" or o.path is road.paths[f"f{open_i}"]]
    return road_draft(
        road, ego, agents, desc, ["construction_zone", "lane_closure", kind], cv=("collision",), options=opts
    )


def merge(rng: np.random.Generator) -> Draft:
    n_main = choice(rng, (1, 2, 2, 3))
    n_back = choice(rng, (0, 1)) if n_main > 1 else 1
    limit = road_speed_limit(rng)
    v0 = limit * uniform(rng, 0.55, 0.9)
    end = uniform(rng, 20.0, max(24.0, v0 * 4.0 - 4.0))  # [m] from the ego to the merge lane's end
    taper = min(uniform(rng, 35.0, 60.0), end + 20.0)
    ahead = max(150.0, limit * 4 + 90)
    w = round(uniform(rng, 3.6, 4.2), 2)  # merge lanes are wide
    last = int(BEHIND + end)

    def ramp(n: int, widths: list[float]) -> list[LaneSpec]:
        edge = sum(widths[:n_main])
        s = np.arange(n) * 1.0
        off0, off1 = -(edge + w / 2), -(edge - widths[n_main - 1] / 2)
        offset = off0 + (off1 - off0) * smooth_step(s, BEHIND + end - taper, taper)
        return [LaneSpec(f"f{n_main}", offset, np.full(n, w), limit, last=last, merges_into=f"f{n_main - 1}")]

    road = make_road(rng, n_main, n_back, limit, ahead, False, n_main, extra=ramp, cut_at=[last])
    main = f"f{n_main - 1}"
    v_main = limit * uniform(rng, 0.8, 1.0)
    agents = traffic(rng, road, main, -60.0, 130.0, v_main, "m", density=uniform(rng, 0.5, 1.0))
    agents += background(rng, road, v0, {road.ego_lane, main})
    ego = ego_state(road, v0, uniform(rng, 0.0, 0.8), rng)
    desc = f"ego on a merge lane that ends {end:.0f} m ahead; main-lane traffic at {v_main:.1f} m/s; ego at {v0:.1f} m/s"
    p = road.paths[main]
    ramp_xy = road.paths[road.ego_lane].xy
    s_end = float(p.project(*ramp_xy[-1])[0])
    keep = Path(np.concatenate([ramp_xy, p.xy[p.s > s_end + 0.5]]))  # the merge lane, then the main lane
    opts = [PathOption("keep_lane", keep, np.full(len(keep.s), limit), road.widths[road.ego_lane])]
    opts.append(PathOption("change_left", p, np.full(len(p.s), limit), road.widths[main]))
    return road_draft(
        road, ego, agents, desc, ["merge", "lane_ends"], cv=("collision", "offroad"), options=opts
    )
