"""Inference engines: one interface, `generate(prompts, n, sampling)` / `update_weights(state, version)`.

Log-probs. Every engine returns, per sampled token, log π(token | prompt, prefix) computed from the
model's raw logits divided by the sampling temperature T (T = 1 when decoding greedily), **before** top-k /
top-p truncation: `log_softmax(logits / T)[token]`. That is what the learner recomputes from its own
forward pass (`actors.encoding.response_token_logprobs` with the same T), so the GRPO ratio
π_θ / π_old is 1 at the first step up to numerics. With top-k/top-p < full, the true sampling distribution
is the truncated one; we keep the untruncated value, as verl and OpenRLHF do, so the learner needs no
knowledge of the truncation.

`HFEngine` runs transformers' `generate` on the model's device (`from_dir` puts it on the GPU in bf16 when
there is one, on the CPU in fp32 otherwise), batched with left padding; the n samples of a prompt are n
rows of the batch. Seeding (`SamplingParams.seed`) seeds torch's global RNG
before each chunk, so a call is reproducible for the same prompts, n and chunk size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch

from actors.encoding import encode_prompts, text_tokenizer
from actors.prompts import Prompt

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k
    max_new_tokens: int = 128  # a ground-truth answer is ~75 tiny-tokenizer tokens
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_new_tokens < 1:
            raise ValueError(f"invalid sampling parameters: {self}")

    @property
    def logprob_temperature(self) -> float:
        """The T of the returned log-probs: the sampling temperature, or 1 for greedy decoding."""
        return self.temperature if self.temperature > 0 else 1.0


@dataclass(frozen=True, eq=False)
class Generation:
    """One sampled response."""

    token_ids: tuple[int, ...]  # (L,) sampled tokens, including the closing end-of-turn token if it stopped
    logprobs: np.ndarray  # (L,) float32 log π(token | prompt, prefix) at SamplingParams.logprob_temperature
    text: str  # decoded without special tokens (the end-of-turn token is dropped)
    finish_reason: FinishReason
    version: int  # weights version that produced it
    prompt_token_ids: tuple[int, ...] = ()  # (P,) the prompt as the engine tokenised it (images expanded)


class Engine(Protocol):
    @property
    def version(self) -> int: ...

    def generate(
        self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams
    ) -> list[list[Generation]]: ...

    def update_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None: ...


class HFEngine:
    """transformers `generate`, batched with left padding; `max_batch` rows (prompts × n) per call."""

    def __init__(self, model: Any, processor: Any, max_batch: int = 64, version: int = 0) -> None:
        self.model = model.eval()
        self.processor = processor
        self.max_batch = max_batch
        self._version = version
        tok = text_tokenizer(processor)
        self._tokenizer = tok
        self._eos_id: int = tok.eos_token_id
        self._pad_id: int = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @classmethod
    def from_dir(cls, path: str, max_batch: int = 64) -> HFEngine:
        """The student of a folder, on the GPU in bf16 when there is one (as the learner trains it), else
        on the CPU in fp32."""
        from actors.model_factory import load_student

        gpu = torch.cuda.is_available()
        model, processor, _ = load_student(path, dtype=torch.bfloat16 if gpu else torch.float32)
        return cls(model.to("cuda" if gpu else "cpu"), processor, max_batch=max_batch)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def version(self) -> int:
        return self._version

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Generation]]:
        """n samples per prompt, in prompt order."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rows = [p for p in prompts for _ in range(n)]  # prompt i's samples are rows i*n ... i*n + n-1
        out: list[Generation] = []
        for start in range(0, len(rows), self.max_batch):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed + start)
            out.extend(self._generate_rows(rows[start : start + self.max_batch], sampling))
        return [out[i * n : (i + 1) * n] for i in range(len(prompts))]

    @torch.no_grad()
    def _generate_rows(self, rows: Sequence[Prompt], sampling: SamplingParams) -> list[Generation]:
        inputs = encode_prompts(rows, self.processor)
        sample = sampling.temperature > 0
        dtype = next(self.model.parameters()).dtype
        kwargs = {
            k: v.to(
                self.device, dtype=dtype if v.is_floating_point() else None
            )  # pixels in the model's dtype
            for k, v in inputs.generate_kwargs().items()
        }
        result = self.model.generate(
            **kwargs,
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            top_k=sampling.top_k if sample else None,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self._eos_id,
            pad_token_id=self._pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        width = inputs.input_ids.shape[1]
        tokens = result.sequences[:, width:].cpu()  # (B, L)
        logits = torch.stack(result.logits, dim=1).float() / sampling.logprob_temperature  # (B, L, V) raw
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, tokens.to(logits.device).unsqueeze(-1))
        logprobs = logprobs.squeeze(-1).cpu()  # (B, L)
        prompt_ids = [
            tuple(ids[mask.bool()].tolist()) for ids, mask in zip(inputs.input_ids, inputs.attention_mask)
        ]
        return [self._one(tokens[i], logprobs[i], prompt_ids[i]) for i in range(tokens.shape[0])]

    def _one(self, tokens: torch.Tensor, logprobs: torch.Tensor, prompt_ids: tuple[int, ...]) -> Generation:
        """Cut a row at its first end-of-turn token (kept: the learner trains on stopping too)."""
        ids = tokens.tolist()
        stop = ids.index(self._eos_id) + 1 if self._eos_id in ids else len(ids)
        kept = ids[:stop]
        return Generation(
            token_ids=tuple(kept),
            logprobs=logprobs[:stop].numpy().astype(np.float32),
            text=self._tokenizer.decode(kept, skip_special_tokens=True),
            finish_reason="stop" if self._eos_id in kept else "length",
            version=self._version,
            prompt_token_ids=prompt_ids,
        )

    @torch.no_grad()
    def update_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """Load the full state dict of the same architecture in place; `version` must not go back."""
        if version < self._version:
            raise ValueError(f"weights version {version} is older than the engine's {self._version}")
        self.model.load_state_dict(dict(state_dict), strict=True)
        self._version = version
