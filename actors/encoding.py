"""Prompts (and responses) -> model input tensors, shared by the engines and the learner.

A batch is laid out as [left padding][prompt][response][right padding]: prompts are left-padded so that
generation appends at the same column for every row, and responses (token ids from an engine, or the
tokenised ground truth for SFT) are appended after them. Position ids follow the attention mask
(`cumsum(mask) - 1`), as transformers' `generate` computes them for left-padded prompts, so a forward pass
over a batch sees exactly the positions the sampling engine saw. Qwen3-VL is the exception: its model
derives 3-D M-RoPE positions from the attention mask and the image grid itself, in generate and forward
alike, so none are passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from actors.prompts import Prompt

# Inputs with one entry per token, which must grow when responses are appended.
TOKEN_ALIGNED = ("mm_token_type_ids",)


@dataclass(frozen=True)
class ModelInputs:
    input_ids: torch.Tensor  # (B, T) int64
    attention_mask: torch.Tensor  # (B, T) int64, 1 = real token
    extra: dict[str, torch.Tensor]  # family-specific: pixel_values, image_grid_thw, mm_token_type_ids (B, T)
    mrope: bool = False  # Qwen3-VL: the model computes its own position ids

    def generate_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of `generate`, which derives position ids from the mask itself."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **self.extra}

    def forward_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's forward, with the positions `generate` would use."""
        kwargs = self.generate_kwargs()
        if not self.mrope:
            kwargs["position_ids"] = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)
        return kwargs


@dataclass(frozen=True)
class SequenceBatch:
    inputs: ModelInputs  # (B, P + R): prompts then responses
    response_mask: torch.Tensor  # (B, P + R) bool: True on response tokens (the targets)
    prompt_width: int  # P: column where the responses start


def text_tokenizer(processor: Any) -> Any:
    """The tokenizer inside a processor (a text-only student's 'processor' is its tokenizer)."""
    return getattr(processor, "tokenizer", processor)


def chat_texts(prompts: Sequence[Prompt], processor: Any) -> list[str]:
    """Each prompt rendered by the model's chat template, ending with the assistant's turn opening."""
    tok = text_tokenizer(processor)
    return [
        tok.apply_chat_template(p.hf_messages(), tokenize=False, add_generation_prompt=True) for p in prompts
    ]


def encode_prompts(prompts: Sequence[Prompt], processor: Any) -> ModelInputs:
    """Left-padded prompt tensors; images are expanded into image tokens by the processor."""
    texts = chat_texts(prompts, processor)
    images = [img for p in prompts for img in p.images]
    if images:
        if len(images) != len(prompts):
            raise ValueError("mix of prompts with and without an image in one batch")
        feats = processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
    else:
        feats = text_tokenizer(processor)(
            texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt"
        )
    extra = {k: v for k, v in feats.items() if k not in ("input_ids", "attention_mask")}
    return ModelInputs(
        input_ids=feats["input_ids"],
        attention_mask=feats["attention_mask"],
        extra=extra,
        mrope="image_grid_thw" in extra or "mm_token_type_ids" in extra,
    )


def append_responses(prompts: ModelInputs, responses: Sequence[Sequence[int]], pad_id: int) -> SequenceBatch:
    """Append each row's response token ids after its prompt, right-padded to the longest response."""
    batch, width = prompts.input_ids.shape
    if len(responses) != batch:
        raise ValueError(f"{len(responses)} responses for {batch} prompts")
    longest = max((len(r) for r in responses), default=0)
    ids = torch.full((batch, longest), pad_id, dtype=prompts.input_ids.dtype)
    mask = torch.zeros((batch, longest), dtype=prompts.attention_mask.dtype)
    for i, r in enumerate(responses):
        ids[i, : len(r)] = torch.as_tensor(list(r), dtype=ids.dtype)
        mask[i, : len(r)] = 1
    extra = dict(prompts.extra)
    for key in TOKEN_ALIGNED:
        if key in extra:
            extra[key] = torch.cat([extra[key], torch.zeros_like(ids, dtype=extra[key].dtype)], dim=1)
    inputs = replace(
        prompts,
        input_ids=torch.cat([prompts.input_ids, ids], dim=1),
        attention_mask=torch.cat([prompts.attention_mask, mask], dim=1),
        extra=extra,
    )
    response_mask = torch.cat(
        [torch.zeros_like(prompts.attention_mask, dtype=torch.bool), mask.bool()], dim=1
    )
    return SequenceBatch(inputs=inputs, response_mask=response_mask, prompt_width=width)


def encode_sft(prompts: Sequence[Prompt], responses: Sequence[str], processor: Any) -> SequenceBatch:
    """Prompts with target response texts, each closed by the end-of-turn token (the model's EOS)."""
    tok = text_tokenizer(processor)
    ids = [tok(text + tok.eos_token, add_special_tokens=False)["input_ids"] for text in responses]
    return append_responses(encode_prompts(prompts, processor), ids, tok.pad_token_id)


def response_token_logprobs(
    logits: torch.Tensor, batch: SequenceBatch, temperature: float = 1.0
) -> torch.Tensor:
    """(B, R) log π(token | prefix) of each response token at `temperature` (0 on padding), from the
    (B, P + R, V) logits of a forward pass over `batch`."""
    width = batch.prompt_width
    targets = batch.inputs.input_ids[:, width:]  # (B, R)
    scores = logits[:, width - 1 : -1].float() / temperature  # (B, R, V): logits at t predict token t + 1
    logp = torch.log_softmax(scores, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp * batch.response_mask[:, width:]
