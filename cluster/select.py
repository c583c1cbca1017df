"""Hard-sample selection (DESIGN step 1): the SFT model answers every training scene N times; a scene is
kept when it is hard (low mean reward) or ambiguous (high reward variance), dropped when mastered.

The paper gives no thresholds (85k -> 24k scenes); ours are `select.hard_mean_max` and
`select.ambiguous_var_min`. The variance is the population variance of the N rewards. Output, in the
selection folder: `selected.json` (the manifest `train.subset` reads: kept scene ids, thresholds,
counts), `scenes.jsonl` (every scene's mean, variance and verdict) and `selection.png` (the mean/variance
plane with the kept region).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from cluster.rollouts import load_prompts, rewards, score_rollouts
from cluster.sections import SelectConfig

if TYPE_CHECKING:
    from cluster.config import ExperimentConfig
    from cluster.loop import Services
    from driving.dataset import SceneDataset

Verdict = Literal["hard", "ambiguous", "mastered"]
MANIFEST = "selected.json"


def classify(mean: float, variance: float, config: SelectConfig) -> Verdict:
    """hard: mean < hard_mean_max; else ambiguous: variance >= ambiguous_var_min; else mastered."""
    if mean < config.hard_mean_max:
        return "hard"
    if variance >= config.ambiguous_var_min:
        return "ambiguous"
    return "mastered"


@dataclass(frozen=True)
class SceneVerdict:
    scene_id: str
    family: str
    mean: float  # mean reward of the N rollouts
    variance: float  # population variance [reward²]
    format_errors: int  # unparseable rollouts among the N (reward 0)
    verdict: Verdict

    @property
    def kept(self) -> bool:
        return self.verdict != "mastered"


def select_scenes(
    config: ExperimentConfig,
    services: Services,
    dataset: SceneDataset,
    text_only: bool,
    on_progress: Callable[[int], None] | None = None,
) -> list[SceneVerdict]:
    """Roll out N times on every scene of the split and classify it."""
    cfg = config.select
    entries = list(dataset.entries(cfg.split))[: cfg.max_scenes]
    out: list[SceneVerdict] = []
    for call, first in enumerate(range(0, len(entries), cfg.scenes_per_call)):
        chunk = entries[first : first + cfg.scenes_per_call]
        scenes, prompts = load_prompts(dataset, chunk, text_only)
        seed = int(np.random.SeedSequence([config.run.seed, call, 2]).generate_state(1)[0])
        groups = services.rollouts.generate(
            prompts, cfg.rollouts_per_scene, config.rollout.sampling.params(seed)
        )
        groups = score_rollouts(services.scorer, scenes, groups, config.scorer.metric)
        for entry, group in zip(chunk, groups, strict=True):
            r = np.asarray(rewards(group))
            mean, variance = float(r.mean()), float(r.var())
            verdict = classify(mean, variance, cfg)
            errors = sum(not x.well_formed for x in group)
            out.append(SceneVerdict(entry.id, entry.family, mean, variance, errors, verdict))
        if on_progress:
            on_progress(len(chunk))
    return out


def write_selection(verdicts: Sequence[SceneVerdict], config: ExperimentConfig, out_dir: str | Path) -> Path:
    """Write the manifest, the per-scene table and the plot; returns the manifest's path."""
    from cluster.plots import plot_selection

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {v: sum(x.verdict == v for x in verdicts) for v in ("hard", "ambiguous", "mastered")}
    manifest = {
        "scene_ids": [v.scene_id for v in verdicts if v.kept],
        "scenes": len(verdicts),
        "kept": sum(v.kept for v in verdicts),
        "counts": counts,
        "rollouts_per_scene": config.select.rollouts_per_scene,
        "thresholds": {
            "hard_mean_max": config.select.hard_mean_max,
            "ambiguous_var_min": config.select.ambiguous_var_min,
        },
        "student_dir": str(config.rollout.student_dir),
        "scenes_dir": str(config.train.scenes_dir),
        "split": config.select.split,
        "metric": config.scorer.metric,
        "format_error_rate": sum(v.format_errors for v in verdicts)
        / max(1, len(verdicts) * config.select.rollouts_per_scene),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    with open(out / "scenes.jsonl", "w") as f:
        for v in verdicts:
            f.write(json.dumps(asdict(v)) + "\n")
    plot_selection(verdicts, config.select, out / "selection.png")
    return out / MANIFEST
