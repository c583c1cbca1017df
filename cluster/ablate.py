"""`elf-vla ablate`: the paper's two ablation tables in miniature, from one SFT checkpoint, over seeds.

Arms. An arm is a name, dotted overrides of the base config (the base is ELF: its teacher, k, policy
shaping), the training data it uses and the table(s) it is a row of (`sections.Arm`). The defaults
(`sections.DEFAULT_ARMS`): SFT (the checkpoint, untrained), GRPO (k = 0), GT-GRPO (the ground truth
reinjected instead of corrections), Rule-GRPO (the coarse rule teacher), ELF, ELF without policy shaping,
ELF with k = 2 and 4, and ELF on the full training set and on a random subset. Arm overrides go through
the one config loader and are validated when the ablation config is loaded, before anything starts.

Budget. A step's rollout budget is the number of responses the student samples in it, q_base and q_fb
together: B = G (n + m), G groups of n q_base answers plus at most m (`max_feedback_per_group`) q_fb
answers per group (`TrainConfig.responses_per_step`). ELF arms spend at most B (q_fb answers are only
sampled in groups that trigger feedback); arms that sample no q_fb (GRPO, GT-GRPO) get their m answers
as larger groups, n + m per scene, over the same scenes per step. So no arm samples more than a GRPO
arm, and each run samples at most `train.steps` × B; the responses actually sampled per step are
reported next to B. An arm whose B differs (say, other `groups_per_step`) is refused. k = 4 needs
m >= 4, so the ablation's base sets m to the largest k (configs/ablate.yaml). Selection (the hard
subset) is computed once from the SFT checkpoint and is not charged to any arm.

Seeds. Seed s sets `run.seed` (data order and sampling, training and evaluation) and `learner.seed`.
Every arm of every seed starts from `rollout.student_dir` of the base config.

Data. `full`: every training scene; `hard`: the `select` subset of the SFT checkpoint (the paper's
training data; the default of every arm); `random`: as many scenes as `hard`, drawn at random from the
training split with the seed.

Evaluation. Every final checkpoint, and the SFT checkpoint, is evaluated with `cluster.evaluate` on
`eval.split` (test by default) once, after training: nothing is tuned on it.

The run folder: `ablation.json` (the command, the budget, every cell's numbers), `tables.md`, the plots
(`all_fail_curves.png`, `family_pdms.png`), `select/`, and `cells/<arm>/seed-<s>/{train,eval}/` (the final checkpoint in HF format, without
its DeepSpeed state). An interrupted run continues with `--resume RUN_DIR`: finished cells (`cell.json`)
are not run again, an unfinished one is run again from the start.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import Field

from cluster.config import (
    ConfigError,
    ExperimentConfig,
    apply_override,
    load_config,
    parse_override,
    validate,
)
from cluster.sections import AblateConfig, Arm

SUMMARY = "ablation.json"
TABLES = "tables.md"
RUNNER_KEYS = ("rollout.student_dir", "train.subset", "run.seed", "learner.seed")  # set per cell


class AblationConfig(ExperimentConfig):
    """The base experiment (ELF) and the `ablate` section."""

    ablate: AblateConfig = Field(default_factory=AblateConfig)

    def base(self) -> ExperimentConfig:
        return ExperimentConfig.model_validate(self.model_dump(mode="json", exclude={"ablate"}))


def arm_config(
    base: ExperimentConfig, arm: Arm, seed: int | None = None, subset: Path | None = None
) -> ExperimentConfig:
    """The base with the arm's overrides (and the cell's seed and data); an arm that samples no q_fb gets
    the q_fb part of the budget as larger groups (module docstring)."""
    data = base.model_dump(mode="json")
    for text in arm.overrides:
        path, value = parse_override(text)
        apply_override(data, path, value, ExperimentConfig)
    if seed is not None:
        data["run"]["seed"] = data["learner"]["seed"] = seed
    data["train"]["subset"] = str(subset) if subset is not None else None
    config = validate(data)
    if not config.train.samples_corrections:
        train = config.train
        data["train"]["group_size"] = train.group_size + train.max_feedback_per_group
        config = validate(data)
    return config


def load_ablation(path: str | Path | None, overrides: list[str] | None = None) -> AblationConfig:
    """The ablation config, its arms resolved and their budgets checked; a ConfigError otherwise."""
    config = load_config(path, overrides, model=AblationConfig)
    base, problems = config.base(), []
    if base.train.subset is not None:
        problems.append("train.subset: set per arm by its `data`; leave it unset")
    budget = base.train.responses_per_step
    for arm in config.ablate.arms:
        where = f"ablate.arms[{arm.name}]"
        for text in arm.overrides:
            if text.partition("=")[0].strip() in RUNNER_KEYS:
                problems.append(f"{where}: {text}: the runner sets {', '.join(RUNNER_KEYS)} per cell")
        try:
            resolved = arm_config(base, arm)
        except ConfigError as err:
            problems += [f"{where}: {p}" for p in err.problems]
            continue
        if arm.train and resolved.train.responses_per_step != budget:
            problems.append(
                f"{where}: samples up to {resolved.train.responses_per_step} responses per step, the base "
                f"{budget}; every arm gets the same rollout budget (see `elf-vla ablate --help`)"
            )
    if problems:
        raise ConfigError(problems, str(path) if path else None)
    return config


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ------------------------------------------------------------------------------------ cells ---


@dataclass
class Cell:
    """One arm trained and evaluated with one seed."""

    arm: str
    seed: int
    settings: dict  # data, training scenes, k, reinjected source, teacher, policy shaping, n, budget
    eval: dict  # `evaluate.summarise` of the test split
    by_family: dict[str, dict]
    train: dict = field(default_factory=dict)  # training means (empty for an untrained arm)
    all_fail_before: list[float] = field(default_factory=list)  # per step
    all_fail_after: list[float] = field(default_factory=list)
    seconds: float = 0.0  # [s] training and evaluation


def run_cell(base: ExperimentConfig, arm: Arm, seed: int, subset: Path | None, cell_dir: Path) -> Cell:
    """Train the arm from the base checkpoint (unless it is untrained), then evaluate its checkpoint."""
    from cluster.jobs import run_eval, run_train
    from cluster.loop import LOG, training_entries
    from cluster.metrics import read_log
    from driving.dataset import SceneDataset
    from learner.worker import DS_DIR

    start = time.perf_counter()
    shutil.rmtree(cell_dir, ignore_errors=True)  # what an interrupted attempt left
    config = arm_config(base, arm, seed, subset)
    checkpoint, records = Path(config.rollout.student_dir), []
    if arm.train:
        outcome = run_train(config, cell_dir / "train")
        assert outcome.checkpoint is not None, "run_train checkpoints at its last step"
        checkpoint, records = outcome.checkpoint, read_log(cell_dir / "train" / LOG)
    evaluated = config.model_copy(
        update={"rollout": config.rollout.model_copy(update={"student_dir": checkpoint})}
    )
    report = run_eval(evaluated, cell_dir / "eval")
    if arm.train:  # the optimizer state is only for resuming a run; a cell is rerun whole
        shutil.rmtree(checkpoint / DS_DIR, ignore_errors=True)
    t = config.train
    scenes = len(training_entries(SceneDataset(t.scenes_dir), t.split, t.subset)) if arm.train else 0  # type: ignore[arg-type]
    settings = {
        "data": arm.data, "training_scenes": scenes, "k": t.reinject_top_k, "source": t.reinject_source,
        "teacher": config.teacher.backend.type, "policy_shaping": config.learner.loss.policy_shaping,
        "group_size": t.group_size, "budget_per_step": t.responses_per_step, "trained": arm.train,
    }  # fmt: skip
    return Cell(
        arm=arm.name,
        seed=seed,
        settings=settings,
        eval=report.overall,
        by_family=report.by_family,
        train=_training_means(records),
        all_fail_before=[r.all_fail_ratio_before for r in records],
        all_fail_after=[r.all_fail_ratio_after for r in records],
        seconds=time.perf_counter() - start,
    )


def _training_means(records: list) -> dict:
    if not records:
        return {}
    return {
        "all_fail_ratio_before": float(np.mean([r.all_fail_ratio_before for r in records])),
        "all_fail_ratio_after": float(np.mean([r.all_fail_ratio_after for r in records])),
        "reinjections_per_step": float(np.mean([r.reinjections for r in records])),
        "responses_per_step": float(np.mean([r.rollouts + r.corrections for r in records])),
        "reward_first": records[0].reward_mean,
        "reward_last": records[-1].reward_mean,
        "seconds_per_step": float(np.mean([r.seconds.get("step", 0.0) for r in records])),
    }


# -------------------------------------------------------------------------------------- data ---


def prepare_subsets(config: AblationConfig, run_dir: Path) -> dict[tuple[str, int], Path | None]:
    """(data, seed) -> the `train.subset` manifest of the cells: None for `full`, the SFT checkpoint's
    selection for `hard`, a seeded random subset of the same size for `random`."""
    from cluster.jobs import run_select
    from cluster.select import MANIFEST
    from driving.dataset import SceneDataset

    base, wanted = config.base(), {a.data for a in config.ablate.arms if a.train}
    out: dict[tuple[str, int], Path | None] = {("full", s): None for s in config.ablate.seeds}
    if not wanted & {"hard", "random"}:
        return out
    hard = run_dir / "select" / MANIFEST
    if not hard.is_file():
        run_select(base, hard.parent)
    kept = json.loads(hard.read_text())["scene_ids"]
    if not kept:
        raise ConfigError(["select: the SFT checkpoint masters every training scene; nothing is hard"])
    train = [e.id for e in SceneDataset(base.train.scenes_dir).entries(base.train.split)]  # type: ignore[arg-type]
    for seed in config.ablate.seeds:
        out[("hard", seed)] = hard
        path = run_dir / "select" / f"random-seed-{seed}.json"
        if not path.is_file():
            picked = np.random.default_rng([seed, 7]).choice(len(train), size=len(kept), replace=False)
            path.write_text(json.dumps({"scene_ids": [train[i] for i in sorted(picked)]}, indent=1) + "\n")
        out[("random", seed)] = path
    return out


# ------------------------------------------------------------------------------------ runner ---


def run_ablation(config: AblationConfig, run_dir: str | Path, command: str) -> dict:
    """Every arm × seed (seeds outermost: a complete one-seed table comes first), then the tables and
    plots. Returns the summary written to `ablation.json`."""
    from cluster.config import write_resolved
    from cluster.jobs import check_inputs

    run_dir = Path(run_dir)
    base = config.base()
    check_inputs(base, needs_learner=False)
    write_resolved(config, run_dir)
    start = time.perf_counter()
    previous = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).is_file() else {}
    summary = {
        "commands": [*previous.get("commands", []), command],
        "machine": previous.get("machine") or _machine(),
        "base_checkpoint": str(base.rollout.student_dir),
        "scenes_dir": str(base.train.scenes_dir),
        "steps": base.train.steps,
        "seeds": config.ablate.seeds,
        "budget": {
            "groups_per_step": base.train.groups_per_step,
            "group_size": base.train.group_size,
            "max_feedback_per_group": base.train.max_feedback_per_group,
            "responses_per_step": base.train.responses_per_step,
            "responses_per_run": base.train.responses_per_step * base.train.steps,
        },
        "eval": {**config.eval.model_dump(mode="json"), "threshold": base.train.correct_threshold},
        "arms": [a.model_dump(mode="json") for a in config.ablate.arms],
        "cells": [],
        "seconds": previous.get("seconds", 0.0),
    }
    subsets = prepare_subsets(config, run_dir)
    for seed in config.ablate.seeds:
        for arm in config.ablate.arms:
            cell_dir = run_dir / "cells" / slug(arm.name) / f"seed-{seed}"
            done = cell_dir / "cell.json"
            if done.is_file():
                cell = Cell(**json.loads(done.read_text()))
            else:
                print(f"[ablate] {arm.name}, seed {seed}", flush=True)
                cell = run_cell(base, arm, seed, subsets.get((arm.data, seed)), cell_dir)
                done.write_text(json.dumps(asdict(cell), indent=1) + "\n")
            summary["cells"].append(asdict(cell))
            _write(summary, run_dir, previous.get("seconds", 0.0) + time.perf_counter() - start)
    return summary


def _machine() -> str:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {gpu}"


def _write(summary: dict, run_dir: Path, seconds: float) -> None:
    from cluster.plots import plot_ablation

    summary["seconds"] = seconds
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    (run_dir / TABLES).write_text(tables_markdown(summary))
    plot_ablation(summary, run_dir)


# ------------------------------------------------------------------------------------ tables ---


def mean_std(values: list[float]) -> str:
    """`0.812 ± 0.014` over seeds (sample std), `0.812` for one seed, `–` for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


COLUMNS: dict[str, tuple[str, ...]] = {  # table -> its number columns (`_value` names)
    "method": ("PDMS", "EPDMS", "NC", "DAC", "TTC", "EP", "C", "all-fail test", "all-fail train", "meta-action acc",
               "format errors"),
    "data": ("PDMS", "EPDMS", "all-fail test", "all-fail train", "all-fail after reinjection", "responses/step"),
}  # fmt: skip
PDMS_PARTS = {"NC": "no_at_fault_collisions", "DAC": "drivable_area_compliance", "TTC":
              "time_to_collision_within_bound", "EP": "ego_progress", "C": "comfort"}  # fmt: skip


def _value(cell: dict, column: str) -> float | None:
    e, t = cell["eval"], cell["train"]
    if column in PDMS_PARTS:
        return e["pdms"].get(PDMS_PARTS[column])
    return {
        "PDMS": e["pdms"].get("score"),
        "EPDMS": e["epdms"].get("score"),
        "all-fail test": e["all_fail_ratio"],
        "meta-action acc": e["planning_accuracy"]["meta_action"],
        "format errors": e["format_error_rate"],
        "all-fail train": t.get("all_fail_ratio_before"),
        "all-fail after reinjection": t.get("all_fail_ratio_after"),
        "responses/step": t.get("responses_per_step"),
    }[column]


def table_markdown(summary: dict, table: str) -> str:
    """One table: a row per arm of `table`, each number the mean ± std over the seeds run so far."""
    arms = [a for a in summary["arms"] if table in a["tables"]]
    columns = COLUMNS[table]
    head = ["arm", *(["data (scenes)", "k", "PS"] if table == "data" else []), *columns, "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in arms:
        cells = [c for c in summary["cells"] if c["arm"] == arm["name"]]
        if not cells:
            continue
        s = cells[0]["settings"]
        setting = [
            f"{s['data']} ({s['training_scenes']})",
            str(s["k"]),
            "yes" if s["policy_shaping"] else "no",
        ]
        numbers = [mean_std([v for c in cells if (v := _value(c, col)) is not None]) for col in columns]
        row = [arm["name"], *(setting if table == "data" else []), *numbers, str(len(cells))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def tables_markdown(summary: dict) -> str:
    b, e = summary["budget"], summary["eval"]
    return (
        f"Test split ({e['split']}), greedy answers; all-fail test: share of scenes where all n = {e['samples']} "
        f"sampled answers score below s = {e['threshold']}; all-fail train: mean over steps of the share of "
        f"groups with no correct q_base answer. Budget: {b['responses_per_step']} responses per step "
        f"(q_base + q_fb), {summary['steps']} steps. Mean ± std over seeds.\n\n"
        "**Method ablation**\n\n" + table_markdown(summary, "method") + "\n"
        "**Data, k and policy shaping**\n\n" + table_markdown(summary, "data")
    )
