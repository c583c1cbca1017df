"""The controller's own sections of the experiment config: `cluster` (where Ray runs), `select` (hard-sample
selection), `train` (the ELF-GRPO loop) and `eval` (evaluation of a checkpoint). γ and β live in `learner.loss`, the teacher kind in
`teacher.backend.type`, the metric in `scorer.metric`, sampling in `rollout.sampling`: one place each."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FeedbackTrigger = Literal["all_fail", "any_fail"]  # groups whose every / any response is wrong
ReinjectSource = Literal["corrections", "ground_truth"]  # ELF / GT-GRPO


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(_Frozen):
    """Where Ray runs: a local instance (default) or a `ray up` cluster (`address: auto`)."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)  # local Ray only; None: all cores
    metrics_port: int | None = Field(default=None, ge=1024, le=65535)  # Prometheus /metrics (local Ray)
    placement_timeout_s: float = Field(default=120.0, gt=0.0)  # [s] wait for placement groups, then fail
    # component -> a custom node resource that pins the component to its nodes of ray_cluster.yaml (e.g.
    # rollout: elfvla_rollout): each placement-group bundle takes one unit of it, each teacher Serve
    # replica one unit per GPU (`teacher_node_resources`); absent: anywhere that fits
    bundle_resources: dict[Literal["rollout", "scorer", "learner", "teacher"], str] = Field(
        default_factory=dict
    )


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
    # what is reinjected into a triggered group: the student's best corrections (ELF), or the scene's
    # ground-truth answer (GT-GRPO: no teacher, no q_fb; at most one per group, `elf` module docstring)
    reinject_source: ReinjectSource = "corrections"
    trigger: FeedbackTrigger = "all_fail"  # which groups get feedback (or the ground truth)
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
        if self.reinject_source == "ground_truth" and self.reinject_top_k == 0:
            raise ValueError(
                "reinject_source ground_truth with reinject_top_k 0 reinjects nothing; "
                "set reinject_top_k: 1 (GT-GRPO) or keep reinject_source: corrections (plain GRPO)"
            )
        return self

    @property
    def samples_corrections(self) -> bool:
        """The student answers q_fb prompts: ELF (k >= 1, corrections), not plain GRPO nor GT-GRPO."""
        return self.reinject_top_k > 0 and self.reinject_source == "corrections"

    @property
    def responses_per_step(self) -> int:
        """The most responses the student samples in one step (q_base and q_fb): the rollout budget."""
        feedback = self.max_feedback_per_group if self.samples_corrections else 0
        return self.groups_per_step * (self.group_size + feedback)


class EvalConfig(_Frozen):
    """Evaluation of a checkpoint (`elf-vla eval`, and every arm of `elf-vla ablate`): one greedy answer
    per scene for the scores, planning accuracy and format errors; `samples` answers sampled with
    `rollout.sampling` for the all-fail ratio (threshold `train.correct_threshold`)."""

    scenes_dir: Path | None = None  # a make-scenes or import-navsim folder; None: train.scenes_dir
    split: Literal["train", "val", "test"] = "test"
    max_scenes: int | None = Field(default=None, ge=1)  # the first M scenes of the split (None: all)
    samples: int = Field(default=8, ge=1)  # n: sampled answers per scene


# ----------------------------------------------------------------------------------- ablation ---

ArmData = Literal["full", "hard", "random"]  # every training scene / the `select` subset / a random one
AblationTable = Literal["method", "data"]  # the method ablation; the data, k and policy-shaping one


class Arm(_Frozen):
    """One arm of `elf-vla ablate`: a name and dotted overrides of the base config (`cluster.ablate`)."""

    name: str = Field(min_length=1, max_length=40)
    overrides: list[str] = Field(default_factory=list)  # KEY=VALUE, as on the command line
    train: bool = True  # False: the base checkpoint evaluated as it is (the SFT row)
    data: ArmData = "hard"
    tables: list[AblationTable] = Field(default_factory=lambda: ["method"])


def _arm(name: str, *overrides: str, data: ArmData = "hard", tables: tuple = ("method",)) -> Arm:
    return Arm(name=name, overrides=list(overrides), data=data, tables=list(tables))


DEFAULT_ARMS = (
    Arm(name="SFT", train=False),
    _arm("GRPO", "train.reinject_top_k=0"),
    _arm("GT-GRPO", "train.reinject_source=ground_truth"),
    _arm("Rule-GRPO", "teacher.backend.type=coarse"),
    _arm("ELF", tables=("method", "data")),
    _arm("ELF w/o PS", "learner.loss.policy_shaping=false", tables=("data",)),
    _arm("ELF k=2", "train.reinject_top_k=2", tables=("data",)),
    _arm("ELF k=4", "train.reinject_top_k=4", tables=("data",)),
    _arm("ELF full data", data="full", tables=("data",)),
    _arm("ELF random subset", data="random", tables=("data",)),
)


class AblateConfig(_Frozen):
    """The arms and seeds of `elf-vla ablate`; every arm trains `train.steps` steps of the base config."""

    arms: list[Arm] = Field(default_factory=lambda: list(DEFAULT_ARMS), min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> AblateConfig:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms: names must be distinct, got {names}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be distinct, got {self.seeds}")
        return self
