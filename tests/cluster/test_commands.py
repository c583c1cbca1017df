"""The controller's commands as a user runs them: a bad config stops before Ray starts; Ctrl-C finishes
the step, checkpoints and exits 0, and `--resume` continues; `top` shows the run; `select` writes its
manifest and plot."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.commands import train as train_command
from tests.cluster.conftest import overrides

ELF_VLA = str(Path(sys.executable).parent / "elf-vla")


def _train_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_bad_config_is_rejected_before_ray_starts(monkeypatch, capsys, memorised):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for a config that cannot run")

    monkeypatch.setattr("cluster.ray_runtime.start_ray", no_ray)
    cases = [
        (["train.group_size=1"], "train.group_size: Input should be greater than or equal to 2"),
        (["train.trigger=sometimes"], "train.trigger: Input should be 'all_fail' or 'any_fail'"),
        ([], "train.scenes_dir: not set"),
        (
            overrides(memorised, **{"rollout.student_dir": "/nonexistent"}),
            "rollout.student_dir: /nonexistent",
        ),
        (overrides(memorised, **{"train.subset": "/nonexistent.json"}), "train.subset: /nonexistent.json"),
    ]
    for argv, message in cases:
        assert train_command.run(_train_args(*argv)) == 2
        assert message in capsys.readouterr().err


def test_ctrl_c_checkpoints_and_resume_continues(local_ray, memorised, tmp_path):
    import ray

    address = ray.get_runtime_context().gcs_address  # join the tests' Ray: no second start-up
    argv = overrides(
        memorised, **{"train.steps": 3, "run.out_dir": str(tmp_path), "cluster.address": address}
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [ELF_VLA, "train", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    log = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list(tmp_path.glob("demo-*/log.jsonl"))
        if runs and runs[0].read_text().strip():
            log = runs[0]
            break
        time.sleep(0.5)
    assert log is not None, proc.communicate(timeout=60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped; checkpoint" in out and "--resume" in out
    run_dir = log.parent
    stopped_at = json.loads(log.read_text().splitlines()[-1])["step"]
    assert stopped_at < 3 and (run_dir / "checkpoints" / "latest").read_text() == f"step-{stopped_at:06d}"

    resumed = subprocess.run(
        [ELF_VLA, "train", "--resume", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert (run_dir / "plots" / "training_curves.png").stat().st_size > 1000
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3

    view = subprocess.run(
        [ELF_VLA, "top", str(run_dir), "--once"], capture_output=True, text=True, timeout=60
    )
    assert view.returncode == 0 and "step 3/3" in view.stdout and "all-fail groups" in view.stdout


def test_select_writes_manifest_and_plot(local_ray, memorised, tmp_path):
    from cluster.config import load_config
    from cluster.jobs import run_select
    from cluster.select import classify

    config = load_config(
        None, overrides(memorised, **{"select.rollouts_per_scene": 2, "select.max_scenes": 4})
    )
    manifest, verdicts = run_select(config, tmp_path / "select")
    data = json.loads(manifest.read_text())
    assert data["scenes"] == len(verdicts) == 4
    assert data["scene_ids"] == [v.scene_id for v in verdicts if v.verdict != "mastered"]
    assert all(v.verdict == classify(v.mean, v.variance, config.select) for v in verdicts)
    for v in verdicts:  # the memorised wrong answer on scene A (if it is among the first 4): hard
        if v.scene_id == memorised.scene_a:
            assert v.verdict == "hard" and v.mean == pytest.approx(memorised.bad_reward)
    assert (tmp_path / "select" / "selection.png").stat().st_size > 1000
    assert len((tmp_path / "select" / "scenes.jsonl").read_text().splitlines()) == 4
