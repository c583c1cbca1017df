"""The `elf-vla` command line: one subcommand per job, each implemented in `cluster/commands/`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Module names under cluster.commands, in the order `--help` lists them.
COMMANDS = [
    "make_scenes",
    "import_navsim",
    "show_scene",
    "init_model",
    "serve_teacher",
    "sft",
    "score",
    "select",
    "train",
    "top",
    "eval",
    "ablate",
    "demo",
]


def _setup_environment() -> None:
    # No hub anywhere: every model and tokenizer loads from a local folder.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not os.path.exists("/dev/nvidia0") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elf-vla",
        description="ELF-VLA: reinforcement learning of driving VLAs with explicit learning from failures.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"cluster.commands.{name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    _setup_environment()
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
