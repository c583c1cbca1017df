"""`elf-vla init-model`: create a student folder (model, tokenizer, processor in Hugging Face format)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAME = "init-model"
HELP = (
    "Create a student model folder. Tiny presets build a random-init model from a config and train its "
    "tokenizer on the prompts and answers of generated scenes; paper-scale presets link a local Hugging Face "
    "folder (--from). Nothing is downloaded."
)
# Kept here (a test checks they equal actors.model_factory's) so that `--help` imports nothing heavy.
TINY = ("tiny-internvl", "tiny-qwen3vl", "tiny-text")
PAPER = ("internvl3-8b", "qwen3-vl-8b")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, choices=TINY + PAPER, help="student preset")
    p.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    p.add_argument(
        "--scenes", type=int, default=300, help="generated scenes for the tokenizer corpus (default 300)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the corpus scenes and of the weights (default 0)"
    )
    p.add_argument("--from", dest="source", help="local Hugging Face folder of a paper-scale preset")


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or None."""
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return f"--out {out}: not empty; choose a new folder or delete this one"
    if args.preset in PAPER and not args.source:
        return f"--preset {args.preset} needs --from DIR, a local Hugging Face folder (nothing is downloaded)"
    if args.preset in TINY and args.source:
        return f"--from is for paper-scale presets ({', '.join(PAPER)}); {args.preset} is built from a config"
    if args.scenes < 1:
        return f"--scenes {args.scenes}: need >= 1"
    return None


def run(args: argparse.Namespace) -> int:
    from actors.model_factory import generated_scenes, init_from_folder, init_tiny

    problem = _check(args)
    if problem:
        print(f"elf-vla init-model: {problem}", file=sys.stderr)
        return 2
    if args.preset in PAPER:
        try:
            report = init_from_folder(args.preset, args.source, args.out)
        except (FileNotFoundError, ValueError) as err:
            print(f"elf-vla init-model: {err}", file=sys.stderr)
            return 2
        print(f"linked {args.preset} from {args.source} into {report.out}")
        return 0
    start = time.perf_counter()
    scenes = generated_scenes(args.scenes, args.seed)
    corpus_s = time.perf_counter() - start
    report = init_tiny(args.preset, args.out, scenes, seed=args.seed)
    print(
        f"wrote {report.preset} to {report.out}: {report.parameters / 1e6:.2f} M parameters, "
        f"vocabulary {report.vocab_size}; {corpus_s:.1f} s generating {report.corpus_scenes} corpus scenes, "
        f"{report.seconds:.1f} s tokenizer + model"
    )
    return 0
