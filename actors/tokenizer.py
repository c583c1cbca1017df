"""The tiny students' tokenizer: a byte-level BPE trained locally on the prompt/response corpus.

Numbers dominate the targets (24 per trajectory), so how they are cut decides both sequence length and how
easily a small model counts fields. The pre-tokenizer cuts every signed number in two pieces, the signed
integer part and the fraction, and glues the pose punctuation to them:

    (+4.95,+0.02,+0.00)  ->  "(+4" ".95," "+0" ".02," "+0" ".00)"

so BPE may merge inside a piece but never across a number's decimal point or across two fields. A pose is
then 6 tokens once the pieces are in the vocabulary (48 per trajectory instead of ~100 with digit-level
splits), and every pose has the same token pattern. This departs from PITFALLS' measured tokenizer, which
kept whole signed numbers (39 tokens per trajectory) but learnt merges such as `,(+13.` that let the model
skip a field or miscount repeated poses; the fixed piece structure trades ~9 tokens for that robustness.

The response tags (`<think>` ...) are added tokens, so they are always one token each and never merged
with their neighbours; the chat and image tokens of each model family are special tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from actors.prompts import (
    CHAT_END,
    CHAT_START,
    END_OF_TEXT,
    ModelFamily,
    base_user_text,
    chat_template,
    feedback_user_text,
)
from actors.response import RESPONSE_TAGS, ground_truth_response
from driving.scene import Scene

DEFAULT_VOCAB_SIZE = 1024
MODEL_MAX_LENGTH = 2048  # [tokens] prompts are ~150, q_fb ~300

# Alternatives, first match wins at each position: signed integer part (with a pose's opening bracket),
# fraction (with the separator after it), words, unsigned integers, other punctuation runs, white space.
PRETOKENIZE_PATTERN = (
    r"\(?[+-]\d+"
    r"|\.\d+[,)]?"
    r"| ?[A-Za-z_]+"
    r"| ?\d+"
    r"| ?[^\sA-Za-z\d+\-.(]+"
    r"|[+\-.(]"
    r"|\s+(?!\S)|\s+"
)

# Named special tokens of each family, as its processor reads them off the tokenizer.
FAMILY_TOKENS: dict[ModelFamily, dict[str, str]] = {
    "internvl": {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    },
    "qwen3vl": {
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>",
    },
    "text": {},
}
# Feedback-like sentences so the corpus has the words of q_fb before any teacher has spoken.
_FEEDBACK_EXAMPLES = (
    "The plan collides with the vehicle ahead. Decelerate and keep a safe distance.",
    "The plan leaves the drivable area. Keep the lane and follow the road.",
    "Good plan: safe, comfortable and progressing along the route.",
)


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def corpus_texts(scenes: Iterable[Scene]) -> list[str]:
    """Per scene: the chat of q_base with its ground-truth answer, and a feedback turn."""
    texts = []
    for i, scene in enumerate(scenes):
        answer = ground_truth_response(scene)
        feedback = feedback_user_text(_FEEDBACK_EXAMPLES[i % len(_FEEDBACK_EXAMPLES)])
        texts.append(
            f"user\n{base_user_text(scene)}\nassistant\n{answer}\nuser\n{feedback}\nassistant\n{answer}"
        )
    return texts


def special_tokens(family: ModelFamily) -> list[str]:
    return [END_OF_TEXT, CHAT_START, CHAT_END, *FAMILY_TOKENS[family].values()]


def train_tokenizer(
    texts: Sequence[str], family: ModelFamily, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train the BPE on `texts` and wrap it with the family's special tokens and chat template."""
    specials = special_tokens(family)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizer()
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    raw.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    raw.add_tokens([AddedToken(t, special=False, normalized=False) for t in RESPONSE_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token=CHAT_END,
        pad_token=END_OF_TEXT,
        extra_special_tokens=FAMILY_TOKENS[family] or None,
        chat_template=chat_template(family),
        padding_side="left",
        model_max_length=MODEL_MAX_LENGTH,
    )
