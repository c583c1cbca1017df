"""Scorer speed on one core, against NAVSIM's own scorer.

Per scene (median over varied scenes, each timed as the best of a few repeats so that a busy machine
disturbs the figures less; wall-clock and CPU time of the same runs, the latter unaffected by waiting for
a shared core, though not by sharing it):
  (a) prepare + score of one candidate: the scene cache, PDM-Closed's reference and the candidate, all in
      the timing (what NAVSIM's 185 ms PDMS / 404 ms EPDMS anchors measure);
  (b) score of 8 candidates on a cached scene (the RL loop's marginal cost per group).
Also the first call in the process (the scorer's compiled kernels loaded from numba's cache, or compiled
where there is none yet) and the start-up of `elf-vla score` (process start, imports, one scene).

Scenes: the three shared scenes, perturbed copies of them (moved, other plans), and synthetic scenes from
`driving.generator` when it is importable.

    .venv/bin/python bench/scorer.py [--generated 26] [--repeats 3]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# run as a script, this file's folder would shadow the `scorer` package; the project root replaces it
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from driving.scene import Scene, load_scene  # noqa: E402
from scorer import prepare, score  # noqa: E402

SHARED = sorted((ROOT / "tests" / "data" / "scenes").glob("*.json"))
NAVSIM_MS = {"pdms": 185.0, "epdms": 404.0}  # NAVSIM per-scene median, warm process (METRICS.md)


def _variants(scene: Scene, count: int, seed: int) -> list[Scene]:
    """The scene with its plan bent and stretched, and moved by a rigid motion."""
    from tests.scorer.test_properties import _move  # the rigid motion the tests use

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        angle, dx, dy = rng.uniform(-np.pi, np.pi), rng.uniform(-300, 300), rng.uniform(-300, 300)
        plan = np.asarray(scene.trajectory.poses) * [rng.uniform(0.6, 1.2), 1.0, 1.0]
        plan[:, 1:] += rng.normal(0.0, 0.3, (8, 2)) * np.linspace(0.1, 1.0, 8)[:, None] * [1.0, 0.05]
        moved = _move(scene, angle, dx, dy)
        out.append(
            moved.model_copy(
                update={"trajectory": moved.trajectory.model_copy(update={"poses": plan.tolist()})}
            )
        )
    return out


def _generated(count: int) -> list[Scene]:
    try:
        from driving.generator import FAMILIES, generate_scene
    except ImportError:
        return []
    names = list(FAMILIES)
    return [generate_scene(names[i % len(names)], 1000 + i, f"bench-{i}") for i in range(count)]


def _best(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """Best of `repeats` runs [ms]: (wall clock, CPU time of this process)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        c1, w1 = time.process_time(), time.perf_counter()
        wall, cpu = min(wall, w1 - w0), min(cpu, c1 - c0)
    return wall * 1000.0, cpu * 1000.0


def _per_scene(scenes: list[Scene], metric: str, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, 2) [wall, cpu] ms per scene for (a) prepare + 1 candidate and (b) 8 candidates, cached scene."""
    single, group = [], []
    for scene in scenes:
        plan = np.asarray(scene.trajectory.poses)[None]
        single.append(_best(lambda s=scene, p=plan: score(prepare(s), p, metric), repeats))
        cache = prepare(scene)
        score(cache, plan, metric)  # reference built: (b) is the marginal cost of a group
        plans = plan + np.random.default_rng(0).normal(0.0, 0.5, (8, 8, 3)) * [1.0, 1.0, 0.02]
        group.append(_best(lambda c=cache, p=plans: score(c, p, metric), repeats))
    return np.array(single), np.array(group)


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def _startup_ms(path: Path, repeats: int = 5) -> tuple[float, float]:
    exe = Path(sys.executable).with_name("elf-vla")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cluster.cli"]
    times = {}
    for name, args in (("help", ["--help"]), ("score", ["score", str(path)])):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd + args, check=True, capture_output=True, cwd=ROOT)
            best = min(best, time.perf_counter() - start)
        times[name] = best * 1000.0
    return times["help"], times["score"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generated", type=int, default=26, help="synthetic scenes from driving.generator")
    parser.add_argument("--variants", type=int, default=3, help="perturbed copies of each shared scene")
    parser.add_argument("--repeats", type=int, default=3, help="timings per scene (the best counts)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    shared = [load_scene(p) for p in SHARED]
    first = shared[0]  # before anything else runs the scorer (the generator's expert does)
    _, first_ms = _best(lambda: score(prepare(first), np.asarray(first.trajectory.poses)[None], "epdms"), 1)
    scenes = shared + [v for i, s in enumerate(shared) for v in _variants(s, args.variants, i)]
    scenes += _generated(args.generated)
    for scene in scenes[:3]:  # warm up imports and caches
        score(prepare(scene), np.asarray(scene.trajectory.poses)[None], "epdms")
    print(f"scorer bench: {len(scenes)} scenes, one core, best of {args.repeats} per scene, load {_load()}")
    print(f"first call (compiled kernels loaded or compiled): {first_ms:.0f} ms CPU")
    for metric in ("pdms", "epdms"):
        single, group = _per_scene(scenes, metric, args.repeats)
        for i, clock in enumerate(("wall", "cpu")):
            med, gmed = np.median(single[:, i]), np.median(group[:, i])
            print(
                f"[{clock:4s}] {metric:5s} (a) prepare+score 1 candidate: median {med:6.2f} ms (min "
                f"{single[:, i].min():5.2f}, max {single[:, i].max():6.2f}); NAVSIM {NAVSIM_MS[metric]:.0f} ms "
                f"-> {NAVSIM_MS[metric] / med:5.1f}x"
            )
            print(
                f"[{clock:4s}] {metric:5s} (b) score 8 candidates, cached: median {gmed:6.2f} ms "
                f"({gmed / 8:5.2f} ms per candidate, max {group[:, i].max():6.2f})"
            )
    print(f"load at the end: {_load()}")
    help_ms, score_ms = _startup_ms(SHARED[0])
    print(
        f"elf-vla --help: {help_ms:.0f} ms; elf-vla score <one scene>: {score_ms:.0f} ms (process start included)"
    )


if __name__ == "__main__":
    main()
