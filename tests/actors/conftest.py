"""Fixtures of the student tests: a small corpus of generated scenes and tiny student folders, built once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from driving.scene import Scene

CORPUS_SCENES = 30


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    from actors.model_factory import generated_scenes

    return generated_scenes(CORPUS_SCENES, seed=11)


def init_model_cli(*argv: str) -> int:
    """`elf-vla init-model ARGS` in-process, through the command module's own parser."""
    from cluster.commands import init_model

    parser = argparse.ArgumentParser()
    init_model.add_arguments(parser)
    return init_model.run(parser.parse_args(list(argv)))


@pytest.fixture(scope="session")
def student_dirs(tmp_path_factory) -> dict[str, Path]:
    """Each tiny preset, created by the init-model command on a 30-scene corpus."""
    root = tmp_path_factory.mktemp("students")
    dirs = {}
    for preset in ("tiny-internvl", "tiny-qwen3vl", "tiny-text"):
        dirs[preset] = root / preset
        assert (
            init_model_cli("--preset", preset, "--out", str(dirs[preset]), "--scenes", str(CORPUS_SCENES))
            == 0
        )
    return dirs
