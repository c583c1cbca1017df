"""The ELF-GRPO loop on the memorised tiny student (see conftest): reinjection exactly when a correction
beats the group's maximum, the shaped flag, advantages over the union, versions, resume."""

from __future__ import annotations

import json

import pytest
import torch

from cluster.config import load_config
from cluster.jobs import start_services
from cluster.loop import LOG, ElfGrpoTrainer, Experience, training_entries
from cluster.metrics import read_log
from cluster.resources import ResourceLayout
from cluster.rollouts import rewards
from driving.dataset import SceneDataset
from learner.batch import build_train_batch
from learner.losses import group_advantages
from tests.cluster.conftest import overrides


def make_trainer(memorised, run_dir, **extra) -> ElfGrpoTrainer:
    config = load_config(None, overrides(memorised, **extra))
    dataset = SceneDataset(config.train.scenes_dir)
    entries = training_entries(dataset, config.train.split, config.train.subset)
    services = start_services(config, ResourceLayout())
    run_dir.mkdir(parents=True, exist_ok=True)
    return ElfGrpoTrainer(config, services, dataset, entries, run_dir)


@pytest.fixture(scope="module")
def trainer(memorised, tmp_path_factory):
    t = make_trainer(memorised, tmp_path_factory.mktemp("run"))
    yield t
    t.s.shutdown()


@pytest.fixture(scope="module")
def experience(trainer):
    return trainer.collect(1)


def test_reinjected_exactly_when_a_correction_beats_the_group_max(trainer, experience, memorised):
    k = trainer.config.train.reinject_top_k
    assert [g.prompt.scene_id for g in experience.groups] == experience.record.scene_ids
    for group, corrections in zip(experience.groups, experience.corrections):
        best = max(rewards(group.rollouts))
        beating = sorted((r for r in corrections if r.score.score > best), key=lambda r: -r.score.score)
        assert list(group.reinjected) == beating[:k]
        assert all(r.kind == "fb" for r in group.reinjected)
    reinjected = [g for g in experience.groups if g.reinjected]
    assert reinjected, "the memorised correction of scene A beats its group"
    assert memorised.scene_a in {g.prompt.scene_id for g in reinjected}
    record = experience.record
    assert record.reinjections == sum(len(g.reinjected) for g in experience.groups)
    assert record.all_fail_before >= 1 and record.all_fail_after < record.all_fail_before
    assert record.diagnoses >= 1 and record.groups == 2 and record.rollouts == 4


def test_reinjected_rows_are_shaped_and_advantages_span_the_union(trainer, experience):
    batch = build_train_batch(experience.groups, trainer.s.processor)
    shaped = [False] * 0
    union_rewards, group_ids = [], []
    for g, group in enumerate(experience.groups):
        for r, is_shaped in [(r, False) for r in group.rollouts] + [(r, True) for r in group.reinjected]:
            shaped.append(is_shaped)
            union_rewards.append(r.score.score)
            group_ids.append(g)
    assert batch.shaped.tolist() == shaped and sum(shaped) == experience.record.reinjections
    expected = group_advantages(torch.tensor(union_rewards), torch.tensor(group_ids))
    torch.testing.assert_close(batch.advantages, expected)
    # a reinjected correction beat every original of its group: the top advantage, and positive
    assert all(a > 0 for a, s in zip(batch.advantages.tolist(), shaped) if s)


def test_a_step_updates_syncs_and_logs(trainer, experience):
    stats = trainer.learn(experience)
    assert stats.shaped_samples == experience.record.reinjections
    version = trainer.sync()
    assert version == 1 == trainer.s.rollouts.version
    assert trainer.s.rollouts.replica_versions() == [1]


def test_resume_reproduces_the_next_step(memorised, tmp_path):
    straight = make_trainer(memorised, tmp_path / "a")
    try:
        full = straight.run()
    finally:
        straight.s.shutdown()
    first = make_trainer(memorised, tmp_path / "b", **{"train.steps": 1})
    try:
        first.run()
    finally:
        first.s.shutdown()
    resumed = make_trainer(memorised, tmp_path / "b")
    try:
        step, prefetched = resumed.restore()
        assert (step, prefetched) == (2, None)
        [again] = resumed.run(step)
    finally:
        resumed.s.shutdown()
    expected = full[1]
    assert again.scene_ids == expected.scene_ids and again.step == 2 and again.version == 2
    for name in ("reward_mean", "tokens", "format_errors", "reinjections", "all_fail_after", "samples"):
        assert getattr(again, name) == getattr(expected, name), name
    for name in ("loss", "kl", "grad_norm"):
        assert getattr(again, name) == pytest.approx(getattr(expected, name), rel=1e-4, abs=1e-7), name
    logged = read_log(tmp_path / "b" / LOG)
    assert [r.step for r in logged] == [1, 2]
    controller = json.loads((tmp_path / "b" / "checkpoints" / "step-000002" / "controller.json").read_text())
    assert controller["step"] == 2


def _stop_while_collecting(trainer: ElfGrpoTrainer, step: int) -> None:
    """Ctrl-C arriving while `step` collects its batch (as the SIGINT handler does: the step finishes,
    is checkpointed, and the run returns)."""
    collect = trainer.collect

    def collect_then_stop(at: int) -> Experience:
        experience = collect(at)
        if at == step:
            trainer.stop_requested = True
        return experience

    trainer.collect = collect_then_stop  # type: ignore[method-assign]


def test_async_resume_reproduces_the_next_step(memorised, tmp_path):
    """Async mode: step 2 trains on a batch collected during step 1's update, by the weights of step 0. A
    run stopped after step 1 saves that batch with its checkpoint, so the resumed step 2 is the same."""
    async_mode = {"train.mode": "async"}
    straight = make_trainer(memorised, tmp_path / "a", **async_mode)
    try:
        full = straight.run()
    finally:
        straight.s.shutdown()
    first = make_trainer(memorised, tmp_path / "b", **async_mode)
    _stop_while_collecting(first, 1)  # before step 2's collection starts: it must still be saved
    try:
        assert [r.step for r in first.run()] == [1]
    finally:
        first.s.shutdown()
    resumed = make_trainer(memorised, tmp_path / "b", **async_mode)
    try:
        step, prefetched = resumed.restore()
        assert step == 2 and prefetched is not None and prefetched.step == 2
        [again] = resumed.run(step, prefetched)
    finally:
        resumed.s.shutdown()
    expected = full[1]
    assert expected.sample_versions == [0] and expected.staleness == 1  # one step off policy
    assert again.scene_ids == expected.scene_ids and (again.step, again.version) == (2, 2)
    assert (again.sample_versions, again.staleness) == (expected.sample_versions, expected.staleness)
    for name in (
        "reward_mean",
        "correction_reward_mean",
        "tokens",
        "reinjections",
        "all_fail_after",
        "samples",
    ):
        assert getattr(again, name) == getattr(expected, name), name
    for name in ("loss", "kl", "grad_norm"):
        assert getattr(again, name) == pytest.approx(getattr(expected, name), rel=1e-4, abs=1e-7), name
    assert [r.step for r in read_log(tmp_path / "b" / LOG)] == [1, 2]


def test_plain_grpo_samples_no_feedback(memorised, tmp_path):
    grpo = make_trainer(memorised, tmp_path, **{"train.reinject_top_k": 0})
    try:
        record = grpo.collect(1).record
    finally:
        grpo.s.shutdown()
    assert record.all_fail_before >= 1  # groups fail, yet nothing is asked or reinjected
    assert (record.feedback_groups, record.diagnoses, record.corrections, record.reinjections) == (0, 0, 0, 0)


def test_gt_grpo_reinjects_the_ground_truth_into_failing_groups(memorised, tmp_path):
    from actors.response import ground_truth_response
    from driving.scene import load_scene

    gt = make_trainer(memorised, tmp_path, **{"train.reinject_source": "ground_truth"})
    try:
        experience = gt.collect(1)
        stats = gt.learn(experience)
    finally:
        gt.s.shutdown()
    record, s = experience.record, gt.config.train.correct_threshold
    assert (record.diagnoses, record.corrections) == (0, 0)  # no teacher, no q_fb sampling
    scenes = {e.id: load_scene(memorised.scenes_dir / e.scene) for e in gt.entries}
    for group in experience.groups:
        originals = rewards(group.rollouts)
        for truth in group.reinjected:  # only into failing groups, only when it beats their best
            assert max(originals) < s and truth.score.score > max(originals)
            assert truth.kind == "fb" and truth.text == ground_truth_response(scenes[truth.scene_id])
    [a] = [g for g in experience.groups if g.prompt.scene_id == memorised.scene_a]
    [truth] = a.reinjected  # scene A's group only has the memorised wrong answer
    assert truth.score.score == pytest.approx(memorised.good_reward)  # the memorised answer is the truth
    assert stats.shaped_samples == record.reinjections >= 1


def test_without_policy_shaping_corrections_are_trained_unshaped(memorised, tmp_path):
    no_ps = make_trainer(memorised, tmp_path, **{"learner.loss.policy_shaping": False})
    try:
        experience = no_ps.collect(1)
        stats = no_ps.learn(experience)
    finally:
        no_ps.s.shutdown()
    reinjected = experience.record.reinjections
    assert reinjected >= 1 and experience.record.corrections >= reinjected
    assert stats.shaped_samples == 0 and stats.shaping_weight_mean == 0.0
    assert stats.samples == experience.record.rollouts + reinjected
