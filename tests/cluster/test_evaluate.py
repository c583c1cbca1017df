"""`elf-vla eval` on the memorised student (see conftest), as a user runs it, on a rollout replica and a
scorer actor of the tests' Ray: the table has a row per difficulty and family, and every number is what
`elf-vla score` gives the same plans and what the scores add up to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actors.response import ground_truth_response, parse_response
from cluster.cli import main as cli
from cluster.evaluate import read_report, summarise
from driving.dataset import SceneDataset
from driving.scene import Trajectory, dumps_scene
from tests.cluster.conftest import overrides

ELF_VLA = str(Path(sys.executable).parent / "elf-vla")
ON_RAY = {
    "rollout.replicas": 1,
    "rollout.num_cpus_per_replica": 0.5,
    "scorer.actors": 1,
    "scorer.num_cpus_per_actor": 0.5,
}


def _score_cli(files: list[Path], metric: str, capsys) -> list[dict]:
    assert cli(["score", *map(str, files), "--metric", metric]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(scope="module")
def evaluated(local_ray, memorised, tmp_path_factory):
    import ray

    out = tmp_path_factory.mktemp("eval")
    argv = overrides(
        memorised,
        **ON_RAY,
        **{
            "eval.split": "train",
            "eval.samples": 2,
            "cluster.address": ray.get_runtime_context().gcs_address,
        },
    )
    argv = [a for a in argv if not a.startswith("rollout.student_dir=")]
    done = subprocess.run(
        [ELF_VLA, "eval", "--checkpoint", str(memorised.student_dir), "--scenes", str(memorised.scenes_dir),
         "--out", str(out), *argv],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_eval_table_shape_and_values(evaluated, memorised):
    out, stdout = evaluated
    report = read_report(out)
    dataset = SceneDataset(memorised.scenes_dir)
    entries = list(dataset.entries("train"))
    assert [s.scene_id for s in report.scenes] == [e.id for e in entries]
    assert set(report.by_family) == {e.family for e in entries}
    assert set(report.by_difficulty) == {e.difficulty for e in entries}
    assert sum(r["scenes"] for r in report.by_family.values()) == report.overall["scenes"] == len(entries)
    # the memorised student: the stop plan on scene A (wrong) and on scenes like it; text elsewhere
    [a] = [s for s in report.scenes if s.scene_id == memorised.scene_a]
    assert a.error is None and a.meta_action == "keep_lane,stop"
    assert a.pdms["score"] == pytest.approx(memorised.bad_reward)
    assert a.sampled == pytest.approx([memorised.bad_reward] * 2)
    assert all(s.pdms["score"] == 0.0 == s.epdms["score"] for s in report.scenes if s.error is not None)
    assert all(len(s.sampled) == 2 for s in report.scenes)
    o, n = report.overall, len(entries)
    assert o["pdms"]["score"] == pytest.approx(sum(s.pdms["score"] for s in report.scenes) / n)
    assert o["epdms"]["ego_progress"] == pytest.approx(
        sum(s.epdms["ego_progress"] for s in report.scenes) / n
    )
    assert o["format_error_rate"] == pytest.approx(sum(s.error is not None for s in report.scenes) / n)
    failing = sum(max(s.sampled) < 0.8 for s in report.scenes)
    assert o["all_fail_ratio"] == pytest.approx(failing / n) and failing >= 1
    truths = [parse_response(ground_truth_response(dataset.load(e))).meta_action for e in entries]
    right = [s.meta_action == f"{t.lateral},{t.longitudinal}" for s, t in zip(report.scenes, truths)]
    lateral = [(s.meta_action or ",").split(",")[0] == t.lateral for s, t in zip(report.scenes, truths)]
    assert o["planning_accuracy"]["meta_action"] == pytest.approx(sum(right) / n)
    assert o["planning_accuracy"]["lateral"] == pytest.approx(sum(lateral) / n)
    for family, row in report.by_family.items():
        assert row == summarise([s for s in report.scenes if s.family == family], report.threshold)
    # the tables: a row for all, each difficulty and each family; two sub-metric tables
    table = (out / "eval.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 1 + len(report.by_difficulty) + len(report.by_family) + 2 * 2
    assert table in stdout
    for png in ("eval_families.png", "eval_scores.png"):
        assert (out / png).stat().st_size > 5000


def test_eval_scores_equal_elf_vla_score_of_the_same_plans(evaluated, memorised, tmp_path, capsys):
    out, _ = evaluated
    report = read_report(out)
    dataset = SceneDataset(memorised.scenes_dir)
    by_id = {e.id: e for e in dataset.entries()}
    files, planned = [], [s for s in report.scenes if s.plan is not None]
    assert planned, "scene A has a plan"
    for s in planned:
        scene = dataset.load(by_id[s.scene_id])
        trajectory = Trajectory(poses=np.asarray(s.plan).tolist(), frame="local")
        files.append(tmp_path / f"{s.scene_id}.json")
        files[-1].write_text(dumps_scene(scene.model_copy(update={"trajectory": trajectory})))
    for metric in ("pdms", "epdms"):
        for s, scored in zip(planned, _score_cli(files, metric, capsys)):
            ours = getattr(s, metric)
            aliases = {"extended_comfort": "two_frame_extended_comfort"}
            assert ours["score"] == pytest.approx(scored[metric], abs=1e-12)
            for name, value in ours.items():
                if name != "score":
                    assert value == pytest.approx(scored[aliases.get(name, name)], abs=1e-12), name
