"""Run folders: every job writes into its own `out_dir/<name>-<timestamp>/` with its resolved config."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from cluster.config import write_resolved

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"


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
