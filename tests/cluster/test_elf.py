"""ELF's pure decisions (which responses get feedback, which corrections are reinjected), the data order
and seeds of a step, and hard-sample selection's verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.response import parse_response
from cluster.elf import (
    all_fail,
    choose_feedback,
    format_feedback,
    group_outcome,
    reinject_best_corrections,
    triggers_feedback,
    unparseable_breakdown,
)
from cluster.loop import sampling_seed, step_scene_indices
from cluster.sections import SelectConfig
from cluster.select import classify

rewards_ = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8)


@given(rewards_, st.lists(st.floats(0.0, 1.0), max_size=6), st.integers(0, 3))
def test_reinjected_exactly_the_k_best_corrections_beating_the_group_max(original, corrections, k):
    chosen = reinject_best_corrections(original, corrections, k)
    beating = [i for i, r in enumerate(corrections) if r > max(original)]
    assert set(chosen) <= set(beating) and len(chosen) == min(k, len(beating))
    assert all(corrections[i] >= corrections[j] for i in chosen for j in beating if j not in chosen)
    assert chosen == sorted(chosen, key=lambda i: (-corrections[i], i))


def test_reinjection_needs_a_strictly_better_correction():
    assert reinject_best_corrections([0.5, 0.7], [0.7, 0.69], 1) == []
    assert reinject_best_corrections([0.5, 0.7], [0.9, 0.71, 0.95], 2) == [2, 0]
    assert reinject_best_corrections([0.0, 0.0], [0.0], 1) == []  # unparseable corrections never win


def test_feedback_triggers_and_order():
    s = 0.8
    assert triggers_feedback([0.1, 0.5], s, "all_fail") and not triggers_feedback([0.1, 0.9], s, "all_fail")
    assert triggers_feedback([0.1, 0.9], s, "any_fail") and not triggers_feedback([0.8, 0.9], s, "any_fail")
    # wrong well-formed (teacher) first, then wrong malformed (format rule), then correct (positive rule)
    picks = choose_feedback([0.9, 0.0, 0.3, 0.5], [True, False, True, True], s, "any_fail", 4)
    assert [(c.index, c.kind) for c in picks] == [
        (2, "diagnosis"),
        (3, "diagnosis"),
        (1, "format"),
        (0, "positive"),
    ]
    assert len(choose_feedback([0.1, 0.2, 0.3], [True] * 3, s, "all_fail", 2)) == 2
    assert choose_feedback([0.9, 0.3], [True, True], s, "all_fail", 2) == []
    with pytest.raises(ValueError):
        choose_feedback([0.1], [True, False], s, "all_fail", 1)


@given(rewards_, st.sampled_from(["all_fail", "any_fail"]), st.integers(1, 8))
def test_feedback_never_exceeds_the_cap_and_names_distinct_responses(rewards, trigger, cap):
    picks = choose_feedback(rewards, [True] * len(rewards), 0.8, trigger, cap)
    assert len(picks) <= cap and len({c.index for c in picks}) == len(picks)
    assert all((c.kind == "positive") == (rewards[c.index] >= 0.8) for c in picks)


def test_group_outcome_counts_all_fail_before_and_after():
    out = group_outcome([0.2, 0.4], [0.3, 0.85], [1], 0.8)
    assert out.all_fail_before and not out.all_fail_after and out.reinjected == 1 and out.best_after == 0.85
    out = group_outcome([0.2, 0.4], [0.5], [0], 0.8)
    assert out.all_fail_before and out.all_fail_after
    assert not all_fail([], 0.8)


def test_unparseable_responses_score_zero_and_get_format_feedback():
    for metric in ("pdms", "epdms"):
        breakdown = unparseable_breakdown(metric)
        assert breakdown.score == 0.0 and breakdown.metric == metric
    error = parse_response("<think>x</think><action>keep_lane,stop</action><traj>(+1.00,+0.00,+0.00)</traj>")
    text = format_feedback(error)
    assert "could not be read" in text and error.kind.value in text and "<traj>" in text


def test_data_order_is_a_function_of_seed_and_step():
    count, per_step = 10, 4
    steps = [step_scene_indices(count, per_step, t, seed=7) for t in range(1, 6)]
    assert steps == [step_scene_indices(count, per_step, t, seed=7) for t in range(1, 6)]
    flat = [i for s in steps for i in s]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # epochs
    assert step_scene_indices(count, per_step, 1, seed=8) != steps[0]
    assert sampling_seed(0, 3, "base") != sampling_seed(0, 3, "fb") != sampling_seed(0, 4, "fb")
    assert sampling_seed(1, 3, "base") == sampling_seed(1, 3, "base") < 2**32


def test_selection_keeps_hard_and_ambiguous_drops_mastered():
    cfg = SelectConfig(hard_mean_max=0.6, ambiguous_var_min=0.02)
    assert classify(0.3, 0.0, cfg) == "hard"
    assert classify(0.8, 0.05, cfg) == "ambiguous"
    assert classify(0.9, 0.001, cfg) == "mastered"
    rewards = np.array([1.0, 0.0, 1.0, 1.0])
    assert classify(float(rewards.mean()), float(rewards.var()), cfg) == "ambiguous"
