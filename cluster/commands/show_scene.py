"""`elf-vla show-scene`: draw one scene file as BEV + front camera with its plans, into a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "show-scene"
HELP = (
    "Draw a scene JSON file as a picture: bird's-eye view and front camera side by side, with the expert "
    "plan and the scene's trajectory overlaid and a caption (id, family, command, speed)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="scene JSON file (SCENE_FORMAT.md)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--size", type=int, default=224, help="size of each view in px (default 224)")


def run(args: argparse.Namespace) -> int:
    from driving.bev import show_scene_image
    from driving.scene import SceneError, load_scene

    if not 32 <= args.size <= 2048:
        print(f"elf-vla show-scene: --size {args.size}: must be between 32 and 2048 px", file=sys.stderr)
        return 2
    try:
        scene = load_scene(args.file)
    except SceneError as err:
        print(f"elf-vla show-scene: {err}", file=sys.stderr)
        return 1
    if scene.id is None:
        scene = scene.model_copy(update={"id": Path(args.file).stem})  # for the caption
    image = show_scene_image(scene, size=args.size)
    try:
        image.save(args.out, format="PNG")
    except OSError as err:
        print(f"elf-vla show-scene: cannot write {args.out}: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({image.width}x{image.height} px)")
    return 0
