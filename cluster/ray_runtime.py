"""The one way to start Ray: a local instance on this machine, or joining a cluster started by `ray up`."""

from __future__ import annotations

import os


def start_ray(
    address: str | None = None, num_cpus: int | None = None, metrics_port: int | None = None
) -> None:
    """Connect to `address` (e.g. "auto" on a `ray up` cluster) or start a local Ray bound to 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    kwargs: dict = {}
    if metrics_port is not None:
        kwargs["_metrics_export_port"] = metrics_port
    ray.init(
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        **kwargs,
    )


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
