"""`cluster.node_role`: the node -> role mapping of ray_cluster.yaml, checked, and the `--resources` a
worker's start command gets from it (in-process: the CLI's `main`, on this machine's real CPU count)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from cluster.node_role import NodeRoleError, main, node_resources, node_roles
from cluster.runs import REPO_ROOT

CLUSTER = REPO_ROOT / "ray_cluster.yaml"


def _cluster(workers: list[str], **roles: list[str]) -> dict:
    return {
        "provider": {
            "type": "local",
            "head_ip": "10.0.0.10",
            "worker_ips": workers,
            "elfvla_node_roles": roles,
        }
    }


def test_roles_and_resources():
    roles = node_roles(_cluster(["10.0.0.11", "10.0.0.41"], rollout=["10.0.0.11"], scorer=["10.0.0.41"]))
    assert roles == {"10.0.0.11": "rollout", "10.0.0.41": "scorer"}
    assert node_resources("rollout", gpus=8, cpus=192) == {"elfvla_rollout": 8}  # one unit per GPU
    assert node_resources("scorer", gpus=0, cpus=64) == {"elfvla_scorer": 64}  # one unit per CPU


@pytest.mark.parametrize(
    "cluster, message",
    [
        (
            _cluster(["10.0.0.11"], rollout=["10.0.0.11"], learner=["10.0.0.11"]),
            "provider.elfvla_node_roles.learner: 10.0.0.11 has two roles, rollout and learner",
        ),
        (
            _cluster(["10.0.0.11"], rollout=["10.0.0.11", "10.0.0.99"]),
            "provider.elfvla_node_roles.rollout: 10.0.0.99 is not in provider.worker_ips",
        ),
        (
            _cluster(["10.0.0.11", "10.0.0.12"], rollout=["10.0.0.11"]),
            "provider.worker_ips: 10.0.0.12 has no role in provider.elfvla_node_roles",
        ),
        (_cluster(["10.0.0.11"], driver=["10.0.0.11"]), "elfvla_node_roles.driver: unknown role; allowed:"),
        ({"provider": {"type": "local", "worker_ips": []}}, "provider.elfvla_node_roles: missing"),
    ],
)
def test_inconsistent_roles_are_refused_naming_the_address(cluster, message):
    with pytest.raises(NodeRoleError, match=message):
        node_roles(cluster)


def test_a_gpu_role_on_a_node_without_gpus_is_refused():
    with pytest.raises(NodeRoleError, match="a teacher node needs GPUs; none are visible"):
        node_resources("teacher", gpus=0, cpus=64)


def test_the_worker_start_command_gets_its_resources_json(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU node, whatever this machine has
    assert main([str(CLUSTER), "--ip", "10.0.0.41"]) == 0  # a scorer node of ray_cluster.yaml
    [(name, units)] = json.loads(capsys.readouterr().out).items()
    assert name == "elfvla_scorer" and isinstance(units, int) and 1 <= units <= os.cpu_count()
    assert main([str(CLUSTER), "--ip", "10.0.0.11"]) == 2  # a rollout node, but no GPU here
    assert "a rollout node needs GPUs" in capsys.readouterr().err
    assert main([str(CLUSTER), "--ip", "10.0.0.99"]) == 2
    err = capsys.readouterr().err
    assert "this node (10.0.0.99) has no role: it is not in provider.worker_ips" in err


def test_a_broken_file_stops_every_worker(tmp_path, capsys):
    cluster = yaml.safe_load(CLUSTER.read_text())
    cluster["provider"]["elfvla_node_roles"]["learner"].append("10.0.0.11")  # also a rollout node
    bad = tmp_path / "ray_cluster.yaml"
    bad.write_text(yaml.safe_dump(cluster))
    assert main([str(bad), "--ip", "10.0.0.41"]) == 2  # even a node whose own role is fine
    assert "10.0.0.11 has two roles" in capsys.readouterr().err
