"""The scorer's section of the experiment config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Metric = Literal["pdms", "epdms"]


class ScorerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric = "pdms"  # the reward: NAVSIM v1 PDMS or v2 EPDMS
    actors: int = Field(default=1, ge=0)  # Ray scorer actors; 0 = score in-process
    num_cpus_per_actor: float = Field(default=1.0, gt=0.0)
    cache_size: int = Field(default=512, ge=1)  # scene caches kept per actor (LRU)
