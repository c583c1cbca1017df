"""Fixtures of the learner tests: one tiny student, and groups of real rollouts sampled from it (with a
reinjected correction sampled from q_fb), scored with made-up rewards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():  # DeepSpeed picks its accelerator when first imported
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

GROUP_SIZE = 3
SCENES = 2


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: on 2 cores shared with other work, two OpenMP threads waiting on each other are
    several times slower (tests/actors does the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def learner_scenes():
    from actors.model_factory import generated_scenes

    return generated_scenes(12, seed=5)


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, learner_scenes) -> Path:
    from actors.model_factory import init_tiny

    out = tmp_path_factory.mktemp("learner") / "student"
    init_tiny("tiny-internvl", out, learner_scenes, seed=0)
    return out


def breakdown(score: float):
    from teacher_service.schema import ScoreBreakdown

    return ScoreBreakdown(
        score=score,
        no_at_fault_collisions=1.0,
        drivable_area_compliance=1.0,
        ego_progress=score,
        time_to_collision_within_bound=1.0,
    )


@pytest.fixture(scope="session")
def groups(student_dir, learner_scenes):
    """SCENES groups of GROUP_SIZE base rollouts; the first group also gets one reinjected correction."""
    from actors.engines import SamplingParams
    from actors.prompts import build_base_prompt, build_feedback_prompt, front_image
    from actors.rollout import RolloutWorker
    from learner.batch import Group

    torch.set_num_threads(1)
    worker = RolloutWorker(student_dir, max_batch=8)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=16, seed=0)
    prompts = [build_base_prompt(s, front_image(s)) for s in learner_scenes[:SCENES]]
    base = worker.generate(prompts, GROUP_SIZE, sampling)
    fb_prompt = build_feedback_prompt(prompts[0], base[0][0].text, "You collided; brake earlier.")
    [[correction]] = worker.generate([fb_prompt], 1, sampling)
    out = []
    for g, (prompt, rollouts) in enumerate(zip(prompts, base)):
        scored = tuple(r.with_score(breakdown(0.1 * (i + g))) for i, r in enumerate(rollouts))
        reinjected = (correction.with_score(breakdown(0.9)),) if g == 0 else ()
        out.append(Group(prompt=prompt, rollouts=scored, reinjected=reinjected))
    return out


@pytest.fixture(scope="session")
def train_batch(groups, student_dir):
    from actors.model_factory import load_student
    from learner.batch import build_train_batch

    _, processor, _ = load_student(student_dir)
    return build_train_batch(groups, processor)
