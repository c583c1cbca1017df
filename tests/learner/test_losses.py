"""The loss terms against slow per-element loop references, and policy shaping against its analytic
gradient γπ/(π+γ)² ∇log π."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learner.losses import (
    aggregate,
    clipped_policy_loss,
    elf_grpo_token_losses,
    group_advantages,
    k3_kl,
    policy_shaping_loss,
    shaping_weight,
    token_logprobs,
)


def _random(b=3, r=5, v=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, r, v, generator=g, dtype=torch.float64)
    targets = torch.randint(0, v, (b, r), generator=g)
    old = (
        torch.log_softmax(torch.randn(b, r, v, generator=g, dtype=torch.float64), -1)
        .gather(-1, targets.unsqueeze(-1))
        .squeeze(-1)
    )
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = torch.rand(b, r, generator=g) > 0.3
    return logits, targets, old, adv, mask


def test_token_logprobs_match_loop():
    logits, targets, *_ = _random()
    for temperature in (1.0, 0.7):
        got = token_logprobs(logits, targets, temperature)
        for b in range(logits.shape[0]):
            for t in range(logits.shape[1]):
                row = [x / temperature for x in logits[b, t].tolist()]
                log_z = math.log(sum(math.exp(x) for x in row))
                assert got[b, t].item() == pytest.approx(row[targets[b, t]] - log_z, abs=1e-12)


def _loop_advantages(rewards, groups, std_normalize, eps=1e-6):
    out = []
    for r, g in zip(rewards, groups):
        members = [x for x, h in zip(rewards, groups) if h == g]
        if len(members) < 2 or max(members) == min(members):
            out.append(0.0)
            continue
        a = r - statistics.fmean(members)
        out.append(a / (statistics.stdev(members) + eps) if std_normalize else a)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 3)), min_size=1, max_size=20),
    st.booleans(),
)
def test_group_advantages_match_loop(samples, std_normalize):
    rewards = [r for r, _ in samples]
    groups = [g for _, g in samples]
    got = group_advantages(torch.tensor(rewards), torch.tensor(groups), std_normalize)
    assert torch.isfinite(got).all()
    want = _loop_advantages(rewards, groups, std_normalize)
    assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_all_equal_rewards_give_exactly_zero_no_nan():
    rewards = torch.tensor([0.3] * 8 + [0.0] * 8 + [1.0])
    groups = torch.tensor([0] * 8 + [1] * 8 + [2])
    for std_normalize in (True, False):
        adv = group_advantages(rewards, groups, std_normalize)
        assert torch.equal(adv, torch.zeros_like(adv))


def test_union_with_reinjected_correction():
    """An all-fail group plus one reinjected correction: the originals go negative, the correction
    positive, and the statistics are those of the union (paper step 6)."""
    rewards = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.9])  # the last one is reinjected
    adv = group_advantages(rewards, torch.zeros(5, dtype=torch.long), std_normalize=True)
    mean, std = 0.18, statistics.stdev([0.0, 0.0, 0.0, 0.0, 0.9])
    assert adv[:4].tolist() == pytest.approx([-mean / std] * 4, rel=1e-5)
    assert adv[4].item() == pytest.approx((0.9 - mean) / std, rel=1e-5)
    drgrpo = group_advantages(rewards, torch.zeros(5, dtype=torch.long), std_normalize=False)
    assert drgrpo.tolist() == pytest.approx([-mean] * 4 + [0.9 - mean], rel=1e-5)


def test_clipped_policy_loss_matches_loop():
    logits, targets, old, adv, _ = _random(seed=1)
    logp = token_logprobs(logits, targets)
    clip_low, clip_high = 0.2, 0.28
    loss, clipped = clipped_policy_loss(logp, old, adv, clip_low, clip_high)
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            ratio = math.exp(logp[b, t].item() - old[b, t].item())
            a = adv[b].item()
            unclipped = -a * ratio
            bounded = -a * min(max(ratio, 1 - clip_low), 1 + clip_high)
            assert loss[b, t].item() == pytest.approx(max(unclipped, bounded), abs=1e-12)
            assert bool(clipped[b, t]) == (bounded > unclipped)


def test_clip_is_asymmetric():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.25, 0.75]]))  # ratios 1.25 and 0.75
    pos, clip_pos = clipped_policy_loss(logp, old, torch.tensor([1.0]), 0.2, 0.28)
    assert pos[0, 0].item() == pytest.approx(-1.25) and not clip_pos[0, 0]  # inside 1 + 0.28
    neg, clip_neg = clipped_policy_loss(logp, old, torch.tensor([-1.0]), 0.2, 0.28)
    assert neg[0, 1].item() == pytest.approx(0.8) and clip_neg[0, 1]  # clipped at 1 - 0.2


def test_policy_shaping_matches_loop():
    logits, targets, _, adv, _ = _random(seed=2)
    logp = token_logprobs(logits, targets)
    gamma = 0.1
    loss = policy_shaping_loss(logp, adv, gamma)
    weight = shaping_weight(logp, gamma)
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            p = math.exp(logp[b, t].item())
            assert weight[b, t].item() == pytest.approx(p / (p + gamma), abs=1e-12)
            assert loss[b, t].item() == pytest.approx(-adv[b].item() * p / (p + gamma), abs=1e-12)


def test_policy_shaping_gradient_is_analytic():
    """∇ of -A f(π) w.r.t. the logits equals -A γπ/(π+γ)² ∇log π, with ∇log π = onehot - softmax."""
    logits, targets, _, adv, _ = _random(b=2, r=4, v=6, seed=3)
    logits.requires_grad_(True)
    gamma = 0.1
    policy_shaping_loss(token_logprobs(logits, targets), adv, gamma).sum().backward()
    with torch.no_grad():
        probs = torch.softmax(logits, -1)
        pi = probs.gather(-1, targets.unsqueeze(-1))  # (B, R, 1)
        grad_logpi = torch.nn.functional.one_hot(targets, logits.shape[-1]) - probs
        want = -adv[:, None, None] * gamma * pi / (pi + gamma) ** 2 * grad_logpi
    torch.testing.assert_close(logits.grad, want, rtol=1e-10, atol=1e-12)


def test_shaping_has_no_ratio_and_no_clip():
    """The shaping loss does not depend on the behaviour policy at all, and large π moves are not cut."""
    logp = torch.log(torch.tensor([[0.99, 0.01]]))
    terms = [
        elf_grpo_token_losses(logp, old, None, torch.tensor([2.0]), torch.tensor([True]), 0.2, 0.2, 0.1, 0.0)
        for old in (torch.zeros(1, 2), torch.full((1, 2), -9.0))
    ]
    torch.testing.assert_close(terms[0].total, terms[1].total)
    assert not terms[0].clipped.any()


def test_k3_matches_loop_and_is_nonnegative():
    logits, targets, old, *_ = _random(seed=4)
    logp = token_logprobs(logits, targets)
    kl = k3_kl(logp, old)
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            d = old[b, t].item() - logp[b, t].item()
            assert kl[b, t].item() == pytest.approx(math.exp(d) - d - 1, abs=1e-12)
    assert (kl >= 0).all()
    assert torch.equal(k3_kl(logp, logp), torch.zeros_like(logp))


def test_aggregation_modes_match_loop():
    *_, mask = _random(seed=5)
    values = torch.randn(mask.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    token_sum = sum(
        values[b, t].item() for b in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[b, t]
    )
    assert aggregate(values, mask, "token-mean", 99).item() == pytest.approx(token_sum / int(mask.sum()))
    length = 16
    per_seq = [
        sum(values[b, t].item() for t in range(mask.shape[1]) if mask[b, t]) / length
        for b in range(mask.shape[0])
    ]
    assert aggregate(values, mask, "seq-mean-token-sum", length).item() == pytest.approx(
        statistics.fmean(per_seq)
    )


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum"])
def test_micro_batch_losses_add_up_to_the_batch_loss(mode):
    *_, mask = _random(b=6, seed=7)
    values = torch.randn(mask.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    whole = aggregate(values, mask, mode, 16)
    denominator = float(mask.sum()) if mode == "token-mean" else 6.0
    parts = sum(aggregate(values[i : i + 2], mask[i : i + 2], mode, 16, denominator) for i in range(0, 6, 2))
    assert parts.item() == pytest.approx(whole.item())


def test_elf_grpo_token_losses_route_by_sample():
    logits, targets, old, adv, _ = _random(seed=9)
    logp = token_logprobs(logits, targets)
    ref = old.flip(0)
    shaped = torch.tensor([False, True, False])
    terms = elf_grpo_token_losses(logp, old, ref, adv, shaped, 0.2, 0.28, 0.1, 0.05)
    policy, _ = clipped_policy_loss(logp, old, adv, 0.2, 0.28)
    shaping = policy_shaping_loss(logp, adv, 0.1)
    want = torch.where(shaped[:, None], shaping, policy) + 0.05 * k3_kl(logp, ref)
    torch.testing.assert_close(terms.total, want)
    assert not terms.clipped[1].any() and (terms.shaping_weight[[0, 2]] == 0).all()
