"""What ships next to the code: the paper-scale config, `ray_cluster.yaml` loaded as `ray up` loads it and
checked against the paper-scale layout, the Grafana dashboard against the metric names, and the resource
layout of configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cluster.config import ConfigError, load_config
from cluster.node_role import CPU_ROLES, ROLES, node_resources, node_roles
from cluster.resources import requests_of, teacher_node_resources
from cluster.runs import DEMO_CONFIG, REPO_ROOT

H20 = REPO_ROOT / "configs" / "h20_8b.yaml"


def test_paper_scale_config_loads_without_its_model_folders():
    cfg = load_config(H20)
    assert not Path(cfg.rollout.student_dir).exists()  # existence is checked at start-up, not here
    assert cfg.teacher.backend.type == "vlm" and "Qwen3-VL-32B" in str(cfg.teacher.backend.model_path)
    assert cfg.rollout.engine == "vllm" and cfg.learner.zero_stage == 3
    gpus = (
        cfg.rollout.replicas * cfg.rollout.num_gpus_per_replica
        + cfg.learner.ranks * cfg.learner.num_gpus_per_rank
        + cfg.teacher.serve.replicas * cfg.teacher.serve.num_gpus_per_replica
    )
    assert gpus == 64
    assert (cfg.train.group_size, cfg.train.correct_threshold, cfg.train.reinject_top_k) == (8, 0.8, 1)
    assert cfg.learner.loss.gamma == 0.1


def test_demo_config_is_the_embedded_default():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.cluster.address is None and cfg.teacher.backend.type == "analytic"
    assert cfg.learner.ranks == 0 and cfg.rollout.engine == "hf"


def test_components_scale_independently_in_their_placement_groups():
    cfg = load_config(H20)
    layout = {r.name: (r.count, r.bundles()[0]) for r in requests_of(cfg)}
    assert layout["rollout"] == (16, {"CPU": 8.0, "GPU": 1.0, "elfvla_rollout": 1.0})
    assert layout["learner"] == (32, {"CPU": 8.0, "GPU": 1.0, "elfvla_learner": 1.0})
    assert layout["scorer"] == (64, {"CPU": 1.0, "elfvla_scorer": 1.0})
    more = load_config(H20, ["rollout.replicas=24", "scorer.actors=8"])
    counts = {r.name: r.count for r in requests_of(more)}
    assert counts == {"rollout": 24, "scorer": 8, "learner": 32}
    local = load_config(None, ["rollout.replicas=0", "scorer.actors=0"])
    assert requests_of(local) == []


def test_teacher_replicas_are_pinned_to_teacher_nodes():
    from teacher_service.serve_app import deployment_options

    cfg = load_config(H20)
    pin = teacher_node_resources(cfg.cluster, cfg.teacher.serve)
    assert pin == {"elfvla_teacher": 2.0}  # one unit per GPU of a TP-2 replica
    actor = deployment_options(cfg.teacher.serve, pin)["ray_actor_options"]
    assert actor == {"num_cpus": 8.0, "num_gpus": 2.0, "resources": {"elfvla_teacher": 2.0}}
    cpu = load_config(None, ["cluster.bundle_resources={teacher: elfvla_teacher}"])
    assert teacher_node_resources(cpu.cluster, cpu.teacher.serve) == {"elfvla_teacher": 1.0}
    assert teacher_node_resources(load_config(None).cluster, cfg.teacher.serve) == {}


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.max_feedback_per_group=9", "train: Value error, max_feedback_per_group (9) > group_size (8)"),
        ("train.reinject_top_k=3", "reinject_top_k (3) > max_feedback_per_group (2)"),
        ("train.trigger=some_fail", "train.trigger: Input should be 'all_fail' or 'any_fail'"),
        ("train.mode=fast", "train.mode: Input should be 'sync' or 'async'"),
        ("rollout.sampling.temperature=0.7", "learner.loss.temperature (1.0) must equal rollout.sampling"),
        ("cluster.bundle_resources={driver: x}", "cluster.bundle_resources.driver"),
    ],
)
def test_bad_controller_settings_name_their_keys(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert key.replace("Value error, ", "") in str(info.value)


H20_NODE = {"CPU": 192.0, "GPU": 8.0}  # an 8 x H20 machine, as `ray start` counts it
SCORER_NODE = {"CPU": 64.0}


def test_ray_cluster_yaml_loads_the_way_ray_up_loads_it():
    from ray.autoscaler._private.commands import _bootstrap_config

    cluster = yaml.safe_load((REPO_ROOT / "ray_cluster.yaml").read_text())
    # `ray up`'s own path: defaults of the local provider (prepare_local), Ray's JSON schema, bootstrap
    loaded = _bootstrap_config(cluster, no_config_cache=True)
    [node_type] = loaded["available_node_types"].values()  # the local provider's single node type
    workers = cluster["provider"]["worker_ips"]
    assert node_type["min_workers"] == node_type["max_workers"] == len(workers)
    assert any("pip install" in c and "-e" in c for c in loaded["worker_setup_commands"])
    assert any("torch==" in c for c in loaded["setup_commands"])
    start = " ".join(loaded["worker_start_ray_commands"])
    assert "python -m cluster.node_role ray_cluster.yaml" in start and '--resources="$RESOURCES"' in start
    head = " ".join(loaded["head_start_ray_commands"])
    assert all("HF_HUB_OFFLINE=1" in c and "--metrics-export-port=8080" in c for c in (head, start))


def test_ray_cluster_yaml_has_the_paper_scale_layout_of_h20_8b():
    cfg = load_config(H20)
    cluster = yaml.safe_load((REPO_ROOT / "ray_cluster.yaml").read_text())
    roles = node_roles(cluster)  # every worker has exactly one role (or it raises)
    assert sorted(roles) == sorted(cluster["provider"]["worker_ips"])
    nodes = {ip: {**(SCORER_NODE if role in CPU_ROLES else H20_NODE)} for ip, role in roles.items()}
    for ip, role in roles.items():  # what each node advertises: the resource the config pins `role` to
        advertised = node_resources(role, int(nodes[ip].get("GPU", 0)), int(nodes[ip]["CPU"]))
        assert set(advertised) == {cfg.cluster.bundle_resources[role]}, ip
        nodes[ip].update(advertised)
    gpus = {role: sum(nodes[ip].get("GPU", 0) for ip in roles if roles[ip] == role) for role in ROLES}
    assert gpus["rollout"] + gpus["learner"] + gpus["teacher"] == 64 and gpus["scorer"] == 0
    serve = cfg.teacher.serve
    teachers = serve.autoscaling.max_replicas if serve.autoscaling else serve.replicas
    assert cfg.rollout.replicas * cfg.rollout.num_gpus_per_replica <= gpus["rollout"]
    assert cfg.learner.ranks * cfg.learner.num_gpus_per_rank <= gpus["learner"]
    assert teachers * serve.num_gpus_per_replica <= gpus["teacher"]
    # every bundle of every component (and every teacher replica) fits on the nodes of its role
    teacher = {"CPU": serve.num_cpus_per_replica, "GPU": serve.num_gpus_per_replica}
    teacher |= teacher_node_resources(cfg.cluster, serve)
    bundles = [b for r in requests_of(cfg) for b in r.bundles()] + [teacher] * teachers
    free = list(nodes.values())
    for bundle in bundles:
        node = next((n for n in free if all(n.get(k, 0) >= v for k, v in bundle.items())), None)
        assert node is not None, f"{bundle} does not fit"
        for k, v in bundle.items():
            node[k] -= v


def test_grafana_dashboard_queries_only_metrics_that_exist():
    from cluster import metrics

    dashboard = json.loads((REPO_ROOT / "cluster" / "grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", m)
        for e in exprs
        for m in re.findall(r"ray_(elfvla_\w+)", e)
    }
    source = Path(metrics.__file__).read_text()
    teacher = (REPO_ROOT / "teacher_service" / "serve_app.py").read_text()
    teacher += (REPO_ROOT / "teacher_service" / "client.py").read_text()
    defined = {f"elfvla_{n}" for n in re.findall(r'(?:counter|gauge|histogram)\(\s*"(\w+)"', source)}
    defined |= set(re.findall(r'"(elfvla_\w+)"', teacher))
    assert used and used <= defined, sorted(used - defined)
    for name in (
        "all_fail_ratio",
        "reinjections",
        "rollouts",
        "tokens_per_second",
        "replica_tokens_per_second",
        "kl",
        "weight_sync_seconds",
    ):
        assert f"elfvla_{name}" in used
