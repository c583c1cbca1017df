"""ScorerPool on a real local Ray: same scores as in-process, groups retried when an actor dies."""

from __future__ import annotations

import threading

import numpy as np

from driving.scene import load_scene
from scorer import prepare, score
from scorer.pool import ScoreRequest, ScorerPool
from tests.conftest import SHARED_SCENES


def _requests(copies: int = 4) -> list[ScoreRequest]:
    rng = np.random.default_rng(0)
    out = []
    for c in range(copies):
        for path in SHARED_SCENES:
            scene = load_scene(path)
            scene = scene.model_copy(update={"id": f"{path.stem}-{c}"})
            base = np.asarray(scene.trajectory.poses)
            trajs = base[None] + rng.normal(0, 0.3, size=(4, 8, 3)) * np.array([1.0, 1.0, 0.02])
            out.append(ScoreRequest(scene, trajs, "pdms"))
    return out


def _direct(requests):
    return [score(prepare(r.scene), r.trajectories, r.metric).total for r in requests]


def test_local_pool_matches_direct_scoring():
    reqs = _requests(2)
    pool = ScorerPool(actors=0)
    got = [b.total for b in pool.score_groups(reqs)]
    for a, b in zip(got, _direct(reqs)):
        np.testing.assert_array_equal(a, b)
    # the same scenes again are served from the LRU cache
    pool.score_groups(reqs)
    hits, misses = pool.cache_stats()
    assert misses == len(reqs) and hits == len(reqs)


def test_ray_pool_matches_and_survives_a_dead_actor(local_ray):
    import ray

    reqs = _requests(3)
    expected = _direct(reqs)
    pool = ScorerPool(actors=2, num_cpus_per_actor=0.5)
    try:
        got = [b.total for b in pool.score_groups(reqs)]
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
        assert pool.stats.retries == 0
        assert len(pool.stats.per_actor_groups) == 2, "groups spread over both actors"

        # an actor that is dead before the call: its groups go to the other one, it is replaced
        ray.kill(pool.actor_handles()[0], no_restart=True)
        got = [b.total for b in pool.score_groups(reqs)]
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
        assert pool.stats.retries > 0 and pool.stats.restarts == 1

        # an actor killed while it works: every group still comes back, with the same scores. 90 groups,
        # mostly of scenes new to the actors, keep each busy for far longer than the 0.05 s before the kill
        # (the compiled scorer does 18 groups in about that time: the kill could land after the call)
        victim, reqs = pool.actor_handles()[1], _requests(30)
        killer = threading.Timer(0.05, lambda: ray.kill(victim, no_restart=True))
        killer.start()
        got = [b.total for b in pool.score_groups(reqs)]
        killer.join()
        assert pool.stats.restarts == 2  # the kill landed during the call and the pool replaced the actor
        assert len(got) == len(reqs)
        for a, b in zip(got, _direct(reqs)):
            np.testing.assert_array_equal(a, b)
        assert all(ray.get([a.ping.remote() for a in pool.actor_handles()]))
    finally:
        pool.shutdown()


def test_empty_batch():
    assert ScorerPool(actors=0).score_groups([]) == []
