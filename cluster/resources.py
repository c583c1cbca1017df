"""The resource layout: one placement group per Ray component (rollout replicas, scorer actors, learner
ranks), sized from the config, so the components scale independently and a run that does not fit the
cluster fails at start-up, naming what it asked for, instead of hanging in the first step.

Strategies: learner ranks PACK (collectives are cheapest within a node), rollout replicas and scorer
actors SPREAD (load and failures spread over nodes). The teacher's replicas are Ray Serve's business
(`teacher.serve`: fixed replicas or autoscaling): they get no group, but the same custom node resource
pins them to their nodes (`teacher_node_resources`, passed into the Serve deployment's actor options).
Components that run in-process (count 0) get no group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster.config import ExperimentConfig
    from cluster.sections import ClusterConfig
    from teacher_service.config import TeacherServeConfig

STRATEGY = {"rollout": "SPREAD", "scorer": "SPREAD", "learner": "PACK"}


class PlacementError(RuntimeError):
    """A component's placement group did not fit the cluster in time."""


@dataclass(frozen=True)
class ComponentRequest:
    """What one component asks for: `count` bundles of `cpus` CPUs and `gpus` GPUs."""

    name: str
    count: int
    cpus: float
    gpus: float
    node_resource: str | None = None  # a custom resource of the component's node type (one unit each)

    def bundles(self) -> list[dict[str, float]]:
        one = {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus > 0 else {})}
        if self.node_resource:
            one[self.node_resource] = 1.0
        return [dict(one) for _ in range(self.count)]


def requests_of(config: ExperimentConfig) -> list[ComponentRequest]:
    """The Ray components of a config and their bundles (in-process components are left out)."""
    r, s, learner = config.rollout, config.scorer, config.learner
    label = config.cluster.bundle_resources.get
    wanted = [
        ComponentRequest(
            "rollout", r.replicas, r.num_cpus_per_replica, r.num_gpus_per_replica, label("rollout")
        ),
        ComponentRequest("scorer", s.actors, s.num_cpus_per_actor, 0.0, label("scorer")),
        ComponentRequest(
            "learner", learner.ranks, learner.num_cpus_per_rank, learner.num_gpus_per_rank, label("learner")
        ),
    ]
    return [w for w in wanted if w.count > 0]


def teacher_node_resources(cluster: ClusterConfig, serve: TeacherServeConfig) -> dict[str, float]:
    """The custom resource each teacher Serve replica takes (`cluster.bundle_resources.teacher`): one unit
    per GPU, as teacher nodes advertise one per GPU (ray_cluster.yaml), or 1 on CPU; {} when unpinned."""
    name = cluster.bundle_resources.get("teacher")
    if name is None:
        return {}
    return {name: serve.num_gpus_per_replica or 1.0}


@dataclass
class ResourceLayout:
    """The reserved placement groups; `options(component, i)` are the Ray options of its i-th actor."""

    groups: dict[str, Any] = field(default_factory=dict)  # name -> PlacementGroup

    def options(self, component: str, index: int) -> dict[str, Any]:
        group = self.groups.get(component)
        if group is None:
            return {}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=index % group.bundle_count
            )
        }

    def release(self) -> None:
        from ray.util import remove_placement_group

        for group in self.groups.values():
            remove_placement_group(group)
        self.groups = {}


def reserve(config: ExperimentConfig) -> ResourceLayout:
    """Create and wait for every component's placement group; fail naming the component otherwise."""
    import ray
    from ray.util import placement_group

    layout = ResourceLayout()
    for request in requests_of(config):
        group = placement_group(
            request.bundles(), strategy=STRATEGY[request.name], name=f"elfvla-{request.name}"
        )
        ready, _ = ray.wait([group.ready()], timeout=config.cluster.placement_timeout_s)
        placed = ", ".join(layout.groups) or "nothing"
        layout.groups[request.name] = group
        if not ready:
            layout.release()
            have = ray.cluster_resources()
            raise PlacementError(
                f"{request.name}: {request.count} bundles of {request.bundles()[0]} could not be placed within "
                f"{config.cluster.placement_timeout_s:g} s (cluster: CPU {have.get('CPU', 0):g}, GPU "
                f"{have.get('GPU', 0):g}; placed before it: {placed})"
            )
    return layout
