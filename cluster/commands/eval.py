"""`elf-vla eval`: evaluate a checkpoint on a split of a scene folder (`cluster.evaluate`).

The output folder gets `eval.json` (every number, and each scene's answer and scores), `eval.md` (the
tables) and two plots (`eval_families.png`, `eval_scores.png`); the overall table is printed. Rollout,
scorer and Ray settings come from the config (default configs/demo.yaml), the evaluation's from its
`eval` section (`eval.split`, `eval.samples`, `eval.max_scenes`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "eval"
HELP = (
    "Evaluate a checkpoint: PDMS/EPDMS with sub-metrics, per family, all-fail ratio, planning accuracy, "
    "format errors; JSON, Markdown tables and plots."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a student folder (SFT or training checkpoint) or a train run folder",
    )
    p.add_argument("--scenes", help="a make-scenes / import-navsim folder (default: train.scenes_dir)")
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument("--out", help="output folder (default: a new run folder under run.out_dir)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. eval.split=val")


def run(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config, write_resolved
    from cluster.evaluate import TABLE
    from cluster.jobs import StartupError, resolve_checkpoint, run_eval
    from cluster.ray_runtime import stop_ray
    from cluster.runs import DEMO_CONFIG, new_run_dir

    given = [f"rollout.student_dir={resolve_checkpoint(args.checkpoint)}"]
    if args.scenes:
        given.append(f"eval.scenes_dir={args.scenes}")
    try:
        config = load_config(args.config or DEMO_CONFIG, [*given, *args.overrides])
    except ConfigError as err:
        print(f"elf-vla eval: {err}", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
        write_resolved(config, out)
    else:
        out = new_run_dir(config.run.out_dir, "eval", config)
    try:
        run_eval(config, out)
    except StartupError as err:
        print(f"elf-vla eval: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    print((out / TABLE).read_text())
    print(f"[eval] report, tables and plots: {out}")
    return 0
