"""`elf-vla make-scenes`: generate a synthetic long-tail scene dataset with camera images."""

from __future__ import annotations

import argparse
import sys

NAME = "make-scenes"
HELP = "Generate synthetic long-tail driving scenes (scene JSON + camera images) into a dataset folder."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, help="number of scenes (default 1000)")
    p.add_argument("--seed", type=int, help="dataset seed; the same seed gives byte-identical files")
    p.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    p.add_argument("--families", nargs="+", metavar="FAMILY", help="only these families")
    p.add_argument("--mix", help="family weights, e.g. 'cruise=5,stalled_vehicle=1' (default: long-tail mix)")
    p.add_argument("--image-size", type=int, help="camera image width=height in px (default 224)")
    p.add_argument("--camera", choices=["default", "tiny"], help="camera preset ('tiny': 64 px, elevated)")
    p.add_argument("--views", nargs="+", choices=["front", "bev"], help="images per scene (default: front)")
    p.add_argument("--no-images", action="store_true", help="write scene JSON only")
    p.add_argument("--workers", type=int, help="worker processes (default 2)")
    p.add_argument("--config", help="YAML experiment config; its `scenes` section is used")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. scenes.count=50")


def scenes_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as dotted config overrides, so one validator checks everything."""
    out = []
    for flag, key in (("count", "count"), ("seed", "seed"), ("workers", "workers")):
        if getattr(args, flag) is not None:
            out.append(f"scenes.{key}={getattr(args, flag)}")
    if args.families:
        out.append(f"scenes.families=[{','.join(args.families)}]")
    if args.mix:
        pairs = [kv.split("=", 1) for kv in args.mix.split(",") if kv.strip()]
        if any(len(kv) != 2 for kv in pairs):
            raise ValueError(f"--mix {args.mix!r}: expected FAMILY=WEIGHT pairs separated by commas")
        out.append("scenes.mix={" + ",".join(f"{k.strip()}: {v.strip()}" for k, v in pairs) + "}")
    if args.camera == "tiny":
        out.append("scenes.camera={preset: tiny}")
    if args.image_size is not None:
        out += [f"scenes.camera.width={args.image_size}", f"scenes.camera.height={args.image_size}"]
    if args.no_images:
        out.append("scenes.views=[]")
    elif args.views:
        out.append(f"scenes.views=[{','.join(args.views)}]")
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cluster.config import ConfigError, load_config
    from driving.dataset import write_dataset

    try:
        config = load_config(args.config, [*scenes_overrides(args), *args.overrides])
    except (ConfigError, ValueError) as err:
        print(f"elf-vla make-scenes: {err}", file=sys.stderr)
        return 2
    bar = tqdm(total=config.scenes.count, unit="scene", desc="make-scenes", file=sys.stderr)
    try:
        manifest = write_dataset(config.scenes, args.out, on_progress=lambda done, total: bar.update(1))
    except FileExistsError as err:
        print(f"elf-vla make-scenes: {err}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(format_summary(manifest, args.out))
    return 0


def format_summary(manifest: dict, out: str) -> str:
    secs = manifest["seconds"]
    lines = [
        f"wrote {manifest['count']} scenes to {out} in {secs:.1f} s ({manifest['count'] / secs:.1f} scenes/s)",
        "splits: " + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items()),
        "difficulty: " + ", ".join(f"{k} {v}" for k, v in manifest["difficulty"].items()),
        "families:",
    ]
    lines += [f"  {name:<24} {n:>6}" for name, n in manifest["families"].items()]
    return "\n".join(lines)
