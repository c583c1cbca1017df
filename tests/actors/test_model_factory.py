"""init-model: tiny presets saved in Hugging Face format load back offline; paper presets link a folder."""

from __future__ import annotations

import json

import pytest
import torch

from actors.encoding import encode_prompts
from actors.model_factory import MARKER, load_student, read_student_info
from actors.prompts import build_base_prompt, front_image
from actors.response import RESPONSE_TAGS, ground_truth_response
from actors.tokenizer import pre_tokenizer
from tests.actors.conftest import init_model_cli

PRESET_CLASSES = {
    "tiny-internvl": "InternVLForConditionalGeneration",
    "tiny-qwen3vl": "Qwen3VLForConditionalGeneration",
    "tiny-text": "Qwen3ForCausalLM",
}


@pytest.mark.parametrize("preset", list(PRESET_CLASSES))
def test_from_pretrained_round_trip(student_dirs, scenes, preset, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = student_dirs[preset]
    info = read_student_info(path)
    assert info.preset == preset and 1_000_000 < info.parameters < 10_000_000
    auto = AutoModelForCausalLM if preset == "tiny-text" else AutoModelForImageTextToText
    model = auto.from_pretrained(path, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert type(model).__name__ == PRESET_CLASSES[preset]
    assert sum(p.numel() for p in model.parameters()) == info.parameters
    assert (
        model.generation_config.eos_token_id
        == tokenizer.eos_token_id
        == tokenizer.convert_tokens_to_ids("<|im_end|>")
    )

    student, processor, loaded_preset = load_student(path)
    assert loaded_preset == preset
    scene = scenes[3]
    prompt = build_base_prompt(scene, None if preset == "tiny-text" else front_image(scene))
    inputs = encode_prompts([prompt], processor).forward_kwargs()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, student(**inputs).logits)


@pytest.mark.parametrize("preset", list(PRESET_CLASSES))
def test_tokenizer_is_lossless_and_compact(student_dirs, scenes, preset):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(student_dirs[preset], local_files_only=True)
    for scene in scenes:
        text = ground_truth_response(scene)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert len(ids) < 130, len(ids)  # ~80 once the vocabulary is trained on a few hundred scenes
    for tag in RESPONSE_TAGS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1


def test_pretokenizer_splits_numbers_at_the_point():
    pieces = [p for p, _ in pre_tokenizer().pre_tokenize_str("(+4.95,-0.02,+0.00)(-12.30,+1.50,-3.14)")]
    assert pieces == ["(+4", ".95,", "-0", ".02,", "+0", ".00)", "(-12", ".30,", "+1", ".50,", "-3", ".14)"]


def test_command_presets_match_the_factory():
    from actors.model_factory import PRESETS, TINY_PRESETS
    from cluster.commands import init_model

    assert init_model.TINY == TINY_PRESETS and set(init_model.TINY + init_model.PAPER) == set(PRESETS)


def test_init_model_refuses_bad_arguments(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert init_model_cli("--preset", "tiny-text", "--out", str(tmp_path / "full")) == 2
    assert "not empty" in capsys.readouterr().err
    assert init_model_cli("--preset", "internvl3-8b", "--out", str(tmp_path / "a")) == 2
    assert "--from" in capsys.readouterr().err
    assert init_model_cli("--preset", "tiny-text", "--from", str(tmp_path), "--out", str(tmp_path / "b")) == 2


def test_paper_preset_links_a_local_folder(tmp_path, capsys):
    source = tmp_path / "InternVL3-8B-hf"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "internvl"}))
    (source / "model.safetensors").write_bytes(b"weights")
    out = tmp_path / "student"
    assert init_model_cli("--preset", "internvl3-8b", "--from", str(source), "--out", str(out)) == 0
    assert (out / "model.safetensors").is_symlink() and (out / "model.safetensors").read_bytes() == b"weights"
    info = read_student_info(out)
    assert info.preset == "internvl3-8b" and info.source == str(source.resolve())
    assert (out / MARKER).is_file() and not (source / MARKER).exists()

    wrong = tmp_path / "qwen"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    assert (
        init_model_cli("--preset", "internvl3-8b", "--from", str(wrong), "--out", str(tmp_path / "o2")) == 2
    )
    assert "model_type" in capsys.readouterr().err
