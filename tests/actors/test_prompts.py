"""q_base and q_fb: content, chat rendering per model family, image placeholders."""

from __future__ import annotations

import numpy as np
import pytest

from actors.encoding import chat_texts, encode_prompts
from actors.model_factory import IMAGE_TOKENS, load_student
from actors.prompts import (
    COMMAND_TEXT,
    FEEDBACK_INSTRUCTION,
    build_base_prompt,
    build_feedback_prompt,
    front_image,
    history_poses,
)
from actors.response import format_number, ground_truth_response
from driving.geometry import ego_origin, global_to_local
from driving.scene import load_scene


def test_base_prompt_content(scenes):
    scene = scenes[0]
    prompt = build_base_prompt(scene, front_image(scene))
    assert prompt.kind == "base" and prompt.scene_id == scene.id
    assert prompt.image.size == (64, 64)
    (turn,) = prompt.turns
    assert turn.role == "user" and turn.image
    assert COMMAND_TEXT[scene.sample.command] in turn.text
    assert f"Speed {format_number(scene.ego.vx)} m/s" in turn.text
    assert f"acceleration {format_number(scene.ego.ax)} m/s2" in turn.text
    assert turn.text.count("(") - turn.text.count("(x") == 4  # history poses
    assert "(+0.00,+0.00,+0.00)\n" in turn.text  # t = 0 closes the history
    assert [m["content"][0] for m in prompt.hf_messages()] == [{"type": "image"}]


def test_history_in_local_frame(scenes):
    scene = next(s for s in scenes if s.ego.history is not None)
    hist = history_poses(scene)
    assert hist.shape == (4, 3)
    expected = global_to_local(np.array([row[:3] for row in scene.ego.history]), ego_origin(scene.ego))
    np.testing.assert_allclose(hist[:3], expected)
    np.testing.assert_array_equal(hist[3], 0.0)
    assert (np.diff(hist[:, 0]) >= -1e-9).all()  # the ego drove forwards into t = 0


def test_history_defaults_to_constant_velocity(shared_scene_path):
    scene = load_scene(shared_scene_path)  # ego at 10 m/s, no history
    np.testing.assert_allclose(history_poses(scene)[:, 0], [-15.0, -10.0, -5.0, 0.0])


def test_text_only_prompt_has_no_image(scenes):
    prompt = build_base_prompt(scenes[0], None)
    assert prompt.images == [] and all(
        part["type"] == "text" for m in prompt.hf_messages() for part in m["content"]
    )


def test_feedback_prompt_extends_base(scenes):
    scene = scenes[1]
    base = build_base_prompt(scene, front_image(scene))
    previous = ground_truth_response(scene)
    fb = build_feedback_prompt(base, previous, "The plan collides with the vehicle ahead.")
    assert fb.kind == "fb" and fb.scene_id == base.scene_id and fb.image is base.image
    assert fb.turns[0] == base.turns[0]
    assert [t.role for t in fb.turns] == ["user", "assistant", "user"]
    assert fb.turns[1].text == previous
    assert "collides" in fb.turns[2].text and FEEDBACK_INSTRUCTION in fb.turns[2].text
    with pytest.raises(ValueError):
        build_feedback_prompt(fb, previous, "again")


@pytest.mark.parametrize(
    ("preset", "image_token"),
    [("tiny-internvl", "<IMG_CONTEXT>"), ("tiny-qwen3vl", "<|image_pad|>"), ("tiny-text", None)],
)
def test_chat_rendering_and_image_tokens(student_dirs, scenes, preset, image_token):
    _, processor, _ = load_student(student_dirs[preset])
    scene = scenes[2]
    image = None if image_token is None else front_image(scene)
    base = build_base_prompt(scene, image)
    fb = build_feedback_prompt(base, ground_truth_response(scene), "Keep a safe distance.")
    base_text, fb_text = chat_texts([base, fb], processor)
    assert base_text.startswith("<|im_start|>user\n") and base_text.endswith("<|im_start|>assistant\n")
    # q_base's user turn is a literal prefix of q_fb
    assert fb_text.startswith(base_text.removesuffix("<|im_start|>assistant\n"))
    inputs = encode_prompts([base, fb], processor)
    assert inputs.input_ids.shape[0] == 2
    assert (inputs.attention_mask[:, -1] == 1).all()  # left padding
    tokenizer = getattr(processor, "tokenizer", processor)
    if image_token is None:
        assert not inputs.extra
        return
    image_id = tokenizer.convert_tokens_to_ids(image_token)
    assert ((inputs.input_ids == image_id).sum(dim=1) == IMAGE_TOKENS).all()
