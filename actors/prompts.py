"""The student's prompts, q_base and q_fb: the one module that owns their wording and chat templates.

q_base is one user turn: the front camera image (a placeholder the processor expands into image tokens),
the navigation command, the ego state and the last 2 s of the ego's own path, then the answer format.
q_fb is a three-turn chat: q_base, the student's previous answer as the assistant turn, and a user turn
with the feedback and the instruction to correct the plan. The paper writes q_fb = ⟨q_base, previous
response, feedback⟩ without fixing the layout; a multi-turn chat is how the chat templates of InternVL and
Qwen-VL express exactly that, and it keeps q_base a literal prefix of q_fb.

Numbers use the response's format (`format_number`: sign, 2 decimals), so the tokenizer learns one number
form. History poses come from `ego.history` (global, at -1.5, -1.0, -0.5 s) moved into the frame at t = 0,
or, where a scene has no history, a constant-velocity extrapolation backwards (as SCENE_FORMAT.md says).

The chat templates below are the tiny students' own; a paper-scale model brings its template with its
tokenizer. Both render the same `hf_messages()`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from actors.response import format_number, format_poses
from driving.camera import TINY_CAMERA, CameraConfig, render_camera
from driving.geometry import ego_origin, global_to_local
from driving.scene import HISTORY_TIMES_S, Scene

PromptKind = Literal["base", "fb"]
Role = Literal["user", "assistant"]
ModelFamily = Literal["internvl", "qwen3vl", "text"]

COMMAND_TEXT = {
    "left": "turn left at the next junction",
    "straight": "go straight",
    "right": "turn right at the next junction",
    "unknown": "follow the road",
}
ANSWER_FORMAT = (
    "Answer as <think>key objects and intent</think><action>lateral,longitudinal</action>"
    "<traj>8 poses (x,y,heading) every 0.5 s</traj>."
)
FEEDBACK_INSTRUCTION = "Correct your plan using this feedback. Answer again in the same format."


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    text: str
    image: bool = False  # the prompt's image comes before the text of this turn


@dataclass(frozen=True, eq=False)
class Prompt:
    scene_id: str
    kind: PromptKind
    turns: tuple[ChatTurn, ...]
    image: Image.Image | None  # RGB front camera (64×64 for the tiny students); None for text-only students

    def hf_messages(self) -> list[dict]:
        """The turns in Hugging Face chat format, for `apply_chat_template`."""
        messages = []
        for turn in self.turns:
            content: list[dict] = [{"type": "image"}] if turn.image and self.image is not None else []
            content.append({"type": "text", "text": turn.text})
            messages.append({"role": turn.role, "content": content})
        return messages

    @property
    def images(self) -> list[Image.Image]:
        """The images the chat refers to, in order (zero or one)."""
        return [self.image] if self.image is not None and any(t.image for t in self.turns) else []


# ------------------------------------------------------------------------------------- q_base ---


def history_poses(scene: Scene) -> np.ndarray:
    """(4, 3) ego poses at -1.5, -1.0, -0.5 and 0 s in the frame at t = 0 (x forward, y left) [m, rad]."""
    ego = scene.ego
    if ego.history is not None:
        past = global_to_local(np.array([row[:3] for row in ego.history], dtype=np.float64), ego_origin(ego))
    else:  # constant velocity backwards
        t = np.array(HISTORY_TIMES_S, dtype=np.float64)
        past = np.stack([ego.vx * t, ego.vy * t, np.zeros_like(t)], axis=-1)
    return np.vstack([past, np.zeros((1, 3))])


def base_user_text(scene: Scene) -> str:
    """The text of q_base (the image placeholder is the chat template's business)."""
    command = scene.sample.command if scene.sample is not None else "unknown"
    ego = scene.ego
    return (
        f"Command: {COMMAND_TEXT[command]}.\n"
        f"Speed {format_number(ego.vx)} m/s, acceleration {format_number(ego.ax)} m/s2.\n"
        f"Past poses (x,y,heading) at -1.5,-1.0,-0.5,0 s: {format_poses(history_poses(scene))}\n"
        f"{ANSWER_FORMAT}"
    )


def build_base_prompt(scene: Scene, image: Image.Image | None) -> Prompt:
    """q_base for `scene`; `image=None` gives the text-only prompt (tiny-text student)."""
    turn = ChatTurn("user", base_user_text(scene), image=image is not None)
    return Prompt(scene_id=scene.id or "", kind="base", turns=(turn,), image=image)


def front_image(
    scene: Scene, dataset_root: str | Path | None = None, camera: CameraConfig = TINY_CAMERA
) -> Image.Image:
    """The scene's stored front image when `dataset_root` is given and the scene has one, else a render."""
    images = scene.sample.images if scene.sample is not None else None
    if dataset_root is not None and images and "front" in images:
        with Image.open(Path(dataset_root) / images["front"].path) as img:
            return img.convert("RGB")
    return render_camera(scene, camera)


# --------------------------------------------------------------------------------------- q_fb ---


def feedback_user_text(feedback: str) -> str:
    return f"Feedback on your answer:\n{feedback.strip()}\n{FEEDBACK_INSTRUCTION}"


def build_feedback_prompt(base: Prompt, previous_response: str, feedback: str) -> Prompt:
    """q_fb = q_base, the previous answer, the feedback and the instruction to correct the plan."""
    if base.kind != "base":
        raise ValueError(f"q_fb is built on a q_base prompt, got kind {base.kind!r}")
    turns = base.turns + (
        ChatTurn("assistant", previous_response),
        ChatTurn("user", feedback_user_text(feedback)),
    )
    return replace(base, kind="fb", turns=turns)


# ------------------------------------------------------------------------------ chat templates ---

# Special tokens of each family's chat; the tokenizer factory registers them.
CHAT_START, CHAT_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
IMAGE_PLACEHOLDERS: dict[ModelFamily, str] = {
    "internvl": "<IMG_CONTEXT>\n",  # InternVLProcessor expands it to <img><IMG_CONTEXT>×seq</img>
    "qwen3vl": "<|vision_start|><|image_pad|><|vision_end|>",  # Qwen3VLProcessor expands <|image_pad|>
    "text": "",
}


def chat_template(family: ModelFamily) -> str:
    """ChatML, as InternVL3 and Qwen3-VL use it, without a system turn (every token costs on a CPU)."""
    image = IMAGE_PLACEHOLDERS[family]
    return (
        "{% for message in messages %}" + CHAT_START + "{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}" + image + "{% elif part['type'] == 'text' %}{{ part['text'] }}"
        "{% endif %}{% endfor %}{% endif %}" + CHAT_END + "\n{% endfor %}"
        "{% if add_generation_prompt %}" + CHAT_START + "assistant\n{% endif %}"
    )
