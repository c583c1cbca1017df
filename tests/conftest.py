"""Shared test fixtures: the known-answer scenes shipped with the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

DATA = Path(__file__).parent / "data"
SHARED_SCENES = sorted((DATA / "scenes").glob("*.json"))


@pytest.fixture(params=SHARED_SCENES, ids=lambda p: p.stem)
def shared_scene_path(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture(scope="session")
def local_ray():
    """A real local Ray (2 CPUs, 127.0.0.1) shared by the integration tests, shut down at the end. It
    serves Prometheus /metrics on the port it yields."""
    import socket

    from cluster.ray_runtime import start_ray, stop_ray

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_ray(num_cpus=2, metrics_port=port)
    yield port
    stop_ray()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests are skipped where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
