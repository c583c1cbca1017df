"""Student models: tiny random-init presets built from configs, paper-scale presets from local folders.

    tiny-internvl   InternVLForConditionalGeneration: text Qwen2 (hidden 192, 4 layers, 4 heads, MLP 512),
                    vision hidden 96, 2 layers, patch 8 on 64×64 images -> 16 image tokens (pixel shuffle 0.5).
                    The embedded default student (PITFALLS: it learns image-dependent driving in minutes).
    tiny-qwen3vl    Qwen3VLForConditionalGeneration of a similar size (head_dim 64, M-RoPE 12/10/10),
                    64×64 images -> 8×8 patches of 8 px merged 2×2 -> 16 image tokens.
    tiny-text       Qwen3ForCausalLM (head_dim 64, a head size vLLM's CPU attention supports); its prompts
                    leave the image out. For the vLLM-CPU tests, which cannot run multimodal models here.
    internvl3-8b, qwen3-vl-8b
                    paper scale: a Hugging Face folder already on disk (`--from DIR`); nothing is downloaded.

Every student folder holds the model, tokenizer and (for VLMs) processor in Hugging Face format plus
`elf_vla_student.json`, which names the preset, so `load_student(dir)` knows which classes to use.
Processors are built directly from the PIL image processors (no torchvision, which is broken with this
torch; PITFALLS) and without a video processor.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from actors.prompts import ModelFamily
from driving.scene import Scene

Preset = Literal["tiny-internvl", "tiny-qwen3vl", "tiny-text", "internvl3-8b", "qwen3-vl-8b"]
PRESETS: tuple[str, ...] = get_args(Preset)
TINY_PRESETS = ("tiny-internvl", "tiny-qwen3vl", "tiny-text")
FAMILY: dict[str, ModelFamily] = {
    "tiny-internvl": "internvl",
    "tiny-qwen3vl": "qwen3vl",
    "tiny-text": "text",
    "internvl3-8b": "internvl",
    "qwen3-vl-8b": "qwen3vl",
}
# model_type in config.json of each paper-scale preset's folder
PAPER_MODEL_TYPES = {"internvl3-8b": "internvl", "qwen3-vl-8b": "qwen3_vl"}
MARKER = "elf_vla_student.json"

IMAGE_PX = 64  # [px] tiny students' camera (driving.camera TINY_CAMERA)
PATCH_PX = 8
IMAGE_TOKENS = (IMAGE_PX // PATCH_PX) ** 2 // 4  # 16: pixel shuffle 0.5 / 2×2 merge
TEXT = {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512}
MAX_POSITIONS = 2048


@dataclass(frozen=True)
class StudentInfo:
    """The content of `elf_vla_student.json`."""

    preset: str
    family: str
    vocab_size: int
    parameters: int
    source: str | None = None  # the folder a paper-scale preset came from


# ------------------------------------------------------------------------------------ configs ---


def tiny_config(preset: str, tokenizer: Any) -> Any:
    """The transformers config of a tiny preset, sized to `tokenizer`'s vocabulary and special tokens."""
    from transformers import InternVLConfig, Qwen3Config, Qwen3VLConfig

    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
        "max_position_embeddings": MAX_POSITIONS,
    }
    if preset == "tiny-internvl":
        vision = {
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 384,
            "image_size": [IMAGE_PX, IMAGE_PX],
            "patch_size": [PATCH_PX, PATCH_PX],
        }
        text = {"model_type": "qwen2", "num_key_value_heads": 4, "tie_word_embeddings": False, **TEXT, **ids}
        return InternVLConfig(
            vision_config=vision,
            text_config=text,
            image_token_id=tokenizer.context_image_token_id,
            image_seq_length=IMAGE_TOKENS,
            downsample_ratio=0.5,
            tie_word_embeddings=False,
        )
    if preset == "tiny-qwen3vl":
        vision = {
            "depth": 2,
            "hidden_size": 96,
            "intermediate_size": 384,
            "num_heads": 4,
            "patch_size": PATCH_PX,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": TEXT["hidden_size"],
            "num_position_embeddings": (IMAGE_PX // PATCH_PX) ** 2,
            "deepstack_visual_indexes": [1],
        }
        rope = {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [12, 10, 10],
            "mrope_interleaved": True,
        }
        text = {"num_key_value_heads": 2, "head_dim": 64, "rope_parameters": rope, **TEXT, **ids}
        return Qwen3VLConfig(
            vision_config=vision,
            text_config=text,
            image_token_id=tokenizer.image_token_id,
            video_token_id=tokenizer.video_token_id,
            vision_start_token_id=tokenizer.vision_start_token_id,
            vision_end_token_id=tokenizer.vision_end_token_id,
            tie_word_embeddings=False,
        )
    if preset == "tiny-text":
        return Qwen3Config(num_key_value_heads=2, head_dim=64, tie_word_embeddings=False, **TEXT, **ids)
    raise ValueError(f"{preset!r} is not a tiny preset; tiny presets: {', '.join(TINY_PRESETS)}")


def build_processor(family: ModelFamily, tokenizer: Any, image_processor: Any = None) -> Any:
    """The family's processor around `tokenizer` (the tokenizer itself for text-only students), with the
    tiny students' image processor unless `image_processor` is given."""
    from actors.prompts import chat_template

    if family == "text":
        return tokenizer
    if family == "internvl":
        from transformers import GotOcr2ImageProcessorPil, InternVLProcessor

        images = image_processor or GotOcr2ImageProcessorPil(
            size={"height": IMAGE_PX, "width": IMAGE_PX},
            crop_to_patches=False,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
        return _without_video(InternVLProcessor)(
            image_processor=images,
            tokenizer=tokenizer,
            image_seq_length=IMAGE_TOKENS,
            chat_template=chat_template(family),
        )
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLProcessor

    pixels = IMAGE_PX * IMAGE_PX
    images = image_processor or Qwen2VLImageProcessorPil(
        min_pixels=pixels,
        max_pixels=pixels,
        patch_size=PATCH_PX,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return _without_video(Qwen3VLProcessor)(
        image_processor=images, tokenizer=tokenizer, chat_template=chat_template(family)
    )


def _without_video(processor_class: type) -> type:
    """`processor_class` with no video processor in its signature. Without torchvision, transformers does
    not export `VideoProcessorMixin`, and a processor whose __init__ names `video_processor` fails its
    argument check even for None. The subclass keeps the parent's name and the rest of its signature (which
    decides what `save_pretrained` writes), so the saved `processor_config.json` is the real class's, and
    AutoProcessor resolves it where torchvision works."""

    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        processor_class.__init__(self, image_processor, tokenizer, None, **kwargs)

    signature = inspect.signature(processor_class.__init__)
    params = [p for name, p in signature.parameters.items() if name != "video_processor"]
    __init__.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return type(processor_class.__name__, (processor_class,), {"__init__": __init__})


def _model_class(family: ModelFamily) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForCausalLM if family == "text" else AutoModelForImageTextToText


# ------------------------------------------------------------------------------------ init-model ---


@dataclass(frozen=True)
class InitReport:
    out: str
    preset: str
    parameters: int
    vocab_size: int
    corpus_scenes: int
    seconds: float  # [s] wall time of the tokenizer training, model build and save


def generated_scenes(count: int, seed: int) -> list[Scene]:
    """`count` synthetic scenes of the default family mix: the tokenizer's corpus."""
    from driving.dataset import scene_id, scene_seed
    from driving.generator import generate_scene, sample_families

    families = sample_families(count, seed, None)
    return [generate_scene(f, scene_seed(seed, i), scene_id(seed, i)) for i, f in enumerate(families)]


def init_tiny(preset: str, out: str | Path, scenes: list[Scene], seed: int = 0) -> InitReport:
    """Train the tokenizer on `scenes`, build the random-init model, save everything into `out`."""
    import torch
    from transformers import GenerationConfig

    from actors.tokenizer import corpus_texts, train_tokenizer

    start = time.perf_counter()
    family = FAMILY[preset]
    tokenizer = train_tokenizer(corpus_texts(scenes), family)
    torch.manual_seed(seed)
    config = tiny_config(preset, tokenizer)
    model = _model_class(family).from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(family, tokenizer).save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    _write_marker(out, StudentInfo(preset, family, len(tokenizer), params))
    return InitReport(str(out), preset, params, len(tokenizer), len(scenes), time.perf_counter() - start)


def init_from_folder(preset: str, source: str | Path, out: str | Path) -> InitReport:
    """A paper-scale student: `out` links every file of the local HF folder `source` and names the preset."""
    start = time.perf_counter()
    source, out = Path(source).resolve(), Path(out)
    config_file = source / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{source}: no config.json; --from must be a local Hugging Face model folder")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != PAPER_MODEL_TYPES[preset]:
        raise ValueError(
            f"{source}: model_type is {model_type!r}; preset {preset} needs {PAPER_MODEL_TYPES[preset]!r}"
        )
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = out / item.name
        if item.name != MARKER and not target.exists():
            target.symlink_to(item)  # an 8B checkpoint is ~16 GB: link, don't copy
    _write_marker(out, StudentInfo(preset, FAMILY[preset], vocab_size=0, parameters=0, source=str(source)))
    return InitReport(str(out), preset, 0, 0, 0, time.perf_counter() - start)


def _write_marker(out: Path, info: StudentInfo) -> None:
    (out / MARKER).write_text(json.dumps(asdict(info), indent=2) + "\n")


def read_student_info(path: str | Path) -> StudentInfo:
    marker = Path(path) / MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"{path}: no {MARKER}; create the folder with `elf-vla init-model`")
    return StudentInfo(**json.loads(marker.read_text()))


def load_student(path: str | Path, dtype: Any = None) -> tuple[Any, Any, str]:
    """(model in eval mode, processor — or tokenizer for text-only students —, preset) from a student folder.
    Offline: everything comes from `path`. `dtype` defaults to float32 (bfloat16 suits paper scale)."""
    import torch

    info = read_student_info(path)
    family: ModelFamily = FAMILY[info.preset]
    model = _model_class(family).from_pretrained(path, dtype=dtype or torch.float32, local_files_only=True)
    model.eval()
    return model, load_processor(path), info.preset


def load_processor(path: str | Path) -> Any:
    """The processor (the tokenizer for text-only students) of a student folder, without the model: what
    the controller needs to build training batches."""
    from transformers import AutoTokenizer

    family: ModelFamily = FAMILY[read_student_info(path).preset]
    if family == "text":
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    return _load_processor(path, family)


def _load_processor(path: str | Path, family: ModelFamily) -> Any:
    """The VLM processor without its video processor: AutoProcessor would build one, and video
    processors need torchvision (PITFALLS)."""
    from transformers import AutoTokenizer, GotOcr2ImageProcessorPil, Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    image_class = GotOcr2ImageProcessorPil if family == "internvl" else Qwen2VLImageProcessorPil
    images = image_class.from_pretrained(path, local_files_only=True)
    processor = build_processor(family, tokenizer, images)
    processor_file = Path(path) / "processor_config.json"
    saved = json.loads(processor_file.read_text()) if processor_file.is_file() else {}
    if "image_seq_length" in saved:
        processor.image_seq_length = saved["image_seq_length"]
    processor.chat_template = tokenizer.chat_template or processor.chat_template
    return processor
