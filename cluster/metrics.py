"""The controller's one metrics registry: `StepRecord` (every number of one ELF-GRPO step: the JSON-lines
log line, the plots' input, what `elf-vla top` shows) and `Metrics`, which exports a record to
Prometheus through Ray's metrics port.

Prometheus names: Ray adds the `ray_` prefix and, to counters, the `_total` suffix, so
`elfvla_reinjections` is scraped as `ray_elfvla_reinjections_total`. Other processes export their own
`elfvla_` metrics the same way (the teacher replicas: `elfvla_teacher_latency_seconds`, ...; the teacher
client's fallbacks: `elfvla_teacher_client_fallbacks`). Without a running Ray, `Metrics` records nothing.

Gauges are kept alive: Ray 2.60 drops a gauge series from /metrics when it is not set again within about
two export intervals (~20 s), far less than a paper-scale step, so while a run goes on
(`keep_gauges_alive`) every series is set again to its last value every GAUGE_REFRESH_S. After the run
its gauges age out; counters and histograms stay.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from actors.rollout import ReplicaStats

PHASES = ("rollout", "scoring", "teacher", "correction", "update", "sync")
SECONDS_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
GAUGE_REFRESH_S = 5.0  # [s] < Ray's gauge TTL (2 export intervals of 10 s), see the module docstring


@dataclass
class StepRecord:
    """One step. Counts are of this step; `*_total` fields are cumulative over the run."""

    step: int  # 1-based: the step that produced weights `version`
    version: int  # weights version after this step's update
    time: float  # [s] Unix time at the end of the step
    scene_ids: list[str]  # the step's groups, in order (every one is accounted for)
    # rollouts from q_base
    groups: int = 0
    rollouts: int = 0
    tokens: int = 0  # response tokens sampled (q_base and q_fb)
    format_errors: int = 0  # unparseable q_base responses (reward 0)
    reward_mean: float = 0.0  # over the q_base responses
    reward_std: float = 0.0
    correct_fraction: float = 0.0  # of q_base responses with reward >= s
    # feedback and reinjection
    all_fail_before: int = 0  # groups with no correct response before feedback
    all_fail_after: int = 0  # ... after reinjection
    feedback_groups: int = 0  # groups that triggered feedback
    diagnoses: int = 0  # teacher diagnoses asked for
    positive_feedback: int = 0
    format_feedback: int = 0
    corrections: int = 0  # q_fb responses sampled
    correction_format_errors: int = 0
    correction_reward_mean: float = 0.0
    reinjections: int = 0
    teacher_fallbacks_total: int = 0  # teacher requests answered by the analytic fallback
    # learner
    loss: float = 0.0
    kl: float = 0.0
    shaping_weight_mean: float = 0.0
    clip_fraction: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    samples: int = 0  # rows trained on (originals + reinjected)
    # versions: what sampled this step's responses
    sample_versions: list[int] = field(default_factory=list)  # distinct, sorted
    staleness: int = 0  # learner version before the update - oldest sampling version (<= 1)
    # time [s]
    seconds: dict[str, float] = field(default_factory=dict)  # per phase (PHASES) and "step"
    learner_idle_seconds: float = 0.0  # [s] of the step the learner was not updating
    # fault tolerance (cumulative)
    rollout_restarts_total: int = 0
    rollout_retries_total: int = 0
    scorer_restarts_total: int = 0
    scorer_retries_total: int = 0

    @property
    def all_fail_ratio_before(self) -> float:
        return self.all_fail_before / max(1, self.groups)

    @property
    def all_fail_ratio_after(self) -> float:
        return self.all_fail_after / max(1, self.groups)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_log(path: str | Path) -> list[StepRecord]:
    """Every complete line of a run's `log.jsonl` (a half-written last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(StepRecord.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return out


class _KeptGauge:
    """A Ray gauge that remembers the last value of each of its series, to set them again (`refresh`)."""

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self.last: dict[tuple[tuple[str, str], ...], float] = {}  # sorted tags -> value

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.gauge.set(value, tags=tags)
        self.last[tuple(sorted((tags or {}).items()))] = value

    def refresh(self) -> None:
        for key, value in list(self.last.items()):
            self.gauge.set(value, tags=dict(key) or None)


class Metrics:
    """Prometheus metrics of the controller (ray.util.metrics), created on first use in this process."""

    def __init__(self) -> None:
        self._m: dict[str, Any] | None = None

    def keep_gauges_alive(self, period_s: float = GAUGE_REFRESH_S) -> threading.Event:
        """Set every gauge series again to its last value every `period_s`, from a thread, until the
        returned event is set."""
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(period_s):
                for metric in list((self._m or {}).values()):
                    if isinstance(metric, _KeptGauge):
                        metric.refresh()

        threading.Thread(target=refresh, name="metrics-refresh", daemon=True).start()
        return stop

    def _registry(self) -> dict[str, Any] | None:
        import ray

        if self._m is None and ray.is_initialized():
            from ray.util.metrics import Counter, Gauge, Histogram

            def counter(name: str, doc: str, *tags: str) -> Any:
                return Counter(f"elfvla_{name}", doc, tag_keys=tags)

            def gauge(name: str, doc: str, *tags: str) -> Any:
                return _KeptGauge(Gauge(f"elfvla_{name}", doc, tag_keys=tags))

            def histogram(name: str, doc: str, bounds: list, *tags: str) -> Any:
                return Histogram(f"elfvla_{name}", doc, boundaries=bounds, tag_keys=tags)

            self._m = {
                "steps": counter("steps", "ELF-GRPO steps completed"),
                "rollouts": counter("rollouts", "Responses sampled, by prompt kind", "kind"),
                "replica_rollouts": counter("replica_rollouts", "Responses sampled per replica", "replica"),
                "replica_tokens": counter("replica_tokens", "Response tokens sampled per replica", "replica"),
                "replica_tokens_per_s": gauge(
                    "replica_tokens_per_second",
                    "Response tokens per second of the replica's generation time in the last step",
                    "replica",
                ),
                "tokens": counter("rollout_tokens", "Response tokens sampled"),
                "scored": counter("scored_groups", "Groups scored (q_base and q_fb)"),
                "format_errors": counter("format_errors", "Unparseable responses, by prompt kind", "kind"),
                "groups": counter("groups", "Groups trained on"),
                "all_fail_before": counter("groups_all_fail_before", "Groups with no correct response"),
                "all_fail_after": counter("groups_all_fail_after", "All-fail groups after reinjection"),
                "feedback": counter("feedback_requests", "q_fb prompts, by feedback kind", "kind"),
                "reinjections": counter("reinjections", "Corrections reinjected into their group"),
                "restarts": counter("actor_restarts", "Actors replaced after dying", "component"),
                "retries": counter("work_retries", "Work items resubmitted after an actor died", "component"),
                "step": gauge("step", "Last completed step"),
                "version": gauge("weights_version", "Weights version served by the rollout replicas"),
                "reward": gauge(
                    "reward_mean", "Mean reward (PDMS/EPDMS) of the step, by prompt kind", "kind"
                ),
                "all_fail_ratio": gauge(
                    "all_fail_ratio", "All-fail group ratio, before/after feedback", "stage"
                ),
                "rollouts_per_s": gauge("rollouts_per_second", "Responses per second of rollout time"),
                "tokens_per_s": gauge("tokens_per_second", "Response tokens per second of rollout time"),
                "scorer_per_s": gauge("scorer_scenes_per_second", "Groups scored per second of scoring"),
                "kl": gauge("kl", "Mean k3 KL to the reference per response token"),
                "loss": gauge("loss", "ELF-GRPO loss of the step"),
                "shaping": gauge("shaping_weight_mean", "Mean policy-shaping weight f(pi) on shaped tokens"),
                "clip": gauge("clip_fraction", "Share of original tokens with the GRPO clip active"),
                "staleness": gauge("staleness", "Learner version minus the oldest sampling version"),
                "idle": gauge("learner_idle_fraction", "Share of the step the learner did not update"),
                "queue": gauge("queue_depth", "Work waiting in a queue of the controller", "queue"),
                "phase": gauge("phase_seconds", "Seconds of the last step per phase", "phase"),
                "step_s": histogram("step_seconds", "Wall time of a step", SECONDS_BOUNDARIES),
                "update_s": histogram("learner_step_seconds", "Learner update time", SECONDS_BOUNDARIES),
                "sync_s": histogram("weight_sync_seconds", "Weight sync time", SECONDS_BOUNDARIES),
                "teacher_s": histogram(
                    "teacher_call_seconds", "Teacher call time per step", SECONDS_BOUNDARIES
                ),
                "teacher_batch": histogram(
                    "teacher_call_batch", "Diagnoses per teacher call", BATCH_BOUNDARIES
                ),
            }
        return self._m

    def queue(self, name: str, depth: int) -> None:
        m = self._registry()
        if m is not None:
            m["queue"].set(depth, tags={"queue": name})

    def record(
        self,
        r: StepRecord,
        replicas: Mapping[int, ReplicaStats],
        restarts: dict[str, int],
        retries: dict[str, int],
    ) -> None:
        """Export one step. The mapping arguments are this step's numbers (what each rollout replica
        generated, actors replaced and work items retried per component)."""
        m = self._registry()
        if m is None:
            return
        s = r.seconds
        m["steps"].inc(1)
        m["rollouts"].inc(r.rollouts, tags={"kind": "base"})
        if r.corrections:
            m["rollouts"].inc(r.corrections, tags={"kind": "fb"})
        for index, replica in replicas.items():
            tags = {"replica": str(index)}
            _inc(m["replica_rollouts"], replica.rollouts, tags)
            _inc(m["replica_tokens"], replica.tokens, tags)
            if replica.seconds > 0:  # it generated in this step
                m["replica_tokens_per_s"].set(replica.tokens_per_second, tags=tags)
        _inc(m["tokens"], r.tokens)
        _inc(m["scored"], r.groups + r.feedback_groups)
        _inc(m["format_errors"], r.format_errors, {"kind": "base"})
        _inc(m["format_errors"], r.correction_format_errors, {"kind": "fb"})
        _inc(m["groups"], r.groups)
        _inc(m["all_fail_before"], r.all_fail_before)
        _inc(m["all_fail_after"], r.all_fail_after)
        for kind, count in (
            ("diagnosis", r.diagnoses),
            ("positive", r.positive_feedback),
            ("format", r.format_feedback),
        ):
            _inc(m["feedback"], count, {"kind": kind})
        _inc(m["reinjections"], r.reinjections)
        for component, count in restarts.items():
            _inc(m["restarts"], count, {"component": component})
        for component, count in retries.items():
            _inc(m["retries"], count, {"component": component})
        m["step"].set(r.step)
        m["version"].set(r.version)
        m["reward"].set(r.reward_mean, tags={"kind": "base"})
        m["reward"].set(r.correction_reward_mean, tags={"kind": "fb"})
        m["all_fail_ratio"].set(r.all_fail_ratio_before, tags={"stage": "before"})
        m["all_fail_ratio"].set(r.all_fail_ratio_after, tags={"stage": "after"})
        generating = s.get("rollout", 0.0) + s.get("correction", 0.0)  # [s] correction includes its scoring
        if generating > 0:
            m["rollouts_per_s"].set((r.rollouts + r.corrections) / generating)
            m["tokens_per_s"].set(r.tokens / generating)
        if s.get("scoring", 0.0) > 0:
            m["scorer_per_s"].set(r.groups / s["scoring"])
        m["kl"].set(r.kl)
        m["loss"].set(r.loss)
        m["shaping"].set(r.shaping_weight_mean)
        m["clip"].set(r.clip_fraction)
        m["staleness"].set(r.staleness)
        m["idle"].set(r.learner_idle_seconds / max(s.get("step", 0.0), 1e-9))
        for phase in PHASES:
            m["phase"].set(s.get(phase, 0.0), tags={"phase": phase})
        m["step_s"].observe(s.get("step", 0.0))
        m["update_s"].observe(s.get("update", 0.0))
        m["sync_s"].observe(s.get("sync", 0.0))
        if r.diagnoses:
            m["teacher_s"].observe(s.get("teacher", 0.0))
            m["teacher_batch"].observe(r.diagnoses)


def _inc(counter: Any, value: float, tags: dict[str, str] | None = None) -> None:
    if value > 0:  # Ray's counters refuse 0 increments on some versions; nothing to add anyway
        counter.inc(value, tags=tags)
