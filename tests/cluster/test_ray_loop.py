"""The loop on a real local Ray: placement groups, weight versions on the rollout replicas, Prometheus
/metrics over HTTP, a rollout replica and a scorer actor killed mid-step, the teacher down."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import pytest

from cluster.config import load_config
from cluster.jobs import start_services
from cluster.loop import ElfGrpoTrainer, training_entries
from cluster.resources import reserve
from driving.dataset import SceneDataset
from tests.cluster.conftest import overrides

RAY_PARTS = {
    "rollout.replicas": 2,
    "rollout.num_cpus_per_replica": 0.5,
    "scorer.actors": 1,
    "scorer.num_cpus_per_actor": 0.5,
    "learner.ranks": 1,
    "learner.num_cpus_per_rank": 0.5,
}


def ray_trainer(memorised, run_dir, **extra) -> ElfGrpoTrainer:
    config = load_config(None, overrides(memorised, **{**RAY_PARTS, **extra}))
    dataset = SceneDataset(config.train.scenes_dir)
    entries = training_entries(dataset, config.train.split, config.train.subset)
    run_dir.mkdir(parents=True, exist_ok=True)
    return ElfGrpoTrainer(config, start_services(config, reserve(config)), dataset, entries, run_dir)


@pytest.fixture(scope="module")
def trained(local_ray, memorised, tmp_path_factory):
    """Two synchronous steps with 2 rollout replicas, 1 scorer actor and 1 learner rank (DeepSpeed in a
    Ray actor), each in its placement group."""
    trainer = ray_trainer(memorised, tmp_path_factory.mktemp("ray-run"))
    records = trainer.run()
    yield trainer, records
    trainer.s.shutdown()


def test_components_sit_in_their_placement_groups(trained):
    import ray
    from ray.util import placement_group_table

    trainer, _ = trained
    groups = trainer.s.layout.groups
    assert set(groups) == {"rollout", "scorer", "learner"}
    assert [b for b in placement_group_table(groups["rollout"])["bundles"].values()] == [{"CPU": 0.5}] * 2
    assert placement_group_table(groups["learner"])["state"] == "CREATED"
    assert ray.get([h.ping.remote() for h in trainer.s.scorer.actor_handles()]) == [True]


def test_weights_version_increments_each_step_on_the_replicas(trained):
    trainer, records = trained
    assert [r.version for r in records] == [1, 2]
    assert [r.sample_versions for r in records] == [[0], [1]]  # step t sampled by the weights of step t-1
    assert all(r.staleness == 0 for r in records)
    assert trainer.s.rollouts.replica_versions() == [2, 2]


def test_metrics_are_scraped_over_http(trained, local_ray):
    names = [
        "ray_elfvla_steps_total",
        "ray_elfvla_rollouts_total",
        "ray_elfvla_reinjections_total",
        "ray_elfvla_groups_all_fail_before_total",
        "ray_elfvla_all_fail_ratio",
        "ray_elfvla_reward_mean",
        "ray_elfvla_tokens_per_second",
        "ray_elfvla_weights_version",
        "ray_elfvla_learner_step_seconds_bucket",
        "ray_elfvla_weight_sync_seconds_count",
        "ray_elfvla_kl",
        "ray_elfvla_shaping_weight_mean",
        "ray_elfvla_queue_depth",
    ]
    # the tokens and tokens/s of every replica that generated (2 prompts a call fill one engine batch:
    # one shard, on replica 0), under its replica label
    trainer, _ = trained
    generated = sorted(trainer.s.rollouts.stats.per_replica)
    assert generated == [0]
    names += [
        f'ray_elfvla_replica_{m}{{replica="{i}"'
        for m in ("tokens_total", "tokens_per_second")
        for i in generated
    ]
    deadline, text = time.monotonic() + 40, ""
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{local_ray}/metrics", timeout=5).read().decode()
        if all(_exported(n, text) for n in names):
            break
        time.sleep(2)
    missing = [n for n in names if not _exported(n, text)]
    assert not missing, missing
    rates = [float(v) for v in re.findall(r"ray_elfvla_replica_tokens_per_second\{[^}]*\} (\S+)", text)]
    assert rates and all(rate > 0 for rate in rates)

    # what `elf-vla top --metrics-url` shows: the elfvla_ samples without histogram buckets, capped
    from cluster.top import prometheus_block, scrape

    url = f"http://127.0.0.1:{local_ray}/metrics"
    lines = scrape(url)
    assert len(lines) > 3 and all("elfvla_" in line and "_bucket{" not in line for line in lines)
    block = prometheus_block(lines, url, limit=3)
    assert block.splitlines()[:3] == ["  " + line for line in lines[:3]]
    assert block.splitlines()[3] == f"  ... {len(lines) - 3} more elfvla_ series at {url}"


def test_gauges_stay_on_metrics_through_a_long_step(local_ray):
    """Ray drops a gauge series ~20-30 s after it was last set; a run keeps its gauges (`Metrics`) set."""
    from cluster.metrics import Metrics

    running, other = Metrics(), Metrics()
    alive = running.keep_gauges_alive(period_s=1.0)
    try:
        running.queue("kept", 3)
        other.queue("dropped", 3)  # the same gauge, set once, not kept alive
        time.sleep(40.0)  # [s] one step of a paper-scale run, without a new value
        text = urllib.request.urlopen(f"http://127.0.0.1:{local_ray}/metrics", timeout=5).read().decode()
    finally:
        alive.set()
    assert _exported('ray_elfvla_queue_depth{queue="kept"', text)
    assert not _exported('ray_elfvla_queue_depth{queue="dropped"', text)  # what it guards against


def _exported(name: str, text: str) -> bool:
    """`name` (optionally with the start of its label set, `metric{label="v"`) is among the samples,
    whatever labels Ray puts before it."""
    metric, _, label = name.partition("{")
    if not label:
        return metric in text
    return re.search(re.escape(metric) + r"\{[^}]*" + re.escape(label), text) is not None


def test_a_rollout_replica_and_a_scorer_actor_killed_mid_step_lose_nothing(trained):
    import ray

    trainer, _ = trained
    pools = trainer.s.rollouts, trainer.s.scorer
    before = pools[0].stats.restarts, pools[1].stats.restarts
    ray.kill(pools[1].actor_handles()[0], no_restart=True)  # dead before the step's scoring
    victim = pools[0].replica_handles()[0]  # holds the step's first shard
    killer = threading.Timer(0.3, lambda: ray.kill(victim, no_restart=True))
    killer.start()
    experience = trainer.collect(3)
    killer.join()
    record = experience.record
    assert len(record.scene_ids) == record.groups == trainer.config.train.groups_per_step
    assert [len(g.rollouts) for g in experience.groups] == [trainer.config.train.group_size] * record.groups
    assert all(r.score is not None for g in experience.groups for r in g.rollouts)
    assert pools[0].stats.restarts > before[0] and pools[1].stats.restarts > before[1]
    assert pools[0].stats.retries > 0
    trainer.learn(experience)
    assert trainer.sync() == 3 and trainer.s.rollouts.replica_versions() == [3, 3]  # the new replica too


def test_teacher_down_falls_back_and_training_continues(local_ray, memorised, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on: the teacher service is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = {
        "teacher.client.transport": "http",
        "teacher.serve.port": port,
        "teacher.client.timeout_s": 1.0,
        "train.steps": 1,
    }
    config = load_config(None, overrides(memorised, **extra))
    dataset = SceneDataset(config.train.scenes_dir)
    entries = training_entries(dataset, config.train.split, config.train.subset)
    trainer = ElfGrpoTrainer(config, start_services(config, reserve(config)), dataset, entries, tmp_path)
    try:
        [record] = trainer.run()
    finally:
        trainer.s.shutdown()
    assert record.diagnoses >= 1
    assert record.teacher_fallbacks_total == record.diagnoses  # every diagnosis came from the fallback
    assert record.version == 1 and record.groups == 2
