"""PNG plots of a run: the selection's mean/variance plane, the training curves (reward, all-fail
groups before/after feedback, reinjections, learner diagnostics, step-time breakdown), and an
evaluation's per-family bars and score histograms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.metrics import PHASES, StepRecord

if TYPE_CHECKING:
    from cluster.evaluate import EvalReport
    from cluster.sections import SelectConfig
    from cluster.select import SceneVerdict

COLOURS = {"hard": "tab:red", "ambiguous": "tab:orange", "mastered": "tab:gray"}


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot, headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return Path(path)


def plot_selection(verdicts: Sequence[SceneVerdict], config: SelectConfig, path: str | Path) -> Path:
    """Scenes in the (mean, variance) plane, coloured by verdict, with the kept region shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    top = max([v.variance for v in verdicts] + [config.ambiguous_var_min * 2, 0.05]) * 1.1
    ax.axvspan(0.0, config.hard_mean_max, color="tab:red", alpha=0.08, label="kept: hard (low mean)")
    ax.fill_between(
        [config.hard_mean_max, 1.0], config.ambiguous_var_min, top, color="tab:orange", alpha=0.1,
        label="kept: ambiguous (high variance)",
    )  # fmt: skip
    for verdict, colour in COLOURS.items():
        chosen = [v for v in verdicts if v.verdict == verdict]
        ax.scatter(
            [v.mean for v in chosen],
            [v.variance for v in chosen],
            s=14,
            c=colour,
            label=f"{verdict} ({len(chosen)})",
        )
    ax.axvline(config.hard_mean_max, color="k", lw=0.8, ls="--")
    ax.hlines(config.ambiguous_var_min, config.hard_mean_max, 1.0, color="k", lw=0.8, ls="--")
    kept = sum(v.kept for v in verdicts)
    ax.set(
        xlim=(0.0, 1.0), ylim=(0.0, top), xlabel="mean reward of N rollouts", ylabel="reward variance",
        title=f"hard-sample selection: {kept} of {len(verdicts)} scenes kept",
    )  # fmt: skip
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def plot_training(records: Sequence[StepRecord], out_dir: str | Path) -> list[Path]:
    """training_curves.png (reward, all-fail ratios, reinjections, KL/shaping) and step_time.png (the
    phases of each step, stacked)."""
    if not records:
        return []
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = [r.step for r in records]

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=100)
    ax = axes[0, 0]
    ax.plot(steps, [r.reward_mean for r in records], marker="o", label="q_base responses")
    ax.plot(steps, [r.correction_reward_mean for r in records], marker="x", label="corrections (q_fb)")
    ax.set(title="mean reward", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(steps, [r.all_fail_ratio_before for r in records], marker="o", label="before feedback")
    ax.plot(steps, [r.all_fail_ratio_after for r in records], marker="x", label="after reinjection")
    ax.set(title="all-fail group ratio", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.bar(steps, [r.reinjections for r in records], color="tab:green", label="reinjections")
    ax.plot(steps, [r.format_errors for r in records], color="tab:red", marker=".", label="format errors")
    ax.set(title="reinjections and format errors per step", xlabel="step")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    ax.plot(steps, [r.kl for r in records], marker="o", label="KL to reference")
    ax.plot(steps, [r.shaping_weight_mean for r in records], marker="x", label="shaping weight f(π)")
    ax.plot(steps, [r.clip_fraction for r in records], marker=".", label="clip fraction")
    ax.set(title="learner", xlabel="step")
    ax.legend(fontsize=8)
    curves = _save(fig, out / "training_curves.png")

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    bottom = [0.0] * len(records)
    for phase in PHASES:
        values = [r.seconds.get(phase, 0.0) for r in records]
        ax.bar(steps, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.plot(
        steps, [r.seconds.get("step", 0.0) for r in records], color="k", marker="o", label="step wall time"
    )
    ax.set(title="step time by phase [s]", xlabel="step", ylabel="seconds")
    ax.legend(fontsize=8, ncol=4)
    timing = _save(fig, out / "step_time.png")
    return [curves, timing]


def plot_eval(report: EvalReport, out_dir: str | Path) -> list[Path]:
    """eval_families.png (PDMS, EPDMS and all-fail ratio per family) and eval_scores.png (histograms of
    the greedy PDMS and EPDMS and of the sampled rewards)."""
    import numpy as np

    plt = _pyplot()
    out = Path(out_dir)
    families = list(report.by_family)
    x = np.arange(len(families))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.7 * len(families) + 2), 4.8), dpi=100)
    for offset, (label, values) in zip(
        (-0.27, 0.0, 0.27),
        [
            ("PDMS", [report.by_family[f]["pdms"]["score"] for f in families]),
            ("EPDMS", [report.by_family[f]["epdms"]["score"] for f in families]),
            (
                f"all-fail ratio (n = {report.samples})",
                [report.by_family[f]["all_fail_ratio"] for f in families],
            ),
        ],
    ):
        ax.bar(x + offset, values, width=0.27, label=label)
    ax.set_xticks(
        x, [f"{f}\n({report.by_family[f]['scenes']})" for f in families], rotation=45, ha="right", fontsize=7
    )
    ax.set(ylim=(0, 1), title=f"per family: {report.split} split, {report.overall['scenes']} scenes")
    ax.legend(fontsize=8)
    bars = _save(fig, out / "eval_families.png")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=100)
    bins = np.linspace(0.0, 1.0, 21)
    columns = [
        ("greedy PDMS", [s.pdms["score"] for s in report.scenes]),
        ("greedy EPDMS", [s.epdms["score"] for s in report.scenes]),
        (
            f"sampled {report.reward_metric.upper()} (n = {report.samples})",
            [r for s in report.scenes for r in s.sampled],
        ),
    ]
    for ax, (title, values) in zip(axes, columns):
        ax.hist(values, bins=bins, color="tab:blue")
        ax.axvline(report.threshold, color="k", lw=0.8, ls="--", label=f"s = {report.threshold}")
        ax.set(title=title, xlabel="score", ylabel="answers")
        ax.legend(fontsize=8)
    hist = _save(fig, out / "eval_scores.png")
    return [bars, hist]


def plot_ablation(summary: dict, out_dir: str | Path) -> list[Path]:
    """all_fail_curves.png: the all-fail group ratio per training step, before feedback and after
    reinjection, mean over seeds, one line per trained arm; family_pdms.png: test PDMS per family of the
    method-table arms (mean over seeds)."""
    import numpy as np

    plt = _pyplot()
    out = Path(out_dir)
    cells = summary["cells"]
    arms = [a["name"] for a in summary["arms"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100, sharey=True)
    for ax, key, title in zip(
        axes, ("all_fail_before", "all_fail_after"), ("before feedback", "after reinjection")
    ):
        for name in arms:
            curves = [c[key] for c in cells if c["arm"] == name and c[key]]
            if not curves:
                continue
            steps = min(len(c) for c in curves)
            mean = np.mean([c[:steps] for c in curves], axis=0)
            ax.plot(range(1, steps + 1), mean, marker="o", ms=3, label=f"{name} ({len(curves)} seeds)")
        ax.set(title=f"all-fail group ratio, {title}", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].set_ylabel("share of groups with no correct answer")
    if axes[1].get_lines():
        axes[1].legend(fontsize=7, loc="upper right")
    curves_png = _save(fig, out / "all_fail_curves.png")

    method = [a["name"] for a in summary["arms"] if "method" in a["tables"]]
    families = sorted({f for c in cells for f in c["by_family"]})
    fig, ax = plt.subplots(figsize=(max(6.4, 0.8 * len(families) + 2), 4.8), dpi=100)
    width = 0.8 / max(1, len(method))
    x = np.arange(len(families))
    for i, name in enumerate(method):
        mine = [c for c in cells if c["arm"] == name]
        if not mine:
            continue
        values = [
            np.mean([c["by_family"][f]["pdms"]["score"] for c in mine if f in c["by_family"]] or [0.0])
            for f in families
        ]
        ax.bar(x - 0.4 + (i + 0.5) * width, values, width=width, label=name)
    ax.set_xticks(x, families, rotation=45, ha="right", fontsize=7)
    ax.set(ylim=(0, 1), title="test PDMS per family (mean over seeds)")
    ax.legend(fontsize=7)
    family_png = _save(fig, out / "family_pdms.png")
    return [curves_png, family_png]
