"""The synthetic long-tail driving-scenario generator: family registry, default mix, scene assembly and
the validity check.

`generate_scene(family, seed, scene_id)` draws a scene of one family from `numpy.random.default_rng(seed)`
(same seed -> byte-identical `dumps_scene`), plans it with the privileged expert (driving/expert.py) and
fills `trajectory` and `sample` with the expert's plan. A draw is rejected and the next one taken from
the same stream when the expert finds no safe plan, or when a long-tail draw turns out easy: the
constant-velocity plan must fail it in one of the family's ways (collision, leaving the road, running
the red light; for the unprotected left also ending > 4 m beside the route). On average a scene needs
1-1.6 draws (merge ~2.5).

The default mix follows real logs: common driving 87.5 % (cruise straight 24, cruise curved 20, car
following 24, stop-and-go 11, right turn 8.5), the 8 long-tail families (stalled vehicle, cut-in,
pedestrian crossing, cyclist, unprotected left, red light, construction zone, merge) 12.5 % together.

Simplified: the expert's final check drives the plan through the scorer package's LQR simulation, so
generated scenes depend on that code as well as on the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely

from driving import scenarios_road as road
from driving import scenarios_urban as urban
from driving.expert import (
    EGO_FRONT,
    N_STEPS,
    Plan,
    agent_tracks,
    ego_box_corners,
    ego_collides,
    plan_expert,
    plan_fine_poses,
)
from driving.geometry import drivable_area
from driving.roads import Path
from driving.scenarios_common import Draft
from driving.scene import (
    NUM_PLAN_POSES,
    POSE_INTERVAL_S,
    STATIC_AGENT_TYPES,
    Agent,
    EgoState,
    MetaAction,
    Sample,
    Scene,
    Trajectory,
)

MAX_DRAWS = 40  # rejected draws before giving up on a seed
KERB_M = 6.0  # [m] pedestrians and cyclists may stand this far outside the drivable area
MIN_ROUTE_M = 100.0  # [m] of route ahead of the ego


@dataclass(frozen=True)
class Family:
    name: str
    difficulty: Literal["common", "long_tail"]
    weight: float  # default share (relative)
    build: Callable[[np.random.Generator], Draft]


_LONG_TAIL = 12.5 / 8  # [%] each of the 8 long-tail families
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("cruise_straight", "common", 24.0, road.cruise_straight),
        Family("cruise_curved", "common", 20.0, road.cruise_curved),
        Family("follow", "common", 24.0, road.follow),
        Family("stop_and_go", "common", 11.0, road.stop_and_go),
        Family("right_turn", "common", 8.5, urban.right_turn),
        Family("stalled_vehicle", "long_tail", _LONG_TAIL, road.stalled_vehicle),
        Family("cut_in", "long_tail", _LONG_TAIL, road.cut_in),
        Family("pedestrian_crossing", "long_tail", _LONG_TAIL, urban.pedestrian_crossing),
        Family("cyclist", "long_tail", _LONG_TAIL, urban.cyclist),
        Family("unprotected_left", "long_tail", _LONG_TAIL, urban.unprotected_left),
        Family("red_light", "long_tail", _LONG_TAIL, urban.red_light),
        Family("construction_zone", "long_tail", _LONG_TAIL, road.construction_zone),
        Family("merge", "long_tail", _LONG_TAIL, road.merge),
    ]
}
DEFAULT_MIX: dict[str, float] = {name: f.weight for name, f in FAMILIES.items()}


def sample_families(count: int, seed: int, mix: dict[str, float] | None = None) -> list[str]:
    """`count` family names drawn i.i.d. from `mix` (weights; default DEFAULT_MIX; families left out
    or at 0 never appear)."""
    mix = DEFAULT_MIX if mix is None else mix
    unknown = sorted(set(mix) - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {', '.join(FAMILIES)}"
        )
    if any(w < 0 for w in mix.values()):
        raise ValueError("mix weights must be >= 0")
    names = [n for n in FAMILIES if mix.get(n, 0.0) > 0.0]
    if not names:
        raise ValueError("the mix needs at least one family with a positive weight")
    p = np.array([mix[n] for n in names], dtype=np.float64)
    idx = np.random.default_rng(seed).choice(len(names), size=count, p=p / p.sum())
    return [names[i] for i in idx]


def generate_scene(family: str, seed: int, scene_id: str) -> Scene:
    """One scene of `family`, fully determined by `seed`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    rng = np.random.default_rng(seed)
    fallback = None
    for _ in range(MAX_DRAWS):
        draft = fam.build(rng)
        ego = EgoState.model_validate(draft.ego)
        agents = [Agent.model_validate(a) for a in draft.agents]
        plan = plan_expert(ego, draft.options, agents, draft.drivable)
        if not plan.ok:
            continue
        fallback = fallback or (draft, ego, agents, plan)
        if draft.cv_fails_by and not set(constant_velocity_failures(draft, ego, agents)) & set(
            draft.cv_fails_by
        ):
            continue
        return _assemble(fam, seed, scene_id, draft, ego, agents, plan)
    if fallback is None:
        raise RuntimeError(f"{family}: no draw with a safe expert plan in {MAX_DRAWS} tries (seed {seed})")
    return _assemble(fam, seed, scene_id, *fallback)


def _assemble(
    fam: Family, seed: int, scene_id: str, draft: Draft, ego: EgoState, agents: list[Agent], plan: Plan
) -> Scene:
    poses = np.round(plan.poses, 4).tolist()
    traj = Trajectory(poses=poses, frame="local")
    meta = meta_action(plan, ego)
    tags = list(dict.fromkeys(draft.tags + _plan_tags(meta)))
    sample = Sample(
        command=draft.command,
        expert=traj,
        family=fam.name,
        difficulty=fam.difficulty,
        tags=tags,
        meta_action=meta,
        seed=int(seed),
    )
    return Scene(
        ego=ego,
        map=draft.map,
        agents=agents,
        trajectory=traj,
        description=draft.description,
        id=scene_id,
        sample=sample,
        **({"traffic_lights": draft.traffic_lights} if draft.traffic_lights else {}),
    )


def meta_action(plan: Plan, ego: EgoState) -> MetaAction:
    """Lateral from the chosen option and how far the plan really turns or shifts; longitudinal from
    its speed profile."""
    dh = float(plan.poses[-1, 2])
    lat = "keep_lane"
    if plan.label.startswith("turn") and abs(dh) > 0.25:
        lat = "turn_left" if dh > 0 else "turn_right"
    elif plan.label.startswith("change") and abs(plan.poses[-1, 1]) > 1.0:
        lat = plan.label
    v0, v = max(ego.vx, 0.0), plan.fine[:, 3]
    if v[-1] < 0.3 and v.min() < 0.3:
        lon = "stop"
    elif v[-1] > v0 + 1.0:
        lon = "accelerate"
    elif v[-1] < v0 - 1.0 or v.min() < v0 - 2.0:
        lon = "decelerate"
    else:
        lon = "keep_speed"
    return MetaAction(lateral=lat, longitudinal=lon)


def _plan_tags(meta: MetaAction) -> list[str]:
    tags = []
    if meta.lateral.startswith("change"):
        tags.append("lane_change")
    if meta.longitudinal == "stop":
        tags.append("ego_stops")
    return tags


# ------------------------------------------------------------------------ constant velocity ---


def constant_velocity_failures(draft: Draft, ego: EgoState, agents: list[Agent]) -> list[str]:
    """How the plan that keeps the current speed and heading fails: collision, offroad, red_light,
    off_route (ends > 4 m beside the route's lane, e.g. straight on where the route turns)."""
    t = np.arange(1, NUM_PLAN_POSES + 1) * POSE_INTERVAL_S
    local = np.stack([ego.vx * t, np.zeros_like(t), np.zeros_like(t)], axis=-1)
    fine = plan_fine_poses(local, ego)
    out = []
    if ego_collides(fine, agent_tracks(agents, N_STEPS)).any():
        out.append("collision")
    corners = ego_box_corners(fine[:, 0], fine[:, 1], fine[:, 2])
    if not shapely.contains_xy(draft.drivable, corners[..., 0], corners[..., 1]).all():
        out.append("offroad")
    s, d = draft.options[0].path.project(fine[:, 0], fine[:, 1])
    if draft.stop_s is not None and (s + EGO_FRONT > draft.stop_s).any():
        out.append("red_light")
    if abs(d[-1]) > 4.0:
        out.append("off_route")
    return out


# ------------------------------------------------------------------------------- validity ---


def check_scene(scene: Scene) -> list[str]:
    """Problems that make a generated scene invalid (empty list = valid):
    * route: consecutive route roadblocks are linked by lane `outgoing` edges; their lanes lie in the
      drivable area (connectors: in an intersection polygon); >= 100 m of route ahead of the ego;
    * agents: vehicles' and static objects' centres inside the drivable area at every frame (0.5 m
      slack); pedestrians and cyclists within KERB_M of it (they may start on the kerb);
    * expert: with the plan interpolated to 0.1 s as the scorer does, the whole ego box stays inside
      the drivable area and overlaps no agent box (agents interpolated to 0.1 s)."""
    problems: list[str] = []
    area = drivable_area(scene)
    shapely.prepare(area)
    problems += _route_problems(scene, area)
    problems += _agent_problems(scene, area)
    if scene.sample is None:
        return problems + ["sample: missing"]
    ego = scene.ego
    fine = plan_fine_poses(np.asarray(scene.sample.expert.poses), ego)
    corners = ego_box_corners(fine[:, 0], fine[:, 1], fine[:, 2])
    out = ~shapely.contains_xy(area, corners[..., 0], corners[..., 1]).all(axis=-1)
    if out.any():
        problems.append(f"expert: ego box leaves the drivable area at t = {np.argmax(out) * 0.1:.1f} s")
    hits = ego_collides(fine, agent_tracks(scene.agents, N_STEPS))
    if hits.any():
        problems.append(f"expert: ego box overlaps an agent at t = {np.argmax(hits) * 0.1:.1f} s")
    return problems


def _route_problems(scene: Scene, area: shapely.Geometry) -> list[str]:
    m = scene.map
    blocks = {rb.id: rb for rb in m.all_roadblocks()}
    connector_ids = {rb.id for rb in m.roadblock_connectors or []}
    problems = []
    route = m.route_roadblock_ids
    for a, b in zip(route[:-1], route[1:]):
        lanes_b = {ln.id for ln in blocks[b].lanes}
        if not any(set(ln.outgoing or []) & lanes_b for ln in blocks[a].lanes):
            problems.append(f"route: no lane of {a} leads into {b}")
    length = 0.0
    for rid in route:
        for ln in blocks[rid].lanes[:1]:
            pts = np.asarray(ln.centerline)
            inside = shapely.contains_xy(area, pts[:, 0], pts[:, 1]) | (
                shapely.distance(area, shapely.points(pts)) < 0.05
            )
            if not inside.all():
                kind = "connector" if rid in connector_ids else "roadblock"
                problems.append(f"route: {kind} {rid} lane {ln.id} leaves the drivable area")
    first = Path(np.concatenate([np.asarray(blocks[rid].lanes[0].centerline) for rid in route]))
    s_ego, _ = first.project(np.array(scene.ego.x), np.array(scene.ego.y))
    length = first.length - float(s_ego)
    if length < MIN_ROUTE_M - 5.0:
        problems.append(f"route: only {length:.0f} m ahead of the ego (need ~{MIN_ROUTE_M:.0f} m)")
    return problems


def _agent_problems(scene: Scene, area: shapely.Geometry) -> list[str]:
    problems = []
    for ag in scene.agents:
        pts = np.array(
            [s[:2] for s in (ag.states or []) if s is not None] or [[ag.x, ag.y]], dtype=np.float64
        )
        dist = shapely.distance(area, shapely.points(pts))
        slack = KERB_M if ag.type in ("pedestrian", "bicycle") else 0.5
        if (dist > slack).any():
            what = "static object" if ag.type in STATIC_AGENT_TYPES else ag.type
            problems.append(
                f"agent {ag.id}: {what} {dist.max():.1f} m outside the drivable area (allowed {slack} m)"
            )
    return problems
