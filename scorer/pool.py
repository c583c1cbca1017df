"""Scoring many groups at once: a plain worker with an LRU of scene caches, a thin Ray actor around it,
and `ScorerPool`, which spreads groups over N actors and survives actors that die.

Groups of one scene are routed to the same actor (by scene id), so the scene cache built for a group's
original rollouts is reused for its corrections. When an actor dies mid-call its groups are resubmitted
to the next live actor and the dead one is replaced; nothing is lost, and each retry is counted.
`ScorerPool(actors=0)` scores in-process with the same interface (tests, tiny runs).
"""

from __future__ import annotations

import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from driving.scene import Scene
from scorer.config import Metric


@dataclass(frozen=True)
class ScoreRequest:
    """One group: the scene and its K candidate plans (K, 8, 3) in the ego's local frame."""

    scene: Scene
    trajectories: np.ndarray
    metric: Metric = "pdms"


@dataclass
class PoolStats:
    groups: int = 0
    candidates: int = 0
    retries: int = 0  # groups resubmitted after an actor died
    restarts: int = 0  # actors replaced
    seconds: float = 0.0
    per_actor_groups: dict[int, int] = field(default_factory=dict)


class ScorerWorker:
    """Scores groups in-process, keeping the `cache_size` most recently used scene caches."""

    def __init__(self, cache_size: int = 512) -> None:
        self.cache_size = cache_size
        self._caches: OrderedDict[str, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _cache_for(self, scene: Scene) -> object:
        from scorer import prepare

        key = scene.id
        if key is not None and key in self._caches:
            self._caches.move_to_end(key)
            self.hits += 1
            return self._caches[key]
        self.misses += 1
        cache = prepare(scene)
        if key is not None:
            self._caches[key] = cache
            while len(self._caches) > self.cache_size:
                self._caches.popitem(last=False)
        return cache

    def score_groups(self, requests: list[ScoreRequest]) -> list:
        from scorer import score

        return [
            score(self._cache_for(r.scene), np.asarray(r.trajectories, float), r.metric) for r in requests
        ]

    def cache_stats(self) -> tuple[int, int]:
        return self.hits, self.misses

    def ping(self) -> bool:
        return True


class ScorerPool:
    """N Ray scorer actors (or in-process when `actors == 0`) behind one `score_groups` call."""

    def __init__(
        self,
        actors: int = 1,
        cache_size: int = 512,
        num_cpus_per_actor: float = 1.0,
        actor_options: Callable[[int], dict] | None = None,
    ) -> None:
        self.num_actors = actors
        self.cache_size = cache_size
        self.num_cpus = num_cpus_per_actor
        self.actor_options = actor_options  # actor i's extra Ray options (e.g. its placement group bundle)
        self.stats = PoolStats()
        self._local = ScorerWorker(cache_size) if actors == 0 else None
        self._actors = [self._new_actor(i) for i in range(actors)]

    def _new_actor(self, index: int):  # noqa: ANN202 - a Ray actor handle
        import ray

        remote_cls = ray.remote(num_cpus=self.num_cpus, max_restarts=0)(ScorerWorker)
        options = self.actor_options(index) if self.actor_options else {}
        return remote_cls.options(**options).remote(self.cache_size)

    def score_groups(self, requests: list[ScoreRequest]) -> list:
        """ScoreBatch per request, in request order."""
        start = time.perf_counter()
        if self._local is not None:
            results = self._local.score_groups(requests)
        else:
            results = self._score_remote(requests)
        self.stats.groups += len(requests)
        self.stats.candidates += sum(len(r.trajectories) for r in requests)
        self.stats.seconds += time.perf_counter() - start
        return results

    def _route(self, request: ScoreRequest, attempt: int) -> int:
        key = request.scene.id or ""
        return (zlib.crc32(key.encode()) + attempt) % len(self._actors)

    def _score_remote(self, requests: list[ScoreRequest]) -> list:
        import ray
        from ray.exceptions import RayActorError

        results: list = [None] * len(requests)
        attempts = [0] * len(requests)  # request i goes to actor (home(i) + attempts[i]) % N
        pending = list(range(len(requests)))
        while pending:
            by_actor: dict[int, list[int]] = {}
            for i in pending:
                by_actor.setdefault(self._route(requests[i], attempts[i]), []).append(i)
            futures = {
                a: self._actors[a].score_groups.remote([requests[i] for i in idx])
                for a, idx in by_actor.items()
            }
            pending = []
            for a, idx in by_actor.items():
                try:
                    for i, res in zip(idx, ray.get(futures[a]), strict=True):
                        results[i] = res
                    self.stats.per_actor_groups[a] = self.stats.per_actor_groups.get(a, 0) + len(idx)
                except RayActorError:
                    self._replace(a)
                    for i in idx:
                        attempts[i] += 1
                        if attempts[i] > 2 * len(self._actors):
                            raise RuntimeError(
                                f"scene {requests[i].scene.id}: scorer actors kept dying on it"
                            ) from None
                    pending += idx
                    self.stats.retries += len(idx)
        return results

    def _replace(self, index: int) -> None:
        import ray

        ray.kill(self._actors[index], no_restart=True)
        self._actors[index] = self._new_actor(index)
        self.stats.restarts += 1

    def actor_handles(self) -> list:
        return list(self._actors)

    def cache_stats(self) -> tuple[int, int]:
        """(hits, misses) summed over live workers."""
        import ray

        if self._local is not None:
            return self._local.cache_stats()
        pairs = ray.get([a.cache_stats.remote() for a in self._actors])
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    def shutdown(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors = []
