"""Hand-built failures on a straight two-lane road, and failed plans from generated long-tail scenes."""

from __future__ import annotations

import numpy as np
import pytest

from driving.baselines import constant_velocity_plan
from driving.generator import generate_scene
from driving.scene import Scene, scene_from_dict
from scorer import prepare, score
from teacher_service.schema import DiagnosisRequest, ScoreBreakdown

T = 0.5 * np.arange(1, 9)  # [s] plan times


def road_scene(agents: list[dict], expert: np.ndarray, meta: tuple[str, str], speed: float = 10.0) -> Scene:
    """Ego at the origin heading +x at `speed` on the right lane (y = 0) of a straight three-lane road
    (lanes at y = 0, 3.5, 7.0, each 3.5 m wide); `expert` is the ground-truth plan (8, 3)."""
    lanes = [
        {
            "id": "lane_right",
            "centerline": [[-60.0, 0.0], [260.0, 0.0]],
            "width": 3.5,
            "speed_limit_mps": 15.0,
        },
        {
            "id": "lane_left",
            "centerline": [[-60.0, 3.5], [260.0, 3.5]],
            "width": 3.5,
            "speed_limit_mps": 15.0,
        },
        {"id": "lane_far", "centerline": [[-60.0, 7.0], [260.0, 7.0]], "width": 3.5, "speed_limit_mps": 15.0},
    ]
    return scene_from_dict(
        {
            "id": "hand",
            "ego": {"x": 0.0, "y": 0.0, "heading": 0.0, "vx": speed, "vy": 0.0, "ax": 0.0, "ay": 0.0},
            "map": {"roadblocks": [{"id": "rb", "lanes": lanes}], "route_roadblock_ids": ["rb"]},
            "agents": agents,
            "sample": {
                "command": "straight",
                "expert": {"poses": np.asarray(expert).tolist(), "frame": "local"},
                "family": "stalled_vehicle",
                "difficulty": "long_tail",
                "meta_action": {"lateral": meta[0], "longitudinal": meta[1]},
            },
        }
    )


def braking_plan(speed: float, decel: float) -> np.ndarray:
    """(8, 3) straight plan braking at `decel` [m/s²] to a stop."""
    t = np.minimum(T, speed / decel)
    return np.stack([speed * t - 0.5 * decel * t**2, np.zeros(8), np.zeros(8)], axis=-1)


def request_for(
    scene: Scene, plan: np.ndarray, think: str | None = None, metric: str = "pdms"
) -> DiagnosisRequest:
    result = score(prepare(scene), np.asarray(plan)[None], metric).result(0)
    return DiagnosisRequest(
        scene_id=scene.id or "scene",
        scene=scene,
        plan=np.asarray(plan).tolist(),
        breakdown=ScoreBreakdown.from_scorer(result, metric),
        think=think,
    )


def pdms(scene: Scene, plans: np.ndarray) -> np.ndarray:
    return score(prepare(scene), np.asarray(plans), "pdms").total


STALLED = {"id": "stalled", "type": "vehicle", "length": 4.5, "width": 2.0, "x": 35.0, "y": 0.0, "heading": 0.0,
           "vx": 0.0, "vy": 0.0}  # fmt: skip


@pytest.fixture(scope="session")
def stalled_scene() -> Scene:
    """A stopped car 35 m ahead in the ego's lane; the expert brakes at 2.5 m/s² and stops behind it."""
    return road_scene([STALLED], braking_plan(10.0, 2.5), ("keep_lane", "stop"))


@pytest.fixture(scope="session")
def stalled_request(stalled_scene: Scene) -> DiagnosisRequest:
    """Constant velocity into the stalled car."""
    return request_for(
        stalled_scene, constant_velocity_plan(stalled_scene.ego), "road clear; intent: keep lane."
    )


def long_tail_request(family: str, seed: int) -> tuple[Scene, DiagnosisRequest]:
    scene = generate_scene(family, seed, f"{family}-{seed}")
    return scene, request_for(scene, constant_velocity_plan(scene.ego))
