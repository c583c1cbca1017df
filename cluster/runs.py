"""Run folders: every job writes into its own `out_dir/<name>-<timestamp>/` with its resolved config."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from cluster.config import ConfigError, write_resolved

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"


def config_source(resume: str | None, config: str | None, default: Path) -> Path:
    """The YAML a job loads: a resumed run's own `config.yaml` (then `--config` is refused: the run's
    config is the one it ran with; overrides still apply), else `--config`, else `default`."""
    if resume and config:
        raise ConfigError(["--resume reads the run's own config.yaml; give overrides, not --config"])
    return Path(resume) / "config.yaml" if resume else Path(config or default)


def new_run_dir(out_dir: Path, name: str, config: BaseModel) -> Path:
    """Create a fresh run folder and write the resolved config into it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out_dir) / f"{name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(out_dir) / f"{name}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    write_resolved(config, run_dir)
    return run_dir
