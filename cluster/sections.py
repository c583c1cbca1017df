"""The controller's own sections of the experiment config: `cluster` (where Ray runs), `select` (hard-sample
selection) and `train` (the ELF-GRPO loop). γ and β live in `learner.loss`, the teacher kind in
`teacher.backend.type`, the metric in `scorer.metric`, sampling in `rollout.sampling`: one place each."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FeedbackTrigger = Literal["all_fail", "any_fail"]  # groups whose every / any response is wrong


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(_Frozen):
    """Where Ray runs: a local instance (default) or a `ray up` cluster (`address: auto`)."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)  # local Ray only; None: all cores
    metrics_port: int | None = Field(default=None, ge=1024, le=65535)  # Prometheus /metrics (local Ray)
    placement_timeout_s: float = Field(default=120.0, gt=0.0)  # [s] wait for placement groups, then fail
    # component -> a custom node resource each of its bundles takes one unit of, to pin the component to
    # its node type of ray_cluster.yaml (e.g. rollout: elfvla_rollout); absent: anywhere that fits
    bundle_resources: dict[Literal["rollout", "scorer", "learner"], str] = Field(default_factory=dict)


class SelectConfig(_Frozen):
    """Hard-sample selection: N rollouts per training scene from the SFT model; keep a scene if it is hard
    (mean reward below `hard_mean_max`) or ambiguous (reward variance at least `ambiguous_var_min`);
    drop the rest (mastered: high mean, low variance)."""

    rollouts_per_scene: int = Field(default=8, ge=2)  # N
    hard_mean_max: float = Field(default=0.6, ge=0.0, le=1.0)
    ambiguous_var_min: float = Field(default=0.02, ge=0.0)  # [reward²]
    split: Literal["train", "val", "test"] = "train"
    max_scenes: int | None = Field(default=None, ge=1)  # the first M scenes of the split (None: all)
    scenes_per_call: int = Field(default=16, ge=1)  # scenes per rollout call (progress granularity)


class TrainConfig(_Frozen):
    """The ELF-GRPO loop (DESIGN steps 2-7)."""

    scenes_dir: Path | None = None  # a make-scenes folder (checked at start-up, not at load)
    subset: Path | None = None  # a `select` manifest (selected.json); None: every scene of `split`
    split: Literal["train", "val", "test"] = "train"
    steps: int = Field(default=100, ge=1)
    groups_per_step: int = Field(default=8, ge=1)  # scenes per step
    group_size: int = Field(default=8, ge=2)  # n: responses per scene from q_base
    correct_threshold: float = Field(default=0.8, ge=0.0, le=1.0)  # s: correct iff score >= s
    reinject_top_k: int = Field(default=1, ge=0)  # k: corrections reinjected per group (0 = plain GRPO)
    trigger: FeedbackTrigger = "all_fail"  # which groups get feedback
    max_feedback_per_group: int = Field(default=2, ge=1)  # q_fb prompts per triggered group
    mode: Literal["sync", "async"] = "sync"  # async: rollouts of step t+1 overlap the update of step t
    checkpoint_every: int = Field(default=10, ge=1)  # [steps]; a checkpoint is also written at the end
    keep_checkpoints: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _feedback_counts(self) -> TrainConfig:
        if self.max_feedback_per_group > self.group_size:
            raise ValueError(
                f"max_feedback_per_group ({self.max_feedback_per_group}) > group_size ({self.group_size}): "
                "a group has only group_size responses to give feedback on"
            )
        if self.reinject_top_k > self.max_feedback_per_group:
            raise ValueError(
                f"reinject_top_k ({self.reinject_top_k}) > max_feedback_per_group "
                f"({self.max_feedback_per_group}): there are at most that many corrections to reinject"
            )
        return self
