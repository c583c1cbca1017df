"""ELF-GRPO loop: step-time breakdown, learner idle fraction and steps per hour in sync and async (one
step off policy) mode, all-fail groups before/after feedback and reinjections per step, on the same
student, scenes and config (configs/demo.yaml plus the flags), one mode after the other on one local Ray.

    .venv/bin/python -m bench.loop --student RUN/sft/checkpoints/step-000300 --scenes RUN/scenes \\
        [--subset RUN/select/selected.json] [--steps 3] [--groups 6] [--replicas 1]

Without --student a fresh tiny student and 60 scenes are built in a temporary folder: its answers are
unparseable, so only the timings mean something. The first step of each mode includes warm-up; the
table reports the mean over the steps after it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PHASES = ("rollout", "scoring", "teacher", "correction", "update", "sync", "step")


def fresh_inputs(root: Path) -> tuple[Path, Path]:
    from actors.model_factory import init_tiny
    from driving.config import ScenesConfig
    from driving.dataset import SceneDataset, write_dataset

    write_dataset(ScenesConfig(count=60, seed=1, camera={"preset": "tiny"}, workers=1), root / "scenes")
    dataset = SceneDataset(root / "scenes")
    init_tiny("tiny-internvl", root / "student", list(dataset.scenes("train"))[:40], seed=0)
    return root / "student", root / "scenes"


def run_mode(mode: str, args: argparse.Namespace, student: Path, scenes: Path, out: Path) -> list:
    from cluster.config import load_config
    from cluster.jobs import run_train
    from cluster.runs import DEMO_CONFIG

    overrides = [
        f"rollout.student_dir={student}",
        f"train.scenes_dir={scenes}",
        f"train.mode={mode}",
        f"train.steps={args.steps}",
        f"train.groups_per_step={args.groups}",
        f"train.checkpoint_every={10 * args.steps}",
        f"rollout.replicas={args.replicas}",
        "cluster.metrics_port=null",
    ]
    if args.subset:
        overrides.append(f"train.subset={args.subset}")
    config = load_config(DEMO_CONFIG, overrides)
    return run_train(config, out / mode).records


def summarise(records: list) -> dict:
    steady = records[1:] or records  # the first step warms up engines and caches
    mean = {p: statistics.mean(r.seconds.get(p, 0.0) for r in steady) for p in PHASES}
    groups = sum(r.groups for r in records)
    return {
        "seconds": mean,
        "learner_idle_fraction": statistics.mean(r.learner_idle_seconds / r.seconds["step"] for r in steady),
        "steps_per_hour": 3600.0 / mean["step"],
        "all_fail_before": sum(r.all_fail_before for r in records) / groups,
        "all_fail_after": sum(r.all_fail_after for r in records) / groups,
        "reinjections_per_step": statistics.mean(r.reinjections for r in records),
        "format_error_rate": sum(r.format_errors for r in records) / sum(r.rollouts for r in records),
        "reward_mean": statistics.mean(r.reward_mean for r in records),
        "staleness": max(r.staleness for r in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--student", type=Path)
    parser.add_argument("--scenes", type=Path)
    parser.add_argument("--subset", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--groups", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()

    from cluster.ray_runtime import stop_ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        student, scenes = (args.student, args.scenes) if args.student else fresh_inputs(root)
        try:
            results = {
                mode: summarise(run_mode(mode, args, student, scenes, root)) for mode in ("sync", "async")
            }
        finally:
            stop_ray()
    print(f"\nELF-GRPO loop, {args.steps} steps x {args.groups} groups, {args.replicas} rollout replica(s)")
    print(f"{'':<24}" + "".join(f"{m:>10}" for m in results))
    for phase in PHASES:
        print(f"{phase + ' [s]':<24}" + "".join(f"{r['seconds'][phase]:>10.2f}" for r in results.values()))
    for key in (
        "learner_idle_fraction",
        "steps_per_hour",
        "all_fail_before",
        "all_fail_after",
        "reinjections_per_step",
        "format_error_rate",
        "reward_mean",
        "staleness",
    ):
        print(f"{key:<24}" + "".join(f"{r[key]:>10.3f}" for r in results.values()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
