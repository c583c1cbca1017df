"""The VLM teacher: a language model writes the diagnosis as JSON, which must validate as `Diagnosis`.

Two engines behind one `generate(prompts, temperature)` call: vLLM (paper scale: a Qwen3-VL-class model,
JSON-schema-constrained decoding with xgrammar, camera images passed as data URLs), imported lazily so
that nothing else needs it; and transformers (a local causal LM, unconstrained, text only). Output that
fails validation is regenerated up to `retries` times at temperature >= 0.7 (greedy decoding would
repeat it), then replaced by the analytic diagnosis; both events are counted in `stats`.

The prompt gives the teacher what the paper's teacher sees: the scene (as text: nearby objects in the
ego frame), the ground-truth plan and meta action, the failed response (think, meta action, plan) and
its score breakdown. Fields that are facts, not judgement (`scene_id`, `failed_metrics`, `teacher`) are
overwritten from the request after validation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import ValidationError

from driving.geometry import ego_origin, global_to_local, trajectory_local
from teacher_service.analytic import AnalyticTeacher
from teacher_service.config import VLMTeacherConfig
from teacher_service.schema import Diagnosis, DiagnosisRequest, TeacherKind, diagnosis_json_schema
from teacher_service.teachers import TeacherStats

RETRY_TEMPERATURE = 0.7
MAX_PROMPT_OBJECTS = 12
SYSTEM_PROMPT = (
    "You are a driving instructor. A student driving model answered a scene with a reasoning, a meta "
    "action and an 8-pose trajectory (x forward, y left, metres, every 0.5 s), and failed the NAVSIM score. "
    "Diagnose the failure in five parts: meta action, reasoning, safety failures (which object, when, "
    "where), efficiency failures (progress, comfort), and executable corrections: lateral offsets in "
    "metres (left positive) at each of the student's 8 poses, and target speeds in m/s at 1, 2, 3 and 4 s. "
    "Answer with one JSON object that follows the schema, nothing else."
)


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    images: dict[str, str] | None = None  # name -> base64 image


class Engine(Protocol):
    def generate(self, prompts: list[Prompt], temperature: float) -> list[str]: ...


# ------------------------------------------------------------------------------------ prompt ---


def build_prompt(request: DiagnosisRequest, with_schema: bool) -> Prompt:
    """The teacher prompt. `with_schema` adds the JSON schema as text (for unconstrained engines)."""
    scene, b = request.scene, request.breakdown
    ego = scene.ego
    lines = [
        f"Scene {request.scene_id}. Ego speed {math.hypot(ego.vx, ego.vy):.1f} m/s"
        + (f", command: {scene.sample.command}." if scene.sample else "."),
        "Objects (id, type, x, y [m], heading [rad], speed [m/s]) in the ego frame at t = 0:",
        *_object_lines(request),
        "Student think: " + (request.think or "(none)"),
        "Student meta action: "
        + (
            f"{request.meta_action.lateral},{request.meta_action.longitudinal}"
            if request.meta_action
            else "(none)"
        ),
        "Student trajectory: " + _poses(np.asarray(request.plan)),
        f"Score breakdown ({b.metric}): " + b.model_dump_json(exclude_none=True),
    ]
    if scene.sample is not None:
        expert = trajectory_local(scene.sample.expert, ego)
        lines.append("Ground-truth trajectory: " + _poses(expert))
        if scene.sample.meta_action is not None:
            meta = scene.sample.meta_action
            lines.append(f"Ground-truth meta action: {meta.lateral},{meta.longitudinal}")
    if with_schema:
        lines.append("JSON schema: " + json.dumps(diagnosis_json_schema(), separators=(",", ":")))
    return Prompt(system=SYSTEM_PROMPT, user="\n".join(lines), images=request.images)


def _object_lines(request: DiagnosisRequest) -> list[str]:
    origin = ego_origin(request.scene.ego)
    rows = []
    for agent in request.scene.agents:
        state = agent.state_at_frame(0)
        if state is None:
            continue
        x, y, h = global_to_local(np.array(state[:3]), origin)
        rows.append(
            (
                math.hypot(x, y),
                f"{agent.id}, {agent.type}, {x:.1f}, {y:.1f}, {h:.2f}, {math.hypot(*state[3:5]):.1f}",
            )
        )
    return [text for _, text in sorted(rows)[:MAX_PROMPT_OBJECTS]] or ["(none)"]


def _poses(poses: np.ndarray) -> str:
    return " ".join(f"({x:.2f},{y:.2f},{h:.2f})" for x, y, h in poses)


def parse_diagnosis(text: str, request: DiagnosisRequest) -> Diagnosis | None:
    """The diagnosis in a model's output (the outermost JSON object), or None if it does not validate."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        diagnosis = Diagnosis.model_validate_json(text[start : end + 1])
    except (ValidationError, ValueError):
        return None
    return diagnosis.model_copy(
        update={
            "scene_id": request.scene_id,
            "teacher": "vlm",
            "failed_metrics": request.breakdown.failed_metrics(),
        }
    )


# ------------------------------------------------------------------------------------ teacher ---


class VLMTeacher:
    kind: TeacherKind = "vlm"

    def __init__(self, engine: Engine, config: VLMTeacherConfig, constrained: bool) -> None:
        self.engine = engine
        self.config = config
        self.constrained = constrained  # the engine enforces the schema: no schema text in the prompt
        self.fallback = AnalyticTeacher()
        self.stats = TeacherStats()

    @classmethod
    def from_config(cls, config: VLMTeacherConfig) -> VLMTeacher:
        if config.engine == "vllm":
            return cls(VLLMEngine(config), config, constrained=True)
        return cls(TransformersEngine(config), config, constrained=False)

    def diagnose(self, requests: list[DiagnosisRequest]) -> list[Diagnosis]:
        self.stats.requests += len(requests)
        prompts = [build_prompt(r, with_schema=not self.constrained) for r in requests]
        results: list[Diagnosis | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        temperature = self.config.temperature
        for _attempt in range(1 + self.config.retries):
            texts = self.engine.generate([prompts[i] for i in pending], temperature)
            still = []
            for i, text in zip(pending, texts, strict=True):
                results[i] = parse_diagnosis(text, requests[i])
                if results[i] is None:
                    self.stats.invalid_outputs += 1
                    still.append(i)
            pending = still
            temperature = max(temperature, RETRY_TEMPERATURE)
            if not pending:
                break
        if pending:
            self.stats.fallbacks += len(pending)
            for i, diagnosis in zip(
                pending, self.fallback.diagnose([requests[i] for i in pending]), strict=True
            ):
                results[i] = diagnosis
        return [r for r in results if r is not None]


# ------------------------------------------------------------------------------------ engines ---


class TransformersEngine:
    """A local causal LM via transformers (text only; images are left out)."""

    def __init__(self, config: VLMTeacherConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(str(config.model_path), local_files_only=True)
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            str(config.model_path), local_files_only=True
        ).eval()

    def _text(self, prompt: Prompt) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{prompt.system}\n\n{prompt.user}\n\nJSON:"

    def generate(self, prompts: list[Prompt], temperature: float) -> list[str]:
        batch = self.tokenizer(
            [self._text(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.config.max_prompt_tokens,
        )
        sampling = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        with self.torch.no_grad():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.config.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)


class VLLMEngine:
    """vLLM with the Diagnosis JSON schema enforced by xgrammar; images go in as data URLs."""

    def __init__(self, config: VLMTeacherConfig) -> None:
        from vllm import LLM

        self.config = config
        self.llm = LLM(
            model=str(config.model_path),
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
            enforce_eager=config.enforce_eager,
            structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
        )
        self.schema = diagnosis_json_schema()
        # a model without a chat template (a tiny test model) gets the plain prompt, text only
        self.chat = bool(getattr(self.llm.get_tokenizer(), "chat_template", None))

    def _sampling(self, temperature: float):  # noqa: ANN202 - vllm.SamplingParams
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        return SamplingParams(
            temperature=temperature,
            max_tokens=self.config.max_new_tokens,
            structured_outputs=StructuredOutputsParams(json=self.schema, disable_any_whitespace=True),
        )

    def generate(self, prompts: list[Prompt], temperature: float) -> list[str]:
        sampling = self._sampling(temperature)
        if self.chat:
            outputs = self.llm.chat([_messages(p) for p in prompts], sampling, use_tqdm=False)
        else:
            outputs = self.llm.generate([plain_text(p) for p in prompts], sampling, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


def plain_text(prompt: Prompt) -> str:
    """The prompt for a model without a chat template."""
    return f"{prompt.system}\n\n{prompt.user}\n\nJSON:"


def _messages(prompt: Prompt) -> list[dict]:
    content: list[dict] = [
        {"type": "image_url", "image_url": {"url": f"data:{_mime(b64)};base64,{b64}"}}
        for b64 in (prompt.images or {}).values()
    ]
    content.append({"type": "text", "text": prompt.user})
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": content}]


def _mime(b64: str) -> str:
    return "image/jpeg" if re.match(r"/9j/", b64) else "image/png"
