"""The scene dataset's section of the experiment config: how many scenes, which families, images."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driving.camera import CameraConfig

SPLITS = ("train", "val", "test")


class ScenesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=1000, ge=1)
    seed: int = 0
    families: list[str] | None = None  # subset of driving.generator.FAMILIES; None = all
    mix: dict[str, float] | None = None  # family -> weight; None = the default long-tail mix
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    camera: CameraConfig = Field(default_factory=CameraConfig)
    views: list[str] = Field(default_factory=lambda: ["front"])  # images stored per scene: front, bev
    workers: int = Field(default=2, ge=1)  # processes generating and rendering in parallel

    @field_validator("families")
    @classmethod
    def _known_families(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            _check_family_names(v)
            if not v:
                raise ValueError("need >= 1 family (or leave it out for all)")
        return v

    @field_validator("mix")
    @classmethod
    def _known_mix(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            _check_family_names(list(v))
            if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
                raise ValueError("weights must be >= 0 with a positive sum")
        return v

    @field_validator("views")
    @classmethod
    def _known_views(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if name not in ("front", "bev")]
        if bad:
            raise ValueError(f"unknown view(s) {bad}; allowed: front, bev")
        return v

    @model_validator(mode="after")
    def _splits(self) -> ScenesConfig:
        bad = [k for k in self.splits if k not in SPLITS]
        if bad:
            raise ValueError(f"splits: unknown split(s) {bad}; allowed: {', '.join(SPLITS)}")
        if any(f < 0 for f in self.splits.values()) or abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ValueError("splits: fractions must be >= 0 and sum to 1")
        return self


def _check_family_names(names: list[str]) -> None:
    from driving.generator import FAMILIES

    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {unknown}; allowed: {', '.join(FAMILIES)}")
