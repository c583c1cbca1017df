"""LearnerWorker in the local mode (one in-process DeepSpeed rank on gloo): the first step's log-probs
match the sampler's, an ELF-GRPO step, SFT, exact resume, HF-format checkpoints, ZeRO-3 export."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from learner.config import LearnerConfig, LossConfig, OptimizerConfig

CONFIG = LearnerConfig(
    zero_stage=2,
    micro_batch_size=3,
    optimizer=OptimizerConfig(lr=1e-3, warmup_steps=2, schedule="cosine", total_steps=10),
    loss=LossConfig(beta=0.05),
)


@pytest.fixture(scope="module")
def worker(student_dir):
    from learner.worker import LearnerWorker

    return LearnerWorker(student_dir, CONFIG)


def _state(w):
    return w.export_weights()


def test_first_step_logprobs_match_the_sampler(worker, train_batch):
    """Same layout, same positions: π_θ / π_old = 1 on every original token before any update."""
    logp = worker.logprobs(train_batch)
    original = train_batch.response_mask & ~train_batch.shaped.unsqueeze(-1)
    torch.testing.assert_close(logp[original], train_batch.old_logprobs[original], atol=2e-4, rtol=0)


def test_update_changes_weights_and_reports_stats(student_dir, train_batch):
    from learner.worker import LearnerWorker

    w = LearnerWorker(student_dir, CONFIG)
    before = _state(w)
    stats = w.update(train_batch)
    after = _state(w)
    assert stats.samples == train_batch.size and stats.shaped_samples == 1
    assert stats.tokens == train_batch.tokens
    assert stats.clip_fraction == 0.0  # ratio 1 at the first step
    assert stats.kl == pytest.approx(0.0, abs=1e-6)  # policy == reference
    assert 0.0 < stats.shaping_weight_mean < 1.0
    assert stats.grad_norm > 0 and stats.lr == pytest.approx(1e-3 / 2)  # warm-up step 1 of 2
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)
    second = w.update(train_batch)
    assert second.kl > 0 and second.lr == pytest.approx(1e-3)


def test_sft_update_lowers_the_loss(student_dir, train_batch):
    from learner.worker import LearnerWorker

    w = LearnerWorker(student_dir, CONFIG.model_copy(update={"loss": LossConfig(beta=0.0)}))
    assert w.reference is None
    first = w.sft_update(train_batch)
    for _ in range(3):
        last = w.sft_update(train_batch)
    assert last.loss < first.loss


def test_save_load_resume_is_exact(student_dir, train_batch, tmp_path):
    """update, save, update == (fresh worker) load, update: weights and stats identical."""
    from learner.worker import LearnerWorker

    second = train_batch.select([0, 1, 3, 5])
    a = LearnerWorker(student_dir, CONFIG)
    a.update(train_batch)
    a.save(tmp_path / "ckpt")
    torch.rand(3)  # RNG use after the save must not matter
    stats_a = a.update(second)
    b = LearnerWorker(student_dir, CONFIG)
    b.load(tmp_path / "ckpt")
    assert b.updates == 1
    stats_b = b.update(second)
    assert stats_a == dataclasses.replace(stats_b, seconds=stats_a.seconds)
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_loads_in_plain_transformers(worker, student_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from actors.model_factory import load_student

    path = worker.save(tmp_path / "ckpt")
    plain = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    exported = _state(worker)
    state = plain.state_dict()
    assert set(state) == set(exported)
    assert all(torch.equal(state[k], exported[k]) for k in state)
    model, processor, preset = load_student(path)  # a student folder: engines can serve it
    assert preset == "tiny-internvl" and processor is not None


def test_zero3_export_equals_the_unsharded_weights(student_dir, train_batch):
    """ZeRO-3 partitions the parameters; the gathered export is the full model, before and after a step
    (the same step as ZeRO-0's)."""
    from actors.model_factory import load_student
    from learner.worker import LearnerWorker

    z3 = LearnerWorker(student_dir, CONFIG.model_copy(update={"zero_stage": 3}))
    assert any(p.numel() == 0 for p in z3.engine.module.parameters())  # really partitioned
    plain, _, _ = load_student(student_dir)
    exported = _state(z3)
    assert all(torch.equal(v, exported[k]) for k, v in plain.state_dict().items())
    z0 = LearnerWorker(student_dir, CONFIG.model_copy(update={"zero_stage": 0}))
    s3, s0 = z3.update(train_batch), z0.update(train_batch)
    assert s3.loss == pytest.approx(s0.loss, rel=1e-6)
    assert s3.grad_norm == pytest.approx(s0.grad_norm, rel=1e-5)
    assert_same_step(_state(z3), _state(z0), lr=s0.lr)


def assert_same_step(a: dict, b: dict, lr: float) -> None:
    """Two Adam steps from the same weights on the same gradient up to float summation order. Adam's
    first step is lr·g/(|g| + 1e-8): where |g| is ~1e-8 a last-bit difference in g moves the step by a
    sizeable part of lr, so: every element within one step, and all but 0.1 % within 1 % of it."""
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert diff.max() <= lr
    assert (diff > 0.01 * lr).float().mean() < 1e-3


def test_exported_weights_load_into_the_rollout_engine(worker, student_dir):
    from actors.engines import HFEngine

    engine = HFEngine.from_dir(str(student_dir))
    engine.update_weights(worker.export_weights(), version=1)
    assert engine.version == 1
