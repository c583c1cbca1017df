"""The `elf-vla` command line as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.cli import COMMANDS, build_parser

ELF_VLA = shutil.which("elf-vla") or str(Path(sys.executable).parent / "elf-vla")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([ELF_VLA, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0
    names = [a.dest for a in build_parser()._subparsers._group_actions[0]._choices_actions]
    assert len(names) == len(COMMANDS)
    for name in names:
        assert name in out.stdout


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_every_command_has_help(command):
    parser = build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args([command, "--help"])
    assert info.value.code == 0


def test_make_scenes_then_show_and_score(tmp_path):
    out = _run(
        "make-scenes",
        "--count",
        "4",
        "--seed",
        "5",
        "--camera",
        "tiny",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "ds"),
    )
    assert out.returncode == 0, out.stderr
    assert "wrote 4 scenes" in out.stdout
    index = [json.loads(line) for line in (tmp_path / "ds" / "index.jsonl").read_text().splitlines()]
    scene_file = tmp_path / "ds" / index[0]["scene"]

    shown = _run("show-scene", str(scene_file), "--out", str(tmp_path / "s.png"))
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "s.png").stat().st_size > 1000

    scored = _run("score", str(scene_file), str(tmp_path / "ds" / index[1]["scene"]))
    assert scored.returncode == 0, scored.stderr
    lines = [json.loads(line) for line in scored.stdout.splitlines()]
    assert len(lines) == 2 and all(0.0 <= r["pdms"] <= 1.0 for r in lines)


def test_make_scenes_rejects_bad_input_before_starting(tmp_path):
    out = _run("make-scenes", "--count", "3", "--mix", "cruise_moon=1", "--out", str(tmp_path / "ds"))
    assert out.returncode == 2
    assert "scenes.mix" in out.stderr and "unknown family" in out.stderr
    assert not (tmp_path / "ds").exists()
    out = _run("make-scenes", "--count", "3", "--mix", "nonsense", "--out", str(tmp_path / "ds"))
    assert out.returncode == 2 and "FAMILY=WEIGHT" in out.stderr
