"""The learner's sections of the experiment config: `LearnerConfig` (DeepSpeed group, optimizer, ELF-GRPO
loss) and `SFTConfig` (the two-stage supervised warm-up before RL)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

LossAggregation = Literal["token-mean", "seq-mean-token-sum"]  # learner.losses.aggregate
Precision = Literal["auto", "fp32", "bf16"]  # auto: bf16 on a GPU, fp32 on the CPU
Schedule = Literal["constant", "cosine"]
QAQuestion = Literal["drivable", "road", "objects", "action"]  # learner.sft_data.qa_samples
QA_QUESTIONS: tuple[str, ...] = get_args(QAQuestion)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(_Frozen):
    """torch AdamW (DeepSpeed's fused Adam would JIT-compile on the CPU) with linear warm-up, then a
    constant or cosine learning rate."""

    lr: float = Field(default=1e-5, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(default=0.0, ge=0.0)
    warmup_steps: int = Field(default=0, ge=0)
    schedule: Schedule = "constant"
    total_steps: int | None = Field(default=None, ge=1)  # cosine: the step where the lr reaches min_lr_ratio
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0)  # [lr] floor of the cosine
    grad_clip: float = Field(default=1.0, gt=0.0)  # global L2 norm
    _length_from_caller: ClassVar[bool] = False  # True where total_steps is filled in by the job

    @model_validator(mode="after")
    def _cosine_needs_length(self) -> OptimizerConfig:
        if self.schedule == "cosine" and self.total_steps is None and not self._length_from_caller:
            raise ValueError("schedule cosine needs total_steps")
        return self


class LossConfig(_Frozen):
    clip_low: float = Field(default=0.2, ge=0.0, lt=1.0)  # ρ >= 1 - clip_low
    clip_high: float = Field(default=0.28, ge=0.0)  # ρ <= 1 + clip_high (DAPO's clip-higher)
    gamma: float = Field(default=0.1, gt=0.0)  # policy shaping f(π) = π / (π + γ) (paper: 0.1)
    # False (the "ELF without policy shaping" ablation): reinjected corrections get the clipped GRPO
    # objective, ratio against the log-probs they were sampled with (under q_fb); `learner.batch`
    policy_shaping: bool = True
    beta: float = Field(default=0.01, ge=0.0)  # KL coefficient; 0 = no reference model is loaded
    std_normalize: bool = True  # False: Dr.GRPO advantages (mean only)
    aggregation: LossAggregation = "token-mean"
    constant_length: int = Field(default=128, ge=1)  # [tokens] seq-mean-token-sum's divisor
    temperature: float = Field(default=1.0, gt=0.0)  # log-probs at the rollout sampling temperature


class LearnerConfig(_Frozen):
    """The DeepSpeed learner group: R ranks (0 = one in-process engine), ZeRO stage, precision."""

    ranks: int = Field(default=0, ge=0)
    zero_stage: int = Field(default=2, ge=0, le=3)
    precision: Precision = "auto"
    micro_batch_size: int = Field(default=8, ge=1)  # sequences per forward/backward on one rank
    num_cpus_per_rank: float = Field(default=1.0, gt=0.0)  # also the rank's torch threads on the CPU
    num_gpus_per_rank: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    loss: LossConfig = Field(default_factory=LossConfig)


class SFTOptimizerConfig(OptimizerConfig):
    """SFT's optimizer defaults (PITFALLS: what a tiny student learns fastest with on 2 cores), as field
    defaults so that overriding one field (`sft.optimizer.lr=...`) keeps the others."""

    lr: float = Field(default=1e-3, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = Field(default=0.05, ge=0.0)
    warmup_steps: int = Field(default=100, ge=0)
    schedule: Schedule = "cosine"
    total_steps: int | None = Field(default=None, ge=1)  # set to stage1_steps + stage2_steps by the SFT
    _length_from_caller: ClassVar[bool] = True


class SFTConfig(_Frozen):
    """Stage 1: driving-knowledge QA; stage 2: q_base -> ground truth mixed with q_fb -> ground truth.
    Budgeted in optimizer steps, not wall time (the machine is shared). The optimizer's cosine runs over
    both stages; `optimizer.total_steps` is set to their sum."""

    student_dir: Path | None = None  # None: a fresh `preset` student built in the run folder
    preset: Literal["tiny-internvl", "tiny-qwen3vl", "tiny-text"] = "tiny-internvl"
    scenes_dir: Path | None = None  # a make-scenes folder; None: generate the `scenes` section into the run
    stage1_steps: int = Field(default=200, ge=0)
    stage2_steps: int = Field(default=2200, ge=0)
    batch_size: int = Field(default=16, ge=1)  # sequences per optimizer step (over all ranks)
    # Stage 1's QA answers are short (~20 tokens against ~85), so a stage-1 step can hold more of them;
    # None: `batch_size`. `stage1_questions` picks which of the four QA questions stage 1 asks.
    stage1_batch_size: int | None = Field(default=None, ge=1)
    stage1_questions: list[QAQuestion] = Field(default_factory=lambda: list(QA_QUESTIONS), min_length=1)
    feedback_fraction: float = Field(default=0.2, ge=0.0, le=1.0)  # of stage-2 samples that are q_fb
    feedback_scenes: int = Field(default=300, ge=0)  # training scenes given perturbed failing plans
    ranks: int = Field(default=0, ge=0)  # learner ranks for SFT (0: in-process)
    optimizer: SFTOptimizerConfig = Field(default_factory=SFTOptimizerConfig)
    eval_every: int = Field(default=600, ge=1)  # [steps] validation PDMS
    eval_scenes: int = Field(default=60, ge=1)  # held-out scenes (split `eval_split`)
    eval_split: Literal["val", "test"] = "val"
    max_new_tokens: int = Field(default=160, ge=1)
    checkpoint_every: int = Field(default=1200, ge=1)  # [steps]
    seed: int = 0
