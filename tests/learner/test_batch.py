"""TrainBatch from groups of real rollouts: layout, union advantages, shards and micro-batches."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from learner.batch import build_train_batch
from learner.losses import group_advantages
from tests.learner.conftest import GROUP_SIZE, SCENES


def test_rows_flags_and_union_advantages(train_batch, groups):
    b = train_batch
    assert b.size == SCENES * GROUP_SIZE + 1
    assert b.shaped.tolist() == [False] * GROUP_SIZE + [True] + [False] * GROUP_SIZE
    rewards = torch.tensor([0.0, 0.1, 0.2, 0.9, 0.1, 0.2, 0.3])
    torch.testing.assert_close(b.rewards, rewards)
    want = group_advantages(rewards, torch.tensor([0, 0, 0, 0, 1, 1, 1]))
    torch.testing.assert_close(b.advantages, want)
    assert b.advantages[3] > 0 > b.advantages[0]  # the correction beats its group


def test_layout_matches_the_rollouts(train_batch, groups):
    b = train_batch
    samples = [*groups[0].rollouts, *groups[0].reinjected, *groups[1].rollouts]
    for i, sample in enumerate(samples):
        n = len(sample.token_ids)
        kept = b.response_mask[i, :n]  # all but image placeholders the random model may sample
        assert b.response_ids[i, :n][kept].tolist() == [t for t, k in zip(sample.token_ids, kept) if k]
        assert kept.sum() == b.response_mask[i].sum() >= n - 1
        if not b.shaped[i]:
            torch.testing.assert_close(b.old_logprobs[i, :n], torch.as_tensor(sample.logprobs))
        else:
            assert (b.old_logprobs[i] == 0).all()  # no behaviour ratio for corrections
    # the correction is learned under q_base: its prompt tokens equal an original sample's
    p = b.prompt_width
    assert torch.equal(b.inputs.input_ids[3, :p], b.inputs.input_ids[0, :p])


def test_select_trims_padding_and_keeps_tokens(train_batch):
    b = train_batch
    for rows in ([0], [3, 4], list(range(b.size))):
        part = b.select(rows)
        for j, i in enumerate(rows):
            n = int(b.response_mask[i].sum())
            assert part.response_ids[j, :n].tolist() == b.response_ids[i, :n].tolist()
            kept = part.inputs.input_ids[j, : part.prompt_width][
                part.inputs.attention_mask[j, : part.prompt_width].bool()
            ]
            full = b.inputs.input_ids[i, : b.prompt_width][
                b.inputs.attention_mask[i, : b.prompt_width].bool()
            ]
            assert torch.equal(kept, full)
        assert part.inputs.extra["pixel_values"].shape[0] == len(rows)


def test_micro_batches_group_similar_lengths_and_deal_evenly(train_batch):
    from learner.batch import deal

    b = train_batch
    micro = b.micro_batches(3)
    assert sorted(sum((m.rewards.tolist() for m in micro), [])) == sorted(b.rewards.tolist())
    assert sum(m.tokens for m in micro) == b.tokens and all(m.size <= 3 for m in micro)
    long = b.select([0, 1, 2, 3]).micro_batches(4, growth=1.0001)  # lengths differ: one chunk each
    assert len(long) == len({int(x) for x in b.select([0, 1, 2, 3]).inputs.attention_mask.sum(1)})
    hands = deal(micro, 2)
    assert len(hands[0]) == len(hands[1])
    fillers = [m for h in hands for m in h if m.tokens == 0]
    assert len(fillers) == 2 * len(hands[0]) - len(micro) and all(f.advantages.eq(0).all() for f in fillers)
    assert sum(m.tokens for h in hands for m in h) == b.tokens


def test_errors_name_the_problem(groups, student_dir):
    from actors.model_factory import load_student

    _, processor, _ = load_student(student_dir)
    unscored = dataclasses.replace(
        groups[1], rollouts=(dataclasses.replace(groups[1].rollouts[0], score=None),)
    )
    with pytest.raises(ValueError, match="no score"):
        build_train_batch([unscored], processor)
    wrong_kind = dataclasses.replace(groups[1], reinjected=groups[1].rollouts[:1])
    with pytest.raises(ValueError, match="expected 'fb'"):
        build_train_batch([wrong_kind], processor)
    other_prompt = dataclasses.replace(groups[1], prompt=groups[0].prompt)
    with pytest.raises(ValueError, match="in a group of"):
        build_train_batch([other_prompt], processor)
    foreign = dataclasses.replace(groups[1].rollouts[0], prompt_token_ids=(1, 2, 3))
    with pytest.raises(ValueError, match="prompt tokens differ"):
        build_train_batch([dataclasses.replace(groups[1], rollouts=(foreign,))], processor)


def test_image_tokens_in_a_response_are_masked(groups, student_dir):
    """A sampled response that contains the image placeholder must not break the forward pass."""
    from actors.model_factory import load_student

    _, processor, _ = load_student(student_dir)
    rollout = groups[1].rollouts[0]
    ids = (processor.image_token_id, *rollout.token_ids[1:])
    odd = dataclasses.replace(rollout, token_ids=ids, prompt_token_ids=())
    b = build_train_batch([dataclasses.replace(groups[1], rollouts=(odd,))], processor)
    assert processor.image_token_id not in b.response_ids.tolist()[0]
    assert not b.response_mask[0, 0] and b.response_mask[0, 1:].sum() == len(ids) - 1


def test_without_policy_shaping_corrections_get_the_clipped_grpo_objective(groups, student_dir, train_batch):
    from actors.model_factory import load_student
    from learner.losses import elf_grpo_token_losses

    _, processor, _ = load_student(student_dir)
    b = build_train_batch(groups, processor, policy_shaping=False)
    correction = groups[0].reinjected[0]
    n = len(correction.token_ids)
    assert not b.shaped.any()  # the correction (row 3) is an ordinary GRPO sample ...
    torch.testing.assert_close(b.old_logprobs[3, :n], torch.as_tensor(correction.logprobs))  # ... vs q_fb
    torch.testing.assert_close(b.advantages, train_batch.advantages)  # same union advantages
    assert torch.equal(b.inputs.input_ids, train_batch.inputs.input_ids)  # still under q_base
    # a ratio of e^0.5 > 1 + clip_high with A > 0: the clipped term, -A (1 + clip_high), on every token
    logprobs = b.old_logprobs + 0.5
    terms = elf_grpo_token_losses(logprobs, b.old_logprobs, None, b.advantages, b.shaped, 0.2, 0.28, 0.1, 0.0)
    mask = b.response_mask[3]
    want = torch.full((int(mask.sum()),), -float(b.advantages[3]) * 1.28)
    torch.testing.assert_close(terms.total[3][mask], want)
    assert terms.clipped[3][mask].all() and (terms.shaping == 0).all()
