"""`elf-vla score`: one JSON line per file in input order, errors named by file and field, exit status."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from cluster.commands import score as score_command
from tests.conftest import DATA, SHARED_SCENES


def _run(capsys, *argv: str) -> tuple[int, list[dict], str]:
    parser = argparse.ArgumentParser()
    score_command.add_arguments(parser)
    code = score_command.run(parser.parse_args(list(argv)))
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def test_scores_files_in_order(capsys):
    code, lines, err = _run(capsys, *map(str, SHARED_SCENES), "--metric", "epdms")
    assert code == 0 and err == ""
    assert [line["file"] for line in lines] == list(map(str, SHARED_SCENES))
    for path, line in zip(SHARED_SCENES, lines):
        expected = json.loads((DATA / "scenes" / "expected" / f"{path.stem}.v2.json").read_text())
        assert set(line) == set(expected) | {"file"}
        assert line["epdms"] == expected["epdms"]


def test_bad_files_are_reported_and_the_rest_scored(tmp_path: Path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"ego": {"x": 0.0}, "map": {"roadblocks": [], "route_roadblock_ids": []}}))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    code, lines, err = _run(capsys, str(broken), str(SHARED_SCENES[0]), str(garbage))
    assert code == 1
    assert [line["file"] for line in lines] == [str(broken), str(SHARED_SCENES[0]), str(garbage)]
    assert "error" in lines[0] and "ego.y" in lines[0]["error"]
    assert lines[1]["pdms"] == 1.0
    assert "error" in lines[2]
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 2
    assert str(broken) in err_lines[0] and "ego.y" in err_lines[0]
    assert str(garbage) in err_lines[1]


def test_scene_without_trajectory_is_an_error(tmp_path: Path, capsys):
    data = json.loads(SHARED_SCENES[0].read_text())
    del data["trajectory"]
    path = tmp_path / "no_plan.json"
    path.write_text(json.dumps(data))
    code, lines, err = _run(capsys, str(path))
    assert code == 1 and lines[0]["error"].startswith("trajectory:") and str(path) in err


def test_module_import_is_light():
    """Importing the command (what `elf-vla --help` does) must not pull in numpy, shapely or the scorer."""
    code = "import sys, cluster.commands.score; print(','.join(m for m in ('numpy', 'shapely', 'scorer.api') if m in sys.modules))"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert time.perf_counter() - start < 1.0
