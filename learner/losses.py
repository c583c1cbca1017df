"""ELF-GRPO's loss terms as pure tensor functions: no config, no Ray, no model.

    token_logprobs          log π(token | prefix) of the response tokens, from logits
    group_advantages        (r - mean) / std over each group's union of original and reinjected rewards
    clipped_policy_loss     GRPO's clipped surrogate for the original samples (asymmetric clip-low / high)
    policy_shaping_loss     -A · f(π), f(π) = π / (π + γ), for the reinjected samples
    k3_kl                   the k3 estimator of KL(π_θ ‖ π_ref)
    aggregate               token-mean, or the sequence mean of token sums over a constant length

Where this departs from, or pins down, the paper:
* Advantages of a group whose rewards are all equal are exactly 0 (no NaN, no 1e-8-scaled noise), and so
  are those of a one-sample group. The std is the unbiased one (torch's default, as TRL and verl use).
  `std_normalize=False` gives Dr.GRPO's mean-only advantages.
* Policy shaping (LUFFY): the reinjected response is scored under q_base with no behaviour-policy ratio
  and no clipping; the gradient of -A·f(π) is -A·γπ/(π+γ)²·∇log π, which keeps low-probability tokens of
  the correction from being ignored (π small: weight ≈ π/γ instead of π) and damps the ones the model
  already predicts (π → 1: weight → γ/(1+γ)²).
* Per-token losses of both kinds and the KL term are summed per token and aggregated once over all the
  response tokens of the batch (as LUFFY mixes on- and off-policy tokens). `aggregate` takes an explicit
  denominator so that a batch split over micro-batches and ranks sums to the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learner.config import LossAggregation


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, R) log softmax(logits / T)[target]; logits[:, t] are the (B, R, V) scores that predict
    targets[:, t]. Computed in at least float32 (bf16 logits are upcast)."""
    scores = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    picked = scores.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, R)
    return picked - torch.logsumexp(scores, dim=-1)


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """(N,) advantages: each reward minus its group's mean, divided by the group's std (+ eps) when
    `std_normalize`. `group_ids` (N,) says which group each sample belongs to; a group holds its original
    and its reinjected samples, so the statistics are those of their union."""
    rewards = rewards.double()
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    groups = len(counts)
    sums = torch.zeros(groups, dtype=torch.float64).index_add_(0, inverse, rewards)
    mean = sums / counts
    centred = rewards - mean[inverse]
    lo = torch.full((groups,), torch.inf, dtype=torch.float64).scatter_reduce(0, inverse, rewards, "amin")
    hi = torch.full((groups,), -torch.inf, dtype=torch.float64).scatter_reduce(0, inverse, rewards, "amax")
    flat = (hi - lo)[inverse] == 0  # all-equal (or single-sample) groups: no signal, exactly 0
    if std_normalize:
        sq = torch.zeros(groups, dtype=torch.float64).index_add_(0, inverse, centred**2)
        std = (sq / (counts - 1).clamp(min=1)).sqrt()
        centred = centred / (std[inverse] + eps)
    return torch.where(flat, torch.zeros_like(centred), centred).float()


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token GRPO loss max(-A·ρ, -A·clip(ρ, 1 - clip_low, 1 + clip_high)), ρ = π_θ / π_old, and
    (B, R) bool: where the clipped term was the one taken (the clip fraction's numerator).
    logprobs, old_logprobs (B, R); advantages (B,)."""
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    return torch.maximum(unclipped, clipped), clipped > unclipped


def shaping_weight(logprobs: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, R) f(π) = π / (π + γ) with π = exp(logprobs)."""
    prob = torch.exp(logprobs)
    return prob / (prob + gamma)


def policy_shaping_loss(logprobs: torch.Tensor, advantages: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-token -A · f(π_θ) for reinjected samples, π_θ under q_base; no ratio, no clipping.
    logprobs (B, R); advantages (B,)."""
    return -advantages.unsqueeze(-1) * shaping_weight(logprobs, gamma)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref): exp(d) - d - 1 with d = log π_ref - log π_θ (>= 0)."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1.0


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: LossAggregation,
    constant_length: int,
    denominator: float | None = None,
) -> torch.Tensor:
    """Reduce (B, R) per-token values over the `mask`ed tokens to a scalar.

    token-mean:          Σ v·m / Σ m                               (every token weighs the same)
    seq-mean-token-sum:  (1/B) Σ_b (Σ_t v·m) / constant_length     (Dr.GRPO: no length bias)

    `denominator` replaces Σ m (token-mean) or B (seq-mean-token-sum) by the count over the whole batch
    when this is one micro-batch of it, so that the micro-batch losses add up to the batch loss."""
    total = (per_token * mask).sum()
    if mode == "token-mean":
        count = mask.sum() if denominator is None else denominator
        return total / max(float(count), 1.0)
    if mode == "seq-mean-token-sum":
        count = per_token.shape[0] if denominator is None else denominator
        return total / constant_length / max(float(count), 1.0)
    raise ValueError(f"unknown loss aggregation {mode!r}; allowed: token-mean, seq-mean-token-sum")


@dataclass(frozen=True)
class TokenLosses:
    """Per-token terms of the ELF-GRPO loss of a batch; every tensor is (B, R)."""

    total: torch.Tensor  # policy term (GRPO or shaping, by sample) + β·KL: what `aggregate` reduces
    policy: torch.Tensor  # clipped GRPO loss (0 on shaped samples)
    shaping: torch.Tensor  # -A·f(π) (0 on original samples)
    kl: torch.Tensor  # k3 KL to the reference (0 when there is no reference)
    clipped: torch.Tensor  # bool: GRPO's clip was active (never on shaped samples)
    shaping_weight: torch.Tensor  # f(π) on shaped samples, 0 elsewhere


def elf_grpo_token_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    shaped: torch.Tensor,
    clip_low: float,
    clip_high: float,
    gamma: float,
    beta: float,
) -> TokenLosses:
    """Clipped GRPO on original samples, policy shaping on `shaped` (B,) samples, plus β·k3 KL.
    logprobs, old_logprobs, ref_logprobs (B, R); advantages (B,)."""
    rows = shaped.bool().unsqueeze(-1)  # (B, 1)
    policy, clipped = clipped_policy_loss(logprobs, old_logprobs, advantages, clip_low, clip_high)
    weight = shaping_weight(logprobs, gamma)
    shaping = -advantages.unsqueeze(-1) * weight
    zero = torch.zeros_like(policy)
    policy, shaping = torch.where(rows, zero, policy), torch.where(rows, shaping, zero)
    kl = k3_kl(logprobs, ref_logprobs) if ref_logprobs is not None else zero
    return TokenLosses(
        total=policy + shaping + beta * kl,
        policy=policy,
        shaping=shaping,
        kl=kl,
        clipped=clipped & ~rows,
        shaping_weight=torch.where(rows, weight, zero).detach(),
    )


def sft_token_losses(logprobs: torch.Tensor) -> torch.Tensor:
    """(B, R) negative log-likelihood of the target tokens (SFT)."""
    return -logprobs
