"""LTX-2 text conditioning after the text encoder: feature extraction and the two per-stream connectors.

Gemma-3-12B returns 49 hidden states per token (embeddings + 48 layers) of width 3840 (``caption_channels``). Both
released versions turn them into per-stream text contexts (paper §3.2) in two steps:

1. features (:mod:`.text_features`): each hidden state is normalised, padded tokens become 0, and the states are
   flattened hidden-major / layer-minor (``3840 · 49 = 188160`` per token), then projected:

   * LTX-2.0 (``per_modality_projections=False``): per-sample range normalisation and one bias-free ``text_proj_in``
     (``188160 → 3840``) whose output feeds both connectors;
   * LTX-2.3 (``per_modality_projections=True``): per-token RMS normalisation, rescaled by ``√(width / 3840)`` per
     stream, and two biased projections ``video_text_proj_in`` (``→ 4096``) and ``audio_text_proj_in`` (``→ 2048``);

2. one connector per stream (:mod:`.text_connector`) at that stream's width: registers in place of padding, N blocks
   of self-attention with 1-D RoPE (per-head output gates in LTX-2.3) and a feed-forward, a final RMSNorm.

Every step is per sample, so a batch (several prompts, or positive and negative prompts together) gives what
one-prompt runs give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .rope import ROPE_TYPES
from .strict_loading import StrictLoadingMixin
from .text_connector import LTX2ConnectorBlock, LTX2TextConnector, connector_rotary, substitute_registers
from .text_features import normalize_text_hidden_states, per_token_rms_features, rescale_for_width

__all__ = [
    "LTX2ConnectorBlock",
    "LTX2TextConnector",
    "LTX2TextConnectors",
    "LTX2TextEmbeddings",
    "connector_rotary",
    "normalize_text_hidden_states",
    "per_token_rms_features",
    "rescale_for_width",
    "substitute_registers",
]

# ----------------------------------------------------------------------------------------------------------------
# Output type
# ----------------------------------------------------------------------------------------------------------------


class LTX2TextEmbeddings(NamedTuple):
    """Per-stream text conditioning, ready for the transformer (and what ``prompt_embeds`` accepts).

    ``video_embeds`` is ``[B, T, Dv]`` and ``audio_embeds`` ``[B, T, Da]``, each at its connector's width
    (:attr:`LTX2TextConnectors.embedding_dims`: 3840 / 3840 for LTX-2.0, 4096 / 2048 for LTX-2.3);
    ``attention_mask`` is ``[B, T]`` int64 with 1 for tokens the transformer may attend to (all ones when the
    connectors use registers).
    """

    video_embeds: torch.Tensor
    audio_embeds: torch.Tensor
    attention_mask: torch.Tensor


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

class LTX2TextConnectors(StrictLoadingMixin, ModelMixin, ConfigMixin, PeftAdapterMixin):
    r"""LTX-2 text feature projection(s) and per-stream connectors (the ``connectors/`` component).

    Loads diffusers-format LTX-2.0 and LTX-2.3 ``connectors/`` folders unchanged (same config keys, defaults and
    parameter names as ``diffusers.pipelines.ltx2.LTX2TextConnectors``). The defaults are the released LTX-2.0 model
    (1,431,475,200 parameters); LTX-2.3 (3,172,227,584) sets ``per_modality_projections=True, proj_bias=True``,
    8 layers, 32 x 128 (video) / 32 x 64 (audio) heads and gated attention. The text encoder is Gemma-3-12B for both.

    Args:
        caption_channels: text-encoder hidden size (3840 for Gemma-3-12B); with ``per_modality_projections=False``
            also the width of both connectors.
        text_proj_in_factor: number of stacked hidden states, i.e. text-encoder layers + 1 (49).
        video_connector_num_attention_heads / video_connector_attention_head_dim: video connector heads x width
            (30 x 128); the product is the video connector's width (``caption_channels``, or ``video_hidden_dim``
            with per-modality projections).
        video_connector_num_layers: blocks in the video connector (2).
        video_connector_num_learnable_registers: registers ``R`` (128); text length must be a multiple of ``R``.
            ``None`` disables the substitution (then both connectors must disable it).
        video_gated_attn: per-head output gates ``2 sigmoid(to_gate_logits(x))`` in the video connector (LTX-2.3).
        audio_connector_*, audio_gated_attn: the same for the audio connector.
        connector_rope_base_seq_len: RoPE normaliser of the token index (4096).
        rope_theta / rope_double_precision / rope_type: RoPE base, float64 frequency grid, layout (``"split"``).
        causal_temporal_positioning: accepted for format compatibility; no LTX-2 connector uses it.
        per_modality_projections: LTX-2.3 features (per-token RMS normalisation, one projection per stream) instead
            of LTX-2.0's (range normalisation, one shared ``text_proj_in``).
        video_hidden_dim / audio_hidden_dim: output widths of the per-modality projections (4096 / 2048); unused
            without them.
        proj_bias: whether the projection(s) have a bias (False for LTX-2.0, True for LTX-2.3).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["LTX2ConnectorBlock"]
    _repeated_blocks = ["LTX2ConnectorBlock"]
    _skip_layerwise_casting_patterns = ["norm"]

    @register_to_config
    def __init__(
        self,
        caption_channels: int = 3840,
        text_proj_in_factor: int = 49,
        video_connector_num_attention_heads: int = 30,
        video_connector_attention_head_dim: int = 128,
        video_connector_num_layers: int = 2,
        video_connector_num_learnable_registers: int | None = 128,
        video_gated_attn: bool = False,
        audio_connector_num_attention_heads: int = 30,
        audio_connector_attention_head_dim: int = 128,
        audio_connector_num_layers: int = 2,
        audio_connector_num_learnable_registers: int | None = 128,
        audio_gated_attn: bool = False,
        connector_rope_base_seq_len: int = 4096,
        rope_theta: float = 10000.0,
        rope_double_precision: bool = True,
        causal_temporal_positioning: bool = False,
        rope_type: str = "split",
        per_modality_projections: bool = False,
        video_hidden_dim: int = 4096,
        audio_hidden_dim: int = 2048,
        proj_bias: bool = False,
    ) -> None:
        super().__init__()
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}.")
        if text_proj_in_factor < 1:
            raise ValueError(f"text_proj_in_factor must be the number of stacked hidden states (>= 1), got "
                             f"{text_proj_in_factor}.")
        streams = {
            "video": (video_connector_num_attention_heads, video_connector_attention_head_dim,
                      video_connector_num_layers, video_connector_num_learnable_registers, video_gated_attn),
            "audio": (audio_connector_num_attention_heads, audio_connector_attention_head_dim,
                      audio_connector_num_layers, audio_connector_num_learnable_registers, audio_gated_attn),
        }
        widths = {"video": video_hidden_dim, "audio": audio_hidden_dim} if per_modality_projections else {
            "video": caption_channels, "audio": caption_channels}
        for name, (heads, head_dim, _, registers, _) in streams.items():
            if heads * head_dim != widths[name]:
                source = (f"{name}_hidden_dim={widths[name]} (the {name} projection's output)"
                          if per_modality_projections else
                          f"caption_channels={caption_channels} (per_modality_projections=False: both connectors "
                          f"read the shared text_proj_in output)")
                raise ValueError(f"{name} connector width {heads} x {head_dim} = {heads * head_dim} must equal "
                                 f"{source}.")
            if registers is not None and registers < 1:
                raise ValueError(f"{name}_connector_num_learnable_registers must be positive or None, got "
                                 f"{registers}.")
        if (video_connector_num_learnable_registers is None) != (audio_connector_num_learnable_registers is None):
            raise ValueError("Both connectors must use learnable registers, or neither: got "
                             f"{video_connector_num_learnable_registers} (video) and "
                             f"{audio_connector_num_learnable_registers} (audio).")

        features = caption_channels * text_proj_in_factor
        if per_modality_projections:
            self.video_text_proj_in = nn.Linear(features, video_hidden_dim, bias=proj_bias)
            self.audio_text_proj_in = nn.Linear(features, audio_hidden_dim, bias=proj_bias)
        else:
            self.text_proj_in = nn.Linear(features, caption_channels, bias=proj_bias)
        rope = dict(rope_max_position=connector_rope_base_seq_len, rope_theta=rope_theta,
                    rope_double_precision=rope_double_precision, rope_type=rope_type)
        self.video_connector = LTX2TextConnector(*streams["video"][:4], gated_attention=video_gated_attn, **rope)
        self.audio_connector = LTX2TextConnector(*streams["audio"][:4], gated_attention=audio_gated_attn, **rope)

    # ------------------------------------------------------------------------------------------------------------
    # Properties used by the prompt encoder
    # ------------------------------------------------------------------------------------------------------------

    @property
    def num_text_encoder_layers(self) -> int:
        """Transformer layers the text encoder must have (stacked hidden states minus the embedding output)."""
        return self.config.text_proj_in_factor - 1

    @property
    def register_multiple(self) -> int:
        """Text lengths must be a multiple of this (the register count of both connectors; 1 without registers)."""
        counts = [c.num_learnable_registers or 1 for c in (self.video_connector, self.audio_connector)]
        return math.lcm(*counts)

    @property
    def embedding_dims(self) -> tuple[int, int]:
        """Widths ``(video, audio)`` of the embeddings (the transformer's text-context widths)."""
        return self.video_connector.inner_dim, self.audio_connector.inner_dim

    # ------------------------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------------------------

    def _stacked(
        self, hidden_states: torch.Tensor | Sequence[torch.Tensor], attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Checks the inputs; returns ``[B, T, D, L]`` hidden states and ``[B, T]`` bool validity."""
        c = self.config
        width, layers = c.caption_channels, c.text_proj_in_factor
        expected = (f"{layers} stacked hidden states of width {width} (a text encoder with hidden size {width} and "
                    f"{layers - 1} layers, e.g. Gemma-3-12B for the released model)")
        if isinstance(hidden_states, (list, tuple)):
            if len(hidden_states) != layers:
                raise ValueError(f"text_encoder_hidden_states must be {expected}; got {len(hidden_states)} states.")
            hidden_states = torch.stack(tuple(hidden_states), dim=-1)  # [B, T, D, L]
        if not isinstance(hidden_states, torch.Tensor) or hidden_states.ndim not in (3, 4):
            raise ValueError(f"text_encoder_hidden_states must be [B, T, {width}, {layers}] or [B, T, "
                             f"{width * layers}] ({expected}).")
        if hidden_states.ndim == 3:
            if hidden_states.shape[-1] != width * layers:
                raise ValueError(f"text_encoder_hidden_states must be [B, T, {width * layers}] ({expected}); got "
                                 f"{tuple(hidden_states.shape)}.")
            hidden_states = hidden_states.unflatten(2, (width, layers))  # packed hidden-major / layer-minor
        if hidden_states.shape[2:] != (width, layers):
            raise ValueError(f"text_encoder_hidden_states must be {expected}; got shape "
                             f"{tuple(hidden_states.shape)}.")
        batch, tokens = hidden_states.shape[:2]
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != (batch, tokens):
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else attention_mask
            raise ValueError(f"attention_mask must be a [{batch}, {tokens}] tensor (1 = token, 0 = padding), got "
                             f"{shape}.")
        multiple = self.register_multiple
        if tokens % multiple:
            raise ValueError(f"The text length {tokens} must be a multiple of the connectors' {multiple} learnable "
                             f"registers: tokenize with max_sequence_length a multiple of {multiple} (e.g. "
                             f"{multiple * max(1, round(tokens / multiple))}).")
        valid = (attention_mask if attention_mask.dtype == torch.bool else attention_mask > 0.5).to(
            hidden_states.device)
        finite = torch.isfinite(hidden_states).flatten(2).all(dim=-1)  # [B, T]; padded tokens may hold anything
        if not bool((finite | ~valid).all()):
            raise ValueError("text_encoder_hidden_states hold inf/NaN values at unpadded tokens: run the text encoder "
                             "in bfloat16 or float32 (float16 overflows in Gemma-3), or check the inputs.")
        return hidden_states, valid

    def project_text_features(
        self,
        text_encoder_hidden_states: torch.Tensor | Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        scale_factor: float = 8.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The connectors' inputs: video ``[B, T, Dv]`` and audio ``[B, T, Da]`` projected features (the same tensor
        for LTX-2.0) and the ``[B, T]`` bool validity (inputs as in :meth:`forward`)."""
        hidden_states, valid = self._stacked(text_encoder_hidden_states, attention_mask)
        c = self.config
        if not c.per_modality_projections:
            features = normalize_text_hidden_states(hidden_states, valid, scale_factor)  # [B, T, D * L]
            projected = self.text_proj_in(features.to(self.text_proj_in.weight.dtype))  # [B, T, D]
            return projected, projected, valid
        features = per_token_rms_features(hidden_states, valid)  # [B, T, D * L]
        video, audio = (
            projection(rescale_for_width(features, projection.out_features, c.caption_channels)
                       .to(projection.weight.dtype))
            for projection in (self.video_text_proj_in, self.audio_text_proj_in)
        )
        return video, audio, valid  # [B, T, Dv], [B, T, Da], [B, T]

    def forward(
        self,
        text_encoder_hidden_states: torch.Tensor | Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        padding_side: str = "left",
        scale_factor: float = 8.0,
    ) -> LTX2TextEmbeddings:
        r"""Turns text-encoder hidden states into the video and audio streams' text conditioning.

        Args:
            text_encoder_hidden_states: all hidden states of the text encoder (embedding output first), as a
                sequence of ``L = text_proj_in_factor`` tensors ``[B, T, D]``, stacked ``[B, T, D, L]``, or packed
                hidden-major ``[B, T, D * L]`` (the diffusers pipeline's ``prompt_embeds`` layout).
            attention_mask: ``[B, T]``, 1 for tokens and 0 for padding. ``T`` must be a multiple of the register
                count.
            padding_side: accepted for compatibility with diffusers; the mask alone decides which tokens are valid,
                so left and right padding both work.
            scale_factor: the LTX-2.0 normalisation's scale (8); unused with per-modality projections.

        Returns:
            :class:`LTX2TextEmbeddings` ``(video_embeds, audio_embeds, attention_mask)``; a batch gives exactly what
            one-sample calls give.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
        video, audio, valid = self.project_text_features(text_encoder_hidden_states, attention_mask, scale_factor)
        video, video_valid = self.video_connector(video, valid)  # [B, T, Dv]
        audio, _ = self.audio_connector(audio, valid)  # [B, T, Da]
        return LTX2TextEmbeddings(video, audio, video_valid.to(torch.int64))
