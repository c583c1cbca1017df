"""`elf-vla ablate` on a micro budget (the memorised student of conftest, 1 step, 2 groups): every arm of
the default list trains from the same checkpoint with the same rollout budget and is evaluated; the
tables, curves, results page and resume work; bad arms are refused before anything starts."""

from __future__ import annotations

import json

import pytest

from cluster.ablate import SUMMARY, TABLES, Cell, load_ablation, mean_std, run_ablation, slug
from cluster.config import ConfigError
from cluster.jobs import run_eval
from cluster.sections import DEFAULT_ARMS
from tests.cluster.conftest import overrides

MICRO = {
    "train.steps": 1,
    "train.groups_per_step": 2,
    "train.group_size": 4,
    "train.max_feedback_per_group": 4,  # k = 4 fits: budget 2 × (4 + 4) = 16 responses per step
    "select.rollouts_per_scene": 2,
    "select.max_scenes": 6,
    "eval.samples": 2,
    "ablate.seeds": [0],
}


def micro_overrides(memorised) -> list[str]:
    return [o for o in overrides(memorised, **MICRO) if not o.startswith("train.subset=")]


@pytest.fixture(scope="module")
def ablation(local_ray, memorised, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ablate")
    config = load_ablation(None, micro_overrides(memorised))
    summary = run_ablation(config, run_dir, "elf-vla ablate (micro)")
    return config, run_dir, summary


def test_every_arm_trains_with_one_budget_and_is_evaluated(ablation, memorised):
    config, run_dir, summary = ablation
    cells = {c["arm"]: c for c in summary["cells"]}
    assert list(cells) == [a.name for a in DEFAULT_ARMS]  # every default arm, one seed
    assert summary["budget"]["responses_per_step"] == 16
    for arm in DEFAULT_ARMS:
        cell, settings = cells[arm.name], cells[arm.name]["settings"]
        assert cell["eval"]["scenes"] == 2 and set(cell["eval"]["pdms"]) >= {"score", "ego_progress"}
        if not arm.train:
            assert cell["train"] == {} and cell["all_fail_before"] == []
            continue
        assert settings["budget_per_step"] == 16 and len(cell["all_fail_before"]) == 1
        assert cell["train"]["responses_per_step"] <= 16
        checkpoint = run_dir / "cells" / slug(arm.name) / "seed-0" / "train" / "checkpoints"
        assert (checkpoint / "latest").is_file()
    # the arms are what their names say
    assert cells["GRPO"]["settings"]["group_size"] == 8  # 2 groups of 4 + 4: the whole budget on q_base
    assert cells["GRPO"]["train"]["responses_per_step"] == 16
    assert cells["GRPO"]["train"]["reinjections_per_step"] == 0
    assert cells["GT-GRPO"]["settings"]["source"] == "ground_truth"
    assert cells["GT-GRPO"]["train"]["reinjections_per_step"] >= 1  # the memorised student fails its groups
    assert cells["Rule-GRPO"]["settings"]["teacher"] == "coarse"
    assert cells["ELF w/o PS"]["settings"]["policy_shaping"] is False
    assert [cells[f"ELF k={k}"]["settings"]["k"] for k in (2, 4)] == [2, 4]
    hard = json.loads((run_dir / "select" / "selected.json").read_text())["scene_ids"]
    random = json.loads((run_dir / "select" / "random-seed-0.json").read_text())["scene_ids"]
    assert cells["ELF"]["settings"]["training_scenes"] == len(hard) == len(random)
    assert cells["ELF full data"]["settings"]["training_scenes"] == 8  # the whole train split


def test_the_sft_row_is_the_start_checkpoint_evaluated(ablation, memorised):
    config, _, summary = ablation
    [sft] = [c for c in summary["cells"] if c["arm"] == "SFT"]
    again = run_eval(config.base())  # the checkpoint every arm starts from, seed 0
    assert sft["eval"] == json.loads(json.dumps(again.overall))


def test_tables_plots_results_page_and_resume(ablation, tmp_path):
    from cluster.results import write_results_page

    config, run_dir, summary = ablation
    tables = (run_dir / TABLES).read_text()
    method_rows = [a.name for a in DEFAULT_ARMS if "method" in a.tables]
    data_rows = [a.name for a in DEFAULT_ARMS if "data" in a.tables]
    assert [
        line.split(" | ")[0][2:]
        for line in tables.splitlines()
        if line.startswith("| ") and "arm" not in line
    ] == (method_rows + data_rows)
    for png in ("all_fail_curves.png", "family_pdms.png"):
        assert (run_dir / png).stat().st_size > 5000
    page = write_results_page(run_dir, tmp_path / "docs" / "results.md")
    text = page.read_text()
    assert "elf-vla ablate (micro)" in text and "16 student responses per step" in text
    assert table_first_cells(text) == ["expert", "constant velocity"] + method_rows + data_rows
    reference = {
        line.split(" | ")[0][2:]: [float(c) for c in line.strip(" |").split(" | ")[1:]]
        for line in text.splitlines()
        if line.startswith(("| expert", "| constant velocity"))
    }
    assert all(0.0 <= v <= 1.0 for row in reference.values() for v in row)
    assert reference["expert"][-2] >= 0.8  # PDMS over all evaluated scenes: the privileged expert drives well
    assert (tmp_path / "docs" / "results" / "all_fail_curves.png").is_file()
    stamp = (run_dir / "cells" / "elf" / "seed-0" / "cell.json").stat().st_mtime
    again = run_ablation(config, run_dir, "resumed")  # every cell is done: nothing runs again
    assert (run_dir / "cells" / "elf" / "seed-0" / "cell.json").stat().st_mtime == stamp
    assert again["cells"] == summary["cells"] and again["commands"] == ["elf-vla ablate (micro)", "resumed"]
    assert json.loads((run_dir / SUMMARY).read_text())["commands"][-1] == "resumed"
    assert Cell(**again["cells"][0]).arm == "SFT"


def table_first_cells(markdown: str) -> list[str]:
    """First cell of every body row of every table on the page, in page order."""
    return [
        line.split(" | ")[0][2:]
        for line in markdown.splitlines()
        if line.startswith("| ") and not line.startswith(("| arm", "| plan"))
    ]


def test_mean_std_over_seeds():
    assert mean_std([]) == "–"
    assert mean_std([0.5]) == "0.500"
    assert mean_std([0.5, 0.7]) == "0.600 ± 0.141"  # sample std


def test_arms_with_another_budget_or_runner_keys_are_refused(memorised):
    arms = "[{name: a, overrides: [train.groups_per_step=1]}, {name: b, overrides: [train.subset=x.json]}]"
    with pytest.raises(ConfigError) as info:
        load_ablation(None, [*micro_overrides(memorised), f"ablate.arms={arms}"])
    problems = info.value.problems
    assert problems[0] == (
        "ablate.arms[a]: samples up to 8 responses per step, the base 16; every arm gets the same rollout "
        "budget (see `elf-vla ablate --help`)"
    )
    assert problems[1].startswith("ablate.arms[b]: train.subset=x.json: the runner sets")


def test_the_command_refuses_a_bad_config_before_ray_starts(monkeypatch, capsys, memorised):
    import argparse

    from cluster.commands import ablate as command

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for a config that cannot run")

    monkeypatch.setattr("cluster.ray_runtime.start_ray", no_ray)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([*micro_overrides(memorised), "ablate.arms=[{name: a, overrides: [train.k=1]}]"])
    assert command.run(args) == 2
    assert "ablate.arms[a]: train.k: unknown key" in capsys.readouterr().err
