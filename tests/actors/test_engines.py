"""HFEngine: grouping, seeding, log-probs equal to a plain forward pass, weight updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.encoding import append_responses, encode_prompts, response_token_logprobs
from actors.engines import HFEngine, SamplingParams
from actors.prompts import build_base_prompt, front_image

PRESETS = ["tiny-internvl", "tiny-qwen3vl", "tiny-text"]


def _prompts(scenes, preset, count=3):
    return [build_base_prompt(s, None if preset == "tiny-text" else front_image(s)) for s in scenes[:count]]


@pytest.fixture(scope="module")
def engines(student_dirs):
    return {preset: HFEngine.from_dir(str(student_dirs[preset])) for preset in PRESETS}


@pytest.mark.parametrize("preset", PRESETS)
def test_logprobs_match_a_forward_pass(engines, scenes, preset):
    engine = engines[preset]
    prompts = _prompts(scenes, preset)
    sampling = SamplingParams(temperature=0.7, top_p=0.95, top_k=50, max_new_tokens=24, seed=3)
    groups = engine.generate(prompts, n=2, sampling=sampling)
    rows = [p for p in prompts for _ in range(2)]
    samples = [g for group in groups for g in group]
    batch = append_responses(encode_prompts(rows, engine.processor), [g.token_ids for g in samples], pad_id=0)
    with torch.no_grad():
        logits = engine.model(**batch.inputs.forward_kwargs()).logits
    recomputed = response_token_logprobs(logits, batch, temperature=sampling.temperature)
    worst = 0.0
    for i, sample in enumerate(samples):
        assert len(sample.token_ids) == len(sample.logprobs) > 0 and sample.logprobs.dtype == np.float32
        diff = recomputed[i, : len(sample.token_ids)] - torch.from_numpy(sample.logprobs)
        worst = max(worst, diff.abs().max().item())
    assert worst < 1e-4


def test_groups_seeds_and_stop(engines, scenes):
    engine = engines["tiny-internvl"]
    prompts = _prompts(scenes, "tiny-internvl", count=2)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12, seed=7)
    first = engine.generate(prompts, n=3, sampling=sampling)
    again = engine.generate(prompts, n=3, sampling=sampling)
    assert [len(g) for g in first] == [3, 3]
    assert [s.token_ids for g in first for s in g] == [s.token_ids for g in again for s in g]
    for sample in (s for g in first for s in g):
        eos = engine._eos_id
        assert (sample.finish_reason == "stop") == (sample.token_ids[-1] == eos)
        assert eos not in sample.token_ids[:-1] and len(sample.token_ids) <= 12
        assert sample.version == engine.version
    greedy = engine.generate(prompts[:1], n=2, sampling=SamplingParams(temperature=0.0, max_new_tokens=8))
    assert greedy[0][0].token_ids == greedy[0][1].token_ids
    assert (greedy[0][0].logprobs <= 0).all()


def test_update_weights_changes_outputs_and_version(student_dirs, scenes):
    engine = HFEngine.from_dir(str(student_dirs["tiny-text"]))
    prompts = _prompts(scenes, "tiny-text", count=2)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    before = engine.generate(prompts, n=1, sampling=greedy)
    generator = torch.Generator().manual_seed(0)
    state = {
        k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in engine.model.state_dict().items()
    }
    engine.update_weights(state, version=1)
    after = engine.generate(prompts, n=1, sampling=greedy)
    assert engine.version == 1 and after[0][0].version == 1 and before[0][0].version == 0
    assert any(
        b[0].token_ids != a[0].token_ids or not np.allclose(b[0].logprobs, a[0].logprobs)
        for b, a in zip(before, after)
    )
    torch.testing.assert_close(engine.model.state_dict()["lm_head.weight"], state["lm_head.weight"])
    with pytest.raises(ValueError):
        engine.update_weights(state, version=0)
