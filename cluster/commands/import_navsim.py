"""`elf-vla import-navsim`: NAVSIM scenes (navtrain, navtest, ...) as a dataset folder of scene JSON with the
`sample` fields, which `train.scenes_dir` / `eval.scenes_dir` (or `--scenes` of `elf-vla eval`) read.

An optional extra: it needs `navsim` and `nuplan-devkit` installed, NAVSIM's logs and sensor blobs and the
nuPlan maps (README: "NAVSIM data"); without them it says what to install and exits 2. What is exported
and how: `driving.navsim_import`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "import-navsim"
HELP = "Export NAVSIM scenes (and metric-cache references) into scene JSON dataset folders (needs navsim)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--logs", required=True, type=Path, help="NAVSIM logs folder of a split, e.g. .../navsim_logs/test"
    )
    p.add_argument(
        "--sensor-blobs", required=True, type=Path, help="its sensor blobs, e.g. .../sensor_blobs/test"
    )
    p.add_argument("--maps-root", required=True, type=Path, help="the nuPlan maps (NUPLAN_MAPS_ROOT)")
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--split", required=True, choices=["train", "val", "test"], help="split of every scene")
    p.add_argument("--metric-cache", type=Path, help="NAVSIM metric-cache folder: also write its references")
    p.add_argument("--tokens", type=Path, help="file with one scene token per line (default: every scene)")
    p.add_argument("--max-scenes", type=int, help="stop after this many scenes")
    p.add_argument("--radius", type=float, default=100.0, help="map export radius around the ego [m]")
    p.add_argument("--image-width", type=int, default=512, help="front camera width in the folder [px]")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from driving.navsim_import import NavsimMissing, import_navsim, require_navsim

    try:
        require_navsim()
    except NavsimMissing as err:
        print(f"elf-vla import-navsim: {err}", file=sys.stderr)
        return 2
    tokens = args.tokens.read_text().split() if args.tokens else None
    with tqdm(unit="scene", desc="import-navsim", file=sys.stderr) as bar:
        manifest = import_navsim(
            args.logs, args.sensor_blobs, args.maps_root, args.out, args.split, args.radius, args.image_width,
            args.max_scenes, tokens, args.metric_cache, bar.update,
        )  # fmt: skip
    print(f"[import-navsim] {manifest['count']} scenes ({args.split}) -> {args.out}")
    return 0
