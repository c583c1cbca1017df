"""LearnerGroup on a real local Ray: 2 DeepSpeed ranks (gloo) against the in-process single rank."""

from __future__ import annotations

import pytest
import torch

from learner.config import LearnerConfig, LossConfig, OptimizerConfig
from tests.learner.test_worker import assert_same_step

CONFIG = LearnerConfig(
    zero_stage=2, micro_batch_size=2, optimizer=OptimizerConfig(lr=1e-3), loss=LossConfig(beta=0.05)
)


@pytest.fixture(scope="module")
def single_rank_step(student_dir, train_batch):
    """(stats, weights after) of one update by the in-process group."""
    from learner.group import LearnerGroup

    group = LearnerGroup(student_dir, CONFIG, ranks=0)
    stats = group.update(train_batch)
    return stats, group.export_weights()


def test_two_rank_zero2_update_equals_one_rank(
    local_ray, student_dir, train_batch, single_rank_step, tmp_path
):
    from learner.group import LearnerGroup

    group = LearnerGroup(student_dir, CONFIG, ranks=2)
    try:
        stats = group.update(train_batch)  # 7 rows: shards of 4 and 3 + 1 padding row
        one, weights = single_rank_step
        assert stats.loss == pytest.approx(one.loss, rel=1e-6)
        assert stats.grad_norm == pytest.approx(one.grad_norm, rel=1e-5)
        assert (stats.tokens, stats.samples, stats.shaped_samples) == (
            one.tokens,
            one.samples,
            one.shaped_samples,
        )
        assert stats.kl == pytest.approx(one.kl, abs=1e-7)
        assert stats.shaping_weight_mean == pytest.approx(one.shaping_weight_mean, rel=1e-6)
        assert_same_step(group.export_weights(), weights, lr=one.lr)
        path = group.save(tmp_path / "ckpt")  # collective; rank 0 writes the HF model
        assert (path / "model.safetensors").is_file() and (path / "deepspeed").is_dir()
        assert group.version == 1
    finally:
        group.shutdown()


def test_two_rank_zero3_export_equals_unsharded_weights(
    local_ray, student_dir, train_batch, single_rank_step, tmp_path
):
    from transformers import AutoModelForImageTextToText

    from actors.model_factory import load_student
    from learner.group import LearnerGroup

    group = LearnerGroup(student_dir, CONFIG.model_copy(update={"zero_stage": 3}), ranks=2)
    try:
        plain, _, _ = load_student(student_dir)
        exported = group.export_weights()
        assert set(exported) == set(plain.state_dict())
        assert all(torch.equal(v, exported[k]) for k, v in plain.state_dict().items())
        stats = group.update(train_batch)
        one, weights = single_rank_step
        assert stats.loss == pytest.approx(one.loss, rel=1e-6)
        after = group.export_weights()
        assert_same_step(after, weights, lr=one.lr)
        saved = AutoModelForImageTextToText.from_pretrained(
            group.save(tmp_path / "z3"), local_files_only=True
        )
        assert all(torch.equal(v, after[k]) for k, v in saved.state_dict().items())  # gathered, not shards
    finally:
        group.shutdown()
