"""`TrainBatch`: what the learner trains on, built from groups of scored rollouts.

Every row is laid out as the engines saw it, [left padding][prompt][response][right padding]
(`actors.encoding`). The prompt is always q_base: original samples were sampled from it, and reinjected
corrections, although sampled from q_fb, are learned under q_base (the paper's step 6), so the student
learns to produce the corrected answer without the feedback. Their sampling log-probs (under q_fb) are
not used: policy shaping has no behaviour ratio, so their `old_logprobs` row is 0.

`policy_shaping=False` (the "ELF without policy shaping" ablation) trains reinjected corrections like
original samples: clipped GRPO with the ratio π_θ(a | q_base) / π_old(a | q_fb), the log-probs they were
sampled with (the ordinary objective applied to them as they are; the ratio is far from 1 where the
feedback changed the answer, which is what policy shaping is there to avoid). A reinjected ground truth
(GT-GRPO) was never sampled and has no such log-probs; the config refuses that combination.

Advantages are computed here, once per batch, over each group's union of original and reinjected
rewards (`losses.group_advantages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from actors.encoding import (
    TOKEN_ALIGNED,
    ModelInputs,
    SequenceBatch,
    append_responses,
    encode_prompts,
    text_tokenizer,
)
from actors.prompts import Prompt
from actors.rollout import Rollout
from learner.config import LossAggregation
from learner.losses import group_advantages


@dataclass(frozen=True, eq=False)
class Group:
    """One scene's group: n rollouts from q_base and the reinjected corrections (sampled from q_fb)."""

    prompt: Prompt  # q_base, with its image
    rollouts: tuple[Rollout, ...]  # kind "base", scored
    # kind "fb" (corrections, or the ground truth in GT-GRPO), scored; learned under q_base with policy
    # shaping (or, without it, clipped GRPO against their sampling log-probs)
    reinjected: tuple[Rollout, ...] = ()


@dataclass(frozen=True, eq=False)
class TrainBatch:
    # model inputs: (B, P + R) [left pad][q_base][response][right pad], plus pixel values etc. in `extra`
    inputs: ModelInputs
    prompt_width: int  # P: the column where responses start
    response_mask: torch.Tensor  # (B, R) bool: the tokens the loss is computed on
    # behaviour and reference policies
    old_logprobs: torch.Tensor  # (B, R) float32 log π_old(a|s) at the sampling temperature; 0 on shaped rows
    ref_logprobs: torch.Tensor | None  # (B, R) float32 log π_ref(a|s); None: the learner computes it
    # credit
    advantages: torch.Tensor  # (B,) float32, group-normalised over the union of the group's rewards
    shaped: torch.Tensor  # (B,) bool: a reinjected correction (policy shaping, no clip, no ratio)
    rewards: torch.Tensor  # (B,) float32 the samples' scores (diagnostics)

    @property
    def size(self) -> int:
        return int(self.inputs.input_ids.shape[0])

    @property
    def response_ids(self) -> torch.Tensor:
        """(B, R) the response tokens (pad where `response_mask` is False)."""
        return self.inputs.input_ids[:, self.prompt_width :]

    @property
    def tokens(self) -> int:
        return int(self.response_mask.sum())

    @classmethod
    def supervised(cls, batch: SequenceBatch) -> TrainBatch:
        """An SFT batch (prompt -> target): the RL fields are zero."""
        rows = batch.inputs.input_ids.shape[0]
        mask = batch.response_mask[:, batch.prompt_width :]
        zeros = torch.zeros(mask.shape, dtype=torch.float32)
        return cls(
            inputs=batch.inputs,
            prompt_width=batch.prompt_width,
            response_mask=mask,
            old_logprobs=zeros,
            ref_logprobs=None,
            advantages=torch.zeros(rows),
            shaped=torch.zeros(rows, dtype=torch.bool),
            rewards=torch.zeros(rows),
        )

    def loss_denominator(self, mode: LossAggregation) -> float:
        """What `losses.aggregate` divides by for this whole batch: its response tokens (token-mean) or
        its sequences (seq-mean-token-sum)."""
        return float(self.tokens) if mode == "token-mean" else float(self.size)

    # ------------------------------------------------------------------------------ slicing ---

    def select(self, rows: Sequence[int]) -> TrainBatch:
        """These rows, with the columns that are padding in all of them cut off on both sides."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        mask = self.inputs.attention_mask[index]
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        first = min(first, self.prompt_width - 1)  # keep >= 1 prompt column: it predicts the first token
        response = self.response_mask[index]
        answered = response.any(dim=0).nonzero()
        width = int(answered[-1]) + 1 if len(answered) else 1
        last = self.prompt_width + width
        inputs = replace(
            self.inputs,
            input_ids=self.inputs.input_ids[index, first:last],
            attention_mask=mask[:, first:last],
            extra=_select_extra(self.inputs.extra, index, first, last),
        )

        def rows_of(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index][:, :width]

        return TrainBatch(
            inputs=inputs,
            prompt_width=self.prompt_width - first,
            response_mask=response[:, :width],
            old_logprobs=rows_of(self.old_logprobs),
            ref_logprobs=rows_of(self.ref_logprobs),
            advantages=self.advantages[index],
            shaped=self.shaped[index],
            rewards=self.rewards[index],
        )

    def micro_batches(self, size: int, growth: float = 1.5) -> list[TrainBatch]:
        """Chunks of at most `size` rows of similar length, each trimmed of padding: rows are sorted by
        length (prompt + response tokens) and a chunk is closed early when a row is more than `growth`
        times as long as the chunk's first, so short q_base rows are not padded to long q_fb ones."""
        lengths = self.inputs.attention_mask.sum(dim=1).tolist()
        order = sorted(range(self.size), key=lambda i: lengths[i])
        chunks: list[list[int]] = []
        for i in order:
            if not chunks or len(chunks[-1]) == size or lengths[i] > growth * lengths[chunks[-1][0]]:
                chunks.append([])
            chunks[-1].append(i)
        return [self.select(rows) for rows in chunks]

    def masked_out(self) -> TrainBatch:
        """The same rows with no response tokens and no advantage: a micro-batch that adds nothing to the
        loss, for a rank that has fewer micro-batches than the others (collectives must stay in step)."""
        return replace(
            self,
            response_mask=torch.zeros_like(self.response_mask),
            advantages=torch.zeros_like(self.advantages),
            shaped=torch.zeros_like(self.shaped),
        )


def deal(micro_batches: Sequence[TrainBatch], ranks: int) -> list[list[TrainBatch]]:
    """Micro-batches dealt to `ranks` ranks, the largest first to the least-loaded rank (cost = rows ×
    columns), then every rank topped up to the same count with a masked-out one-row micro-batch:
    DeepSpeed's gradient reduction is a collective per backward pass under ZeRO-2/3."""
    hands: list[list[TrainBatch]] = [[] for _ in range(ranks)]
    load = [0] * ranks
    for mb in sorted(micro_batches, key=lambda m: -m.inputs.input_ids.numel()):
        r = load.index(min(load))
        hands[r].append(mb)
        load[r] += mb.inputs.input_ids.numel()
    filler = micro_batches[0].select([0]).masked_out()
    rounds = max(len(h) for h in hands)
    return [h + [filler] * (rounds - len(h)) for h in hands]


def _select_extra(extra: dict[str, torch.Tensor], rows: torch.Tensor, first: int, last: int) -> dict:
    """Slice the family-specific inputs: token-aligned ones by row and column; pixel values by row, or,
    for Qwen-VL's flattened patches, by each row's patch count (`image_grid_thw`, one image per row)."""
    out = {}
    for key, value in extra.items():
        if key in TOKEN_ALIGNED:
            out[key] = value[rows, first:last]
        elif key == "pixel_values" and "image_grid_thw" in extra:
            counts = extra["image_grid_thw"].prod(dim=-1)  # (B,) patches per image
            starts = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
            out[key] = torch.cat([value[int(starts[r]) : int(starts[r] + counts[r])] for r in rows.tolist()])
        else:
            out[key] = value[rows]
    return out


# ------------------------------------------------------------------------------- building ---


def build_train_batch(
    groups: Sequence[Group], processor: Any, std_normalize: bool = True, policy_shaping: bool = True
) -> TrainBatch:
    """Encode every sample under its group's q_base, with advantages over each group's union of rewards.
    Original rollouts must have been sampled from exactly this prompt (their prompt token ids are
    checked); reinjected ones must come from q_fb. Reinjected rows are `shaped` when `policy_shaping`."""
    prompts: list[Prompt] = []
    samples: list[Rollout] = []
    reinjected: list[bool] = []
    group_ids: list[int] = []
    for g, group in enumerate(groups):
        if group.prompt.kind != "base":
            raise ValueError(
                f"group {g}: the loss is computed under q_base, got a {group.prompt.kind!r} prompt"
            )
        for rollout, is_reinjected in [(r, False) for r in group.rollouts] + [
            (r, True) for r in group.reinjected
        ]:
            expected = "fb" if is_reinjected else "base"
            if rollout.kind != expected:
                raise ValueError(f"group {g}: a {'reinjected' if is_reinjected else 'original'} sample of "
                                 f"kind {rollout.kind!r}, expected {expected!r}")  # fmt: skip
            if rollout.score is None:
                raise ValueError(f"group {g}: rollout of scene {rollout.scene_id} has no score")
            if rollout.scene_id != group.prompt.scene_id:
                raise ValueError(f"group {g}: rollout of scene {rollout.scene_id} in a group of "
                                 f"{group.prompt.scene_id}")  # fmt: skip
            prompts.append(group.prompt)
            samples.append(rollout)
            reinjected.append(is_reinjected)
            group_ids.append(g)
    if not samples:
        raise ValueError("no samples to train on")
    tok = text_tokenizer(processor)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = append_responses(encode_prompts(prompts, processor), [s.token_ids for s in samples], pad)
    width = encoded.prompt_width
    _check_prompt_ids(encoded.inputs, width, samples, reinjected)
    shaped = [r and policy_shaping for r in reinjected]
    response_mask = encoded.response_mask[:, width:]
    _mask_image_tokens(encoded.inputs.input_ids[:, width:], response_mask, processor, pad)
    old = torch.zeros(response_mask.shape, dtype=torch.float32)
    for i, (sample, is_shaped) in enumerate(zip(samples, shaped)):
        if not is_shaped:
            # torch.tensor copies: arrays that came back from Ray are read-only
            old[i, : len(sample.token_ids)] = torch.tensor(sample.logprobs, dtype=torch.float32)
    rewards = torch.tensor([s.score.score for s in samples], dtype=torch.float32)  # type: ignore[union-attr]
    advantages = group_advantages(rewards, torch.tensor(group_ids), std_normalize)
    return TrainBatch(
        inputs=encoded.inputs,
        prompt_width=width,
        response_mask=response_mask,
        old_logprobs=old,
        ref_logprobs=None,
        advantages=advantages,
        shaped=torch.tensor(shaped),
        rewards=rewards,
    )


def _mask_image_tokens(response_ids: torch.Tensor, mask: torch.Tensor, processor: Any, pad: int) -> None:
    """In place: image placeholder tokens a sampled response happens to contain become padding with no
    loss. The model would otherwise count them as image slots and refuse the forward pass (features and
    tokens do not match); the rest of such a response is still learned."""
    for name in ("image_token_id", "video_token_id"):
        token = getattr(processor, name, None)
        if token is not None:
            hit = response_ids == token
            response_ids[hit] = pad
            mask[hit] = False


def _check_prompt_ids(
    inputs: ModelInputs, width: int, samples: Sequence[Rollout], reinjected: Sequence[bool]
) -> None:
    """An original sample's log-probs are only comparable if the learner sees the prompt it was sampled
    from, token for token."""
    for i, (sample, is_reinjected) in enumerate(zip(samples, reinjected)):
        if is_reinjected or not sample.prompt_token_ids:
            continue
        ids = inputs.input_ids[i, :width][inputs.attention_mask[i, :width].bool()].tolist()
        if tuple(ids) != tuple(sample.prompt_token_ids):
            raise ValueError(
                f"sample {i} (scene {sample.scene_id}): the rollout's prompt tokens differ from the group's "
                "q_base as the learner encodes it; was it sampled from another prompt or processor?"
            )
