"""A tiny student trains one step on prompt + ground-truth answer, loss on the answer's tokens only."""

from __future__ import annotations

import pytest
import torch

from actors.encoding import encode_sft, response_token_logprobs, text_tokenizer
from actors.model_factory import load_student
from actors.prompts import build_base_prompt, front_image
from actors.response import ground_truth_response


def _sft_batch(preset, student_dirs, scenes):
    model, processor, _ = load_student(student_dirs[preset])
    chosen = scenes[:2]
    image = preset != "tiny-text"
    prompts = [build_base_prompt(s, front_image(s) if image else None) for s in chosen]
    answers = [ground_truth_response(s) for s in chosen]
    return model, processor, encode_sft(prompts, answers, processor), answers


def test_response_mask_covers_exactly_the_answer(student_dirs, scenes):
    _, processor, batch, answers = _sft_batch("tiny-internvl", student_dirs, scenes)
    tok = text_tokenizer(processor)
    for row, answer in enumerate(answers):
        target = tok(answer + tok.eos_token, add_special_tokens=False)["input_ids"]
        ids = batch.inputs.input_ids[row][batch.response_mask[row]].tolist()
        assert ids == target
        assert tok.decode(ids, skip_special_tokens=True) == answer


@pytest.mark.parametrize("preset", ["tiny-internvl", "tiny-qwen3vl", "tiny-text"])
def test_one_adamw_step_changes_parameters(student_dirs, scenes, preset):
    torch.manual_seed(0)
    model, _, batch, _ = _sft_batch(preset, student_dirs, scenes)
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    logits = model(**batch.inputs.forward_kwargs()).logits
    logp = response_token_logprobs(logits, batch)  # (B, R), 0 off the answer
    mask = batch.response_mask[:, batch.prompt_width :]
    loss = -(logp.sum() / mask.sum())
    loss.backward()
    vision_grads = [p.grad for n, p in model.named_parameters() if "vision" in n or "visual" in n]
    assert preset == "tiny-text" or any(g is not None and g.abs().sum() > 0 for g in vision_grads)
    optimizer.step()

    assert torch.isfinite(loss)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert len(changed) == len(before), sorted(set(before) - changed)[:5]  # vision tower and projector too
    with torch.no_grad():
        after = -(
            response_token_logprobs(model(**batch.inputs.forward_kwargs()).logits, batch).sum() / mask.sum()
        )
    assert after < loss
