"""The per-scene cache (NAVSIM's metric cache), built once and reused for any number of candidates.

`prepare(scene)` builds what every metric needs: the map and drivable-area map, the corrected route and
its centerline, the ego's initial state. What depends on the NAVSIM version (the scoring observation,
PDM-Closed's choice of reference, the human trajectory's sub-metrics, the history that pads history
comfort) is built on first use and kept, so a cache serves PDMS and EPDMS alike and pays only for what is
asked.

PDM-Closed's proposals do not depend on the version; their simulation and their footprint (the map-only
part of the sub-metrics) are shared too, and computed in the same batch as the first candidates (rows are
independent, so nothing changes but time). The reference is the best proposal, simulated from the ego's
initial state. NAVSIM stores it as a trajectory, samples it back at the same 0.1 s knots (which may change
the last bit of a pose) and simulates it a second time next to the candidate; the first simulation is
reused here instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from driving.scene import HISTORY_TIMES_S, Scene
from scorer.boxes import box_corners, ego_centers, polygons
from scorer.constants import EGO_HALF_LENGTH, EGO_HALF_WIDTH, MAP_RADIUS, STATE_SIZE, S
from scorer.interp import global_to_local, interp_linear, plan_to_poses, principal_value
from scorer.mapdata import DrivableMap, MapModel, build_drivable_map, build_map
from scorer.observation import Observation, forecast_observation, red_light_polygons, scoring_observation
from scorer.reference import generate_proposals, proposal_paths
from scorer.route import Route, build_route, route_lanes
from scorer.scoring import Context, Footprint, Metrics, evaluate, footprint, progress_score, weighted_score
from scorer.simulation import simulate

V1_FRAMES, V1_STEPS = 11, 51  # agent frames (0-5 s) and 10 Hz steps NAVSIM v1 observes
V2_FRAMES, V2_STEPS = 9, 41  # 0-4 s


@dataclass(eq=False)
class Reference:
    """PDM-Closed's chosen proposal; its sub-metrics against the scoring observation come later."""

    index: int  # proposal index (path-major: centerline, -1 m, +1 m; policies 0.2..1.0 × limit)
    poses: np.ndarray  # (41, 3) global rear-axle poses of the proposal
    states: np.ndarray  # (1, 41, 11) simulated
    footprint: Footprint  # its footprint, taken from the proposals' (rows are independent)
    metrics: Metrics | None = None


@dataclass(eq=False)
class SceneCache:
    """Everything `score` needs about one scene. Build with `prepare`."""

    scene: Scene
    origin: np.ndarray  # (3,) rear-axle pose at t = 0
    initial_state: np.ndarray  # (11,) NAVSIM state array of the ego at t = 0
    ego_box: np.ndarray  # (4, 2) ego corners at t = 0
    map: MapModel
    drivable: DrivableMap
    route: Route
    _lazy: dict = field(default_factory=dict)

    # --- shared by both versions ------------------------------------------------------------
    def proposal_poses(self) -> np.ndarray:
        """PDM-Closed's 15 proposals (15, 41, 3): IDM unrolled along the centerline and its offsets."""
        if "proposal_poses" not in self._lazy:
            paths = proposal_paths(self.route.centerline)
            speed, limit = self.initial_state[S.VX], self.route.start_lane.speed_limit
            self._lazy["proposal_poses"] = generate_proposals(
                paths, self.origin, speed, limit, self.forecast()
            )
        return self._lazy["proposal_poses"]

    def simulate(self, poses: np.ndarray) -> np.ndarray:
        """Simulate (K, 41, 3) reference poses from the ego's initial state. The first call also simulates
        PDM-Closed's proposals in the same batch (rows are independent, so nothing changes but time)."""
        if "proposal_states" in self._lazy:
            return simulate(self.initial_state, poses)
        proposals = self.proposal_poses()
        states = simulate(self.initial_state, np.concatenate([proposals, poses]))
        self._lazy["proposal_states"] = states[: len(proposals)]
        return states[len(proposals) :]

    def proposal_states(self) -> np.ndarray:
        """(15, 41, 11) simulated proposals."""
        if "proposal_states" not in self._lazy:
            self.simulate(np.zeros((0, self.proposal_poses().shape[1], 3)))
        return self._lazy["proposal_states"]

    def footprint(self, states: np.ndarray) -> Footprint:
        """Footprint of simulated states (K, 41, 11). The first call also computes the proposals' in the same
        batch (rows are independent), as `simulate` does."""
        route = self.route
        if "proposal_footprint" in self._lazy:
            return footprint(states, self.drivable, route.lane_ids, route.centerline)
        proposals = self.proposal_states()
        both = footprint(np.concatenate([proposals, states]), self.drivable, route.lane_ids, route.centerline)
        self._lazy["proposal_footprint"] = both.take(slice(0, len(proposals)))
        return both.take(slice(len(proposals), None))

    def proposal_footprint(self) -> Footprint:
        if "proposal_footprint" not in self._lazy:
            self.footprint(np.zeros((0,) + self.proposal_states().shape[1:]))
        return self._lazy["proposal_footprint"]

    def forecast(self) -> Observation:
        """PDM-Closed's own constant-velocity observation (red lights of the corrected route)."""
        if "forecast" not in self._lazy:
            red = red_light_polygons(self.scene, self.route.lane_ids, self.map.lanes)
            self._lazy["forecast"] = forecast_observation(self.scene, self.ego_center, self.ego_box, red)
        return self._lazy["forecast"]

    @property
    def ego_center(self) -> np.ndarray:
        return ego_centers(self.initial_state[None, :3])[0]

    # --- per version ---------------------------------------------------------------------------
    def context(self, version: int) -> Context:
        """Scoring context with the metric cache's observation of `version` (1 or 2)."""
        key = f"context{version}"
        if key not in self._lazy:
            if version == 1:
                obs = scoring_observation(self.scene, V1_FRAMES, V1_STEPS, self.ego_box, None)
            else:
                lanes = route_lanes(self.map, list(dict.fromkeys(self.scene.map.route_roadblock_ids)))
                red = red_light_polygons(self.scene, lanes, self.map.lanes)
                obs = scoring_observation(self.scene, V2_FRAMES, V2_STEPS, self.ego_box, red)
            self._lazy[key] = Context(version, self.drivable, self.route.lane_ids, self.route.centerline, obs)
        return self._lazy[key]

    def reference(self, version: int) -> Reference:
        """PDM-Closed's best proposal under `version`'s scorer (against its own forecast observation)."""
        key = f"reference{version}"
        if key not in self._lazy:
            fp = self.proposal_footprint()
            planner_ctx = Context(
                version, self.drivable, self.route.lane_ids, self.route.centerline, self.forecast()
            )
            m = evaluate(fp, planner_ctx)
            masked_max = np.full(len(fp.states), (m.progress * m.multiplier).max())
            best = int(np.argmax(weighted_score(m, progress_score(m, masked_max))))
            row = slice(best, best + 1)
            self._lazy[key] = Reference(best, self.proposal_poses()[best], fp.states[row], fp.take(row))
        return self._lazy[key]

    def evaluate(self, version: int, fp: Footprint) -> tuple[Metrics, Metrics]:
        """Sub-metrics of candidates (their footprint) and of the reference, against the scoring observation
        (the reference's are computed in the same batch the first time, then kept)."""
        ref = self.reference(version)
        ctx, hist = self.context(version), (self.history() if version == 2 else None)
        if ref.metrics is not None:
            return evaluate(fp, ctx, hist), ref.metrics
        both = evaluate(ref.footprint.concat(fp), ctx, hist)
        ref.metrics = both.take(np.array([0]))
        return both.take(np.arange(1, len(fp.states) + 1)), ref.metrics

    def history(self) -> np.ndarray:
        """(14, 11) ego states -1.5..-0.2 s that pad history comfort (EPDMS)."""
        if "history" not in self._lazy:
            self._lazy["history"] = _history_states(self.scene)
        return self._lazy["history"]

    def human_metrics(self) -> Metrics | None:
        """v2 sub-metrics of the logged human plan scored alone (no history), for the penalty filter."""
        human = self.scene.human_trajectory
        if human is None:
            return None
        if "human" not in self._lazy:
            local = np.asarray(human.poses, dtype=np.float64)
            if human.frame == "global":
                local = global_to_local(self.origin, local)
            states = simulate(
                self.initial_state, plan_to_poses(self.origin, local[None], human.interval_length)
            )
            route = self.route
            fp = footprint(states, self.drivable, route.lane_ids, route.centerline)
            self._lazy["human"] = evaluate(fp, self.context(2))
        return self._lazy["human"]


def _initial_state(scene: Scene) -> np.ndarray:
    ego = scene.ego
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
    return state


def _history_rows(scene: Scene) -> np.ndarray:
    """(3, 7) ego rows [x, y, heading, vx, vy, ax, ay] at -1.5, -1.0, -0.5 s; by default constant velocity
    backwards along the heading, with the current accelerations (SCENE_FORMAT.md)."""
    ego = scene.ego
    if ego.history is not None:
        return np.asarray(ego.history, dtype=np.float64)
    c, s = np.cos(ego.heading), np.sin(ego.heading)
    gvx, gvy = c * ego.vx - s * ego.vy, s * ego.vx + c * ego.vy
    return np.array(
        [
            [ego.x + gvx * t, ego.y + gvy * t, ego.heading, ego.vx, ego.vy, ego.ax, ego.ay]
            for t in HISTORY_TIMES_S
        ]
    )


def _history_states(scene: Scene) -> np.ndarray:
    """The 14 history states NAVSIM v2 pads history comfort with: the past trajectory (-1.5..0 s) sampled
    every 0.1 s from its start, without its last sample (-0.1 s) — NAVSIM's off-by-one, kept."""
    ego = scene.ego
    rows = np.vstack([_history_rows(scene), [ego.x, ego.y, ego.heading, ego.vx, ego.vy, ego.ax, ego.ay]])
    knots_us = np.array([-1_500_000.0, -1_000_000.0, -500_000.0, 0.0])
    query_us = np.arange(-1_500_000, 0, 100_000, dtype=np.int64)[:-1].astype(np.float64)
    linear = interp_linear(knots_us, rows[:, [0, 1, 3, 4, 5, 6]], query_us)
    heading = interp_linear(knots_us, np.unwrap(rows[:, 2])[:, None], query_us)[:, 0]
    states = np.zeros((len(query_us), STATE_SIZE))
    states[:, [S.X, S.Y, S.VX, S.VY, S.AX, S.AY]] = linear
    states[:, S.HEADING] = principal_value(heading)
    return states


def prepare(scene: Scene) -> SceneCache:
    """Build the scene cache: map, drivable area, route and centerline, initial state."""
    origin = np.array([scene.ego.x, scene.ego.y, scene.ego.heading], dtype=np.float64)
    initial = _initial_state(scene)
    center = ego_centers(initial[None, :3])[0]
    ego_box = box_corners(center[:1], center[1:], origin[2:], EGO_HALF_LENGTH, EGO_HALF_WIDTH)[0]
    model = build_map(scene)
    drivable = build_drivable_map(model, center, MAP_RADIUS)
    route = build_route(model, drivable, scene.map.route_roadblock_ids, origin, center, polygons(ego_box))
    return SceneCache(scene, origin, initial, ego_box, model, drivable, route)
