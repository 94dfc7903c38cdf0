"""Tiny, deterministic, fully offline Gemma-3 text encoder and tokenizer (tests, demos, CI).

The real text encoder is Gemma-3-12B (``Gemma3ForConditionalGeneration``, 24 GB) with a gated download. These
builders give the same classes at a few ten-thousand parameters, with no network and no tokenizer file: the
tokenizer is transformers' tokenizers-backed ``GemmaTokenizer`` built in memory from a byte-fallback vocabulary
(special tokens, the 256 ``<0xNN>`` byte tokens and printable ASCII characters; every string is encodable).
"""

from __future__ import annotations

import string
from typing import Any

import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GemmaTokenizer,
    SiglipVisionConfig,
)

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁", which Gemma's tokenizer puts in place of spaces


def tiny_gemma_vocab() -> dict[str, int]:
    """Token -> id: special tokens, byte-fallback tokens, then the word boundary and printable ASCII characters."""
    tokens = list(SPECIAL_TOKENS) + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [WORD_BOUNDARY] + [c for c in string.ascii_letters + string.digits + string.punctuation]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def tiny_gemma_tokenizer() -> GemmaTokenizer:
    """An in-memory Gemma tokenizer (left padding, ``<bos>`` prepended, ``<pad>`` defined); no files needed."""
    tokenizer = GemmaTokenizer(vocab=tiny_gemma_vocab(), merges=[], add_bos_token=True)
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_gemma3(
    hidden_size: int = 32,
    num_layers: int = 2,
    vocab_size: int | None = None,
    seed: int = 0,
    **text_config: Any,  # noqa: ANN401
) -> Gemma3ForConditionalGeneration:
    """A random-weight ``Gemma3ForConditionalGeneration`` with the real structure (text model + SigLIP tower).

    Args:
        hidden_size / num_layers: text-model width and depth; a matching ``LTX2TextConnectors`` needs
            ``caption_channels=hidden_size`` and ``text_proj_in_factor=num_layers + 1``.
        vocab_size: defaults to the size of :func:`tiny_gemma_tokenizer`'s vocabulary.
        seed: the weights depend on this seed only (the global RNG is left untouched).
        text_config: further ``Gemma3TextConfig`` overrides.
    """
    if hidden_size % 2:
        raise ValueError(f"hidden_size must be even (2 attention heads), got {hidden_size}.")
    settings = dict(
        vocab_size=vocab_size or len(tiny_gemma_vocab()),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden_size // 2,
        max_position_embeddings=4096,
        sliding_window=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    settings.update(text_config)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    config = Gemma3Config(text_config=Gemma3TextConfig(**settings).to_dict(), vision_config=vision.to_dict(),
                          mm_tokens_per_image=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
    return model.eval()


def tiny_connectors_config(hidden_size: int = 32, num_layers: int = 2, num_registers: int = 8) -> dict[str, Any]:
    """``LTX2TextConnectors`` keyword arguments matching :func:`tiny_gemma3` (two heads per connector)."""
    return dict(
        caption_channels=hidden_size,
        text_proj_in_factor=num_layers + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=hidden_size // 2,
        video_connector_num_learnable_registers=num_registers,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=hidden_size // 2,
        audio_connector_num_learnable_registers=num_registers,
    )


def tiny_ltx23_connectors_config(
    hidden_size: int = 32,
    num_layers: int = 2,
    num_registers: int = 8,
    video_hidden_dim: int = 48,
    audio_hidden_dim: int = 16,
) -> dict[str, Any]:
    """LTX-2.3-style ``LTX2TextConnectors`` keyword arguments matching :func:`tiny_gemma3`: per-token RMS features,
    biased per-stream projections to ``video_hidden_dim`` / ``audio_hidden_dim`` (two heads each), gated attention,
    split RoPE."""
    if video_hidden_dim % 4 or audio_hidden_dim % 4:
        raise ValueError(f"video_hidden_dim and audio_hidden_dim must be multiples of 4 (two heads with split RoPE), "
                         f"got {video_hidden_dim} and {audio_hidden_dim}.")
    return dict(
        tiny_connectors_config(hidden_size, num_layers, num_registers),
        video_connector_attention_head_dim=video_hidden_dim // 2,
        audio_connector_attention_head_dim=audio_hidden_dim // 2,
        video_gated_attn=True,
        audio_gated_attn=True,
        rope_type="split",
        per_modality_projections=True,
        video_hidden_dim=video_hidden_dim,
        audio_hidden_dim=audio_hidden_dim,
        proj_bias=True,
    )
