"""What selection, training and evaluation share: scenes and their q_base prompts from a dataset folder,
scoring groups of rollouts (unparseable responses get reward 0 without reaching the scorer), and the
ground-truth answer as a rollout (GT-GRPO's reinjected sample)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from actors.prompts import Prompt, build_base_prompt, front_image
from actors.response import ground_truth_response, parse_response
from actors.rollout import Rollout
from cluster.elf import unparseable_breakdown
from driving.dataset import IndexEntry, SceneDataset
from driving.scene import Scene
from scorer.pool import ScoreRequest, ScorerPool
from teacher_service.schema import ScoreBreakdown


def is_text_only(student_dir: str | Path) -> bool:
    """A text-only student (tiny-text) gets prompts without the image."""
    from actors.model_factory import read_student_info

    return read_student_info(student_dir).family == "text"


def load_prompts(
    dataset: SceneDataset, entries: Sequence[IndexEntry], text_only: bool
) -> tuple[list[Scene], list[Prompt]]:
    """The scenes of `entries` and their q_base prompts with the stored front camera image."""
    scenes = [dataset.load(e) for e in entries]
    prompts = [build_base_prompt(s, None if text_only else front_image(s, dataset.root)) for s in scenes]
    return scenes, prompts


def score_rollouts(
    scorer: ScorerPool,
    scenes: Sequence[Scene],
    groups: Sequence[Sequence[Rollout]],
    metric: Literal["pdms", "epdms"],
) -> list[list[Rollout]]:
    """Every rollout with its score; group i belongs to scene i. One scorer request per scene holds all
    its well-formed plans; malformed responses get `unparseable_breakdown` (reward 0)."""
    requests: list[ScoreRequest] = []
    where: list[tuple[int, list[int]]] = []  # (group, indices of its well-formed rollouts)
    for g, (scene, group) in enumerate(zip(scenes, groups, strict=True)):
        parsed = [i for i, r in enumerate(group) if r.well_formed]
        if parsed:
            plans = np.stack([group[i].response.poses for i in parsed])  # type: ignore[union-attr]  # (K, 8, 3)
            requests.append(ScoreRequest(scene, plans, metric))
            where.append((g, parsed))
    results = scorer.score_groups(requests) if requests else []
    zero = unparseable_breakdown(metric)
    scored = [[r.with_score(zero) for r in group] for group in groups]
    for (g, parsed), batch in zip(where, results, strict=True):
        for j, i in enumerate(parsed):
            scored[g][i] = groups[g][i].with_score(ScoreBreakdown.from_scorer(batch.result(j), metric))
    return scored


def rewards(group: Sequence[Rollout]) -> list[float]:
    """The scores of a scored group."""
    return [r.score.score if r.score is not None else 0.0 for r in group]


def ground_truth_rollout(scene: Scene, processor: Any, version: int) -> Rollout:
    """The scene's ground-truth answer (`ground_truth_response`) as a reinjectable rollout, tokenised as
    the engines end an answer (text + end-of-turn token). Tagged `fb` like the corrections it replaces;
    it was never sampled, so it has no prompt ids and its log-probs are 0 (policy shaping ignores them)."""
    from actors.encoding import text_tokenizer

    text = ground_truth_response(scene)
    tok = text_tokenizer(processor)
    ids = tok(text + tok.eos_token, add_special_tokens=False)["input_ids"]
    return Rollout(
        scene_id=scene.id or "",
        kind="fb",
        prompt_token_ids=(),
        token_ids=tuple(ids),
        logprobs=np.zeros(len(ids), dtype=np.float32),
        finish_reason="stop",
        text=text,
        response=parse_response(text),
        version=version,
    )
