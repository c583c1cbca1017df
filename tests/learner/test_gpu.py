"""The GPU path of the learner and the HF engine (bf16, NCCL): run where CUDA is present, skipped
elsewhere. The CPU tests check the same behaviour in fp32 with gloo; here the tolerances are bf16's."""

from __future__ import annotations

import pytest
import torch

from learner.config import LearnerConfig, LossConfig, OptimizerConfig

pytestmark = pytest.mark.gpu

CONFIG = LearnerConfig(
    zero_stage=2,
    micro_batch_size=3,
    optimizer=OptimizerConfig(lr=1e-3, warmup_steps=0),
    loss=LossConfig(beta=0.05),
)
BF16_LOGPROB_ATOL = 0.1  # bf16 has 8 mantissa bits: engine and learner round differently


def test_engine_samples_on_the_gpu_in_bf16(student_dir, learner_scenes):
    from actors.engines import HFEngine, SamplingParams
    from actors.prompts import build_base_prompt, front_image

    engine = HFEngine.from_dir(str(student_dir), max_batch=8)
    assert engine.device.type == "cuda" and next(engine.model.parameters()).dtype == torch.bfloat16
    prompts = [build_base_prompt(s, front_image(s)) for s in learner_scenes[:2]]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12, seed=3)
    first = engine.generate(prompts, 2, sampling)
    again = engine.generate(prompts, 2, sampling)
    assert [[g.token_ids for g in gs] for gs in first] == [[g.token_ids for g in gs] for gs in again]
    assert all(len(g.token_ids) == len(g.logprobs) and (g.logprobs <= 0).all() for gs in first for g in gs)


def test_bf16_learner_matches_its_sampler_and_learns(student_dir, train_batch):
    """NCCL process group, bf16 engine: the first-step ratio is 1 up to bf16 rounding, one step moves
    the weights, and the exported weights load into an engine."""
    from actors.engines import HFEngine
    from learner.worker import LearnerWorker

    w = LearnerWorker(student_dir, CONFIG)
    assert w.bf16 and w.engine.device.type == "cuda"
    assert torch.distributed.get_backend() == "nccl"
    original = train_batch.response_mask & ~train_batch.shaped.unsqueeze(-1)
    logp = w.logprobs(train_batch)
    assert (logp[original] - train_batch.old_logprobs[original]).abs().max() < BF16_LOGPROB_ATOL
    before = w.export_weights()
    stats = w.update(train_batch)
    after = w.export_weights()
    assert stats.samples == train_batch.size and stats.grad_norm > 0
    # the export is the bf16 module: an lr-1e-3 step below a weight's bf16 spacing (e.g. norms at 1.0)
    # lands in the fp32 master copy only, so not every tensor moves after one step
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    engine = HFEngine.from_dir(str(student_dir))
    engine.update_weights(after, version=1)
    assert engine.version == 1


def test_sft_on_the_gpu_lowers_the_loss(student_dir, train_batch):
    from learner.worker import LearnerWorker

    w = LearnerWorker(student_dir, CONFIG.model_copy(update={"loss": LossConfig(beta=0.0)}))
    losses = [w.sft_update(train_batch).loss for _ in range(5)]
    assert losses[-1] < losses[0]


def test_zero3_export_on_the_gpu_equals_the_unsharded_weights(student_dir, train_batch):
    from actors.model_factory import load_student
    from learner.worker import LearnerWorker

    z3 = LearnerWorker(student_dir, CONFIG.model_copy(update={"zero_stage": 3}))
    assert any(p.numel() == 0 for p in z3.engine.module.parameters())  # really partitioned
    plain, _, _ = load_student(student_dir)
    exported = z3.export_weights()
    # the engine holds bf16 weights: the export is the fp32 start rounded to bf16
    assert all(
        torch.equal(v.to(torch.bfloat16), exported[k].to(torch.bfloat16))
        for k, v in plain.state_dict().items()
    )
    z3.update(train_batch)
    moved = z3.export_weights()
    assert any(not torch.equal(exported[k], moved[k]) for k in exported)
