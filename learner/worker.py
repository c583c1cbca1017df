"""`LearnerWorker`: one DeepSpeed engine (one data-parallel rank) over a student model, with a frozen
reference copy, ELF-GRPO and SFT updates, weight export and exact-resume checkpoints.

A plain class: it runs in-process (world size 1, the local mode) or as a Ray actor of `LearnerGroup`,
which gives each rank its RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (set here, before
DeepSpeed starts). CPU: fp32 with gloo (`DS_ACCELERATOR=cpu`); GPU: bf16 with NCCL. The optimizer is torch
AdamW handed to DeepSpeed as a client optimizer (DeepSpeed's fused Adam would JIT-compile on the CPU).

One `update` is one optimizer step over the micro-batches of the batch this rank was dealt. Gradient
accumulation boundaries are set by hand (the number of micro-batches varies with the batch), and every
micro-batch loss is divided by the *whole batch's* denominator (`TrainBatch.loss_denominator`) and
multiplied by the world size, which DeepSpeed's gradient averaging divides out again: the step is the
gradient of the full-batch loss, whatever the number of ranks and micro-batches.

Checkpoint folder: the model in Hugging Face format plus the processor and the student marker (so it is
a student folder: `load_student`, `HFEngine.from_dir`, `transformers.from_pretrained` all read it), and
`deepspeed/` with DeepSpeed's own checkpoint (module, ZeRO-partitioned optimizer state, lr scheduler) and
each rank's RNG states, for an exact resume.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner.batch import TrainBatch
from learner.config import LearnerConfig, OptimizerConfig
from learner.losses import aggregate, elf_grpo_token_losses, sft_token_losses, token_logprobs

DS_TAG = "state"
DS_DIR = "deepspeed"


def free_port() -> int:
    """A TCP port free on this machine right now (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_distributed_env(rank: int, world_size: int, master_addr: str, master_port: int, gpu: bool) -> None:
    """What torch.distributed and DeepSpeed read at start-up. Ray gives a GPU rank one visible device, so
    its LOCAL_RANK is 0; CPU ranks of one node count up (PITFALLS: without LOCAL_RANK one rank asserts and
    the other hangs)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK="0" if gpu else str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE="1" if gpu else str(world_size),
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
    )
    if not gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported


def lr_factor(step: int, cfg: OptimizerConfig) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warm-up, then constant or a
    cosine down to `min_lr_ratio` at `total_steps`."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or cfg.total_steps is None:
        return 1.0
    span = max(1, cfg.total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class UpdateSums:
    """Sums over one rank's micro-batches; the ranks' sums add up (`UpdateStats.of`)."""

    loss: float = 0.0  # Σ micro-batch losses (each already divided by the batch denominator)
    policy: float = 0.0  # Σ clipped GRPO loss over original tokens
    policy_tokens: int = 0
    shaping: float = 0.0  # Σ -A·f(π) over shaped tokens
    shaping_weight: float = 0.0  # Σ f(π) over shaped tokens
    shaped_tokens: int = 0
    kl: float = 0.0  # Σ k3 over all response tokens
    clipped: int = 0  # original tokens where the clip was active
    samples: int = 0
    shaped_samples: int = 0
    grad_norm: float = 0.0  # after the step; the same on every rank
    lr: float = 0.0  # the lr this step used
    seconds: float = 0.0  # [s]


@dataclass(frozen=True)
class UpdateStats:
    loss: float  # the loss that was minimised (full batch)
    policy_loss: float  # mean clipped GRPO loss per original token
    shaping_loss: float  # mean -A·f(π) per shaped token
    kl: float  # mean k3 KL per response token
    clip_fraction: float  # share of original tokens with the clip active
    shaping_weight_mean: float  # mean f(π) = π/(π+γ) over shaped tokens
    grad_norm: float  # global L2 norm before clipping
    lr: float
    samples: int
    shaped_samples: int
    tokens: int  # response tokens
    seconds: float  # [s] wall time of the slowest rank

    @classmethod
    def of(cls, parts: list[UpdateSums]) -> UpdateStats:
        def total(name: str) -> float:
            return sum(getattr(p, name) for p in parts)

        tokens = total("policy_tokens") + total("shaped_tokens")
        return cls(
            loss=total("loss"),
            policy_loss=total("policy") / max(1, total("policy_tokens")),
            shaping_loss=total("shaping") / max(1, total("shaped_tokens")),
            kl=total("kl") / max(1, tokens),
            clip_fraction=total("clipped") / max(1, total("policy_tokens")),
            shaping_weight_mean=total("shaping_weight") / max(1, total("shaped_tokens")),
            grad_norm=parts[0].grad_norm,
            lr=parts[0].lr,
            samples=int(total("samples")),
            shaped_samples=int(total("shaped_samples")),
            tokens=int(tokens),
            seconds=max(p.seconds for p in parts),
        )


@dataclass
class _Objective:
    """Which loss a micro-batch loop minimises."""

    kind: str  # "elf-grpo" | "sft"
    denominator: float
    sums: UpdateSums = field(default_factory=UpdateSums)


class LearnerWorker:
    """One DeepSpeed rank. `rank=0, world_size=1` (the defaults) is the in-process local mode."""

    def __init__(
        self,
        model_dir: str | Path,
        config: LearnerConfig,
        rank: int = 0,
        world_size: int = 1,
        master_addr: str = "127.0.0.1",
        master_port: int | None = None,
    ) -> None:
        self.gpu = torch.cuda.is_available()
        set_distributed_env(rank, world_size, master_addr, master_port or free_port(), self.gpu)
        import deepspeed

        from actors.model_factory import load_student

        self.config = config
        self.rank, self.world_size = rank, world_size
        self.model_dir = Path(model_dir)
        self.bf16 = config.precision == "bf16" or (config.precision == "auto" and self.gpu)
        self.updates = 0  # optimizer steps taken (the weights version)
        if not self.gpu:  # as many threads as the rank has CPUs: idle OpenMP threads spin on shared cores
            torch.set_num_threads(max(1, int(config.num_cpus_per_rank)))
        torch.manual_seed(config.seed)
        if not self.gpu:  # the shared-memory allreduce op would JIT-compile (~1 min); gloo does the job
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend="nccl" if self.gpu else "gloo", auto_mpi_discovery=False)
        model, self.processor, self.preset = load_student(self.model_dir)
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=config.optimizer.lr,
            betas=config.optimizer.betas,
            weight_decay=config.optimizer.weight_decay,
        )
        schedule = config.optimizer

        def scheduler(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, schedule))

        self.engine, *_ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self._ds_config(training=True)
        )
        self.reference = self._load_reference() if config.loss.beta > 0 else None

    def _ds_config(self, training: bool) -> dict:
        cfg = self.config
        zero: dict[str, Any] = {"stage": cfg.zero_stage}
        if cfg.zero_stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = False
        out: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
            "gradient_accumulation_steps": 1,  # boundaries are set per update (see the module docstring)
            "train_batch_size": cfg.micro_batch_size * self.world_size,
            "zero_optimization": zero,
            "bf16": {"enabled": self.bf16},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if training:
            out["gradient_clipping"] = cfg.optimizer.grad_clip
            out["zero_allow_untested_optimizer"] = True
        return out

    def _load_reference(self) -> Any:
        """The frozen reference policy: the starting weights. Under ZeRO-3 it is partitioned like the
        policy (an optimizer-less DeepSpeed engine); otherwise a plain module on the rank's device."""
        import deepspeed

        from actors.model_factory import load_student

        model, _, _ = load_student(self.model_dir)
        model.requires_grad_(False)
        if self.config.zero_stage == 3:
            engine, *_ = deepspeed.initialize(model=model, config=self._ds_config(training=False))
            engine.eval()
            return engine
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        return model.to(device=self.engine.device, dtype=dtype).eval()

    # ------------------------------------------------------------------------------- updates ---

    def update(self, batch: TrainBatch, denominator: float | None = None) -> UpdateStats:
        """One ELF-GRPO optimizer step on `batch` (local mode: the whole batch)."""
        denominator = denominator or batch.loss_denominator(self.config.loss.aggregation)
        return UpdateStats.of(
            [self.update_micro(batch.micro_batches(self.config.micro_batch_size), denominator)]
        )

    def update_micro(self, micro: list[TrainBatch], denominator: float) -> UpdateSums:
        """This rank's micro-batches of one ELF-GRPO step; `denominator` is the whole batch's
        (`TrainBatch.loss_denominator`)."""
        return self._step(micro, _Objective("elf-grpo", denominator))

    def sft_update(self, batch: TrainBatch) -> UpdateStats:
        """One supervised step: token-mean negative log-likelihood of the targets."""
        micro = batch.micro_batches(self.config.micro_batch_size)
        return UpdateStats.of([self.sft_update_micro(micro, float(batch.tokens))])

    def sft_update_micro(self, micro: list[TrainBatch], denominator: float) -> UpdateSums:
        return self._step(micro, _Objective("sft", denominator))

    def _step(self, micro: list[TrainBatch], objective: _Objective) -> UpdateSums:
        start = time.perf_counter()
        sums = objective.sums
        sums.lr = float(self.engine.get_lr()[0])
        for i, mb in enumerate(micro):
            self.engine.set_gradient_accumulation_boundary(i == len(micro) - 1)
            loss = self._micro_loss(mb, objective)
            self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
        unclipped = self._local_grad_norm() if self.config.zero_stage == 0 else None
        self.engine.step()
        self.updates += 1
        norm = self.engine.get_global_grad_norm()  # ZeRO and the bf16 optimizer record it
        sums.grad_norm = float(norm if norm is not None else unclipped if unclipped is not None else "nan")
        for mb in micro:
            answered = mb.response_mask.any(dim=-1)
            sums.samples += int(answered.sum())
            sums.shaped_samples += int((mb.shaped & answered).sum())
        sums.seconds = time.perf_counter() - start
        return sums

    def _local_grad_norm(self) -> float:
        """L2 norm of the (already all-reduced) gradients; DeepSpeed does not record it for fp32 ZeRO-0."""
        grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    def _micro_loss(self, mb: TrainBatch, objective: _Objective) -> torch.Tensor:
        loss_cfg = self.config.loss
        mask = mb.response_mask.to(self.engine.device)
        logp = self._logprobs(self.engine, mb)
        sums = objective.sums
        if objective.kind == "sft":
            per_token = sft_token_losses(logp)
            loss = aggregate(per_token, mask, "token-mean", 1, objective.denominator)
            sums.policy += float((per_token.detach() * mask).sum())
            sums.policy_tokens += int(mask.sum())
            sums.loss += float(loss.detach())
            return loss
        device = self.engine.device
        ref = mb.ref_logprobs
        if ref is None and self.reference is not None:
            with torch.no_grad():
                ref = self._logprobs(self.reference, mb)
        shaped = mb.shaped.to(device)
        terms = elf_grpo_token_losses(
            logp,
            mb.old_logprobs.to(device),
            ref.to(device) if ref is not None else None,
            mb.advantages.to(device),
            shaped,
            loss_cfg.clip_low,
            loss_cfg.clip_high,
            loss_cfg.gamma,
            loss_cfg.beta,
        )
        loss = aggregate(
            terms.total, mask, loss_cfg.aggregation, loss_cfg.constant_length, objective.denominator
        )
        original = mask & ~shaped.unsqueeze(-1)
        on_shaped = mask & shaped.unsqueeze(-1)
        sums.loss += float(loss.detach())
        sums.policy += float((terms.policy.detach() * original).sum())
        sums.policy_tokens += int(original.sum())
        sums.shaping += float((terms.shaping.detach() * on_shaped).sum())
        sums.shaping_weight += float((terms.shaping_weight * on_shaped).sum())
        sums.shaped_tokens += int(on_shaped.sum())
        sums.kl += float((terms.kl.detach() * mask).sum())
        sums.clipped += int((terms.clipped & original).sum())
        return loss

    def _logprobs(self, model: Any, mb: TrainBatch) -> torch.Tensor:
        """(b, R) log π(response token | prompt, prefix) at the loss temperature. Only the last R + 1
        positions' logits are computed (`logits_to_keep`): the prompt's own predictions are never used."""
        device = self.engine.device
        kwargs = {k: v.to(device) for k, v in mb.inputs.forward_kwargs().items()}
        if self.bf16 and "pixel_values" in kwargs:
            kwargs["pixel_values"] = kwargs["pixel_values"].to(torch.bfloat16)
        width = mb.response_ids.shape[1]
        logits = model(**kwargs, logits_to_keep=width + 1, use_cache=False).logits  # (b, R + 1, V)
        return token_logprobs(logits[:, :-1], mb.response_ids.to(device), self.config.loss.temperature)

    def logprobs(self, batch: TrainBatch) -> torch.Tensor:
        """(B, R) current-policy log-probs of a batch, no gradient (diagnostics, tests)."""
        with torch.no_grad():
            return self._logprobs(self.engine, batch).cpu() * batch.response_mask

    # ------------------------------------------------------------------------------- weights ---

    def export_weights(self) -> dict[str, torch.Tensor] | None:
        """The full state dict on the CPU (rank 0; None on other ranks). Under ZeRO-3 every rank must call
        it: the partitioned parameters are gathered collectively."""
        import deepspeed

        module = self.engine.module
        if self.config.zero_stage == 3:
            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        else:
            state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return state if self.rank == 0 else None

    def save(self, path: str | Path) -> Path:
        """Checkpoint into `path` (collective: every rank calls it)."""
        import torch.distributed as dist

        from actors.model_factory import MARKER

        path = Path(path)
        state = self.export_weights()
        if self.rank == 0:
            path.mkdir(parents=True, exist_ok=True)
            self.engine.module.save_pretrained(path, state_dict=state)
            self.processor.save_pretrained(path)
            shutil.copyfile(self.model_dir / MARKER, path / MARKER)
        dist.barrier()
        self.engine.save_checkpoint(str(path / DS_DIR), tag=DS_TAG, client_state={"updates": self.updates})
        rng = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if self.gpu else None,
        }
        torch.save(rng, path / DS_DIR / f"rng_rank{self.rank}.pt")
        dist.barrier()
        return path

    def load(self, path: str | Path) -> None:
        """Resume from a `save` folder: weights, optimizer, lr scheduler, RNG and update count."""
        path = Path(path)
        _, client = self.engine.load_checkpoint(
            str(path / DS_DIR), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if client is None:
            raise FileNotFoundError(f"{path / DS_DIR}: no DeepSpeed checkpoint {DS_TAG!r}")
        self.updates = int(client.get("updates", 0))
        rng = torch.load(path / DS_DIR / f"rng_rank{self.rank}.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if self.gpu and rng["cuda"] is not None:
            torch.cuda.set_rng_state_all(rng["cuda"])

    def ping(self) -> int:
        return self.updates
