"""ELF's decisions as pure functions: which responses get feedback, what feedback text they get, which
corrections are reinjected, and what a group's outcome was. No Ray, no model, no config objects.

Where this pins down what the paper leaves open:
* Feedback is asked for a whole group when it triggers (`all_fail`: every response is wrong, the paper's
  long-tail case; `any_fail`: at least one is). Within a triggered group at most `max_requests` responses
  get a feedback prompt, in this order: wrong well-formed responses (teacher diagnosis), wrong malformed
  ones (rule feedback on the format: there is no plan to diagnose), then correct ones (rule-based positive
  feedback); sample order within each kind (the samples are exchangeable, so this is a random choice).
* An unparseable response gets reward 0 (`unparseable_breakdown`): it is in the group, counted, and
  learned from like any other wrong response.
* A correction is reinjected only if its reward is strictly greater than the group's original maximum;
  the k best such (ties by sample order).
* GT-GRPO (`train.reinject_source: ground_truth`, an ablation): the scene's ground-truth answer takes the
  corrections' place, in exactly the groups that would get feedback (`trigger`), under the same rule
  (reinjected only if it beats the group's maximum) and learned the same way (under q_base, policy
  shaping). Only in failing groups: reinjecting it everywhere would mix SFT into every group, a different
  method; the ablation asks what the *source* of the reinjected answer is worth, all else equal. It
  needs no teacher and no q_fb sampling (the loop asks for neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from actors.prompts import ANSWER_FORMAT
from actors.response import ParseError
from cluster.sections import FeedbackTrigger
from teacher_service.schema import ScoreBreakdown

FeedbackKind = Literal["diagnosis", "format", "positive"]


def is_correct(reward: float, threshold: float) -> bool:
    """A response is correct when its score reaches the threshold s (paper: 0.8)."""
    return reward >= threshold


def all_fail(rewards: Sequence[float], threshold: float) -> bool:
    """No response of the group is correct (an empty group is not counted as failing)."""
    return len(rewards) > 0 and not any(is_correct(r, threshold) for r in rewards)


def triggers_feedback(rewards: Sequence[float], threshold: float, trigger: FeedbackTrigger) -> bool:
    if trigger == "all_fail":
        return all_fail(rewards, threshold)
    if trigger == "any_fail":
        return any(not is_correct(r, threshold) for r in rewards)
    raise ValueError(f"unknown feedback trigger {trigger!r}; allowed: all_fail, any_fail")


@dataclass(frozen=True)
class FeedbackChoice:
    """Response `index` of a group gets a q_fb with feedback of `kind`."""

    index: int
    kind: FeedbackKind


def choose_feedback(
    rewards: Sequence[float],
    well_formed: Sequence[bool],
    threshold: float,
    trigger: FeedbackTrigger,
    max_requests: int,
) -> list[FeedbackChoice]:
    """Which responses of one group get feedback, and of which kind (module docstring for the order)."""
    if len(rewards) != len(well_formed):
        raise ValueError(f"{len(rewards)} rewards but {len(well_formed)} well-formed flags")
    if not triggers_feedback(rewards, threshold, trigger):
        return []
    wrong = [i for i, r in enumerate(rewards) if not is_correct(r, threshold)]
    ranked = (
        [FeedbackChoice(i, "diagnosis") for i in wrong if well_formed[i]]
        + [FeedbackChoice(i, "format") for i in wrong if not well_formed[i]]
        + [FeedbackChoice(i, "positive") for i, r in enumerate(rewards) if is_correct(r, threshold)]
    )
    return ranked[:max_requests]


def reinject_best_corrections(
    original_rewards: Sequence[float], correction_rewards: Sequence[float], k: int
) -> list[int]:
    """Indices of the (at most) k best corrections whose reward beats the group's original maximum,
    best first (ties by index)."""
    if not original_rewards:
        return []
    best = max(original_rewards)
    beating = [i for i, r in enumerate(correction_rewards) if r > best]
    return sorted(beating, key=lambda i: (-correction_rewards[i], i))[:k]


@dataclass(frozen=True)
class GroupOutcome:
    """What ELF did to one group (the per-step counts are sums of these)."""

    all_fail_before: bool  # every original response wrong
    all_fail_after: bool  # still no correct response among the originals and the reinjected ones
    feedback: int  # q_fb prompts sampled
    reinjected: int
    best_before: float  # max original reward
    best_after: float  # max over the union


def group_outcome(
    original_rewards: Sequence[float],
    correction_rewards: Sequence[float],
    reinjected: Sequence[int],
    threshold: float,
) -> GroupOutcome:
    union = [*original_rewards, *(correction_rewards[i] for i in reinjected)]
    return GroupOutcome(
        all_fail_before=all_fail(original_rewards, threshold),
        all_fail_after=all_fail(union, threshold),
        feedback=len(correction_rewards),
        reinjected=len(reinjected),
        best_before=max(original_rewards, default=0.0),
        best_after=max(union, default=0.0),
    )


# ----------------------------------------------------------------------------------- feedback ---


def format_feedback(error: ParseError) -> str:
    """Rule feedback for an answer that could not be read: what is wrong and the format to follow."""
    return (
        f"Your previous answer could not be read ({error.kind.value}: {error.message}). "
        f"{ANSWER_FORMAT} Write exactly 8 poses."
    )


def unparseable_breakdown(metric: Literal["pdms", "epdms"]) -> ScoreBreakdown:
    """The score of a response without a plan: 0 on every counted sub-metric."""
    extra = (
        {"lane_keeping": 0.0, "history_comfort": 0.0, "extended_comfort": 0.0} if metric == "epdms" else {}
    )
    return ScoreBreakdown(
        metric=metric,
        score=0.0,
        no_at_fault_collisions=0.0,
        drivable_area_compliance=0.0,
        ego_progress=0.0,
        time_to_collision_within_bound=0.0,
        comfort=0.0,
        **extra,
    )
