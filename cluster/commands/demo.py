"""`elf-vla demo`: the main job on the embedded default (configs/demo.yaml), end to end on one CPU machine.

Today's pipeline: generate a synthetic long-tail scene set with camera images, draw a few scenes, and
score the expert and a constant-velocity baseline per family with the NAVSIM-exact scorer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

NAME = "demo"
HELP = "Run the main pipeline on the embedded default config (configs/demo.yaml) and print a summary."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. scenes.count=50")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cluster.config import ConfigError, load_config
    from cluster.runs import DEMO_CONFIG, new_run_dir
    from driving.dataset import SceneDataset, write_dataset

    try:
        config = load_config(args.config or (DEMO_CONFIG if DEMO_CONFIG.exists() else None), args.overrides)
    except ConfigError as err:
        print(f"elf-vla demo: {err}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(config.run.out_dir, config.run.name, config)
    print(f"[demo] run folder: {run_dir}")

    print(f"[demo] 1/3 generating {config.scenes.count} scenes ({config.scenes.camera.width} px camera)")
    with tqdm(total=config.scenes.count, unit="scene", file=sys.stderr) as bar:
        manifest = write_dataset(config.scenes, run_dir / "scenes", lambda d, t: bar.update(1))
    print(f"       {manifest['count']} scenes in {manifest['seconds']:.1f} s; splits {manifest['splits']}")
    dataset = SceneDataset(run_dir / "scenes")

    print("[demo] 2/3 drawing one scene per family (BEV + camera)")
    shown = _show_one_per_family(dataset, run_dir / "show")
    print(f"       {len(shown)} pictures in {run_dir / 'show'}")

    print(f"[demo] 3/3 scoring the expert and constant velocity ({config.scorer.metric})")
    table = _score_baselines(dataset, config.scorer.metric)
    (run_dir / "summary.json").write_text(json.dumps({"manifest": manifest, "scores": table}, indent=1))
    print(_format_table(table, config.scorer.metric))
    print(f"[demo] done: {run_dir}")
    return 0


def _show_one_per_family(dataset, out: Path) -> list[Path]:  # noqa: ANN001
    from driving.bev import show_scene_image

    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    written = []
    for entry in dataset.entries():
        if entry.family in seen:
            continue
        seen.add(entry.family)
        path = out / f"{entry.family}.png"
        show_scene_image(dataset.load(entry)).save(path)
        written.append(path)
    return written


def _score_baselines(dataset, metric: str) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """Mean score per family of the expert's plan and of constant velocity."""
    import numpy as np

    from driving.baselines import constant_velocity_plan
    from driving.geometry import trajectory_local
    from scorer import prepare, score

    per_family: dict[str, list[tuple[float, float]]] = defaultdict(list)
    start = time.perf_counter()
    for entry in dataset.entries():
        scene = dataset.load(entry)
        assert scene.sample is not None
        plans = np.stack(
            [trajectory_local(scene.sample.expert, scene.ego), constant_velocity_plan(scene.ego)]
        )
        totals = score(prepare(scene), plans, metric).total
        per_family[entry.family].append((float(totals[0]), float(totals[1])))
    secs = time.perf_counter() - start
    table = {}
    for family, pairs in sorted(per_family.items()):
        arr = np.asarray(pairs)
        table[family] = {
            "n": len(pairs),
            "expert": float(arr[:, 0].mean()),
            "constant_velocity": float(arr[:, 1].mean()),
        }
    all_pairs = np.asarray([p for pairs in per_family.values() for p in pairs])
    table["ALL"] = {
        "n": len(all_pairs),
        "expert": float(all_pairs[:, 0].mean()),
        "constant_velocity": float(all_pairs[:, 1].mean()),
        "ms_per_scene": 1000 * secs / max(1, len(all_pairs)),
    }
    return table


def _format_table(table: dict[str, dict[str, float]], metric: str) -> str:
    head = f"       {'family':<24} {'n':>4}  {'expert':>7}  {'const.vel.':>10}   ({metric})"
    rows = [
        f"       {fam:<24} {int(r['n']):>4}  {r['expert']:>7.3f}  {r['constant_velocity']:>10.3f}"
        for fam, r in table.items()
    ]
    return "\n".join([head, *rows])
