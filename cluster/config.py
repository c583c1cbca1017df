"""Experiment configuration: one typed, validated, frozen model composed of the components' own configs.

Loaded from YAML with dotted command-line overrides (`learner.lr=1e-5`), validated before anything starts,
and written into each run folder as `config.yaml`. Errors name the dotted key and, where the key is a
choice, the allowed values.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.config import RolloutConfig
from cluster.sections import ClusterConfig, EvalConfig, SelectConfig, TrainConfig
from driving.config import ScenesConfig
from learner.config import LearnerConfig, SFTConfig
from scorer.config import ScorerConfig
from teacher_service.config import TeacherConfig


class ConfigError(ValueError):
    """A configuration that must not start: each problem names its dotted key."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        head = f"invalid configuration{f' in {source}' if source else ''}:"
        super().__init__("\n  ".join([head, *problems]))


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "run"
    out_dir: Path = Path("runs")  # each run gets out_dir/<name>-<timestamp>/
    seed: int = 0


class ExperimentConfig(BaseModel):
    """The whole experiment. Each section is owned by its component; the controller composes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: RunConfig = Field(default_factory=RunConfig)
    scenes: ScenesConfig = Field(default_factory=ScenesConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @model_validator(mode="after")
    def _learner_sees_the_sampling_distribution(self) -> ExperimentConfig:
        sampled = self.rollout.sampling.temperature or 1.0  # greedy: log-probs at T = 1
        if abs(self.learner.loss.temperature - sampled) > 1e-9:
            raise ValueError(
                f"learner.loss.temperature ({self.learner.loss.temperature}) must equal "
                f"rollout.sampling.temperature ({sampled}): the GRPO ratio compares log-probs at one temperature"
            )
        if self.train.reinject_source == "ground_truth" and not self.learner.loss.policy_shaping:
            raise ValueError(
                "train.reinject_source ground_truth needs learner.loss.policy_shaping: true: the ground "
                "truth was never sampled, so it has no behaviour log-probs for the clipped GRPO ratio"
            )
        return self


# ----------------------------------------------------------------------------------- overrides ---


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value), the value read as YAML (`1e-5`, `[1, 2]`, `true`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"{text!r}: an override is KEY=VALUE with a dotted KEY, e.g. learner.lr=1e-5"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError([f"{key}: cannot read value {raw!r}: {err}"]) from None
    return key.strip().split("."), value


def _models_at(model: type[BaseModel], path: list[str]) -> list[type[BaseModel]]:
    """The models a value at `path` inside `model` can be: one, or a union's members; [] off the models."""
    current: list[type[BaseModel]] = [model]
    for part in path:
        fields = [m.model_fields[part] for m in current if part in m.model_fields]
        current = [m for f in fields for m in _models_in(f.annotation)]
    return current


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str] | None:
    """Field names at `path` inside `model`, or None where the path leaves the typed models.
    Through a union (`type: analytic | vlm`) the keys of every member count."""
    current = _models_at(model, path)
    if not current:
        return None
    return list(dict.fromkeys(name for m in current for name in m.model_fields))


def _switch_member(node: dict, path: list[str], value: Any, model: type[BaseModel]) -> None:
    """After `...backend.type=coarse`: drop the keys the chosen union member does not have (those of
    the member it replaces, e.g. in a resolved config), so that it starts from its own defaults."""
    members = [
        m
        for m in _models_at(model, path[:-1])
        if "type" in m.model_fields and value in typing.get_args(m.model_fields["type"].annotation)
    ]
    if len(members) == 1:
        for key in [k for k in node if k not in members[0].model_fields]:
            del node[key]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModels in an annotation: `X`, `X | None`, `Annotated[A | B, discriminator]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def apply_override(data: dict, path: list[str], value: Any, model: type[BaseModel]) -> None:
    """Set `data[path] = value`, refusing keys the config does not have (with a suggestion)."""
    node = data
    for depth, part in enumerate(path):
        allowed = _known_keys(model, path[:depth])
        if allowed is not None and part not in allowed:
            where = ".".join(path[: depth + 1])
            close = difflib.get_close_matches(part, allowed, n=1)
            hint = f" (did you mean {'.'.join([*path[:depth], close[0]])}?)" if close else ""
            raise ConfigError([f"{where}: unknown key{hint}; allowed here: {', '.join(allowed)}"])
        if depth == len(path) - 1:
            node[part] = value
            if part == "type":
                _switch_member(node, path, value, model)
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child


# ------------------------------------------------------------------------------------- loading ---


def _format_validation(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        key = ".".join(str(p) for p in e["loc"]) or "(config)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif e["type"] == "literal_error":
            msg = f"{msg} (got {e['input']!r})"
        problems.append(f"{key}: {msg}")
    return problems


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    model: type[ExperimentConfig] = ExperimentConfig,
) -> ExperimentConfig:
    """Read YAML (or start from the defaults), apply dotted overrides, validate, freeze."""
    data: dict = {}
    source = str(path) if path else None
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise ConfigError([f"(file): cannot read: {err.strerror}"], source) from None
        except yaml.YAMLError as err:
            raise ConfigError([f"(file): not valid YAML: {err}"], source) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(["(file): the top level must be a mapping of sections"], source)
        data = loaded or {}
    for text in overrides or []:
        key_path, value = parse_override(text)
        apply_override(data, key_path, value, model)
    return validate(data, model, source)


def validate(data: dict, model: type[ExperimentConfig] = ExperimentConfig, source: str | None = None) -> Any:
    """The config of a plain mapping (a YAML file's, with overrides applied), or a ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation(err), source) from None


def config_to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def write_resolved(config: BaseModel, run_dir: str | Path) -> Path:
    """Write the fully resolved config (defaults included) into the run folder."""
    out = Path(run_dir) / "config.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(config_to_yaml(config))
    return out
