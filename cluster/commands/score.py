"""`elf-vla score`: NAVSIM's PDMS (v1) or EPDMS (v2) of scene files, one JSON object per line.

Each scene's own `trajectory` is scored. Output lines follow the input order; a file that cannot be read
or scored gives `{"file": ..., "error": ...}` on stdout and one line naming the file and the field on
stderr, and the others are still scored (exit status 1 if any failed). The scorer is imported only when
the command runs, so `elf-vla --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "score"
HELP = (
    "Score scene JSON files (their `trajectory`) with NAVSIM's PDMS or EPDMS; prints one JSON object per "
    "file and line, with every sub-score and diagnostics."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="scene JSON files (SCENE_FORMAT.md)")
    p.add_argument(
        "--metric",
        choices=["pdms", "epdms"],
        default="pdms",
        help="NAVSIM v1 PDMS or v2 EPDMS (default pdms)",
    )


def _problems(err: Exception) -> list[str]:
    """'field: message' lines of a failure (SceneError lists one per bad field)."""
    from driving.scene import SceneError

    if isinstance(err, SceneError):
        return list(err.problems)
    if isinstance(err, NotImplementedError):
        return [f"traffic: {err}"]
    if isinstance(err, ValueError) and "trajectory" in str(err):
        return [f"trajectory: {err}"]
    return [f"(scene): {type(err).__name__}: {err}"]


def run(args: argparse.Namespace) -> int:
    from driving.scene import SceneError, load_scene
    from scorer import score_scene

    failed = 0
    for path in args.files:
        try:
            result = score_scene(load_scene(path), args.metric).result(0)
        except (SceneError, ValueError, NotImplementedError) as err:
            failed += 1
            problems = "; ".join(_problems(err))
            print(f"elf-vla score: {path}: {problems}", file=sys.stderr)
            print(json.dumps({"file": path, "error": problems}), flush=True)
            continue
        print(json.dumps({"file": path, **result}), flush=True)
    return 1 if failed else 0
