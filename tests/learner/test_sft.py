"""SFT data from scenes, and an `elf-vla sft` micro-run that trains a few steps, validates and writes a
checkpoint that the rollout engine can serve."""

from __future__ import annotations

import argparse
import json

import numpy as np

from actors.response import road_phrase
from learner.sft_data import FAIL_BELOW, failing_plan, feedback_sample, qa_samples


def test_qa_answers_come_from_the_scene(learner_scenes):
    scene = learner_scenes[0]
    drivable, road, objects, action = qa_samples(scene, None)
    assert drivable.target.startswith("drivable ") and " m ahead" in drivable.target
    assert road.target == f"{road_phrase(scene)}."
    assert objects.target.endswith(".")
    meta = scene.sample.meta_action
    assert action.target.startswith(f"{meta.lateral},{meta.longitudinal}: ")
    assert all(
        s.kind == "qa" and s.prompt.turns[0].text.endswith("?") for s in (drivable, road, objects, action)
    )


def test_stage1_asks_the_chosen_questions_in_batches_of_its_own_size(learner_scenes):
    import pytest
    from pydantic import ValidationError

    from learner.config import SFTConfig
    from learner.sft import SceneItem, build_sft_data, draw_batch

    scene = learner_scenes[0]
    road_only = qa_samples(scene, None, ["road"])
    assert [s.target for s in road_only] == [f"{road_phrase(scene)}."]
    config = SFTConfig(
        stage1_steps=1,
        stage2_steps=1,
        batch_size=2,
        stage1_batch_size=5,
        stage1_questions=["road", "objects"],
        feedback_fraction=0.0,
    )
    items = [SceneItem(s, None, "test", "common") for s in learner_scenes]
    data = build_sft_data(items, items[:1], config)
    assert len(data.qa) == 2 * min(len(items), 5)
    assert {s.prompt.turns[0].text.split("Question: ")[1] for s in data.qa} == {
        "Which way does the road go ahead?",
        "Which road users are nearest, and how far?",
    }
    rng = np.random.default_rng(0)
    assert len(draw_batch(data, 0, config, rng)) == 5 and len(draw_batch(data, 1, config, rng)) == 2
    with pytest.raises(ValidationError, match="stage1_questions"):
        SFTConfig(stage1_questions=["weather"])


def test_feedback_sample_corrects_a_failing_plan(learner_scenes):
    from actors.response import ground_truth_response
    from scorer import prepare, score

    rng = np.random.default_rng(0)
    scene = learner_scenes[1]
    plan, result = failing_plan(scene, rng)
    assert score(prepare(scene), plan[None], "pdms").total[0] == result["score"] < FAIL_BELOW
    sample = next(s for s in (feedback_sample(scene, None, rng) for _ in range(5)) if s is not None)
    assert sample.kind == "fb" and sample.prompt.kind == "fb"
    assert sample.target == ground_truth_response(scene)
    feedback = sample.prompt.turns[-1].text
    assert "Your previous answer failed" in feedback and "5. Corrections:" in feedback


def test_sft_micro_run_writes_a_checkpoint(student_dir, tmp_path):
    from actors.engines import HFEngine
    from cluster.commands import sft

    parser = argparse.ArgumentParser()
    sft.add_arguments(parser)
    overrides = [
        f"run.out_dir={tmp_path}",
        "scenes.count=14",
        "scenes.workers=1",
        "scenes.camera={preset: tiny}",
        "scenes.splits={train: 0.7, val: 0.3}",
        f"sft.student_dir={student_dir}",
        "sft.stage1_steps=2",
        "sft.stage2_steps=3",
        "sft.batch_size=3",
        "sft.feedback_scenes=3",
        "sft.feedback_fraction=0.5",
        "sft.eval_every=2",
        "sft.eval_scenes=2",
        "sft.max_new_tokens=8",
        "sft.checkpoint_every=4",
    ]
    assert sft.run(parser.parse_args(["--config", "/dev/null", *overrides])) == 0
    [run_dir] = tmp_path.glob("*-sft-*")
    lines = [json.loads(x) for x in (run_dir / "sft_log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert [x["stage"] for x in steps] == [1, 1, 2, 2, 2]
    assert all(np.isfinite(x["loss"]) for x in steps)
    evaluations = [x["eval"] for x in lines if "eval" in x]
    assert [e["step"] for e in evaluations] == [2, 4, 5]  # every 2 steps and at the end
    for evaluation in evaluations:  # 8 tokens cannot make an answer
        assert evaluation["scenes"] == 2 and evaluation["format_errors"] == 2 and evaluation["pdms"] == 0.0
    summary = json.loads((run_dir / "sft_summary.json").read_text())
    assert summary["baselines"]["expert"]["all"] > summary["baselines"]["constant_velocity"]["all"] - 1
    checkpoint = run_dir / "checkpoints" / "step-000005"
    assert summary["checkpoint"] == str(checkpoint)
    # checkpoints at 4 and 5, both validated at 0.0: the earlier is the best
    assert (summary["best_step"], summary["best_checkpoint"]) == (
        4,
        str(run_dir / "checkpoints" / "step-000004"),
    )
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "deepspeed").is_dir()
    assert HFEngine.from_dir(str(checkpoint)).version == 0  # a student folder the engines can serve


def test_the_best_checkpoint_is_the_best_validated_one():
    from pathlib import Path

    from learner.sft import EvalResult, SFTResult, _keep_best

    result = SFTResult(steps=8, checkpoint=None)
    for step, pdms in ((2, 0.5), (4, 0.7), (6, 0.6), (8, None)):  # step 8 is checkpointed, not validated
        if pdms is not None:
            result.evals.append(EvalResult(step, 10, pdms, 0, {"common": pdms}, 1.0))
        result.checkpoint = Path(f"step-{step}")
        _keep_best(result, step)
    assert (result.best, result.best_eval.step, result.best_eval.pdms) == (Path("step-4"), 4, 0.7)
    assert result.checkpoint == Path("step-8")
