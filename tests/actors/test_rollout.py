"""RolloutPool in-process and on a real local Ray: order, n per prompt, versions, weight broadcast, a replica
killed mid-request."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from actors.config import RolloutConfig, SamplingConfig
from actors.encoding import encode_prompts
from actors.engines import SamplingParams
from actors.prompts import build_base_prompt, build_feedback_prompt, front_image
from actors.response import ParseError, Response
from actors.rollout import RolloutPool, RolloutWorker, shard_bounds


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread, as in a replica with one CPU: on 2 cores shared with other work, two OpenMP threads
    that wait on each other made in-process generation ~5x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturbed(model, seed):
    generator = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}


def _tokens(groups):
    return [[r.token_ids for r in g] for g in groups]


def test_shard_bounds_cover_in_order_at_batch_boundaries():
    assert shard_bounds(0, 2, 3, 8) == []
    assert shard_bounds(10, 2, 2, 8) == [(0, 8), (8, 10)]  # batches of 4 prompts: 3 batches -> 2 + 1
    assert shard_bounds(3, 4, 5, 4) == [(0, 1), (1, 2), (2, 3)]  # fewer batches than replicas
    for count, n, replicas, batch in [(17, 3, 4, 8), (5, 1, 2, 64), (9, 8, 3, 8)]:
        bounds = shard_bounds(count, n, replicas, batch)
        assert bounds[0][0] == 0 and bounds[-1][1] == count and len(bounds) <= replicas
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(start % max(1, batch // n) == 0 for start, _ in bounds)


def test_in_process_pool_from_config(student_dirs, scenes):
    config = RolloutConfig(
        student_dir=student_dirs["tiny-internvl"],
        replicas=0,
        max_batch=4,
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=12),
    )
    pool = RolloutPool.from_config(config)
    base = [build_base_prompt(s, front_image(s)) for s in scenes[:3]]
    prompts = [*base, build_feedback_prompt(base[0], "<think>x</think>", "too fast")]
    groups = pool.generate(prompts, n=2, sampling=config.sampling.params(seed=1))
    assert [len(g) for g in groups] == [2, 2, 2, 2]
    encoded = encode_prompts(prompts, pool._local.engine.processor)
    for prompt, group, ids, mask in zip(prompts, groups, encoded.input_ids, encoded.attention_mask):
        for r in group:
            assert (r.scene_id, r.kind, r.version) == (prompt.scene_id, prompt.kind, 0)
            assert r.prompt_token_ids == tuple(ids[mask.bool()].tolist())
            assert len(r.token_ids) == r.logprobs.shape[0] <= 12 and r.logprobs.dtype == np.float32
            assert isinstance(r.response, Response | ParseError) and r.score is None
    assert [g[0].kind for g in groups] == ["base", "base", "base", "fb"]
    assert pool.stats.rollouts == 8 and pool.stats.tokens == sum(len(r.token_ids) for g in groups for r in g)

    pool.update_weights(_perturbed(pool._local.engine.model, 0), version=3)
    after = pool.generate(prompts[:1], n=1, sampling=SamplingParams(temperature=0.0, max_new_tokens=4))
    assert after[0][0].version == 3 == pool.version and pool.replica_versions() == [3]
    with pytest.raises(ValueError):
        pool.update_weights({}, version=2)


def test_ray_pool_versions_broadcast_and_a_replica_killed_mid_request(local_ray, student_dirs, scenes):
    import ray

    path = student_dirs["tiny-text"]
    prompts = [build_base_prompt(s, None) for s in scenes[:12]]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=24, seed=5)
    local = RolloutWorker(path, max_batch=4)  # the same work in-process, for the expected tokens
    pool = RolloutPool(replicas=2, student_dir=path, num_cpus_per_replica=0.5, max_batch=4)
    try:
        groups = pool.generate(prompts, n=2, sampling=sampling)
        assert [g[0].scene_id for g in groups] == [p.scene_id for p in prompts]
        assert all(len(g) == 2 and all(r.version == 0 for r in g) for g in groups)
        expected = local.generate(prompts, n=2, sampling=sampling)
        assert _tokens(groups) == _tokens(expected)  # seeded by row: same tokens with 0 or 2 replicas
        per_replica = pool.stats.per_replica
        assert {i: (r.prompts, r.rollouts) for i, r in per_replica.items()} == {0: (6, 12), 1: (6, 12)}
        assert sum(r.tokens for r in per_replica.values()) == pool.stats.tokens
        assert all(r.seconds > 0 and r.tokens_per_second > 0 for r in per_replica.values())
        assert pool.stats.retries == 0

        state = _perturbed(local.engine.model, 1)
        pool.update_weights(state, version=1)
        local.update_weights(state, version=1)
        assert pool.replica_versions() == [1, 1] and pool.stats.weight_updates == 1

        victim = pool.replica_handles()[0]
        killer = threading.Timer(0.05, lambda: ray.kill(victim, no_restart=True))
        killer.start()
        groups = pool.generate(prompts, n=2, sampling=sampling)
        killer.join()
        assert pool.stats.retries == 6 and pool.stats.restarts == 1
        assert all(r.version == 1 for g in groups for r in g)
        assert _tokens(groups) == _tokens(local.generate(prompts, n=2, sampling=sampling))  # nothing lost
        assert pool.replica_handles()[0] is not victim
        assert pool.replica_versions() == [1, 1]  # the replacement came back with the current weights
    finally:
        pool.shutdown()


def test_import_actors_does_not_import_vllm():
    code = "import sys, actors, actors.rollout, actors.config; sys.exit('vllm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
