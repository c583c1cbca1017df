"""`elf-vla demo`: the whole method on the embedded default (configs/demo.yaml), end to end on one CPU
machine, in one run folder:

    1 scenes      synthetic long-tail scenes with 64 px camera images          RUN/scenes
    2 student     a random-init tiny InternVL student, tokenizer trained here  RUN/student-init
    3 SFT         short two-stage SFT (QA, then q_base and q_fb -> truth)      RUN/sft
    4 select      hard and ambiguous training scenes                           RUN/select
    5 ELF-GRPO    a few steps of the loop on a local Ray                       RUN/train
    6 evaluate    the test split (`elf-vla eval`): expert, constant velocity, SFT, ELF-GRPO   RUN/eval

Steps are budgeted in optimizer steps, not wall time (the machine is shared), so the numbers are those
of a few minutes of training: the point is the pipeline, its plots and its metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

NAME = "demo"
HELP = "Run the whole pipeline (scenes, SFT, selection, ELF-GRPO, evaluation) on configs/demo.yaml."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.steps=2")


def run(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config
    from cluster.jobs import StartupError
    from cluster.ray_runtime import stop_ray
    from cluster.runs import DEMO_CONFIG, new_run_dir

    start = time.perf_counter()
    try:
        config = load_config(args.config or DEMO_CONFIG, args.overrides)
    except ConfigError as err:
        print(f"elf-vla demo: {err}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(config.run.out_dir, config.run.name, config)
    print(f"[demo] run folder: {run_dir}", flush=True)
    try:
        summary = _pipeline(config, run_dir, start)
    except StartupError as err:
        print(f"elf-vla demo: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"[demo] done in {(time.perf_counter() - start) / 60:.1f} min")
    for name, where in summary["where"].items():
        print(f"       {name:<16} {where}")
    return 0


def _pipeline(config: Any, run_dir: Path, start: float) -> dict:
    from cluster.jobs import run_select, run_train

    minutes: dict[str, float] = {}

    def lap(name: str) -> None:
        minutes[name] = (time.perf_counter() - start) / 60 - sum(minutes.values())

    print(f"[demo] 1/6 generating {config.scenes.count} scenes", flush=True)
    dataset = _scenes(config, run_dir / "scenes")
    lap("scenes")
    print("[demo] 2/6 building a tiny student (tokenizer trained on the training scenes)", flush=True)
    train_items = _items(dataset, "train")
    test_items = _items(dataset, config.eval.split)[: config.eval.max_scenes]  # the scenes `_evaluate` scores
    student = _student(config, run_dir / "student-init", train_items)
    lap("student")
    print(
        f"[demo] 3/6 SFT: {config.sft.stage1_steps} QA + {config.sft.stage2_steps} q_base/q_fb steps",
        flush=True,
    )
    sft_dir, sft_eval = _sft(config, student, train_items, dataset, run_dir / "sft")
    lap("sft")
    config = _with(config, {"rollout.student_dir": str(sft_dir), "train.scenes_dir": str(dataset.root)})
    print(
        f"[demo] 4/6 selecting hard scenes: {config.select.rollouts_per_scene} rollouts per scene", flush=True
    )
    manifest, verdicts = run_select(config, run_dir / "select")
    kept = sum(v.kept for v in verdicts)
    print(f"       kept {kept} of {len(verdicts)} scenes -> {manifest}", flush=True)
    lap("select")
    if kept < config.train.groups_per_step:  # too few hard scenes for a batch: train on the whole split
        print("       (fewer than one batch kept: training on all training scenes)")
    else:
        config = _with(config, {"train.subset": str(manifest)})
    print(
        f"[demo] 5/6 ELF-GRPO: {config.train.steps} steps of {config.train.groups_per_step} groups",
        flush=True,
    )
    outcome = run_train(config, run_dir / "train")
    lap("train")
    print(f"[demo] 6/6 evaluating on {len(test_items)} {config.eval.split} scenes", flush=True)
    models = {"SFT": sft_dir, "ELF-GRPO": outcome.checkpoint}
    table = _evaluate(config, models, test_items, run_dir / "eval")
    lap("evaluate")
    print(_format_table(table))
    records = [r.__dict__ for r in outcome.records]
    return {
        "minutes": minutes,
        "sft_validation": sft_eval,
        "selection": {"scenes": len(verdicts), "kept": kept, "manifest": str(manifest)},
        "train": records,
        "evaluation": table,
        "where": {
            "run folder": str(run_dir),
            "training log": str(run_dir / "train" / "log.jsonl"),
            "evaluation": str(run_dir / "eval"),
            "plots": ", ".join(str(p) for p in [*outcome.plots, manifest.parent / "selection.png"]),
            "checkpoint": str(outcome.checkpoint),
            "metrics": f"http://127.0.0.1:{config.cluster.metrics_port}/metrics (while Ray runs)"
            if config.cluster.metrics_port
            else "(cluster.metrics_port not set)",
            "live view": f"elf-vla top {run_dir / 'train'}",
        },
    }


def _with(config: Any, values: dict[str, Any]) -> Any:
    """The config with dotted keys set, validated again."""
    from cluster.config import ExperimentConfig, apply_override

    data = config.model_dump(mode="json")
    for key, value in values.items():
        apply_override(data, key.split("."), value, ExperimentConfig)
    return ExperimentConfig.model_validate(data)


def _scenes(config: Any, out: Path) -> Any:
    from tqdm import tqdm

    from driving.dataset import SceneDataset, write_dataset

    with tqdm(total=config.scenes.count, unit="scene", file=sys.stderr) as bar:
        manifest = write_dataset(config.scenes, out, lambda d, t: bar.update(1))
    print(f"       {manifest['count']} scenes in {manifest['seconds']:.0f} s; splits {manifest['splits']}")
    return SceneDataset(out)


def _items(dataset: Any, split: str) -> list:
    from learner.sft import SceneItem

    return [
        SceneItem(dataset.load(e), dataset.image(e), e.family, e.difficulty) for e in dataset.entries(split)
    ]


def _student(config: Any, out: Path, train_items: list) -> Path:
    from actors.model_factory import init_tiny

    report = init_tiny(config.sft.preset, out, [i.scene for i in train_items[:300]], seed=config.sft.seed)
    print(f"       {report.parameters / 1e6:.2f} M parameters, vocabulary {report.vocab_size}")
    return out


def _sft(config: Any, student: Path, train_items: list, dataset: Any, out: Path) -> tuple[Path, dict]:
    from dataclasses import asdict

    from learner.sft import build_sft_data, run_sft

    sft = config.sft
    val = _items(dataset, sft.eval_split)[: sft.eval_scenes]
    data = build_sft_data(train_items, val, sft)
    out.mkdir(parents=True, exist_ok=True)
    result = run_sft(student, data, sft, config.learner, out)
    assert result.checkpoint is not None, "run_sft checkpoints at its last step"
    last = asdict(result.evals[-1]) if result.evals else {}
    return result.checkpoint, {"validation": last, "baselines": result.baselines}


def _evaluate(config: Any, models: dict[str, Path | None], items: list, out: Path) -> dict[str, dict]:
    """The test split: the expert's and constant velocity's PDMS, then each checkpoint through `elf-vla
    eval`'s evaluation (greedy PDMS/EPDMS per difficulty, all-fail ratio over `eval.samples` sampled
    answers, format errors), its report written to `out/<name>`."""
    from cluster.jobs import run_eval
    from learner.sft import baseline_scores

    table = {name: dict(row) for name, row in baseline_scores(items).items()}
    for name, folder in models.items():
        if folder is None:
            continue
        report = run_eval(_with(config, {"rollout.student_dir": str(folder)}), out / name.lower())
        o = report.overall
        table[name] = {
            **{k: r["pdms"]["score"] for k, r in report.by_difficulty.items()},
            "all": o["pdms"]["score"],
            "EPDMS": o["epdms"]["score"],
            "all-fail": o["all_fail_ratio"],
            "format errors": o["format_error_rate"],
        }
    return table


def _format_table(table: dict[str, dict]) -> str:
    extra = ["EPDMS", "all-fail", "format errors"]  # checkpoints only
    cols = sorted({k for row in table.values() for k in row} - {"all", *extra}) + ["all", *extra]
    lines = [f"       {'test PDMS':<18}" + "".join(f"{c:>14}" for c in cols)]
    for name, row in table.items():
        cells = [f"{row[c]:>14.3f}" if c in row else f"{'-':>14}" for c in cols]
        lines.append(f"       {name:<18}" + "".join(cells))
    return "\n".join(lines)
