"""`elf-vla serve-teacher`: run the teacher service (Ray Serve, HTTP + deployment handle) until Ctrl-C.

It reads the `teacher` section of an experiment config and `cluster.bundle_resources.teacher` (other
sections are ignored), so the same YAML serves a training run and a stand-alone teacher, on the same
nodes. Ray is started locally (127.0.0.1) or joined with
`--address auto` on a `ray up` cluster.
"""

from __future__ import annotations

import argparse
import sys

NAME = "serve-teacher"
HELP = "Serve the failure-diagnosis teacher (POST /diagnose, GET /healthz) on Ray Serve until Ctrl-C."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", help="YAML experiment config; its `teacher` section is used (default: defaults)"
    )
    p.add_argument("--address", help="join this Ray cluster (e.g. 'auto') instead of starting a local one")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port of a local Ray (default: none)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. teacher.serve.port=8001"
    )


def run(args: argparse.Namespace) -> int:
    import time

    from pydantic import BaseModel, ConfigDict, Field

    from cluster.config import ConfigError, load_config
    from cluster.ray_runtime import start_ray, stop_ray
    from cluster.resources import teacher_node_resources
    from cluster.sections import ClusterConfig
    from teacher_service.config import TeacherConfig

    class TeacherSection(BaseModel):
        model_config = ConfigDict(extra="ignore", frozen=True)
        teacher: TeacherConfig = Field(default_factory=TeacherConfig)
        cluster: ClusterConfig = Field(default_factory=ClusterConfig)  # bundle_resources.teacher pins it

    try:
        section = load_config(args.config, args.overrides, model=TeacherSection)  # type: ignore[arg-type]
    except ConfigError as err:
        print(f"elf-vla serve-teacher: {err}", file=sys.stderr)
        return 2
    from ray import serve

    from teacher_service.serve_app import serve_teacher

    _stop_on_signals()
    start_ray(address=args.address, metrics_port=args.metrics_port)
    config = section.teacher
    try:
        serve_teacher(config, node_resources=teacher_node_resources(section.cluster, config.serve))
        s = config.serve
        print(
            f"[serve-teacher] {config.backend.type} teacher at http://{s.host}:{s.port}/diagnose", flush=True
        )
        if args.metrics_port:
            print(
                f"[serve-teacher] Prometheus metrics at http://127.0.0.1:{args.metrics_port}/metrics",
                flush=True,
            )
        print("[serve-teacher] Ctrl-C to stop", flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("[serve-teacher] stopping", file=sys.stderr)
        return 0
    finally:
        serve.shutdown()
        stop_ray()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the service cleanly (a shell's background jobs ignore SIGINT, and
    process managers send SIGTERM)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
