"""`elf-vla train`: ELF-GRPO training (DESIGN steps 2-7) from an experiment config, or `--resume RUN_DIR`.

The config is validated, and its folders checked, before Ray starts. The run folder gets the resolved
config, `log.jsonl` (one JSON line per step), `checkpoints/`, `plots/` and `summary.json`. Ctrl-C (or
SIGTERM) finishes the current step, writes a checkpoint and exits 0; a second Ctrl-C aborts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "train"
HELP = "Train the student with ELF-GRPO (rollouts, scorer, teacher feedback, reinjection, learner) on Ray."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run folder from its latest checkpoint")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.steps=20")


def run(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config, write_resolved
    from cluster.jobs import StartupError, check_inputs, run_train
    from cluster.ray_runtime import stop_ray
    from cluster.runs import DEMO_CONFIG, config_source, new_run_dir

    try:
        source = config_source(args.resume, args.config, DEMO_CONFIG)
        config = load_config(source, args.overrides)
        check_inputs(config)
    except (ConfigError, StartupError) as err:
        print(f"elf-vla train: {err}", file=sys.stderr)
        return 2
    if args.resume:
        run_dir = Path(args.resume)
        write_resolved(config, run_dir)
    else:
        run_dir = new_run_dir(config.run.out_dir, config.run.name, config)
    print(f"[train] run folder: {run_dir}", flush=True)
    if config.cluster.metrics_port and not config.cluster.address:
        print(
            f"[train] Prometheus metrics: http://127.0.0.1:{config.cluster.metrics_port}/metrics", flush=True
        )
    print(f"[train] live view: elf-vla top {run_dir}", flush=True)
    try:
        outcome = run_train(config, run_dir, resume=bool(args.resume))
    except StartupError as err:
        print(f"elf-vla train: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    last = outcome.records[-1] if outcome.records else None
    if last is not None:
        print(
            f"[train] step {last.step}: reward {last.reward_mean:.3f}, all-fail groups "
            f"{last.all_fail_before} -> {last.all_fail_after} of {last.groups}, {last.reinjections} reinjected"
        )
    print(f"[train] {'stopped; ' if outcome.stopped else ''}checkpoint: {outcome.checkpoint}")
    if outcome.stopped:
        print(f"[train] continue with: elf-vla train --resume {run_dir}")
    for path in outcome.plots:
        print(f"[train] plot: {path}")
    return 0
