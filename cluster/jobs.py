"""The jobs the commands (and the demo) run: `run_select`, `run_train` and `run_eval`. Start-up goes in the order that
fails cheapest first: the config's folders (`check_inputs`, before Ray starts), then Ray, the placement
groups, and the components (`start_services`). Ray is left running for the caller to stop.

The teacher: transport `local` runs it in-process; `handle` deploys the Serve app on this Ray cluster
(unless it is already running) and calls it through a deployment handle; `http` calls a service started
elsewhere (`elf-vla serve-teacher`). Either remote transport falls back to the analytic teacher, counted,
when the service is slow or down.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.rollout import RolloutPool
    from cluster.config import ExperimentConfig
    from cluster.evaluate import EvalReport
    from cluster.loop import ElfGrpoTrainer, Services
    from cluster.metrics import StepRecord
    from cluster.resources import ResourceLayout
    from cluster.select import SceneVerdict
    from scorer.pool import ScorerPool


class StartupError(ValueError):
    """Inputs a job cannot start with; each problem names its config key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cannot start:\n  " + "\n  ".join(problems))


def check_inputs(config: ExperimentConfig, needs_learner: bool = True) -> None:
    """The folders the job reads exist and are what they should be (checked here, not at config load,
    so that a paper-scale config validates on a machine without its models)."""
    from actors.model_factory import MARKER

    problems = []
    student = Path(config.rollout.student_dir)
    if not (student / MARKER).is_file():
        problems.append(
            f"rollout.student_dir: {student} is not a student folder (no {MARKER}; see init-model)"
        )
    scenes = config.train.scenes_dir
    if scenes is None:
        problems.append("train.scenes_dir: not set; give a folder written by `elf-vla make-scenes`")
    elif not (Path(scenes) / "manifest.json").is_file():
        problems.append(f"train.scenes_dir: {scenes} has no manifest.json (not a make-scenes folder)")
    subset = config.train.subset
    if needs_learner and subset is not None and not Path(subset).is_file():
        problems.append(f"train.subset: {subset} does not exist (write it with `elf-vla select`)")
    backend = config.teacher.backend
    if (
        config.teacher.client.transport != "http"
        and backend.type == "vlm"
        and not Path(backend.model_path).is_dir()
    ):
        problems.append(f"teacher.backend.model_path: {backend.model_path} is not a folder")
    if problems:
        raise StartupError(problems)


def start_ray_for(config: ExperimentConfig) -> None:
    from cluster.ray_runtime import start_ray

    c = config.cluster
    start_ray(address=c.address, num_cpus=c.num_cpus, metrics_port=c.metrics_port)


def reserve_resources(config: ExperimentConfig) -> ResourceLayout:
    """The placement groups of the config (`cluster.resources.reserve`); a misfit is a start-up error."""
    from cluster.resources import PlacementError, reserve

    try:
        return reserve(config)
    except PlacementError as err:
        raise StartupError([f"placement: {err}"]) from None


def start_pools(config: ExperimentConfig, layout: ResourceLayout) -> tuple[RolloutPool, ScorerPool]:
    """The rollout pool and the scorer pool, each placed in its placement group."""
    from functools import partial

    from actors.rollout import RolloutPool
    from scorer.pool import ScorerPool

    r, s = config.rollout, config.scorer
    rollouts = RolloutPool(
        replicas=r.replicas,
        student_dir=r.student_dir,
        engine=r.engine,
        num_cpus_per_replica=r.num_cpus_per_replica,
        num_gpus_per_replica=r.num_gpus_per_replica,
        max_batch=r.max_batch,
        actor_options=partial(layout.options, "rollout"),
    )
    scorer = ScorerPool(
        actors=s.actors,
        cache_size=s.cache_size,
        num_cpus_per_actor=s.num_cpus_per_actor,
        actor_options=partial(layout.options, "scorer"),
    )
    return rollouts, scorer


def start_services(config: ExperimentConfig, layout: ResourceLayout, with_learner: bool = True) -> Services:
    """Rollout pool, scorer pool, teacher client and learner group, each placed in its placement group."""
    from functools import partial

    from actors.model_factory import load_processor
    from cluster.loop import Services
    from learner.group import LearnerGroup

    r = config.rollout
    rollouts, scorer = start_pools(config, layout)
    learner = None
    if with_learner:
        learner = LearnerGroup(
            r.student_dir, config.learner, actor_options=partial(layout.options, "learner")
        )
    return Services(
        rollouts=rollouts,
        scorer=scorer,
        teacher=start_teacher(config),
        learner=learner,
        processor=load_processor(r.student_dir),
        layout=layout,
    )


def start_teacher(config: ExperimentConfig):  # noqa: ANN201 - a Teacher
    from teacher_service.client import make_teacher_client

    if config.teacher.client.transport == "handle":
        from cluster.resources import teacher_node_resources
        from teacher_service.serve_app import serve_teacher

        # (re)deploys the app of this config, on the teacher nodes; a no-op when it runs already
        serve_teacher(
            config.teacher, node_resources=teacher_node_resources(config.cluster, config.teacher.serve)
        )
    return make_teacher_client(config.teacher)


# ---------------------------------------------------------------------------------------- jobs ---


def run_select(config: ExperimentConfig, out_dir: str | Path) -> tuple[Path, list[SceneVerdict]]:
    """Hard-sample selection into `out_dir`; returns the manifest's path and every scene's verdict."""
    from tqdm import tqdm

    from cluster.rollouts import is_text_only
    from cluster.select import select_scenes, write_selection
    from driving.dataset import SceneDataset

    check_inputs(config, needs_learner=False)
    start_ray_for(config)
    layout = reserve_resources(_without_learner(config))
    services = start_services(config, layout, with_learner=False)
    try:
        dataset = SceneDataset(config.train.scenes_dir)  # type: ignore[arg-type]  # checked
        total = sum(1 for _ in dataset.entries(config.select.split))
        total = min(total, config.select.max_scenes or total)
        with tqdm(total=total, unit="scene", desc="select", file=sys.stderr) as bar:
            verdicts = select_scenes(
                config, services, dataset, is_text_only(config.rollout.student_dir), bar.update
            )
        return write_selection(verdicts, config, out_dir), verdicts
    finally:
        services.shutdown()


def _without_learner(config: ExperimentConfig) -> ExperimentConfig:
    """The config with no learner ranks: what a job that does not learn reserves."""
    return config.model_copy(update={"learner": config.learner.model_copy(update={"ranks": 0})})


def resolve_checkpoint(path: str | Path) -> Path:
    """A student folder (init-model, SFT or training checkpoint), or a training run folder: its latest
    checkpoint."""
    from actors.model_factory import MARKER
    from cluster.loop import CHECKPOINTS, LATEST

    path = Path(path)
    latest = path / CHECKPOINTS / LATEST
    if not (path / MARKER).is_file() and latest.is_file():
        return path / CHECKPOINTS / latest.read_text().strip()
    return path


def run_eval(config: ExperimentConfig, out_dir: str | Path | None = None) -> EvalReport:
    """Evaluate the student `rollout.student_dir` on `eval.split` of `eval.scenes_dir` (or
    `train.scenes_dir`); with `out_dir`, write the report, its tables and plots there."""
    from tqdm import tqdm

    from actors.model_factory import MARKER
    from cluster.evaluate import evaluate_checkpoint, write_report
    from cluster.rollouts import is_text_only
    from driving.dataset import SceneDataset

    student, scenes = Path(config.rollout.student_dir), config.eval.scenes_dir or config.train.scenes_dir
    problems = []
    if not (student / MARKER).is_file():
        problems.append(f"rollout.student_dir: {student} is not a student folder (no {MARKER})")
    if scenes is None or not (Path(scenes) / "manifest.json").is_file():
        problems.append(f"eval.scenes_dir: {scenes} is not a scene folder (no manifest.json)")
    if problems:
        raise StartupError(problems)
    dataset = SceneDataset(scenes)  # type: ignore[arg-type]  # checked
    entries = list(dataset.entries(config.eval.split))[: config.eval.max_scenes]
    if not entries:
        raise StartupError([f"eval.split: no {config.eval.split} scenes in {scenes}"])
    start_ray_for(config)
    layout = reserve_resources(_without_learner(config))
    rollouts, scorer = start_pools(config, layout)
    try:
        with tqdm(total=len(entries), unit="scene", desc="eval", file=sys.stderr) as bar:
            report = evaluate_checkpoint(
                config, rollouts, scorer, dataset, entries, is_text_only(student), bar.update
            )
    finally:
        rollouts.shutdown()
        scorer.shutdown()
        layout.release()
    if out_dir is not None:
        write_report(report, out_dir)
    return report


@dataclass(frozen=True)
class TrainOutcome:
    records: list[StepRecord]  # the steps this call ran
    stopped: bool  # by a signal, before train.steps
    checkpoint: Path | None  # the latest checkpoint
    plots: list[Path]


def run_train(config: ExperimentConfig, run_dir: str | Path, resume: bool = False) -> TrainOutcome:
    """ELF-GRPO training into `run_dir` (resumed from its latest checkpoint when `resume`)."""
    from cluster.config import write_resolved
    from cluster.loop import CHECKPOINTS, LATEST, LOG, ElfGrpoTrainer, training_entries
    from cluster.metrics import read_log
    from cluster.plots import plot_training
    from cluster.rollouts import is_text_only
    from driving.dataset import SceneDataset

    check_inputs(config)
    run_dir = Path(run_dir)
    write_resolved(config, run_dir)  # what `--resume` and `elf-vla top` read
    if resume and not (run_dir / CHECKPOINTS / LATEST).is_file():
        raise StartupError([f"--resume {run_dir}: no checkpoint in {run_dir / CHECKPOINTS}"])
    dataset = SceneDataset(config.train.scenes_dir)  # type: ignore[arg-type]  # checked
    entries = training_entries(dataset, config.train.split, config.train.subset)
    start_ray_for(config)
    services = start_services(config, reserve_resources(config))
    try:
        text_only = is_text_only(config.rollout.student_dir)
        trainer = ElfGrpoTrainer(config, services, dataset, entries, run_dir, text_only)
        first, prefetched = trainer.restore() if resume else (1, None)
        with stop_on_signals(trainer):
            records = trainer.run(first, prefetched)
        plots = plot_training(read_log(run_dir / LOG), run_dir / "plots")
        latest = run_dir / CHECKPOINTS / LATEST
        checkpoint = run_dir / CHECKPOINTS / latest.read_text().strip() if latest.is_file() else None
        stopped = trainer.stop_requested and (not records or records[-1].step < config.train.steps)
        _write_summary(run_dir, read_log(run_dir / LOG), checkpoint)
        return TrainOutcome(records, stopped, checkpoint, plots)
    finally:
        services.shutdown()


@contextmanager
def stop_on_signals(trainer: ElfGrpoTrainer) -> Iterator[None]:
    """SIGINT/SIGTERM: finish the step, checkpoint, return; a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        print(
            "\n[train] stopping after this step (checkpoint); signal again to abort",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_summary(run_dir: Path, records: list[StepRecord], checkpoint: Path | None) -> None:
    """summary.json: per-run means of the numbers the issue asks for."""
    import numpy as np

    if not records:
        return

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    phases = sorted({k for r in records for k in r.seconds})
    summary = {
        "steps": records[-1].step,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "reward_first": records[0].reward_mean,
        "reward_last": records[-1].reward_mean,
        "all_fail_ratio_before": mean([r.all_fail_ratio_before for r in records]),
        "all_fail_ratio_after": mean([r.all_fail_ratio_after for r in records]),
        "reinjections_per_step": mean([r.reinjections for r in records]),
        "format_error_rate": sum(r.format_errors for r in records) / max(1, sum(r.rollouts for r in records)),
        "teacher_fallbacks": records[-1].teacher_fallbacks_total,
        "seconds_per_step": {p: mean([r.seconds.get(p, 0.0) for r in records]) for p in phases},
        "learner_idle_fraction": mean(
            [r.learner_idle_seconds / max(r.seconds.get("step", 0.0), 1e-9) for r in records]
        ),
        "steps_per_hour": 3600.0 / max(mean([r.seconds.get("step", 0.0) for r in records]), 1e-9),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
