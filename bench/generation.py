"""Scene generation + camera rendering speed.

Prints per-scene milliseconds on one core (generate, render at 224 px and 64 px) and the throughput of
`write_dataset` with 2 worker processes, extrapolated to 10k scenes (target: under 10 minutes here).

    .venv/bin/python -m bench.generation [--count 400]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

from cluster.config import load_config
from driving.camera import CameraConfig, render_camera
from driving.dataset import scene_seed, write_dataset
from driving.generator import generate_scene, sample_families


def per_scene_ms(count: int) -> dict[str, float]:
    families = sample_families(count, 1, None)
    gen, r224, r64 = [], [], []  # CPU seconds (process_time): the machine may be shared
    cam224, cam64 = CameraConfig(), load_config(None, ["scenes.camera={preset: tiny}"]).scenes.camera
    for i, fam in enumerate(families):
        t0 = time.process_time()
        scene = generate_scene(fam, scene_seed(1, i), f"b-{i}")
        t1 = time.process_time()
        render_camera(scene, cam224)
        t2 = time.process_time()
        render_camera(scene, cam64)
        t3 = time.process_time()
        gen.append(t1 - t0)
        r224.append(t2 - t1)
        r64.append(t3 - t2)
    return {
        "generate": 1000 * statistics.mean(gen),
        "render_224": 1000 * statistics.mean(r224),
        "render_64": 1000 * statistics.mean(r64),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    ms = per_scene_ms(args.count // 2)
    print(
        f"one core, mean CPU time per scene: generate {ms['generate']:.1f} ms, render 224 px {ms['render_224']:.1f} ms, "
        f"render 64 px {ms['render_64']:.1f} ms -> {1000 / (ms['generate'] + ms['render_224']):.1f} scenes/s"
    )
    config = load_config(None, [f"scenes.count={args.count}", "scenes.workers=2", "scenes.seed=7"]).scenes
    cpu_before = _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_dataset(config, f"{tmp}/ds")
    cpu = _cpu_seconds() - cpu_before
    rate = args.count / manifest["seconds"]
    print(
        f"write_dataset, 2 workers, 224 px front camera, PNG files: {args.count} scenes in "
        f"{manifest['seconds']:.1f} s wall = {rate:.1f} scenes/s -> 10k scenes in {10_000 / rate / 60:.1f} min "
        f"(target < 10 min); load average {os.getloadavg()[0]:.1f}"
    )
    ideal = 10_000 * cpu / args.count / 2
    print(
        f"CPU time {1000 * cpu / args.count:.1f} ms per scene (all processes) -> 10k scenes on 2 idle cores: {ideal / 60:.1f} min"
    )


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
