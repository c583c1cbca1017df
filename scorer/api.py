"""Public scoring API: `score(cache, trajectories, metric)` and `score_scene(scene, metric)`.

Each candidate is scored as NAVSIM scores one submission: simulated from the ego's state, its sub-metrics
computed against the metric cache's observation, and its ego progress normalised against PDM-Closed's
reference *alone* (NAVSIM scores reference + candidate as a pair). A group of K candidates is batched,
never normalised against itself, so every candidate gets the numbers it would get alone.

EPDMS: `two_frame_extended_comfort` comes from the scene (default 1). On scenes with a
`human_trajectory` (NAVSIM's "original" frames) a sub-metric the human plan also fails is reset to 1,
and the multiplier and weighted average are recomputed from the filtered sub-metrics — the documented
EPDMS (and NAVSIM after its 2025-09 fix); at the v2.2 tag the final score ignored the filter.
`pdm_score` is NAVSIM's EPDMS without EC and without the filter. Reactive traffic is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driving.scene import Scene
from scorer.cache import SceneCache, prepare
from scorer.config import Metric
from scorer.constants import DT, NUM_STATES, PLAN_INTERVAL
from scorer.interp import global_to_local, plan_to_poses
from scorer.scoring import Metrics, progress_score, weighted_score

SAMPLES_0P5S = np.arange(0, NUM_STATES, 5)  # 10 Hz steps at 0, 0.5, ..., 4 s


class ReactiveTrafficNotSupported(NotImplementedError):
    """EPDMS with `traffic: reactive` (NAVSIM's IDM background agents) is not implemented."""


@dataclass
class ScoreBatch:
    """Scores of K candidates of one scene; every array is (K,)."""

    metric: Metric
    # multipliers
    no_at_fault_collisions: np.ndarray
    drivable_area_compliance: np.ndarray
    driving_direction_compliance: np.ndarray  # weight 0 in PDMS
    traffic_light_compliance: np.ndarray  # EPDMS only (1 in PDMS)
    # weighted
    ego_progress: np.ndarray
    time_to_collision_within_bound: np.ndarray
    comfort: np.ndarray  # PDMS: comfort; EPDMS: history comfort
    lane_keeping: np.ndarray  # EPDMS only (1 in PDMS)
    two_frame_extended_comfort: np.ndarray  # EPDMS only
    multiplicative_metrics_prod: np.ndarray
    pdm_score: np.ndarray  # PDMS; EPDMS: NAVSIM's pdm_score (no EC, no human filter)
    total: np.ndarray  # the reward: PDMS or EPDMS
    # diagnostics per candidate
    raw_progress: np.ndarray  # [m] along the centerline
    collision_time_s: np.ndarray  # first at-fault collision [s], NaN if none
    ttc_time_s: np.ndarray  # first TTC infraction [s], NaN if none
    collided_object: list[str | None]  # id of the object of the first at-fault collision
    human_filter_applied: np.ndarray  # bool
    simulated_0p5s: np.ndarray  # (K, 9, 3) simulated rear-axle poses in the ego frame
    # reference (PDM-Closed) diagnostics
    reference_raw_progress: float
    reference_multiplier: float
    reference_0p5s: np.ndarray  # (9, 3) reference plan in the ego frame
    route_lane_ids: list[str]
    centerline_length: float
    traffic: str = "log_replay"
    scene_type: str = "SYNTHETIC"

    @property
    def pdms(self) -> np.ndarray:
        """The total under the name of the metric asked for (same array as `total`)."""
        return self.total

    @property
    def epdms(self) -> np.ndarray:
        return self.total

    def __len__(self) -> int:
        return len(self.total)

    def result(self, i: int) -> dict:
        """Candidate i as a JSON-ready dict with the keys of NAVSIM's expected files."""
        if self.metric == "pdms":
            out = {
                "version": "v1",
                "no_at_fault_collisions": float(self.no_at_fault_collisions[i]),
                "drivable_area_compliance": float(self.drivable_area_compliance[i]),
                "driving_direction_compliance": float(self.driving_direction_compliance[i]),
                "ego_progress": float(self.ego_progress[i]),
                "time_to_collision_within_bound": float(self.time_to_collision_within_bound[i]),
                "comfort": float(self.comfort[i]),
                "score": float(self.total[i]),
                "pdms": float(self.total[i]),
            }
        else:
            out = {
                "version": "v2",
                "traffic": self.traffic,
                "no_at_fault_collisions": float(self.no_at_fault_collisions[i]),
                "drivable_area_compliance": float(self.drivable_area_compliance[i]),
                "driving_direction_compliance": float(self.driving_direction_compliance[i]),
                "traffic_light_compliance": float(self.traffic_light_compliance[i]),
                "ego_progress": float(self.ego_progress[i]),
                "time_to_collision_within_bound": float(self.time_to_collision_within_bound[i]),
                "lane_keeping": float(self.lane_keeping[i]),
                "history_comfort": float(self.comfort[i]),
                "multiplicative_metrics_prod": float(self.multiplicative_metrics_prod[i]),
                "pdm_score": float(self.pdm_score[i]),
                "two_frame_extended_comfort": float(self.two_frame_extended_comfort[i]),
                "epdms": float(self.total[i]),
                "scene_type": self.scene_type,
            }
        out["diagnostics"] = self._diagnostics(i)
        return out

    def _diagnostics(self, i: int) -> dict:
        def seconds(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        diag = {
            "candidate_raw_progress_m": float(self.raw_progress[i]),
            "reference_raw_progress_m": self.reference_raw_progress,
            "reference_multiplicative_prod": self.reference_multiplier,
            "time_to_at_fault_collision_s": seconds(self.collision_time_s[i]),
            "time_to_ttc_infraction_s": seconds(self.ttc_time_s[i]),
            "at_fault_collision_object_id": self.collided_object[i],
            "reference_trajectory_0p5s": self.reference_0p5s.tolist(),
            "route_lane_ids": list(self.route_lane_ids),
            "centerline_length_m": self.centerline_length,
            "human_penalty_filter_applied": bool(self.human_filter_applied[i]),
        }
        if self.metric == "epdms":
            diag["simulated_candidate_0p5s"] = self.simulated_0p5s[i].tolist()
        return diag


def _step_seconds(step: np.ndarray) -> np.ndarray:
    return np.where(step >= 0, step * DT, np.nan)


def _filtered(
    m: Metrics, ep: np.ndarray, human: Metrics, human_ep: np.ndarray
) -> tuple[Metrics, np.ndarray, bool]:
    """Human-penalty filter: reset to 1 every sub-metric that the human plan fails (== 0). Returns the
    filtered metrics and EP, and whether the human failed any (NAVSIM's `modified_any`)."""
    values = dict(m.__dict__)
    failed = [
        name for name in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "comfort") if getattr(human, name)[0] == 0.0
    ]
    for name in failed:
        values[name] = np.ones_like(values[name])
    if human_ep[0] == 0.0:
        failed.append("ep")
        ep = np.ones_like(ep)
    return Metrics(**values), ep, bool(failed)


def score(cache: SceneCache, trajectories: np.ndarray, metric: Metric = "pdms") -> ScoreBatch:
    """Score K candidate plans (K, 8, 3) — rear-axle (x, y, heading) every 0.5 s in the ego frame."""
    return _score_poses(cache, np.asarray(trajectories, dtype=np.float64), PLAN_INTERVAL, metric)


def _score_poses(cache: SceneCache, local: np.ndarray, interval: float, metric: Metric) -> ScoreBatch:
    if metric not in ("pdms", "epdms"):
        raise ValueError(f"metric must be 'pdms' or 'epdms', got {metric!r}")
    if local.ndim != 3 or local.shape[2] != 3 or local.shape[1] < 1:
        raise ValueError(f"trajectories must have shape (K, N, 3), got {local.shape}")
    if not np.isfinite(local).all():
        raise ValueError("trajectories contain non-finite values")
    scene = cache.scene
    if metric == "epdms" and scene.traffic == "reactive":
        raise ReactiveTrafficNotSupported(
            "EPDMS with traffic: reactive (NAVSIM's IDM background agents) is not implemented; "
            "score this scene with traffic: log_replay"
        )
    version = 1 if metric == "pdms" else 2
    states = cache.simulate(plan_to_poses(cache.origin, local, interval))
    fp = cache.footprint(states)
    ref = cache.reference(version)
    m, ref_m = cache.evaluate(version, fp)
    ref_masked = float((ref_m.progress * ref_m.multiplier)[0])
    ep = progress_score(m, np.maximum(ref_masked, m.progress * m.multiplier))
    k = len(local)
    ec = np.full(k, scene.two_frame_extended_comfort if scene.two_frame_extended_comfort is not None else 1.0)
    pdm_score = weighted_score(m, ep)
    applied = np.zeros(k, dtype=bool)
    final_m, final_ep = m, ep
    human = cache.human_metrics() if version == 2 else None
    if human is not None:
        human_ep = progress_score(human, human.progress * human.multiplier)
        final_m, final_ep, any_failed = _filtered(m, ep, human, human_ep)
        applied[:] = any_failed
    total = weighted_score(final_m, final_ep, ec) if version == 2 else pdm_score
    ids = cache.context(version).observation.ids
    return ScoreBatch(
        metric=metric,
        no_at_fault_collisions=final_m.nc,
        drivable_area_compliance=final_m.dac,
        driving_direction_compliance=final_m.ddc,
        traffic_light_compliance=final_m.tlc,
        ego_progress=final_ep,
        time_to_collision_within_bound=final_m.ttc,
        comfort=final_m.comfort,
        lane_keeping=final_m.lk,
        two_frame_extended_comfort=ec,
        multiplicative_metrics_prod=final_m.multiplier,
        pdm_score=pdm_score,
        total=total,
        raw_progress=m.progress,
        collision_time_s=_step_seconds(m.collision_step),
        ttc_time_s=_step_seconds(m.ttc_step),
        collided_object=[ids[o] if o >= 0 else None for o in m.collision_object],
        human_filter_applied=applied,
        simulated_0p5s=global_to_local(cache.origin, states[:, SAMPLES_0P5S, :3]),
        reference_raw_progress=float(ref_m.progress[0]),
        reference_multiplier=float(ref_m.multiplier[0]),
        reference_0p5s=global_to_local(cache.origin, ref.poses[SAMPLES_0P5S]),
        route_lane_ids=list(cache.route.lane_ids),
        centerline_length=cache.route.centerline.length,
        traffic=scene.traffic or "log_replay",
        scene_type="ORIGINAL" if scene.human_trajectory is not None else "SYNTHETIC",
    )


def score_scene(scene: Scene, metric: Metric = "pdms", cache: SceneCache | None = None) -> ScoreBatch:
    """Score the scene's own `trajectory` (a batch of one)."""
    if scene.trajectory is None:
        raise ValueError("scene has no `trajectory` to score")
    cache = cache or prepare(scene)
    poses = np.asarray(scene.trajectory.poses, dtype=np.float64)
    if scene.trajectory.frame == "global":
        poses = global_to_local(cache.origin, poses)
    return _score_poses(cache, poses[None], scene.trajectory.interval_length, metric)
