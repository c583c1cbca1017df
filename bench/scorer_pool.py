"""ScorerPool throughput: in-process vs 1 and 2 Ray actors, on the same groups in the same run.

Each group is one generated scene with 8 candidate plans (the expert and 7 perturbations of it). Every
scene is new to the pool (cache built in the timing), as in the first scoring of a GRPO step.

    .venv/bin/python -m bench.scorer_pool [--scenes 200]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from cluster.ray_runtime import start_ray, stop_ray
from driving.dataset import scene_seed
from driving.generator import generate_scene, sample_families
from driving.geometry import trajectory_local
from scorer.pool import ScoreRequest, ScorerPool


def make_requests(count: int, seed: int, tag: str) -> list[ScoreRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for i, fam in enumerate(sample_families(count, seed, None)):
        scene = generate_scene(fam, scene_seed(seed, i), f"{tag}-{i}")
        expert = trajectory_local(scene.sample.expert, scene.ego)
        noise = (
            rng.normal(0.0, 1.0, size=(7, 8, 3))
            * np.array([0.8, 0.4, 0.02])
            * np.linspace(0.2, 1, 8)[:, None]
        )
        out.append(ScoreRequest(scene, np.concatenate([expert[None], expert[None] + noise]), "pdms"))
    return out


def timed(pool: ScorerPool, requests: list[ScoreRequest]) -> float:
    start = time.perf_counter()
    pool.score_groups(requests)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.scenes} scenes x 8 candidates per measurement")
    warm = make_requests(8, 99, "warm")
    local = ScorerPool(actors=0)
    local.score_groups(warm)
    base = timed(local, make_requests(args.scenes, 1, "local"))
    print(f"in-process      : {args.scenes / base:7.1f} scenes/s  (1.00x)")
    start_ray(num_cpus=2)
    try:
        for actors in (1, 2):
            pool = ScorerPool(actors=actors)
            pool.score_groups(warm)  # actors up and imports done
            secs = timed(pool, make_requests(args.scenes, 1, f"ray{actors}"))
            overhead = "" if actors != 1 else f", overhead vs in-process {100 * (secs / base - 1):+.0f} %"
            print(
                f"Ray, {actors} actor(s) : {args.scenes / secs:7.1f} scenes/s  ({base / secs:.2f}x{overhead})"
            )
            pool.shutdown()
    finally:
        stop_ray()


if __name__ == "__main__":
    main()
