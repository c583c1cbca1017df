"""All sub-metrics of a batch of simulated trajectories (NAVSIM's `PDMScorer.score_proposals`), and the
aggregation into PDMS (v1) or EPDMS (v2).

`footprint` computes what depends on the map only (ego boxes, the areas they occupy, raw progress), once
per trajectory: PDM-Closed's selection, PDMS and EPDMS share it. `evaluate` adds everything else that
depends on one trajectory only. The one cross-trajectory term, the ego-progress normaliser, is passed to
`progress_score` by the caller: the best masked progress of all 15 proposals for PDM-Closed's own
selection, or of reference and candidate for a candidate's score (NAVSIM scores that pair; here many
candidates are batched, each normalised against the reference alone). v1 and v2 differ as NAVSIM v1.1 and
v2.2 do: v1's multiplier is NC·DAC (DDC has weight 0) and its EP masks a candidate's own progress by its
multiplier; v2 multiplies NC·DAC·DDC·TLC, clips raw/max to [0, 1] without masking, uses lane keeping and
history comfort, and checks TTC on steps 0–31.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorer.boxes import ego_coords
from scorer.collisions import no_at_fault_collisions, time_to_collision, traffic_light_compliance
from scorer.comfort import is_comfortable
from scorer.constants import NUM_POSES, PROGRESS_THRESHOLD, TTC_FUTURE_STEPS, V1_WEIGHTS, V2_WEIGHTS
from scorer.mapdata import DrivableMap
from scorer.metrics import (
    EgoAreas,
    drivable_area_compliance,
    driving_direction_compliance,
    ego_areas,
    lane_keeping,
    raw_progress,
)
from scorer.observation import Observation
from scorer.paths import Path


@dataclass(eq=False)
class Context:
    """What the scorer reads about a scene, for one NAVSIM version."""

    version: int  # 1 (PDMS) or 2 (EPDMS)
    drivable: DrivableMap
    route_lane_ids: list[str]
    centerline: Path
    observation: Observation


@dataclass
class Metrics:
    """Per-trajectory sub-metrics, each (K,)."""

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    ttc: np.ndarray
    comfort: np.ndarray  # v1: comfort; v2: history comfort
    lk: np.ndarray
    progress: np.ndarray  # raw progress [m]
    collision_step: np.ndarray  # first at-fault collision step, -1 if none
    collision_object: np.ndarray  # observation index of that object, -1 if none
    ttc_step: np.ndarray  # first TTC infraction step, -1 if none
    version: int = 1

    @property
    def multiplier(self) -> np.ndarray:
        """(K,) product of the multiplicative metrics: NC·DAC (v1), NC·DAC·TLC·DDC (v2)."""
        return self.nc * self.dac * self.tlc * self.ddc if self.version == 2 else self.nc * self.dac

    def take(self, index: np.ndarray) -> Metrics:
        """The metrics of the trajectories at `index`."""
        return Metrics(**{k: v[index] if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()})


@dataclass(eq=False)
class Footprint:
    """Where K simulated trajectories put the ego on the map: what the sub-metrics read that depends neither
    on the other road users nor on the NAVSIM version, so it is computed once per trajectory."""

    states: np.ndarray  # (K, T, 11)
    corners: np.ndarray  # (K, T, 4, 2) ego box
    centers: np.ndarray  # (K, T, 2) ego box centre
    areas: EgoAreas
    progress: np.ndarray  # (K,) raw progress along the centerline [m]

    def take(self, index: slice | np.ndarray) -> Footprint:
        """The footprint of the trajectories at `index` (rows are independent)."""
        areas = EgoAreas(**{k: v[index] for k, v in self.areas.__dict__.items()})
        return Footprint(
            self.states[index], self.corners[index], self.centers[index], areas, self.progress[index]
        )

    def concat(self, other: Footprint) -> Footprint:
        def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b])

        areas = EgoAreas(**{k: join(v, getattr(other.areas, k)) for k, v in self.areas.__dict__.items()})
        return Footprint(
            join(self.states, other.states),
            join(self.corners, other.corners),
            join(self.centers, other.centers),
            areas,
            join(self.progress, other.progress),
        )


def footprint(
    states: np.ndarray, drivable: DrivableMap, route_lane_ids: list[str], centerline: Path
) -> Footprint:
    """Footprint of (K, T, 11) simulated states on the map, with progress along the route's centerline."""
    coords = ego_coords(states)
    centers = coords[:, :, 4]
    areas = ego_areas(coords, states[..., :2], drivable, route_lane_ids)
    return Footprint(states, coords[:, :, :4], centers, areas, raw_progress(centers, centerline))


def evaluate(fp: Footprint, ctx: Context, history: np.ndarray | None = None) -> Metrics:
    """Sub-metrics of the trajectories of a footprint. `history` (H, 11) pads history comfort (v2)."""
    states, corners, centers, areas = fp.states, fp.corners, fp.centers, fp.areas
    obs = ctx.observation
    collisions = no_at_fault_collisions(states, corners, centers, areas.multiple_lanes, areas.off_road, obs)
    last_ttc_step = NUM_POSES if ctx.version == 1 else NUM_POSES - max(TTC_FUTURE_STEPS)
    ttc, ttc_step = time_to_collision(
        states,
        corners,
        centers,
        areas.multiple_lanes,
        areas.off_road,
        areas.rear_axle_in_intersection,
        obs,
        last_ttc_step,
    )
    k = states.shape[0]
    ones = np.ones(k)
    if ctx.version == 1:
        comfort, lk, tlc = is_comfortable(states).astype(float), ones, ones
    else:
        padded = (
            states
            if history is None
            else np.concatenate([np.broadcast_to(history, (k,) + history.shape), states], 1)
        )
        comfort = is_comfortable(padded).astype(float) if history is not None else ones
        lk = lane_keeping(centers, areas, ctx.centerline)
        tlc = traffic_light_compliance(corners, obs)
    return Metrics(
        nc=collisions.score,
        dac=drivable_area_compliance(areas),
        ddc=driving_direction_compliance(centers, areas, skip_intersections=ctx.version == 2),
        tlc=tlc,
        ttc=ttc,
        comfort=comfort,
        lk=lk,
        progress=fp.progress,
        collision_step=collisions.step,
        collision_object=collisions.object_index,
        ttc_step=ttc_step,
        version=ctx.version,
    )


def progress_score(m: Metrics, normaliser: np.ndarray) -> np.ndarray:
    """EP (K,) given each trajectory's normaliser max(masked progress of its group) [m]."""
    multiplier = m.multiplier
    masked = m.progress * multiplier
    if m.version == 1:
        small = np.where(multiplier == 0.0, 0.0, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(normaliser > PROGRESS_THRESHOLD, masked / normaliser, small)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(normaliser > PROGRESS_THRESHOLD, np.clip(m.progress / normaliser, 0.0, 1.0), 1.0)


def weighted_score(m: Metrics, ep: np.ndarray, ec: np.ndarray | None = None) -> np.ndarray:
    """Multiplier × weighted average. v1: (5 EP + 5 TTC + 2 C) / 12. v2 without `ec`: NAVSIM's pdm_score
    (EC left out, / 14); with `ec`: EPDMS (/ 16)."""
    if m.version == 1:
        terms = [ep, m.ttc, m.comfort]
        weights = V1_WEIGHTS
    else:
        terms = [ep, m.ttc, m.lk, m.comfort] + ([ec] if ec is not None else [])
        weights = V2_WEIGHTS[: len(terms)]
    total = np.zeros_like(ep)
    for w, term in zip(weights, terms):
        total = total + term * w
    return m.multiplier * (total / sum(weights))
