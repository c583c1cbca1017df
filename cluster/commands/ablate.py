"""`elf-vla ablate`: the method ablation and the data/k/policy-shaping ablation from one SFT checkpoint,
with equal rollout budgets and several seeds (`cluster.ablate`, whose docstring defines the budget).

The config is an experiment config (the base arm, ELF) plus an `ablate` section (arms, seeds); see
configs/ablate.yaml. Arms and budgets are checked before Ray starts. `--resume RUN_DIR` continues an
interrupted run (finished arm-seeds are kept); `--results docs/results.md` (re)writes the results page
from the run, with its tables, plots and the command that made them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

NAME = "ablate"
HELP = (
    "Run the ablation arms (SFT, GRPO, GT-GRPO, Rule-GRPO, ELF, ELF w/o PS, k, data) over seeds with equal "
    "rollout budgets; evaluate each on the test split; write tables, curves and the results page."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML ablation config (default: configs/ablate.yaml)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this ablation run folder")
    p.add_argument("--results", metavar="PAGE", help="write the results page here, e.g. docs/results.md")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.steps=20")


def run(args: argparse.Namespace) -> int:
    from cluster.ablate import TABLES, load_ablation, run_ablation
    from cluster.config import ConfigError
    from cluster.jobs import StartupError
    from cluster.ray_runtime import stop_ray
    from cluster.results import write_results_page
    from cluster.runs import REPO_ROOT, config_source, new_run_dir

    try:
        source = config_source(args.resume, args.config, REPO_ROOT / "configs" / "ablate.yaml")
        config = load_ablation(source, args.overrides)
    except ConfigError as err:
        print(f"elf-vla ablate: {err}", file=sys.stderr)
        return 2
    run_dir = Path(args.resume) if args.resume else new_run_dir(config.run.out_dir, config.run.name, config)
    print(f"[ablate] run folder: {run_dir}", flush=True)
    given = [(flag, getattr(args, flag[2:])) for flag in ("--config", "--resume", "--results")]
    command = shlex.join(["elf-vla", NAME, *(x for f, v in given if v for x in (f, v)), *args.overrides])
    try:
        run_ablation(config, run_dir, command)
    except (StartupError, ConfigError) as err:
        print(f"elf-vla ablate: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    print((run_dir / TABLES).read_text())
    if args.results:
        print(f"[ablate] results page: {write_results_page(run_dir, Path(args.results))}")
    return 0
