"""Evaluation of one checkpoint on a split of a scene folder: the numbers the paper's tables report.

    one greedy answer per scene (T = 0)     PDMS and EPDMS with every sub-metric (mean), per family and
                                            difficulty; high-level planning accuracy (the answer's meta
                                            action against the ground truth's); format-error rate
    n answers sampled (rollout.sampling)    all-fail ratio: the share of scenes where all n answers score
                                            below s (`train.correct_threshold`, reward `scorer.metric`)

Answers come from the rollout pool and are scored by the scorer pool, in-process or on Ray as the config
says, in chunks of `SCENES_PER_CALL` scenes (a NAVSIM test split does not sit in memory at once).

Choices: an unparseable answer scores 0 on every sub-metric (as in training) and its meta action counts
as wrong, so accuracies and means are over all scenes. The ground-truth meta action is the one of the
ground-truth answer (`ground_truth_response`): the scene's `sample.meta_action`, or, where it has none
(NAVSIM exports), the one read off the expert/human plan. Sampling is seeded by `run.seed` and the chunk,
so checkpoints evaluated with one seed see the same random stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actors.response import Response, ground_truth_response, parse_response
from cluster.rollouts import load_prompts, rewards, score_rollouts
from teacher_service.schema import SCORED_METRICS, ScoreBreakdown

if TYPE_CHECKING:
    from actors.rollout import Rollout, RolloutPool
    from cluster.config import ExperimentConfig
    from driving.dataset import IndexEntry, SceneDataset
    from driving.scene import Scene
    from scorer.pool import ScorerPool

SCENES_PER_CALL = 64
REPORT = "eval.json"
TABLE = "eval.md"
# column headers of the sub-metrics (NAVSIM's abbreviations)
SHORT = {
    "no_at_fault_collisions": "NC",
    "drivable_area_compliance": "DAC",
    "driving_direction_compliance": "DDC",
    "traffic_light_compliance": "TLC",
    "time_to_collision_within_bound": "TTC",
    "ego_progress": "EP",
    "comfort": "C",
    "lane_keeping": "LK",
    "history_comfort": "HC",
    "extended_comfort": "EC",
}


@dataclass(frozen=True)
class SceneEval:
    """One scene: its greedy answer's scores and meta action, and the rewards of its n sampled answers."""

    scene_id: str
    family: str
    difficulty: str
    error: str | None  # the greedy answer's parse-error kind; None: well-formed
    meta_action: str | None  # the greedy answer's "lateral,longitudinal"
    truth_meta_action: str
    plan: list[list[float]] | None  # (8, 3) the greedy plan, ego frame [m, m, rad]
    pdms: dict[str, float]  # "score" and the PDMS sub-metrics of the greedy plan
    epdms: dict[str, float]  # "score" and the EPDMS sub-metrics
    sampled: list[float]  # (n,) rewards of the sampled answers
    sampled_errors: int  # unparseable sampled answers


@dataclass(frozen=True)
class EvalReport:
    checkpoint: str
    scenes_dir: str
    split: str
    samples: int  # n
    threshold: float  # s
    reward_metric: str  # what the sampled answers are scored with
    seconds: float  # [s] wall time
    overall: dict  # `summarise` of every scene
    by_difficulty: dict[str, dict]
    by_family: dict[str, dict]
    scenes: list[SceneEval]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalReport:
        return cls(**{**data, "scenes": [SceneEval(**s) for s in data["scenes"]]})


# ---------------------------------------------------------------------------------- numbers ---


def sub_metrics(breakdown: ScoreBreakdown) -> dict[str, float]:
    """The score and the sub-metrics its metric counts."""
    names = SCORED_METRICS[breakdown.metric]
    return {"score": breakdown.score, **{n: float(getattr(breakdown, n) or 0.0) for n in names}}


def _meta(response: Response) -> str:
    return f"{response.meta_action.lateral},{response.meta_action.longitudinal}"


def summarise(scenes: Sequence[SceneEval], threshold: float) -> dict:
    """Means over the scenes: scores and sub-metrics, all-fail ratio, planning accuracy, format errors."""

    def mean(values: Sequence[float]) -> float:
        return float(np.mean(values)) if len(values) else 0.0

    def means(rows: list[dict[str, float]]) -> dict[str, float]:
        return {k: mean([r[k] for r in rows]) for k in rows[0]} if rows else {}

    truth = [s.truth_meta_action.split(",") for s in scenes]
    said = [(s.meta_action or ",").split(",") for s in scenes]
    samples = sum(len(s.sampled) for s in scenes)
    return {
        "scenes": len(scenes),
        "pdms": means([s.pdms for s in scenes]),
        "epdms": means([s.epdms for s in scenes]),
        "all_fail_ratio": mean([all(r < threshold for r in s.sampled) for s in scenes]),
        "sampled_reward_mean": mean([r for s in scenes for r in s.sampled]),
        "planning_accuracy": {
            "meta_action": mean([a == t for a, t in zip(said, truth)]),
            "lateral": mean([a[0] == t[0] for a, t in zip(said, truth)]),
            "longitudinal": mean([a[1] == t[1] for a, t in zip(said, truth)]),
        },
        "format_error_rate": mean([s.error is not None for s in scenes]),
        "sampled_format_error_rate": sum(s.sampled_errors for s in scenes) / max(1, samples),
    }


def _breakdown(scenes: Sequence[SceneEval], key: Callable[[SceneEval], str], threshold: float) -> dict:
    keys = sorted({key(s) for s in scenes})
    return {k: summarise([s for s in scenes if key(s) == k], threshold) for k in keys}


# -------------------------------------------------------------------------------- evaluating ---


def evaluate_checkpoint(
    config: ExperimentConfig,
    rollouts: RolloutPool,
    scorer: ScorerPool,
    dataset: SceneDataset,
    entries: Sequence[IndexEntry],
    text_only: bool,
    on_progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Greedy and sampled answers of the student the rollout pool serves, on `entries`, scored."""
    from actors.engines import SamplingParams

    start = time.perf_counter()
    n, s = config.eval.samples, config.train.correct_threshold
    greedy = SamplingParams(temperature=0.0, max_new_tokens=config.rollout.sampling.max_new_tokens)
    out: list[SceneEval] = []
    for call, first in enumerate(range(0, len(entries), SCENES_PER_CALL)):
        chunk = entries[first : first + SCENES_PER_CALL]
        scenes, prompts = load_prompts(dataset, chunk, text_only)
        answers = rollouts.generate(prompts, 1, greedy)
        seed = int(np.random.SeedSequence([config.run.seed, call, 3]).generate_state(1)[0])
        sampled = rollouts.generate(prompts, n, config.rollout.sampling.params(seed))
        by_pdms = score_rollouts(scorer, scenes, answers, "pdms")
        by_epdms = score_rollouts(scorer, scenes, answers, "epdms")
        sampled = score_rollouts(scorer, scenes, sampled, config.scorer.metric)
        for entry, scene, [p], [e], group in zip(chunk, scenes, by_pdms, by_epdms, sampled, strict=True):
            out.append(_scene_eval(entry, scene, p, e, group))
        if on_progress:
            on_progress(len(chunk))
    return EvalReport(
        checkpoint=str(config.rollout.student_dir),
        scenes_dir=str(dataset.root),
        split=config.eval.split,
        samples=n,
        threshold=s,
        reward_metric=config.scorer.metric,
        seconds=time.perf_counter() - start,
        overall=summarise(out, s),
        by_difficulty=_breakdown(out, lambda x: x.difficulty, s),
        by_family=_breakdown(out, lambda x: x.family, s),
        scenes=out,
    )


def _scene_eval(entry: IndexEntry, scene: Scene, pdms: Rollout, epdms: Rollout, group: list) -> SceneEval:
    truth = parse_response(ground_truth_response(scene))
    assert isinstance(truth, Response), f"scene {entry.id}: its ground-truth answer does not parse"
    answer = pdms.response
    well_formed = isinstance(answer, Response)
    return SceneEval(
        scene_id=entry.id,
        family=entry.family,
        difficulty=entry.difficulty,
        error=None if well_formed else answer.kind.value,  # type: ignore[union-attr]  # a ParseError
        meta_action=_meta(answer) if well_formed else None,  # type: ignore[arg-type]
        truth_meta_action=_meta(truth),
        plan=answer.poses.tolist() if well_formed else None,  # type: ignore[union-attr]
        pdms=sub_metrics(pdms.score),  # type: ignore[arg-type]  # scored
        epdms=sub_metrics(epdms.score),  # type: ignore[arg-type]
        sampled=rewards(group),
        sampled_errors=sum(not r.well_formed for r in group),
    )


# ---------------------------------------------------------------------------------- writing ---


def _row(name: str, r: dict) -> str:
    return (
        f"| {name} | {r['scenes']} | {r['pdms'].get('score', 0):.3f} | {r['epdms'].get('score', 0):.3f} "
        f"| {r['all_fail_ratio']:.3f} | {r['planning_accuracy']['meta_action']:.3f} "
        f"| {r['format_error_rate']:.3f} |"
    )


def markdown(report: EvalReport) -> str:
    """The report's tables: scores per difficulty and family, and the sub-metrics of all scenes."""
    o = report.overall
    lines = [
        f"Checkpoint `{report.checkpoint}` on split `{report.split}` of `{report.scenes_dir}`: greedy answers; "
        f"all-fail ratio over n = {report.samples} sampled answers below s = {report.threshold} "
        f"({report.reward_metric}).",
        "",
        "| scenes | n | PDMS | EPDMS | all-fail ratio | meta-action accuracy | format-error rate |",
        "|---|---|---|---|---|---|---|",
        _row("**all**", o),
        *[_row(f"*{k}*", r) for k, r in report.by_difficulty.items()],
        *[_row(k, r) for k, r in report.by_family.items()],
        "",
    ]
    for metric in ("pdms", "epdms"):
        names = list(SCORED_METRICS[metric])
        lines += [
            "| " + " | ".join([*(SHORT[n] for n in names), metric.upper()]) + " |",
            "|" + "---|" * (len(names) + 1),
            "| " + " | ".join(f"{o[metric].get(k, 0):.3f}" for k in [*names, "score"]) + " |",
            "",
        ]
    acc = o["planning_accuracy"]
    lines.append(
        f"Planning accuracy: lateral {acc['lateral']:.3f}, longitudinal {acc['longitudinal']:.3f}, both "
        f"{acc['meta_action']:.3f}. Sampled answers: mean reward {o['sampled_reward_mean']:.3f}, format-error "
        f"rate {o['sampled_format_error_rate']:.3f}. {report.seconds:.0f} s."
    )
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, out_dir: str | Path) -> list[Path]:
    """eval.json, eval.md and the plots (per-family bars, score histograms) into `out_dir`."""
    from cluster.plots import plot_eval

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    (out / TABLE).write_text(markdown(report))
    return [out / REPORT, out / TABLE, *plot_eval(report, out)]


def read_report(path: str | Path) -> EvalReport:
    """An eval.json (or the folder holding it)."""
    path = Path(path)
    return EvalReport.from_dict(json.loads((path / REPORT if path.is_dir() else path).read_text()))
