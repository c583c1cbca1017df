"""Are the teacher's diagnoses actionable, and how fast is the Serve app?

1. Correction check: failed plans (PDMS < 0.8) from generated long-tail scenes (constant velocity, and
   the expert plan perturbed: too fast, too slow, drifting sideways); each is diagnosed, its corrections
   are applied literally (`apply_corrections`) and re-scored. Reported: the fraction whose corrected plan
   scores higher than the original. Target: >= 80 % for the analytic teacher; the coarse (rule
   feedback) teacher is the baseline.
2. Serve throughput: the same analytic backend deployed batched (@serve.batch, max_batch_size B) and
   unbatched (B = 1) on a local Ray, driven over HTTP with C concurrent clients; requests/s and client
   latency p50/p99.

    .venv/bin/python -m bench.teacher [--failed 500] [--serve-requests 300] [--skip-serve]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from driving.baselines import constant_velocity_plan
from driving.dataset import scene_seed
from driving.generator import FAMILIES, generate_scene
from driving.geometry import trajectory_local
from driving.roads import Path
from driving.scene import Scene
from scorer import prepare, score
from teacher_service.analytic import AnalyticTeacher
from teacher_service.corrections import apply_corrections
from teacher_service.schema import DiagnosisRequest, ScoreBreakdown
from teacher_service.teachers import CoarseTeacher

FAIL = 0.8  # the ELF correctness threshold s
LONG_TAIL = [name for name, f in FAMILIES.items() if f.difficulty == "long_tail"]
T = 0.5 * np.arange(1, 9)  # [s]


@dataclass
class Failure:
    scene: Scene
    source: str  # constant_velocity | too_fast | too_slow | drift
    request: DiagnosisRequest


def perturbed_experts(expert: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """The expert plan re-timed too fast or too slow along its path, and drifting sideways."""
    pts = np.vstack([np.zeros((1, 2)), expert[:, :2]])
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    out = []
    if s[-1] > 1.0:
        path = Path(pts)
        for label, k in (("too_fast", rng.uniform(1.3, 1.8)), ("too_slow", rng.uniform(0.2, 0.6))):
            x, y, h = path.pose(k * s[1:])
            out.append((label, np.stack([x, y, h], axis=-1)))
    drift = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 4.0) * (T / 4.0) ** 2  # [m] left positive
    h = expert[:, 2]
    drifted = expert.copy()
    drifted[:, 0] -= np.sin(h) * drift
    drifted[:, 1] += np.cos(h) * drift
    out.append(("drift", drifted))
    return out


def collect_failures(count: int, seed: int, metric: str) -> list[Failure]:
    rng = np.random.default_rng(seed)
    failures: list[Failure] = []
    i = 0
    while len(failures) < count:
        family = LONG_TAIL[i % len(LONG_TAIL)]
        scene = generate_scene(family, scene_seed(seed, i), f"t{seed}-{i}")
        i += 1
        expert = trajectory_local(scene.sample.expert, scene.ego)
        plans = [("constant_velocity", constant_velocity_plan(scene.ego)), *perturbed_experts(expert, rng)]
        batch = score(prepare(scene), np.stack([p for _, p in plans]), metric)
        for k, (source, plan) in enumerate(plans):
            if batch.total[k] < FAIL and len(failures) < count:
                request = DiagnosisRequest(
                    scene_id=scene.id,
                    scene=scene,
                    plan=plan.tolist(),
                    breakdown=ScoreBreakdown.from_scorer(batch.result(k), metric),
                )
                failures.append(Failure(scene, source, request))
    return failures


def correction_check(failures: list[Failure], metric: str) -> None:
    teachers = {"analytic": AnalyticTeacher(), "coarse": CoarseTeacher()}
    improved: dict[str, list[bool]] = defaultdict(list)
    gain: dict[str, list[float]] = defaultdict(list)
    by_source: dict[tuple[str, str], list[bool]] = defaultdict(list)
    by_family: dict[tuple[str, str], list[bool]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    for f in failures:
        plan = np.asarray(f.request.plan)
        fixed = []
        for name, teacher in teachers.items():
            start = time.perf_counter()
            diagnosis = teacher.diagnose([f.request])[0]
            seconds[name] += time.perf_counter() - start
            fixed.append(apply_corrections(plan, diagnosis.corrections))
        totals = score(prepare(f.scene), np.stack(fixed), metric).total
        before = f.request.breakdown.score
        for name, after in zip(teachers, totals):
            ok = bool(after > before)
            improved[name].append(ok)
            gain[name].append(float(after - before))
            by_source[(name, f.source)].append(ok)
            by_family[(name, f.scene.sample.family)].append(ok)
    n = len(failures)
    mean_before = np.mean([f.request.breakdown.score for f in failures])
    print(
        f"\n[1] correction check: {n} failed plans ({metric} < {FAIL}), mean {metric} before {mean_before:.3f}"
    )
    sources = sorted({f.source for f in failures})
    print("    sources: " + ", ".join(f"{s} {sum(f.source == s for f in failures)}" for s in sources))
    print(f"    {'teacher':<10}{'improved':>10}{'mean gain':>11}{'ms/diag':>9}   target")
    for name in teachers:
        target = ">= 80 %" if name == "analytic" else "(baseline)"
        print(
            f"    {name:<10}{np.mean(improved[name]):>10.1%}{np.mean(gain[name]):>11.3f}"
            f"{1000 * seconds[name] / n:>9.1f}   {target}"
        )
    print("    improved by failure source:")
    for s in sources:
        row = "  ".join(f"{name} {np.mean(by_source[(name, s)]):.0%}" for name in teachers)
        print(f"      {s:<20} n={len(by_source[('analytic', s)]):<4} {row}")
    print("    improved by family:")
    for fam in LONG_TAIL:
        if by_family[("analytic", fam)]:
            row = "  ".join(f"{name} {np.mean(by_family[(name, fam)]):.0%}" for name in teachers)
            print(f"      {fam:<20} n={len(by_family[('analytic', fam)]):<4} {row}")


# ------------------------------------------------------------------------------------ serve ---


def drive(http, requests: list[DiagnosisRequest], concurrency: int) -> tuple[float, np.ndarray]:
    """Send every request with `concurrency` clients; (wall seconds, per-request latencies [s])."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(request: DiagnosisRequest) -> float:
        start = time.perf_counter()
        answer = http.post(request, time.monotonic() + 120.0)
        if isinstance(answer, Exception):
            raise answer
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(timed, requests))
    return time.perf_counter() - start, np.asarray(latencies)


def serve_throughput(requests: list[DiagnosisRequest], batch: int, concurrency: int) -> None:
    from ray import serve as serve_api

    from cluster.ray_runtime import start_ray
    from teacher_service.client import HttpTransport
    from teacher_service.config import TeacherConfig
    from teacher_service.serve_app import serve_teacher

    start_ray(num_cpus=2)
    print(
        f"\n[2] Serve throughput: analytic backend, 1 replica, {len(requests)} requests over HTTP, "
        f"{concurrency} concurrent clients"
    )
    print(f"    {'mode':<22}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for label, size, wait in ((f"batched (B={batch})", batch, 0.01), ("unbatched (B=1)", 1, 0.0)):
        serve = {
            "port": 8131,
            "max_batch_size": size,
            "batch_wait_timeout_s": wait,
            "num_cpus_per_replica": 1,
        }
        config = TeacherConfig.model_validate({"serve": serve})
        serve_teacher(config)
        http = HttpTransport("http://127.0.0.1:8131/diagnose", concurrency=concurrency)
        drive(http, requests[: 2 * concurrency], concurrency)  # warm up
        wall, latencies = drive(http, requests, concurrency)
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        print(f"    {label:<22}{len(requests) / wall:>8.1f}{p50:>9.0f}{p99:>9.0f}")
        serve_api.delete(config.serve.app_name)
    serve_api.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--failed", type=int, default=500, help="failed plans to diagnose")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--metric", choices=["pdms", "epdms"], default="pdms")
    parser.add_argument("--serve-requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    failures = collect_failures(args.failed, args.seed, args.metric)
    print(f"collected {len(failures)} failed plans in {time.perf_counter() - start:.1f} s")
    correction_check(failures, args.metric)
    if not args.skip_serve:
        reqs = [failures[i % len(failures)].request for i in range(args.serve_requests)]
        serve_throughput(reqs, args.batch, args.concurrency)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
