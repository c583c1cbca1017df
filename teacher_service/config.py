"""The teacher's section of the experiment config: which teacher (a discriminated union on `type`), how it
is served (Ray Serve replicas, autoscaling, batching, timeouts, the HTTP bind and its token) and how the
client calls it.

Binding the HTTP proxy to anything but loopback is refused unless a bearer token is set: the diagnosis
endpoint has no other access control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalyticTeacherConfig(_Frozen):
    """The default: every field derived from geometry, the ground truth and the score breakdown."""

    type: Literal["analytic"] = "analytic"
    safety_margin_m: float = Field(default=1.0, ge=0.0)  # [m] longitudinal margin kept around conflicts
    lateral_margin_m: float = Field(default=0.4, ge=0.0)  # [m] lateral margin around the ego box


class CoarseTeacherConfig(_Frozen):
    """The "rule feedback" baseline: one generic sentence (and one generic correction) per failed metric."""

    type: Literal["coarse"] = "coarse"


class VLMTeacherConfig(_Frozen):
    """A VLM writes the diagnosis as JSON; invalid output is retried, then replaced by the analytic one."""

    type: Literal["vlm"] = "vlm"
    engine: Literal["transformers", "vllm"] = "vllm"
    model_path: Path  # a local folder (no hub downloads)
    max_new_tokens: int = Field(default=1024, ge=16)
    temperature: float = Field(default=0.0, ge=0.0)
    retries: int = Field(default=1, ge=0)  # extra attempts after invalid output, then the analytic fallback
    max_prompt_tokens: int = Field(default=3072, ge=64)  # prompts are cut from the left beyond this
    # vLLM only
    gpu_memory_utilization: float = Field(default=0.85, gt=0.0, le=1.0)
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_model_len: int = Field(default=8192, ge=256)
    enforce_eager: bool = False


TeacherBackend = Annotated[
    AnalyticTeacherConfig | CoarseTeacherConfig | VLMTeacherConfig, Field(discriminator="type")
]


class AutoscalingConfig(_Frozen):
    """Ray Serve autoscaling; when set it replaces the fixed `replicas` count."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=4, ge=1)
    target_ongoing_requests: float = Field(default=8.0, gt=0.0)  # per replica

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self


class TeacherServeConfig(_Frozen):
    app_name: str = "teacher"
    replicas: int = Field(default=1, ge=1)
    autoscaling: AutoscalingConfig | None = None
    num_cpus_per_replica: float = Field(default=1.0, gt=0.0)
    num_gpus_per_replica: float = Field(default=0.0, ge=0.0)
    max_batch_size: int = Field(default=16, ge=1)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0.0)  # [s] wait to fill a batch
    request_timeout_s: float = Field(default=30.0, gt=0.0)  # [s] per request, inside the replica
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # body size limit (413 beyond)
    max_image_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)  # per decoded image (413 beyond)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    token: str | None = None  # bearer token; required when `host` is not loopback

    @model_validator(mode="after")
    def _token_off_loopback(self) -> TeacherServeConfig:
        if self.host not in LOOPBACK_HOSTS and not self.token:
            raise ValueError(
                f"host {self.host!r} is not loopback: set serve.token (clients then send "
                "'Authorization: Bearer <token>') or bind 127.0.0.1"
            )
        return self

    @property
    def max_ongoing_requests(self) -> int:
        """@serve.batch only fills batches of B when the replica admits >= B requests at once."""
        return max(2 * self.max_batch_size, 8)


class TeacherClientConfig(_Frozen):
    transport: Literal["local", "handle", "http"] = "local"  # local: the teacher runs in-process
    timeout_s: float = Field(default=60.0, gt=0.0)  # [s] per request; beyond it, the analytic teacher answers
    concurrency: int = Field(default=16, ge=1)  # HTTP requests in flight at once


class TeacherConfig(_Frozen):
    backend: TeacherBackend = Field(default_factory=AnalyticTeacherConfig)
    serve: TeacherServeConfig = Field(default_factory=TeacherServeConfig)
    client: TeacherClientConfig = Field(default_factory=TeacherClientConfig)
