"""`elf-vla select`: hard-sample selection with the SFT student (DESIGN step 1).

N rollouts per scene of the split; scenes with a low mean reward (hard) or a high variance (ambiguous)
are kept, mastered ones dropped. Writes `selected.json` (what `train.subset` reads), `scenes.jsonl` and
`selection.png` (the mean/variance plane with the kept region) into the run folder's `select/`.
"""

from __future__ import annotations

import argparse
import sys

NAME = "select"
HELP = "Select hard and ambiguous training scenes (N rollouts each with the SFT student); plot and manifest."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (default: configs/demo.yaml)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. select.rollouts_per_scene=4"
    )


def run(args: argparse.Namespace) -> int:
    from cluster.config import ConfigError, load_config
    from cluster.jobs import StartupError, check_inputs, run_select
    from cluster.ray_runtime import stop_ray
    from cluster.runs import DEMO_CONFIG, new_run_dir

    try:
        config = load_config(args.config or DEMO_CONFIG, args.overrides)
        check_inputs(config, needs_learner=False)
    except (ConfigError, StartupError) as err:
        print(f"elf-vla select: {err}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(config.run.out_dir, f"{config.run.name}-select", config)
    try:
        manifest, verdicts = run_select(config, run_dir / "select")
    except StartupError as err:
        print(f"elf-vla select: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ray()
    print(format_selection(verdicts, manifest))
    return 0


def format_selection(verdicts: list, manifest) -> str:  # noqa: ANN001 - SceneVerdicts, Path
    kept = sum(v.kept for v in verdicts)
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("hard", "ambiguous", "mastered")}
    return "\n".join(
        [
            f"kept {kept} of {len(verdicts)} scenes: {counts['hard']} hard, {counts['ambiguous']} ambiguous "
            f"({counts['mastered']} mastered dropped)",
            f"manifest: {manifest}  (train.subset={manifest})",
            f"plot: {manifest.parent / 'selection.png'}",
        ]
    )
