"""The rollout section of the experiment config: which student, which engine, how many replicas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from actors.engines import SamplingParams

EngineKind = Literal["hf", "vllm"]


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=1.0, ge=0.0)  # 0 = greedy
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=128, ge=1)  # a ground-truth answer is ~75 tiny-tokenizer tokens

    def params(self, seed: int | None = None) -> SamplingParams:
        from actors.engines import SamplingParams  # torch: not at config-loading time

        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=seed
        )


class RolloutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    student_dir: Path = Path("runs/student")  # a folder made by `elf-vla init-model` (or a checkpoint)
    engine: EngineKind = "hf"  # hf: transformers generate (CPU default); vllm: vLLM offline LLM
    replicas: int = Field(default=1, ge=0)  # Ray rollout replicas; 0 = generate in-process
    num_cpus_per_replica: float = Field(default=1.0, gt=0.0)
    num_gpus_per_replica: float = Field(default=0.0, ge=0.0)
    max_batch: int = Field(default=64, ge=1)  # rows (prompts × n) per engine forward; vLLM: max_num_seqs
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)

    @model_validator(mode="after")
    def _vllm_untruncated(self) -> RolloutConfig:
        if self.engine == "vllm" and self.sampling.top_p < 1.0:
            raise ValueError(
                "sampling.top_p: the vllm engine samples with top_p = 1 (with truncation vLLM's log-probs "
                "are those of the truncated distribution, not the learner's log_softmax(logits / T))"
            )
        return self
