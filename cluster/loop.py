"""The ELF-GRPO loop: the single controller that drives rollouts, scorer, teacher and learner.

One step (`ElfGrpoTrainer.collect` + `learn` + `sync`) is the recipe of DESIGN steps 2-7, read top to
bottom in `collect` and `run`. Everything it talks to is a pool or a group with an in-process mode, so the
same loop runs on one CPU (everything local) and on a Ray cluster (placement groups from the config).

Modes. `sync`: collect with weights v, update to v+1, sync, repeat (on-policy). `async` (one step off
policy): while the learner updates on step t's batch, a thread collects step t+1's batch with the weights
the engines serve (those of step t-1); the sync waits for that collection, so a batch is always sampled
by weights at most one version older than the learner that trains on it (`StepRecord.staleness` <= 1,
the sampling version of every response is recorded).

Variants (the ablations' arms, by config): plain GRPO (`train.reinject_top_k: 0`: no feedback is asked
for), GT-GRPO (`train.reinject_source: ground_truth`: the scored ground truth is offered where feedback
would be), and reinjection without policy shaping (`learner.loss.policy_shaping: false`, `learner.batch`).

Reproducibility. The scenes of step t and the sampling seeds are functions of (run.seed, t) only, so a
resumed run replays the same data order and RNG; the learner restores its optimizer and RNG state from
its checkpoint, and an async run's already-collected next batch is saved with it.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.prompts import Prompt, build_feedback_prompt
from actors.response import Response
from actors.rollout import ReplicaStats, Rollout
from cluster.elf import (
    FeedbackKind,
    GroupOutcome,
    choose_feedback,
    format_feedback,
    group_outcome,
    reinject_best_corrections,
    triggers_feedback,
)
from cluster.metrics import Metrics, StepRecord
from cluster.rollouts import ground_truth_rollout, load_prompts, rewards, score_rollouts
from driving.dataset import IndexEntry, SceneDataset
from driving.scene import Scene
from learner.batch import Group, build_train_batch
from teacher_service.render import positive_feedback, render_feedback
from teacher_service.schema import Diagnosis, DiagnosisRequest

if TYPE_CHECKING:
    from actors.engines import SamplingParams
    from actors.rollout import RolloutPool
    from cluster.config import ExperimentConfig
    from cluster.resources import ResourceLayout
    from learner.group import LearnerGroup
    from learner.worker import UpdateStats
    from scorer.pool import ScorerPool
    from teacher_service.teachers import Teacher

CHECKPOINTS = "checkpoints"
LATEST = "latest"
LOG = "log.jsonl"


# ------------------------------------------------------------------------------ data order ---


@lru_cache(maxsize=4)
def _permutation(count: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(count)


def step_scene_indices(count: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of the scenes of step `step` (1-based) among `count` training scenes: consecutive slices
    of one seeded permutation per epoch, a function of (seed, step) alone."""
    first = (step - 1) * per_step
    return [
        int(_permutation(count, seed, pos // count)[pos % count]) for pos in range(first, first + per_step)
    ]


def sampling_seed(seed: int, step: int, kind: str) -> int:
    """The sampling seed of step `step`'s q_base (`kind` "base") or q_fb ("fb") generation."""
    return int(np.random.SeedSequence([seed, step, 0 if kind == "base" else 1]).generate_state(1)[0])


def training_entries(dataset: SceneDataset, split: str, subset: Path | None) -> list[IndexEntry]:
    """The scenes training draws from: the split, restricted to a `select` manifest when given."""
    entries = list(dataset.entries(split))
    if subset is not None:
        keep = set(json.loads(Path(subset).read_text())["scene_ids"])
        entries = [e for e in entries if e.id in keep]
    if not entries:
        raise ValueError(f"no training scenes in {dataset.root} (split {split}, subset {subset})")
    return entries


# ------------------------------------------------------------------------------ containers ---


@dataclass
class Services:
    """What a step talks to; each runs in-process or on Ray as its config says."""

    rollouts: RolloutPool
    scorer: ScorerPool
    teacher: Teacher
    learner: LearnerGroup | None  # None: a selection job, which does not learn
    processor: Any  # the student's processor: encodes training batches
    layout: ResourceLayout | None = None

    def shutdown(self) -> None:
        self.rollouts.shutdown()
        self.scorer.shutdown()
        if self.learner is not None:
            self.learner.shutdown()
        if self.layout is not None:
            self.layout.release()


@dataclass(frozen=True, eq=False)
class Experience:
    """Steps 1-6 of one step: the groups to learn from (originals + reinjected) and its record so far."""

    step: int
    groups: list[Group]  # per scene: its n scored rollouts and the reinjected corrections
    corrections: list[list[Rollout]]  # per scene: every scored correction (reinjected or not)
    record: StepRecord  # counts and collection times; learner fields are filled by `learn`


@dataclass(frozen=True, eq=False)
class FeedbackPrompt:
    kind: FeedbackKind  # diagnosis (teacher) | format | positive (rules)
    prompt: Prompt  # q_fb


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, phase: str):  # noqa: ANN204 - a context manager
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


# --------------------------------------------------------------------------------- trainer ---


class ElfGrpoTrainer:
    """The controller of one training run: `collect` (steps 1-6), `learn` (7-8), `sync` (9), `run` (the
    loop with logging, metrics and checkpoints), `checkpoint` / `restore`."""

    def __init__(
        self,
        config: ExperimentConfig,
        services: Services,
        dataset: SceneDataset,
        entries: Sequence[IndexEntry],
        run_dir: Path,
        text_only: bool = False,
    ) -> None:
        assert services.learner is not None, "training needs a learner group"
        self.config, self.s, self.dataset, self.entries = config, services, dataset, list(entries)
        self.run_dir = Path(run_dir)
        self.text_only = text_only
        self.metrics = Metrics()
        self.stop_requested = False  # set by SIGINT: finish the step, checkpoint, return
        self.offsets: dict[str, int] = {}  # cumulative counts from before a resume
        self._exported: dict[str, int] = {}  # totals already exported to Prometheus
        self._exported_replicas: dict[int, ReplicaStats] = {}

    # ---------------------------------------------------------------------- the recipe ---

    def collect(self, step: int) -> Experience:
        """Steps 1-6: sample scenes, rollouts on q_base, score, feedback, corrections on q_fb, reinject."""
        cfg, t = self.config.train, Timer()
        picks = step_scene_indices(len(self.entries), cfg.groups_per_step, step, self.config.run.seed)
        scenes, prompts = load_prompts(self.dataset, [self.entries[i] for i in picks], self.text_only)  # 1
        with t("rollout"):  # 2. n responses per scene from q_base
            self.metrics.queue("rollout", len(prompts) * cfg.group_size)
            groups = self.s.rollouts.generate(prompts, cfg.group_size, self._sampling(step, "base"))
        with t("scoring"):  # 3. reward of every response (0 if unparseable)
            groups = score_rollouts(self.s.scorer, scenes, groups, self.config.scorer.metric)
        _check_accounted(scenes, groups, cfg.group_size)
        with t("teacher"):  # 4. diagnoses for wrong responses, rule feedback for correct ones
            fb_prompts = self._feedback_prompts(scenes, prompts, groups)
        with t("correction"):  # 5. the student answers q_fb; corrections are scored (GT-GRPO: the truth)
            corrections = self._corrections(step, scenes, fb_prompts)
            candidates = corrections if cfg.samples_corrections else self._ground_truths(scenes, groups)
        train_groups, outcomes = [], []
        for prompt, group, fixes in zip(prompts, groups, candidates):  # 6. reinject the k best
            chosen = reinject_best_corrections(rewards(group), rewards(fixes), cfg.reinject_top_k)
            train_groups.append(Group(prompt, tuple(group), tuple(fixes[i] for i in chosen)))
            outcomes.append(group_outcome(rewards(group), rewards(fixes), chosen, cfg.correct_threshold))
        record = self._collection_record(step, scenes, groups, corrections, fb_prompts, outcomes, t)
        return Experience(step, train_groups, corrections, record)

    def learn(self, experience: Experience) -> UpdateStats:
        """Steps 7-8: advantages over each group's union, one learner update."""
        loss = self.config.learner.loss
        batch = build_train_batch(
            experience.groups, self.s.processor, loss.std_normalize, loss.policy_shaping
        )
        return self.s.learner.update(batch)

    def sync(self) -> int:
        """Step 9: the learner's weights to every rollout replica, under the learner's version."""
        version = self.s.learner.version
        self.s.rollouts.update_weights(self.s.learner.export_weights(), version)
        return version

    # ----------------------------------------------------------------------------- run ---

    def run(self, first_step: int = 1, prefetched: Experience | None = None) -> list[StepRecord]:
        """Steps `first_step` .. train.steps (or until `stop_requested`), each logged, exported and
        checkpointed as configured. Returns the records of the steps it ran."""
        cfg = self.config.train
        records: list[StepRecord] = []
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collect")
        bar = _progress_bar(cfg.steps, first_step - 1)
        gauges = self.metrics.keep_gauges_alive()  # through steps longer than Ray keeps a gauge
        try:
            for step in range(first_step, cfg.steps + 1):
                start, learner_version = time.perf_counter(), self.s.learner.version
                experience = prefetched or self.collect(step)  # 1-6 (async: collected during the last update)
                pending = self._collect_ahead(ahead, step)  # async: step + 1 overlaps this update
                stats, update_s = _timed(self.learn, experience)  # 7-8
                prefetched = pending.result() if pending is not None else None
                version, sync_s = _timed(self.sync)  # 9
                record = self._finish_record(
                    experience, stats, version, learner_version, update_s, sync_s, time.perf_counter() - start
                )
                records.append(record)
                self._log(record, bar)  # 10. log, metrics, checkpoint
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or self.stop_requested:
                    self.checkpoint(step, prefetched)
                if self.stop_requested:
                    break
        finally:
            gauges.set()
            ahead.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return records

    def _collect_ahead(self, ahead: ThreadPoolExecutor, step: int) -> Future | None:
        """Async mode: start collecting step + 1 with the weights the engines serve now. Also when a stop
        was requested: the batch is checkpointed with the step, so that a resumed run trains step + 1 on
        what the uninterrupted run would have (sampled by these weights, not the next ones)."""
        if self.config.train.mode != "async" or step >= self.config.train.steps:
            return None
        return ahead.submit(self.collect, step + 1)

    # ---------------------------------------------------------------------- feedback ---

    def _feedback_prompts(
        self, scenes: Sequence[Scene], prompts: Sequence[Prompt], groups: Sequence[Sequence[Rollout]]
    ) -> list[list[FeedbackPrompt]]:
        """Per group, the q_fb prompts of the responses chosen for feedback (`elf.choose_feedback`); none
        where nothing would learn from them (plain GRPO, GT-GRPO)."""
        cfg = self.config.train
        if not cfg.samples_corrections:
            return [[] for _ in groups]
        choices = [
            choose_feedback(
                rewards(g),
                [r.well_formed for r in g],
                cfg.correct_threshold,
                cfg.trigger,
                cfg.max_feedback_per_group,
            )
            for g in groups
        ]
        wrong = [(gi, c.index) for gi, cs in enumerate(choices) for c in cs if c.kind == "diagnosis"]
        self.metrics.queue("teacher", len(wrong))
        diagnoses = self._diagnose(
            [self._diagnosis_request(scenes[gi], prompts[gi], groups[gi][i]) for gi, i in wrong]
        )
        self.metrics.queue("teacher", 0)
        texts = {key: render_feedback(d) for key, d in zip(wrong, diagnoses)}
        out: list[list[FeedbackPrompt]] = []
        for gi, cs in enumerate(choices):
            fb = []
            for c in cs:
                r = groups[gi][c.index]
                if c.kind == "diagnosis":
                    text = texts[(gi, c.index)]
                elif c.kind == "positive":
                    assert isinstance(r.response, Response) and r.score is not None
                    text = positive_feedback(r.score, r.response.meta_action)
                else:
                    text = format_feedback(r.response)  # type: ignore[arg-type]  # a ParseError
                fb.append(FeedbackPrompt(c.kind, build_feedback_prompt(prompts[gi], r.text, text)))
            out.append(fb)
        return out

    def _diagnosis_request(self, scene: Scene, prompt: Prompt, rollout: Rollout) -> DiagnosisRequest:
        response = rollout.response
        assert isinstance(response, Response) and rollout.score is not None
        images = None
        if self.config.teacher.backend.type == "vlm" and prompt.image is not None:
            images = {"front": _png_base64(prompt.image)}
        return DiagnosisRequest(
            scene_id=rollout.scene_id or "scene",
            scene=scene,
            plan=response.poses.tolist(),
            breakdown=rollout.score,
            think=response.think,
            meta_action=response.meta_action,
            images=images,
        )

    def _diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]:
        """The teacher's diagnoses (its client falls back to the analytic teacher on timeouts); a request
        the teacher cannot diagnose at all gets the coarse rule teacher's, and is counted."""
        if not requests:
            return []
        try:
            return self.s.teacher.diagnose(requests)
        except Exception:
            from teacher_service.teachers import CoarseTeacher

            out = []
            for request in requests:
                try:
                    out.extend(self.s.teacher.diagnose([request]))
                except Exception:
                    self.offsets["teacher_errors"] = self.offsets.get("teacher_errors", 0) + 1
                    out.extend(CoarseTeacher().diagnose([request]))
            return out

    def _corrections(
        self, step: int, scenes: Sequence[Scene], fb_prompts: Sequence[Sequence[FeedbackPrompt]]
    ) -> list[list[Rollout]]:
        """One answer per q_fb, scored; per group, in the order of its q_fb prompts."""
        flat = [f.prompt for fs in fb_prompts for f in fs]
        if not flat:
            return [[] for _ in fb_prompts]
        self.metrics.queue("rollout", len(flat))
        answers = self.s.rollouts.generate(flat, 1, self._sampling(step, "fb"))
        self.metrics.queue("rollout", 0)
        per_group, at = [], 0
        for ps in fb_prompts:
            per_group.append([a[0] for a in answers[at : at + len(ps)]])
            at += len(ps)
        return score_rollouts(self.s.scorer, scenes, per_group, self.config.scorer.metric)

    def _ground_truths(
        self, scenes: Sequence[Scene], groups: Sequence[Sequence[Rollout]]
    ) -> list[list[Rollout]]:
        """GT-GRPO: per group, the scored ground-truth answer where the group triggers feedback (else
        none); it is reinjected, like a correction, only if it beats the group's maximum."""
        if self.config.train.reinject_source != "ground_truth":
            return [[] for _ in groups]
        cfg, version = self.config.train, self.s.rollouts.version
        truths = [
            [ground_truth_rollout(scene, self.s.processor, version)]
            if triggers_feedback(rewards(g), cfg.correct_threshold, cfg.trigger)
            else []
            for scene, g in zip(scenes, groups)
        ]
        return score_rollouts(self.s.scorer, scenes, truths, self.config.scorer.metric)

    def _sampling(self, step: int, kind: str) -> SamplingParams:
        return self.config.rollout.sampling.params(seed=sampling_seed(self.config.run.seed, step, kind))

    # ----------------------------------------------------------------------- records ---

    def _collection_record(
        self,
        step: int,
        scenes: Sequence[Scene],
        groups: Sequence[Sequence[Rollout]],
        corrections: Sequence[Sequence[Rollout]],
        fb_prompts: Sequence[Sequence[FeedbackPrompt]],
        outcomes: Sequence[GroupOutcome],
        t: Timer,
    ) -> StepRecord:
        s = self.config.train.correct_threshold
        base = [x for g in groups for x in rewards(g)]
        fixes = [r for g in corrections for r in g]
        kinds = [f.kind for fs in fb_prompts for f in fs]
        return StepRecord(
            step=step,
            version=0,  # version, time and the learner's numbers are filled in by `_finish_record`
            time=0.0,
            scene_ids=[sc.id or "" for sc in scenes],
            groups=len(groups),
            rollouts=len(base),
            tokens=sum(len(r.token_ids) for g in groups for r in g) + sum(len(r.token_ids) for r in fixes),
            format_errors=sum(not r.well_formed for g in groups for r in g),
            reward_mean=float(np.mean(base)),
            reward_std=float(np.std(base)),
            correct_fraction=float(np.mean([x >= s for x in base])),
            all_fail_before=sum(o.all_fail_before for o in outcomes),
            all_fail_after=sum(o.all_fail_after for o in outcomes),
            feedback_groups=sum(bool(ps) for ps in fb_prompts),
            diagnoses=kinds.count("diagnosis"),
            positive_feedback=kinds.count("positive"),
            format_feedback=kinds.count("format"),
            corrections=len(fixes),
            correction_format_errors=sum(not r.well_formed for r in fixes),
            correction_reward_mean=float(np.mean(rewards(fixes))) if fixes else 0.0,
            reinjections=sum(o.reinjected for o in outcomes),
            sample_versions=sorted({r.version for g in groups for r in g} | {r.version for r in fixes}),
            seconds=dict(t.seconds),
        )

    def _finish_record(
        self,
        experience: Experience,
        stats: UpdateStats,
        version: int,
        learner_version: int,
        update_s: float,
        sync_s: float,
        step_s: float,
    ) -> StepRecord:
        r = experience.record
        seconds = {**r.seconds, "update": update_s, "sync": sync_s, "step": step_s}
        return replace(
            r,
            version=version,
            time=time.time(),
            loss=stats.loss,
            kl=stats.kl,
            shaping_weight_mean=stats.shaping_weight_mean,
            clip_fraction=stats.clip_fraction,
            grad_norm=stats.grad_norm,
            lr=stats.lr,
            samples=stats.samples,
            staleness=learner_version - min(r.sample_versions, default=learner_version),
            seconds=seconds,
            learner_idle_seconds=max(0.0, step_s - update_s),
            **self._totals(),
        )

    def _totals(self) -> dict[str, int]:
        o, roll, score = self.offsets, self.s.rollouts.stats, self.s.scorer.stats
        return {
            "teacher_fallbacks_total": o.get("teacher_fallbacks", 0) + self.s.teacher.stats.fallbacks,
            "rollout_restarts_total": o.get("rollout_restarts", 0) + roll.restarts,
            "rollout_retries_total": o.get("rollout_retries", 0) + roll.retries,
            "scorer_restarts_total": o.get("scorer_restarts", 0) + score.restarts,
            "scorer_retries_total": o.get("scorer_retries", 0) + score.retries,
        }

    def _log(self, record: StepRecord, bar: Any) -> None:
        """Append the record to log.jsonl, export it to Prometheus, show it on the progress bar."""
        with open(self.run_dir / LOG, "a") as f:
            f.write(record.to_json() + "\n")
        totals = self._totals()
        delta = {k: v - self._exported.get(k, 0) for k, v in totals.items()}
        replicas = dict(self.s.rollouts.stats.per_replica)
        self.metrics.record(
            record,
            replicas={i: r - self._exported_replicas.get(i, ReplicaStats()) for i, r in replicas.items()},
            restarts={c: delta[f"{c}_restarts_total"] for c in ("rollout", "scorer")},
            retries={c: delta[f"{c}_retries_total"] for c in ("rollout", "scorer")},
        )
        self._exported, self._exported_replicas = totals, replicas
        bar.update(1)
        bar.set_postfix(
            reward=f"{record.reward_mean:.3f}",
            all_fail=f"{record.all_fail_before}->{record.all_fail_after}",
            reinjected=record.reinjections,
        )

    # ------------------------------------------------------------------- checkpoints ---

    def checkpoint(self, step: int, prefetched: Experience | None) -> Path:
        """Learner state (HF model + DeepSpeed + RNG), the controller's counters, and in async mode the
        already-collected next batch; `latest` is switched only when all of it is written."""
        root = self.run_dir / CHECKPOINTS
        path = root / f"step-{step:06d}"
        if path.exists():
            shutil.rmtree(path)
        self.s.learner.save(path)
        totals = {k.removesuffix("_total"): v for k, v in self._totals().items()}
        totals["teacher_errors"] = self.offsets.get("teacher_errors", 0)
        (path / "controller.json").write_text(json.dumps({"step": step, "totals": totals}, indent=1))
        if prefetched is not None:
            (path / "prefetched.pkl").write_bytes(pickle.dumps(prefetched))
        tmp = root / (LATEST + ".tmp")
        tmp.write_text(path.name)
        tmp.replace(root / LATEST)
        for old in sorted(root.glob("step-*"))[: -self.config.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def restore(self) -> tuple[int, Experience | None]:
        """Load the latest checkpoint of this run folder; returns (next step, prefetched batch)."""
        root = self.run_dir / CHECKPOINTS
        path = root / (root / LATEST).read_text().strip()
        self.s.learner.load(path)
        state = json.loads((path / "controller.json").read_text())
        self.offsets = dict(state["totals"])
        self._exported = self._totals()
        self.sync()
        _truncate_log(self.run_dir / LOG, state["step"])
        fetched = path / "prefetched.pkl"
        prefetched = pickle.loads(fetched.read_bytes()) if fetched.is_file() else None
        if prefetched is not None and self.config.train.mode != "async":
            prefetched = None
        return state["step"] + 1, prefetched


# ----------------------------------------------------------------------------------- helpers ---


def _check_accounted(scenes: Sequence[Scene], groups: Sequence[Sequence[Rollout]], n: int) -> None:
    """Every scene of the step came back with n scored responses, in order (a lost shard would show)."""
    if len(groups) != len(scenes) or any(
        len(g) != n or any(r.scene_id != sc.id or r.score is None for r in g) for sc, g in zip(scenes, groups)
    ):
        raise RuntimeError("a step lost rollouts: the groups do not match the scenes sent")


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """(fn(*args), [s] it took)."""
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def _progress_bar(total: int, done: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", desc="elf-grpo", dynamic_ncols=True)


def _png_base64(image: Any) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines of steps after the checkpoint (they are replayed)."""
    if not path.is_file():
        return
    keep = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get("step", 0) <= last_step
    ]
    path.write_text("".join(line + "\n" for line in keep))
