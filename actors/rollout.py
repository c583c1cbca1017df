"""Rollouts: a plain `RolloutWorker` (one engine over a student folder), the same class as a thin Ray actor,
and `RolloutPool`, which spreads prompts over N replicas and survives replicas that die.

The pool splits a call's prompts into one contiguous shard per replica, cut at the engine's batch
boundaries (`max_batch // n` prompts), and gives each shard the seed offset of its first row, so a seeded
call returns the same tokens with 0, 1 or N replicas (the HF engine seeds each batch with seed + its first
row). When a replica dies mid-request its shard goes to the next replica, the dead one is replaced, and
both are counted; nothing is lost. Weights go out through the object store: one `ray.put` per update, read
by every replica. The pool keeps the latest reference, so a replacement replica loads the current weights
and version before it serves anything (Ray runs one caller's calls on an actor in submission order). At
paper scale the object store is the CPU path; NCCL broadcast and HF checkpoints are the others (DESIGN).

`RolloutPool(replicas=0)` generates in-process with the same interface (tests, tiny runs).

Rollouts carry the prompt's token ids but not the prompt itself (images): the caller built the prompts,
and `generate` returns groups in prompt order, so it pairs them without sending images back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.config import EngineKind, RolloutConfig
from actors.engines import Engine, FinishReason, Generation, SamplingParams
from actors.prompts import Prompt, PromptKind
from actors.response import ParseError, Response, parse_response

if TYPE_CHECKING:
    import torch

    from teacher_service.schema import ScoreBreakdown


@dataclass(frozen=True, eq=False)
class Rollout:
    """One sampled response to one prompt."""

    scene_id: str
    kind: PromptKind  # base: q_base; fb: q_fb (a correction)
    # tokens
    prompt_token_ids: tuple[int, ...]  # (P,) the prompt as the engine saw it (image tokens expanded)
    token_ids: tuple[int, ...]  # (L,) the response, with the closing end-of-turn token if it stopped
    logprobs: np.ndarray  # (L,) float32 log π_old(token | prompt, prefix) at the sampling temperature
    finish_reason: FinishReason
    # text
    text: str
    response: Response | ParseError  # parse_response(text)
    # provenance and reward
    version: int  # weights version that sampled it
    score: ScoreBreakdown | None = None  # set by the controller after scoring (`with_score`)

    @property
    def well_formed(self) -> bool:
        return isinstance(self.response, Response)

    def with_score(self, score: ScoreBreakdown) -> Rollout:
        return replace(self, score=score)


def to_rollout(prompt: Prompt, generation: Generation) -> Rollout:
    return Rollout(
        scene_id=prompt.scene_id,
        kind=prompt.kind,
        prompt_token_ids=generation.prompt_token_ids,
        token_ids=generation.token_ids,
        logprobs=generation.logprobs,
        finish_reason=generation.finish_reason,
        text=generation.text,
        response=parse_response(generation.text),
        version=generation.version,
    )


# ------------------------------------------------------------------------------------ worker ---


def build_engine(student_dir: str | Path, engine: EngineKind, max_batch: int) -> Engine:
    """The engine of `engine` kind over a student folder. vLLM is imported only when asked for."""
    if engine == "hf":
        from actors.engines import HFEngine

        return HFEngine.from_dir(str(student_dir), max_batch=max_batch)
    if engine == "vllm":
        from actors.vllm_engine import VLLMEngine

        return VLLMEngine.from_dir(str(student_dir), max_batch=max_batch)
    raise ValueError(f"unknown engine {engine!r}; allowed: hf, vllm")


class RolloutWorker:
    """One engine; generates Rollouts in-process. The Ray replica is this class under `ray.remote`."""

    def __init__(self, student_dir: str | Path, engine: EngineKind = "hf", max_batch: int = 64) -> None:
        self.engine = build_engine(student_dir, engine, max_batch)

    @property
    def version(self) -> int:
        return self.engine.version

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Rollout]]:
        """n Rollouts per prompt, in prompt order."""
        groups = self.engine.generate(prompts, n, sampling)
        return [[to_rollout(p, g) for g in group] for p, group in zip(prompts, groups, strict=True)]

    def update_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        self.engine.update_weights(state_dict, version)

    def ping(self) -> int:
        """The loaded weights version (a Ray health check that also says which weights serve)."""
        return self.engine.version


# -------------------------------------------------------------------------------------- pool ---


@dataclass(frozen=True)
class ReplicaStats:
    """What one replica (by index: a replacement keeps it) generated in the shards that came back."""

    prompts: int = 0
    rollouts: int = 0  # responses
    tokens: int = 0  # response tokens
    seconds: float = 0.0  # [s] from sending its shards to their results (generation, queue and transfer)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def __add__(self, other: ReplicaStats) -> ReplicaStats:
        return ReplicaStats(
            self.prompts + other.prompts,
            self.rollouts + other.rollouts,
            self.tokens + other.tokens,
            self.seconds + other.seconds,
        )

    def __sub__(self, other: ReplicaStats) -> ReplicaStats:
        return ReplicaStats(
            self.prompts - other.prompts,
            self.rollouts - other.rollouts,
            self.tokens - other.tokens,
            self.seconds - other.seconds,
        )


@dataclass
class RolloutStats:
    prompts: int = 0
    rollouts: int = 0
    tokens: int = 0  # response tokens
    retries: int = 0  # prompts resubmitted after a replica died
    restarts: int = 0  # replicas replaced
    seconds: float = 0.0  # [s] wall time inside `generate`
    weight_updates: int = 0
    weight_sync_seconds: float = 0.0  # [s] wall time inside `update_weights`, all replicas loaded
    per_replica: dict[int, ReplicaStats] = field(default_factory=dict)  # Ray replicas only


def shard_bounds(count: int, n: int, replicas: int, max_batch: int) -> list[tuple[int, int]]:
    """[start, stop) of one shard of `count` prompts per replica (fewer when there are fewer engine
    batches), cut at multiples of the engine's batch of `max_batch // n` prompts, longer shards first."""
    per_batch = max(1, max_batch // n)
    batches = -(-count // per_batch)
    shards = min(replicas, batches)
    if shards == 0:
        return []
    base, extra = divmod(batches, shards)
    bounds, first = [], 0
    for k in range(shards):
        last = min(count, first + (base + (k < extra)) * per_batch)
        bounds.append((first, last))
        first = last
    return bounds


@dataclass(frozen=True)
class _Shard:
    """Prompts [start, stop) of a call, sent to `replica` on attempt `attempt`."""

    start: int
    stop: int
    replica: int
    attempt: int
    handle: Any  # the actor it went to (a replaced replica's late failures must not replace the new one)
    sent: float  # [s] perf_counter when it was submitted


class RolloutPool:
    """N Ray rollout replicas (or in-process when `replicas == 0`) behind one `generate` call."""

    def __init__(
        self,
        replicas: int,
        student_dir: str | Path,
        engine: EngineKind = "hf",
        num_cpus_per_replica: float = 1.0,
        num_gpus_per_replica: float = 0.0,
        max_batch: int = 64,
        actor_options: Callable[[int], dict] | None = None,
    ) -> None:
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        self.student_dir = str(student_dir)
        self.engine = engine
        self.num_cpus = num_cpus_per_replica
        self.num_gpus = num_gpus_per_replica
        self.max_batch = max_batch
        self.actor_options = actor_options  # replica i's extra Ray options (e.g. its placement group bundle)
        self.stats = RolloutStats()
        self._version = 0
        self._weights: Any = None  # ObjectRef of the latest state dict, for replacement replicas
        self._local = RolloutWorker(student_dir, engine, max_batch) if replicas == 0 else None
        self._replicas = [self._new_replica(i) for i in range(replicas)]
        if self._replicas:  # fail here, not in the first step, on a bad folder or missing engine
            import ray

            ray.get([r.ping.remote() for r in self._replicas])

    @classmethod
    def from_config(cls, config: RolloutConfig) -> RolloutPool:
        return cls(
            replicas=config.replicas,
            student_dir=config.student_dir,
            engine=config.engine,
            num_cpus_per_replica=config.num_cpus_per_replica,
            num_gpus_per_replica=config.num_gpus_per_replica,
            max_batch=config.max_batch,
        )

    @property
    def version(self) -> int:
        return self._local.version if self._local is not None else self._version

    def _new_replica(self, index: int):  # noqa: ANN202 - a Ray actor handle
        import ray

        remote_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0)(RolloutWorker)
        options = self.actor_options(index) if self.actor_options else {}
        replica = remote_cls.options(**options).remote(self.student_dir, self.engine, self.max_batch)
        if self._weights is not None:  # queued before any generate: it serves the current weights
            replica.update_weights.remote(self._weights, self._version)
        return replica

    # ---------------------------------------------------------------------------- generate ---

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Rollout]]:
        """n Rollouts per prompt, in prompt order, each tagged with the weights version that sampled it."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        start = time.perf_counter()
        if self._local is not None:
            groups = self._local.generate(prompts, n, sampling)
        else:
            groups = self._generate_remote(list(prompts), n, sampling) if prompts else []
        self.stats.prompts += len(prompts)
        self.stats.rollouts += sum(len(g) for g in groups)
        self.stats.tokens += sum(len(r.token_ids) for g in groups for r in g)
        self.stats.seconds += time.perf_counter() - start
        return groups

    def _generate_remote(
        self, prompts: list[Prompt], n: int, sampling: SamplingParams
    ) -> list[list[Rollout]]:
        import ray
        from ray.exceptions import RayActorError

        results: list[list[Rollout] | None] = [None] * len(prompts)
        inflight: dict[Any, _Shard] = {}

        def submit(start: int, stop: int, replica: int, attempt: int) -> None:
            seeded = sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + start * n)
            handle = self._replicas[replica]
            ref = handle.generate.remote(prompts[start:stop], n, seeded)
            inflight[ref] = _Shard(start, stop, replica, attempt, handle, time.perf_counter())

        bounds = shard_bounds(len(prompts), n, len(self._replicas), self.max_batch)
        for replica, (start, stop) in enumerate(bounds):
            submit(start, stop, replica, 0)
        while inflight:
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            shard = inflight.pop(ref)
            try:
                results[shard.start : shard.stop] = ray.get(ref)
            except RayActorError:
                if self._replicas[shard.replica] is shard.handle:
                    self._replace(shard.replica)
                if shard.attempt + 1 > 2 * len(self._replicas):
                    raise RuntimeError(
                        f"prompts {shard.start}-{shard.stop - 1}: rollout replicas kept dying on them"
                    ) from None
                self.stats.retries += shard.stop - shard.start
                submit(shard.start, shard.stop, (shard.replica + 1) % len(self._replicas), shard.attempt + 1)
                continue
            self._count(shard, results[shard.start : shard.stop])  # type: ignore[arg-type]  # just filled
        return results  # type: ignore[return-value]  # every slot filled

    def _count(self, shard: _Shard, groups: list[list[Rollout]]) -> None:
        """Add a shard that came back to its replica's numbers."""
        done = ReplicaStats(
            prompts=shard.stop - shard.start,
            rollouts=sum(len(g) for g in groups),
            tokens=sum(len(r.token_ids) for g in groups for r in g),
            seconds=time.perf_counter() - shard.sent,
        )
        per_replica = self.stats.per_replica
        per_replica[shard.replica] = per_replica.get(shard.replica, ReplicaStats()) + done

    def _replace(self, index: int) -> None:
        import ray

        ray.kill(self._replicas[index], no_restart=True)
        self._replicas[index] = self._new_replica(index)
        self.stats.restarts += 1

    # ------------------------------------------------------------------------------ weights ---

    def update_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """Load `state_dict` on every replica (one `ray.put`); returns when all serve `version`."""
        if version < self.version:
            raise ValueError(f"weights version {version} is older than the pool's {self.version}")
        start = time.perf_counter()
        if self._local is not None:
            self._local.update_weights(state_dict, version)
        else:
            self._broadcast(state_dict, version)
        self.stats.weight_updates += 1
        self.stats.weight_sync_seconds += time.perf_counter() - start

    def _broadcast(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        import ray
        from ray.exceptions import RayActorError

        self._weights = ray.put({k: v.detach().cpu() for k, v in state_dict.items()})
        self._version = version  # set first: a replica replaced below loads these weights
        sent = [(r, r.update_weights.remote(self._weights, version)) for r in self._replicas]
        for index, (replica, ref) in enumerate(sent):
            try:
                ray.get(ref)
            except RayActorError:
                if self._replicas[index] is replica:
                    self._replace(index)
        ray.get([r.ping.remote() for r in self._replicas])  # replacements loaded too

    # ----------------------------------------------------------------------------- replicas ---

    def replica_handles(self) -> list:
        return list(self._replicas)

    def replica_versions(self) -> list[int]:
        """The weights version each replica serves (the in-process worker's when `replicas == 0`)."""
        import ray

        if self._local is not None:
            return [self._local.version]
        return ray.get([r.ping.remote() for r in self._replicas])

    def shutdown(self) -> None:
        import ray

        for replica in self._replicas:
            ray.kill(replica, no_restart=True)
        self._replicas = []
