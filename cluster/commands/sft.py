"""`elf-vla sft`: the two-stage SFT of the student before RL (learner/sft.py), in a new run folder.

RUN/scenes/            the generated scene set (unless sft.scenes_dir names an existing one)
RUN/student-init/      the fresh tiny student (unless sft.student_dir names one)
RUN/checkpoints/step-N student folders (HF model + DeepSpeed state): the last one, and the best by
                       validation PDMS (`best_checkpoint` of the summary; validate where you checkpoint)
RUN/sft_log.jsonl      one line per step and per validation
RUN/sft_summary.json   validation PDMS vs constant velocity and the expert, format errors, minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

NAME = "sft"
HELP = (
    "Supervised warm-up of the student before RL: driving-knowledge QA, then q_base and q_fb -> ground "
    "truth, with periodic validation PDMS on held-out scenes and checkpoints."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. sft.stage2_steps=500"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cluster.config import ConfigError, load_config
    from cluster.runs import DEMO_CONFIG, new_run_dir

    try:
        path = args.config or (DEMO_CONFIG if DEMO_CONFIG.exists() else None)
        config = load_config(path, args.overrides)
    except ConfigError as err:
        print(f"elf-vla sft: {err}", file=sys.stderr)
        return 2
    sft = config.sft
    if sft.scenes_dir is not None and not (Path(sft.scenes_dir) / "manifest.json").is_file():
        print(f"elf-vla sft: sft.scenes_dir {sft.scenes_dir}: not a make-scenes folder", file=sys.stderr)
        return 2
    start = time.perf_counter()
    run_dir = new_run_dir(config.run.out_dir, f"{config.run.name}-sft", config)
    print(f"[sft] run folder: {run_dir}")

    dataset = _scenes(config, run_dir, tqdm)
    train, val = _items(dataset, sft)
    if not train or not val:
        print("elf-vla sft: need scenes in the train split and in sft.eval_split", file=sys.stderr)
        return 2
    student = _student(sft, run_dir, train)
    print(f"[sft] building samples from {len(train)} training scenes ({sft.feedback_scenes} with feedback)")
    from learner.sft import build_sft_data, run_sft

    count = min(sft.feedback_scenes, len(train)) if sft.feedback_fraction > 0 else 0
    with tqdm(total=count, unit="scene", file=sys.stderr) as bar:
        data = build_sft_data(train, val, sft, on_feedback=lambda: bar.update(1))
    print(f"       {len(data.qa)} QA, {len(data.base)} q_base, {len(data.feedback)} q_fb samples; "
          f"{len(val)} validation scenes ({sft.eval_split})")  # fmt: skip
    prepared = time.perf_counter() - start
    if sft.ranks > 0:  # the learner group's ranks are Ray actors
        from cluster.ray_runtime import start_ray, stop_ray

        start_ray()
    try:
        result = run_sft(student, data, sft, config.learner, run_dir)
    finally:
        if sft.ranks > 0:
            stop_ray()
    summary = _summary(result, prepared, time.perf_counter() - start)
    (run_dir / "sft_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(_table(summary))
    print(f"[sft] done in {summary['minutes_total']:.1f} min: {result.checkpoint or run_dir}")
    best = result.best_eval
    if best is not None and result.best != result.checkpoint:
        print(f"      best validation PDMS {best.pdms:.3f} at step {best.step}: {result.best}")
    return 0


def _scenes(config, run_dir: Path, tqdm):  # noqa: ANN001, ANN202
    from driving.dataset import SceneDataset, write_dataset

    if config.sft.scenes_dir is not None:
        return SceneDataset(config.sft.scenes_dir)
    print(f"[sft] generating {config.scenes.count} scenes")
    with tqdm(total=config.scenes.count, unit="scene", file=sys.stderr) as bar:
        write_dataset(config.scenes, run_dir / "scenes", lambda d, t: bar.update(1))
    return SceneDataset(run_dir / "scenes")


def _items(dataset, sft):  # noqa: ANN001, ANN202
    """(train, validation) SceneItems, with images unless the student is text-only."""
    from actors.model_factory import IMAGE_PX, read_student_info
    from actors.model_factory import TINY_PRESETS as TINY
    from driving.camera import TINY_CAMERA, render_camera
    from learner.sft import SceneItem

    preset = read_student_info(sft.student_dir).preset if sft.student_dir is not None else sft.preset
    text_only = preset == "tiny-text"

    def item(entry):  # noqa: ANN001, ANN202
        scene = dataset.load(entry)
        image = None if text_only else dataset.image(entry)
        if image is not None and preset in TINY and image.size != (IMAGE_PX, IMAGE_PX):
            image = render_camera(
                scene, TINY_CAMERA
            )  # the tiny students see 64 px (demo: camera preset tiny)
        return SceneItem(scene, image, entry.family, entry.difficulty)

    train = [item(e) for e in dataset.entries("train")]
    val = [item(e) for _, e in zip(range(sft.eval_scenes), dataset.entries(sft.eval_split))]
    return train, val


def _student(sft, run_dir: Path, train) -> Path:  # noqa: ANN001
    if sft.student_dir is not None:
        return Path(sft.student_dir)
    from actors.model_factory import init_tiny

    out = run_dir / "student-init"
    report = init_tiny(sft.preset, out, [i.scene for i in train[:300]], seed=sft.seed)
    print(
        f"[sft] new {sft.preset} student: {report.parameters / 1e6:.2f} M parameters, vocabulary {report.vocab_size}"
    )
    return out


def _summary(result, prepared_s: float, total_s: float) -> dict:  # noqa: ANN001
    from dataclasses import asdict

    last = result.evals[-1] if result.evals else None
    return {
        "steps": result.steps,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "best_checkpoint": str(result.best) if result.best else None,  # by validation PDMS
        "best_step": result.best_eval.step if result.best_eval else None,
        "student": asdict(last) if last else None,
        "format_error_rate": last.format_error_rate if last else None,
        "baselines": result.baselines,
        "evals": [asdict(e) for e in result.evals],
        "minutes_data": prepared_s / 60,
        "minutes_training": result.seconds / 60,
        "minutes_total": total_s / 60,
    }


def _table(summary: dict) -> str:
    student = summary["student"]
    if student is None:
        return "       (no validation: 0 steps)"
    rows = {"student (SFT)": {**student["by_difficulty"], "all": student["pdms"]}, **summary["baselines"]}
    cols = sorted({k for r in rows.values() for k in r} - {"all"}) + ["all"]
    lines = [f"       {'validation PDMS':<20}" + "".join(f"{c:>11}" for c in cols)]
    for name, r in rows.items():
        lines.append(f"       {name:<20}" + "".join(f"{r.get(c, float('nan')):>11.3f}" for c in cols))
    lines.append(f"       format errors: {student['format_errors']}/{student['scenes']}")
    return "\n".join(lines)
