"""`elf-vla top`'s view: a run's live numbers in a terminal, from its `log.jsonl` and optionally the
Prometheus `/metrics` endpoint (the `elfvla_` series as Ray exports them)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cluster.metrics import PHASES, StepRecord

SPARKS = "▁▂▃▄▅▆▇█"
WINDOW = 5  # steps averaged for the rates


def sparkline(values: Sequence[float], width: int = 40, low: float = 0.0, high: float = 1.0) -> str:
    values = list(values)[-width:]
    span = max(high - low, 1e-9)
    return "".join(SPARKS[min(len(SPARKS) - 1, max(0, int((v - low) / span * len(SPARKS))))] for v in values)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def render(
    records: Sequence[StepRecord], total_steps: int | None, title: str, now: float | None = None
) -> str:
    """The terminal view of a run's records (no ANSI codes; the caller clears the screen)."""
    if not records:
        return f"{title}\n  waiting for the first step (log.jsonl is empty)"
    now = time.time() if now is None else now
    last, recent = records[-1], list(records[-WINDOW:])
    step_s = _mean([r.seconds.get("step", 0.0) for r in recent])
    gen_s = sum(r.seconds.get("rollout", 0.0) + r.seconds.get("correction", 0.0) for r in recent)
    score_s = sum(r.seconds.get("scoring", 0.0) for r in recent)
    groups = sum(r.groups for r in records)
    lines = [
        f"{title}   step {last.step}/{total_steps or '?'}   weights v{last.version}   "
        f"last step {now - last.time:.0f} s ago",
        "",
        f"throughput (last {len(recent)} steps)",
        f"  steps/hour {3600 / max(step_s, 1e-9):8.1f}    step {step_s:6.1f} s    learner idle "
        f"{_mean([r.learner_idle_seconds / max(r.seconds.get('step', 0.0), 1e-9) for r in recent]):5.0%}",
        f"  rollouts/s {sum(r.rollouts + r.corrections for r in recent) / max(gen_s, 1e-9):8.1f}    "
        f"tokens/s {sum(r.tokens for r in recent) / max(gen_s, 1e-9):8.0f}    "
        f"scorer groups/s {sum(r.groups for r in recent) / max(score_s, 1e-9):6.1f}",
        "",
        "reward",
        f"  q_base mean {last.reward_mean:6.3f} (±{last.reward_std:.3f})   correct {last.correct_fraction:5.0%}   "
        f"corrections {last.correction_reward_mean:6.3f}",
        f"  {sparkline([r.reward_mean for r in records])}",
        "",
        "feedback",
        f"  all-fail groups  this step {last.all_fail_before} -> {last.all_fail_after} of {last.groups}   "
        f"run {sum(r.all_fail_before for r in records) / max(1, groups):5.1%} -> "
        f"{sum(r.all_fail_after for r in records) / max(1, groups):5.1%}",
        f"  reinjections {last.reinjections} (run {sum(r.reinjections for r in records)})   diagnoses "
        f"{last.diagnoses}   positive {last.positive_feedback}   format {last.format_feedback}   "
        f"teacher fallbacks {last.teacher_fallbacks_total}",
        f"  format errors {last.format_errors}/{last.rollouts} q_base, "
        f"{last.correction_format_errors}/{last.corrections} q_fb",
        "",
        "learner",
        f"  loss {last.loss:+.4f}   KL {last.kl:.5f}   shaping f(pi) {last.shaping_weight_mean:.3f}   "
        f"clip {last.clip_fraction:.3f}   grad {last.grad_norm:.3f}   staleness {last.staleness}",
        "",
        "last step [s]  " + "  ".join(f"{p} {last.seconds.get(p, 0.0):.1f}" for p in PHASES),
        f"faults  rollout restarts {last.rollout_restarts_total} (retried {last.rollout_retries_total})   "
        f"scorer restarts {last.scorer_restarts_total} (retried {last.scorer_retries_total})",
    ]
    return "\n".join(lines)


def scrape(url: str, timeout_s: float = 2.0) -> list[str]:
    """The `elfvla_` sample lines of a Prometheus endpoint (histogram buckets left out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError as err:
        return [f"(cannot read {url}: {err})"]
    return [
        line
        for line in text.splitlines()
        if "elfvla_" in line and not line.startswith("#") and "_bucket{" not in line
    ]


def prometheus_block(lines: Sequence[str], url: str, limit: int = 40) -> str:
    """The first `limit` scraped series, indented, and how many more there are (one per replica adds up)."""
    shown = "\n".join("  " + line for line in lines[:limit])
    if len(lines) > limit:
        shown += f"\n  ... {len(lines) - limit} more elfvla_ series at {url}"
    return shown


def read_total_steps(run_dir: Path) -> int | None:
    import yaml

    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    return (yaml.safe_load(config.read_text()) or {}).get("train", {}).get("steps")
