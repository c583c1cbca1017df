"""`LearnerGroup`: R DeepSpeed ranks as Ray actors behind one `update` call, or one in-process engine.

The group does the rendezvous: it picks a free port on the driver's node, and each actor sets RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT before DeepSpeed starts (`LearnerWorker.__init__`).
All R actors must be placed at once (they block in the rendezvous until every rank has joined), so the
group checks that the cluster has the CPUs and GPUs for them first. MASTER_ADDR is the driver's node
address (127.0.0.1 on the embedded local Ray); on a multi-node cluster the ranks are expected on the
driver's node or reachable at its address.

A batch is cut into micro-batches of similar length (`TrainBatch.micro_batches`) that are dealt to the
ranks by size, each rank getting the same number (`deal` tops up with empty ones), so
DeepSpeed's collectives stay in step. The loss denominator is the whole batch's, so the step equals the
single-rank step on the same batch up to float summation order.
`ranks=0` runs one LearnerWorker in this process (world size 1): the local mode of tests and tiny runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from learner.batch import TrainBatch, deal
from learner.config import LearnerConfig
from learner.worker import LearnerWorker, UpdateStats, free_port


class LearnerGroup:
    def __init__(
        self,
        model_dir: str | Path,
        config: LearnerConfig,
        ranks: int | None = None,
        actor_options: Callable[[int], dict] | None = None,
    ) -> None:
        self.config = config
        self.actor_options = actor_options  # rank r's extra Ray options (e.g. its placement group bundle)
        self.ranks = config.ranks if ranks is None else ranks
        if self.ranks < 0:
            raise ValueError(f"ranks must be >= 0, got {self.ranks}")
        self.model_dir = str(model_dir)
        self._local = LearnerWorker(model_dir, config) if self.ranks == 0 else None
        self._actors: list[Any] = self._start_actors() if self.ranks > 0 else []

    def _start_actors(self) -> list[Any]:
        import ray

        cfg = self.config
        need = {"CPU": cfg.num_cpus_per_rank * self.ranks, "GPU": cfg.num_gpus_per_rank * self.ranks}
        have = ray.cluster_resources()
        short = [
            f"{k}: need {v:g}, cluster has {have.get(k, 0):g}" for k, v in need.items() if v > have.get(k, 0)
        ]
        if short:
            raise RuntimeError(f"learner group of {self.ranks} ranks cannot be placed ({'; '.join(short)})")
        addr, port = ray.util.get_node_ip_address(), free_port()
        remote = ray.remote(num_cpus=cfg.num_cpus_per_rank, num_gpus=cfg.num_gpus_per_rank, max_restarts=0)(
            LearnerWorker
        )
        options = self.actor_options or (lambda rank: {})
        actors = [
            remote.options(**options(r)).remote(self.model_dir, cfg, r, self.ranks, addr, port)
            for r in range(self.ranks)
        ]
        ray.get([a.ping.remote() for a in actors])  # every rank joined and built its engine
        return actors

    @property
    def world_size(self) -> int:
        return max(1, self.ranks)

    @property
    def local_worker(self) -> LearnerWorker | None:
        """The in-process worker (local mode), e.g. to read its processor."""
        return self._local

    # ------------------------------------------------------------------------------ updates ---

    def update(self, batch: TrainBatch) -> UpdateStats:
        """One ELF-GRPO optimizer step on the whole batch, split over the ranks."""
        if self._local is not None:
            return self._local.update(batch)
        return self._run(batch, batch.loss_denominator(self.config.loss.aggregation), sft=False)

    def sft_update(self, batch: TrainBatch) -> UpdateStats:
        """One supervised optimizer step (token-mean NLL of the targets) on the whole batch."""
        if self._local is not None:
            return self._local.sft_update(batch)
        return self._run(batch, float(batch.tokens), sft=True)

    def _run(self, batch: TrainBatch, denominator: float, sft: bool) -> UpdateStats:
        import ray

        hands = deal(batch.micro_batches(self.config.micro_batch_size), self.ranks)
        refs = [
            (a.sft_update_micro if sft else a.update_micro).remote(hand, denominator)
            for a, hand in zip(self._actors, hands)
        ]
        return UpdateStats.of(ray.get(refs))

    # ------------------------------------------------------------------------------ weights ---

    def export_weights(self) -> dict[str, torch.Tensor]:
        """The full CPU state dict (gathered collectively under ZeRO-3), for `update_weights` of the
        rollout engines."""
        if self._local is not None:
            state = self._local.export_weights()
        else:
            import ray

            state = ray.get([a.export_weights.remote() for a in self._actors])[0]
        assert state is not None, "rank 0 returns the weights"
        return state

    def save(self, path: str | Path) -> Path:
        """Checkpoint (HF-format model + DeepSpeed state + RNG) into `path`."""
        if self._local is not None:
            return self._local.save(path)
        import ray

        ray.get([a.save.remote(str(path)) for a in self._actors])
        return Path(path)

    def load(self, path: str | Path) -> None:
        if self._local is not None:
            self._local.load(path)
            return
        import ray

        ray.get([a.load.remote(str(path)) for a in self._actors])

    @property
    def version(self) -> int:
        """Optimizer steps taken: the weights version the rollout engines are given."""
        if self._local is not None:
            return self._local.updates
        import ray

        return ray.get(self._actors[0].ping.remote())

    def shutdown(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
