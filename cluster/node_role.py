"""The role of a worker node of the on-premise `ray up` cluster, and the custom resource it advertises.

ray_cluster.yaml uses Ray's local provider, which starts every worker with the same command and knows one
node type only; the resources of a node are what its `ray start` advertises. The node -> role mapping is
written once, in the provider section (`provider.elfvla_node_roles: {rollout: [ip, ...], learner: [...],
teacher: [...], scorer: [...]}`), and each worker's start command asks this module for its resources:

    ray start --address=$RAY_HEAD_IP:6379 --resources="$(python -m cluster.node_role ray_cluster.yaml)"

prints e.g. `{"elfvla_rollout": 8}`: the custom resource `elfvla_<role>` (what `cluster.bundle_resources`
of the experiment config pins each component to) with one unit per GPU of the node, or per CPU on a
scorer node, counted as `ray start` counts them. The node is found by the address it reaches the head
from (the address Ray registers it under); a node without a role, an address with two roles, or a role
address that is not a worker stops the start with a message naming it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROLES = ("rollout", "learner", "teacher", "scorer")
CPU_ROLES = frozenset({"scorer"})  # units per CPU; the other roles: per GPU
ROLES_KEY = "elfvla_node_roles"
GCS_PORT = 6379  # the head's port in the start commands of ray_cluster.yaml


class NodeRoleError(ValueError):
    """ray_cluster.yaml's node roles are inconsistent, or this node has none."""


def role_resource(role: str) -> str:
    """The custom resource of a role (`cluster.bundle_resources` values name these)."""
    return f"elfvla_{role}"


def node_roles(cluster: Mapping[str, Any]) -> dict[str, str]:
    """ip -> role of every worker of a parsed ray_cluster.yaml, checked: roles are known, every role
    address is a worker, no address has two roles, every worker has one."""
    provider = cluster.get("provider") or {}
    roles = provider.get(ROLES_KEY)
    if not isinstance(roles, Mapping):
        raise NodeRoleError(f"provider.{ROLES_KEY}: missing; map each role ({', '.join(ROLES)}) to its IPs")
    workers = list(provider.get("worker_ips") or [])
    found: dict[str, str] = {}
    for role, ips in roles.items():
        where = f"provider.{ROLES_KEY}.{role}"
        if role not in ROLES:
            raise NodeRoleError(f"{where}: unknown role; allowed: {', '.join(ROLES)}")
        for ip in ips or []:
            if ip not in workers:
                raise NodeRoleError(f"{where}: {ip} is not in provider.worker_ips")
            if ip in found:
                raise NodeRoleError(f"{where}: {ip} has two roles, {found[ip]} and {role}")
            found[ip] = role
    missing = [ip for ip in workers if ip not in found]
    if missing:
        raise NodeRoleError(f"provider.worker_ips: {', '.join(missing)} has no role in provider.{ROLES_KEY}")
    return found


def node_resources(role: str, gpus: int, cpus: int) -> dict[str, int]:
    """The `--resources` of a node of `role` with `gpus` GPUs and `cpus` CPUs."""
    if role in CPU_ROLES:
        return {role_resource(role): cpus}
    if gpus < 1:
        raise NodeRoleError(
            f"a {role} node needs GPUs; none are visible here (nvidia driver, CUDA_VISIBLE_DEVICES?)"
        )
    return {role_resource(role): gpus}


def address_towards(host: str, port: int = GCS_PORT) -> str:
    """This machine's address on the route to `host` (a UDP connect sends nothing), as `ray start
    --address` picks the node's address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return s.getsockname()[0]


def detected_gpus_and_cpus(ip: str) -> tuple[int, int]:
    """The GPUs and CPUs `ray start` will advertise on this node (Ray's own detection)."""
    from ray._private.resource_and_label_spec import ResourceAndLabelSpec

    spec = ResourceAndLabelSpec().resolve(is_head=False, node_ip_address=ip)
    return int(spec.num_gpus or 0), int(spec.num_cpus or 0)


def _head_ip(cluster: Mapping[str, Any]) -> str:
    head = (cluster.get("provider") or {}).get("head_ip")
    if not head:
        raise NodeRoleError("provider.head_ip: missing")
    return head


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cluster.node_role", description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="the ray_cluster.yaml the cluster was started with")
    p.add_argument("--ip", help="this node's address (default: the one it reaches the head from)")
    args = p.parse_args(argv)
    import yaml

    try:
        cluster = yaml.safe_load(args.config.read_text())
        roles = node_roles(cluster)
        ip = args.ip or address_towards(_head_ip(cluster))
        if ip not in roles:
            raise NodeRoleError(
                f"this node ({ip}) has no role: it is not in provider.worker_ips of {args.config} "
                "(give its address with --ip if it reaches the head from another one)"
            )
        print(json.dumps(node_resources(roles[ip], *detected_gpus_and_cpus(ip))))
    except (OSError, yaml.YAMLError, NodeRoleError) as err:
        print(f"cluster.node_role: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
