"""Simple reference plans that need no model: what a learned planner must beat."""

from __future__ import annotations

import numpy as np

from driving.scene import NUM_PLAN_POSES, POSE_INTERVAL_S, EgoState


def constant_velocity_plan(ego: EgoState, num_poses: int = NUM_PLAN_POSES) -> np.ndarray:
    """(num_poses, 3) local-frame plan that keeps the current speed and heading."""
    t = POSE_INTERVAL_S * np.arange(1, num_poses + 1)
    return np.stack([ego.vx * t, ego.vy * t, np.zeros_like(t)], axis=-1)
