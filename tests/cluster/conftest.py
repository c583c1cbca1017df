"""Fixtures of the controller tests: a small scene dataset and a tiny student that has memorised two
answers, so that the real loop exercises every branch of ELF in seconds:

* on scene A's q_base it answers a well-formed but wrong plan (it stops: reward < s),
* on q_fb = <q_base, that answer, the coarse teacher's feedback on it> it answers the expert plan,
  which beats the group's maximum and is reinjected;
* on every other prompt it writes unparseable text (reward 0, format feedback).

Sampling at a low temperature (0.1) makes the memorised answers (near-)deterministic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("DS_ACCELERATOR", "cpu")

TEMPERATURE = 0.1


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread (as in tests/actors and tests/learner): two OpenMP threads on 2 shared cores are slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Memorised:
    root: Path
    scenes_dir: Path
    student_dir: Path
    subset: Path  # select manifest: scene A + one other train scene
    scene_a: str
    bad_reward: float  # reward of the memorised wrong answer on scene A
    good_reward: float  # reward of the memorised correction


def _stop_plan(speed: float) -> np.ndarray:
    """(8, 3) a plan that brakes hard to a stop within 1 s: well-formed, safe, wrong (no progress)."""
    x = np.minimum(np.cumsum(np.full(8, max(speed, 1.0) * 0.25)), max(speed, 1.0) * 0.5)
    return np.stack([x, np.zeros(8), np.zeros(8)], axis=-1)


def _memorise(model, processor, prompt, q_fb, bad_text: str, good_text: str) -> None:
    """Train on the one sequence q_fb -> good answer, with the loss on both assistant turns: q_base is a
    literal prefix of q_fb, so its first assistant turn is exactly "q_base -> bad answer". Stops when
    sampling at TEMPERATURE reproduces both answers."""
    from dataclasses import replace

    from actors.encoding import encode_prompts, encode_sft, response_token_logprobs, text_tokenizer
    from actors.engines import HFEngine, SamplingParams

    tok = text_tokenizer(processor)
    batch = encode_sft([q_fb], [good_text], processor)
    width = encode_prompts([prompt], processor).input_ids.shape[1]
    bad_ids = tok(bad_text + tok.eos_token, add_special_tokens=False)["input_ids"]
    assert batch.inputs.input_ids[0, width : width + len(bad_ids)].tolist() == bad_ids
    mask = batch.response_mask.clone()
    mask[0, width : width + len(bad_ids)] = True
    batch = replace(batch, response_mask=mask, prompt_width=width)
    mask = mask[:, width:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    engine = HFEngine(model, processor, max_batch=8)
    sampled = SamplingParams(temperature=TEMPERATURE, max_new_tokens=len(bad_ids) + 40, seed=0)
    for round_ in range(6):
        model.train()
        for step in range(40 if round_ == 0 else 20):
            for group in optimizer.param_groups:  # decaying lr: Adam oscillates at a constant 5e-3
                group["lr"] = 5e-3 / (1 + round_) * (1 - step / 50)
            logp = response_token_logprobs(model(**batch.inputs.forward_kwargs()).logits, batch)
            loss = -(logp.sum() / mask.sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        out = engine.generate([prompt, q_fb], 4, sampled)
        if all(r.text == want for g, want in zip(out, [bad_text, good_text]) for r in g):
            return
    raise AssertionError("the tiny student did not memorise its two answers")


@pytest.fixture(scope="session")
def memorised(tmp_path_factory) -> Memorised:
    from actors.model_factory import init_tiny, load_student
    from actors.prompts import build_base_prompt, build_feedback_prompt, front_image
    from actors.response import ground_truth_response, parse_response, render_response, scene_think
    from driving.config import ScenesConfig
    from driving.dataset import SceneDataset, write_dataset
    from driving.scene import MetaAction
    from scorer import prepare, score
    from teacher_service.render import render_feedback
    from teacher_service.schema import DiagnosisRequest, ScoreBreakdown
    from teacher_service.teachers import CoarseTeacher

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cluster")
    cfg = ScenesConfig(count=10, seed=3, camera={"preset": "tiny"}, workers=1)
    write_dataset(cfg, root / "scenes")
    dataset = SceneDataset(root / "scenes")
    train = [(e, dataset.load(e)) for e in dataset.entries("train")]
    # scene A: the largest gap between the expert and the stop plan, with the stop plan wrong
    best = None
    for entry, scene in train:
        gt = parse_response(ground_truth_response(scene))
        plans = np.stack([gt.poses, _stop_plan(scene.ego.vx)])
        totals = score(prepare(scene), plans, "pdms").total
        if totals[1] < 0.8 <= totals[0] and (best is None or totals[0] - totals[1] > best[0]):
            best = (totals[0] - totals[1], entry, scene)
    assert best is not None, "no scene where the expert is correct and stopping is wrong"
    _, entry_a, scene_a = best
    other = next(e for e, _ in train if e.id != entry_a.id)

    init_tiny("tiny-internvl", root / "student", [s for _, s in train], seed=0)
    model, processor, _ = load_student(root / "student")
    prompt = build_base_prompt(scene_a, front_image(scene_a, dataset.root))
    meta = MetaAction(lateral="keep_lane", longitudinal="stop")
    bad_text = render_response(scene_think(scene_a, meta), meta, _stop_plan(scene_a.ego.vx))
    good_text = ground_truth_response(scene_a)
    bad = parse_response(bad_text)
    batch = score(prepare(scene_a), np.stack([bad.poses, parse_response(good_text).poses]), "pdms")
    breakdown = ScoreBreakdown.from_scorer(batch.result(0), "pdms")
    request = DiagnosisRequest(
        scene_id=scene_a.id,
        scene=scene_a,
        plan=bad.poses.tolist(),
        breakdown=breakdown,
        think=bad.think,
        meta_action=bad.meta_action,
    )
    [diagnosis] = CoarseTeacher().diagnose([request])  # short feedback: a short sequence to memorise
    q_fb = build_feedback_prompt(prompt, bad_text, render_feedback(diagnosis))
    _memorise(model, processor, prompt, q_fb, bad_text, good_text)
    model.save_pretrained(root / "student")

    subset = root / "selected.json"
    subset.write_text(json.dumps({"scene_ids": [entry_a.id, other.id]}))
    return Memorised(
        root=root,
        scenes_dir=root / "scenes",
        student_dir=root / "student",
        subset=subset,
        scene_a=entry_a.id,
        bad_reward=float(batch.total[0]),
        good_reward=float(batch.total[1]),
    )


def overrides(m: Memorised, **extra: object) -> list[str]:
    """Dotted overrides of a tiny training run on the memorised student."""
    base = {
        "rollout.student_dir": str(m.student_dir),
        "rollout.replicas": 0,
        "rollout.max_batch": 16,
        "rollout.sampling.temperature": TEMPERATURE,
        "rollout.sampling.max_new_tokens": 96,
        "learner.loss.temperature": TEMPERATURE,
        "learner.micro_batch_size": 8,
        "learner.optimizer.lr": 1e-6,
        "scorer.actors": 0,
        "train.scenes_dir": str(m.scenes_dir),
        "train.subset": str(m.subset),
        "train.steps": 2,
        "train.groups_per_step": 2,
        "train.group_size": 2,
        "train.max_feedback_per_group": 1,
        "train.checkpoint_every": 100,
        "teacher.backend.type": "coarse",
        "cluster.num_cpus": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
