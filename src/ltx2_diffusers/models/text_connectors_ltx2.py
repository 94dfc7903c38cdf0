"""LTX-2.0 text conditioning after the text encoder: multi-layer features and the two per-stream connectors.

Gemma-3-12B returns 49 hidden states per token (embeddings + 48 layers). LTX-2.0 turns them into one 3840-wide
feature per token (paper §3.2):

1. per sample and per hidden state ``l``, the valid tokens' mean ``μ`` and range ``r = max − min`` (over tokens and
   channels) normalise the state to ``8 (x − μ) / (r + 1e-6)``; padded tokens become 0;
2. the states are flattened hidden-major / layer-minor (feature index ``d · L + l``) and projected by the bias-free
   ``text_proj_in`` (``3840 · 49 → 3840``).

The same feature feeds two connectors, one per stream (video, audio). Each connector moves the valid tokens to the
front (order kept) and fills every remaining position ``p`` with the learnable register ``p mod R`` ("thinking
tokens"), then runs N blocks of full self-attention (q/k RMSNorm, split 1-D RoPE over the token index) and a
GELU-tanh feed-forward, and a final RMSNorm. After the substitution every token is valid, so the transformer gets an
all-ones text mask.

Unlike the reference implementation, every step here is per sample, so a batch (several prompts, or positive and
negative prompts together) gives what one-prompt runs give.

The file reads bottom-up: pure functions -> connector block -> connector -> model.
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

from .layers import FeedForward, LTX2Attention, rms_norm
from .rope import ROPE_TYPES, RotaryTable, rope_angles, rope_frequencies, rotary_table

# ----------------------------------------------------------------------------------------------------------------
# Output type
# ----------------------------------------------------------------------------------------------------------------


class LTX2TextEmbeddings(NamedTuple):
    """Per-stream text conditioning, ready for the transformer (and what ``prompt_embeds`` accepts).

    ``video_embeds`` / ``audio_embeds`` are ``[B, T, caption_channels]``; ``attention_mask`` is ``[B, T]`` int64 with
    1 for tokens the transformer may attend to (all ones when the connectors use registers).
    """

    video_embeds: torch.Tensor
    audio_embeds: torch.Tensor
    attention_mask: torch.Tensor


# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def normalize_text_hidden_states(
    hidden_states: torch.Tensor, valid: torch.Tensor, scale: float = 8.0, eps: float = 1e-6
) -> torch.Tensor:
    """LTX-2.0 feature normalisation: per sample and hidden state, ``scale (x − μ) / (range + eps)`` over valid tokens.

    Args:
        hidden_states: ``[B, T, D, L]`` stacked text-encoder hidden states.
        valid: ``[B, T]`` bool, True for real (non-padding) tokens.

    Returns:
        ``[B, T, D * L]`` features, hidden-major / layer-minor (index ``d * L + l``), zero at padded tokens; float32
        for half-precision inputs (the count promotes the mean), which the caller casts back, as the reference does.
    """
    batch, tokens, width, layers = hidden_states.shape
    keep = valid[:, :, None, None]  # [B, T, 1, 1]
    count = valid.sum(dim=1) * width  # [B] int64: values per hidden state
    total = hidden_states.masked_fill(~keep, 0.0).sum(dim=(1, 2), keepdim=True)  # [B, 1, 1, L]
    # eps in this denominator too, and a float32 (or wider) mean for half-precision inputs: as the reference
    mean = total / (count.view(batch, 1, 1, 1) + eps)
    low = hidden_states.masked_fill(~keep, float("inf")).amin(dim=(1, 2), keepdim=True)  # [B, 1, 1, L]
    high = hidden_states.masked_fill(~keep, float("-inf")).amax(dim=(1, 2), keepdim=True)
    normalized = scale * (hidden_states - mean) / (high - low + eps)
    return normalized.flatten(2).masked_fill(~valid[:, :, None], 0.0)  # [B, T, D * L]


def substitute_registers(
    hidden_states: torch.Tensor, valid: torch.Tensor, registers: torch.Tensor
) -> torch.Tensor:
    """Valid tokens to the front (in order), register ``p mod R`` at every remaining position ``p``; per sample.

    Args:
        hidden_states: ``[B, T, D]`` token features.
        valid: ``[B, T]`` bool.
        registers: ``[R, D]`` learnable registers; ``T`` must be a multiple of ``R``.
    """
    batch, tokens, width = hidden_states.shape
    tiled = registers.to(hidden_states.dtype).repeat(tokens // registers.shape[0], 1)  # [T, D], row p = reg[p % R]
    # A stable sort on "is padding" lists each sample's valid positions first, in their original order.
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices  # [B, T]
    front = hidden_states.gather(1, order[..., None].expand(-1, -1, width))  # [B, T, D]
    filled = torch.arange(tokens, device=valid.device)[None] < valid.sum(dim=1, keepdim=True)  # [B, T]
    return torch.where(filled[..., None], front, tiled[None])


def connector_rotary(
    tokens: int,
    inner_dim: int,
    num_heads: int,
    max_position: float,
    theta: float,
    double_precision: bool,
    rope_type: str,
    dtype: torch.dtype,
    device: torch.device,
) -> RotaryTable:
    """1-D RoPE over the token index ``p = 0 … T−1`` (normalised ``2 p / max_position − 1``), shared by the batch.

    The connector uses the bare index, not the centre of a ``[p, p+1)`` interval as the video/audio streams do.
    """
    index = torch.arange(tokens, dtype=torch.float32, device=device)
    coords = torch.stack((index, index), dim=-1).view(1, 1, tokens, 2)  # [1, 1, T, 2] degenerate intervals
    freqs = rope_frequencies(1, inner_dim, theta, double_precision)
    angles = rope_angles(coords, (max_position,), freqs)  # [1, T, inner/2]
    return rotary_table(angles, inner_dim, num_heads, rope_type, dtype)


# ----------------------------------------------------------------------------------------------------------------
# Connector block and connector
# ----------------------------------------------------------------------------------------------------------------


class LTX2ConnectorBlock(nn.Module):
    """Pre-norm block: ``x += Attn(RMS(x))`` then ``x += FF(RMS(x))`` (parameter-free RMSNorms)."""

    def __init__(self, dim: int, heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.attn1 = LTX2Attention(dim, heads, head_dim, eps=eps)
        self.ff = FeedForward(dim)

    def forward(
        self, hidden_states: torch.Tensor, rotary: RotaryTable, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = hidden_states + self.attn1(rms_norm(hidden_states, self.eps), attention_mask=attention_mask,
                                       rotary=rotary)
        return x + self.ff(rms_norm(x, self.eps))


class LTX2TextConnector(nn.Module):
    """One stream's connector: register substitution, ``num_layers`` blocks with 1-D RoPE, final RMSNorm.

    With ``num_learnable_registers=None`` no substitution happens: padded tokens are masked out as attention keys
    and zeroed in the output.
    """

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        num_layers: int,
        num_learnable_registers: int | None,
        rope_max_position: float,
        rope_theta: float,
        rope_double_precision: bool,
        rope_type: str,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.inner_dim = num_attention_heads * attention_head_dim
        self.num_attention_heads = num_attention_heads
        self.num_learnable_registers = num_learnable_registers
        self.rope_settings = (rope_max_position, rope_theta, rope_double_precision, rope_type)
        self.eps = eps
        if num_learnable_registers:
            self.learnable_registers = nn.Parameter(torch.rand(num_learnable_registers, self.inner_dim) * 2 - 1)
        else:
            self.learnable_registers = None
        self.transformer_blocks = nn.ModuleList(
            LTX2ConnectorBlock(self.inner_dim, num_attention_heads, attention_head_dim, eps)
            for _ in range(num_layers)
        )
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` features and ``[B, T]`` bool validity -> ``[B, T, D]`` embeddings and their validity."""
        batch, tokens, _ = hidden_states.shape
        attention_mask = None
        if self.learnable_registers is not None:
            hidden_states = substitute_registers(hidden_states, valid, self.learnable_registers)
            valid = torch.ones_like(valid)
        elif not bool(valid.all()):
            bias = (~valid).to(hidden_states.dtype) * torch.finfo(hidden_states.dtype).min
            attention_mask = bias.view(batch, 1, 1, tokens)  # [B, 1, 1, T] over keys

        max_position, theta, double_precision, rope_type = self.rope_settings
        rotary = connector_rotary(tokens, self.inner_dim, self.num_attention_heads, max_position, theta,
                                  double_precision, rope_type, hidden_states.dtype, hidden_states.device)
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, rotary, attention_mask)
            else:
                hidden_states = block(hidden_states, rotary, attention_mask)
        hidden_states = rms_norm(hidden_states, self.eps)
        if attention_mask is not None:
            hidden_states = hidden_states * valid[..., None].to(hidden_states.dtype)
        return hidden_states, valid


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

_LATER_VERSION_FLAGS = {"video_gated_attn": False, "audio_gated_attn": False, "per_modality_projections": False}


class LTX2TextConnectors(ModelMixin, ConfigMixin, PeftAdapterMixin):
    r"""LTX-2.0 text feature projection and per-stream connectors (the ``connectors/`` component).

    Loads diffusers-format LTX-2.0 ``connectors/`` folders unchanged (same config keys and parameter names as
    ``diffusers.pipelines.ltx2.LTX2TextConnectors``). The defaults are the released model (1,431,475,200
    parameters; text encoder Gemma-3-12B).

    Args:
        caption_channels: text-encoder hidden size and connector width (3840 for Gemma-3-12B).
        text_proj_in_factor: number of stacked hidden states, i.e. text-encoder layers + 1 (49).
        video_connector_num_attention_heads / video_connector_attention_head_dim: video connector heads × width
            (30 × 128); the product must equal ``caption_channels``.
        video_connector_num_layers: blocks in the video connector (2).
        video_connector_num_learnable_registers: registers ``R`` (128); text length must be a multiple of ``R``.
            ``None`` disables the substitution (then both connectors must disable it).
        audio_connector_*: the same for the audio connector.
        connector_rope_base_seq_len: RoPE normaliser of the token index (4096).
        rope_theta / rope_double_precision / rope_type: RoPE base, float64 frequency grid, layout (``"split"``).
        proj_bias: whether ``text_proj_in`` has a bias (False).
        causal_temporal_positioning / video_hidden_dim / audio_hidden_dim: accepted for format compatibility;
            LTX-2.0 does not use them.
        video_gated_attn / audio_gated_attn / per_modality_projections: LTX-2.3 features; must be False.
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
        for key, supported in _LATER_VERSION_FLAGS.items():
            if locals()[key] != supported:
                raise ValueError(f"{key}={locals()[key]!r} describes LTX-2.3 connectors; these connectors implement "
                                 f"LTX-2.0 and need {key}={supported!r}.")
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}.")
        if text_proj_in_factor < 1:
            raise ValueError(f"text_proj_in_factor must be the number of stacked hidden states (>= 1), got "
                             f"{text_proj_in_factor}.")
        streams = {
            "video": (video_connector_num_attention_heads, video_connector_attention_head_dim,
                      video_connector_num_layers, video_connector_num_learnable_registers),
            "audio": (audio_connector_num_attention_heads, audio_connector_attention_head_dim,
                      audio_connector_num_layers, audio_connector_num_learnable_registers),
        }
        for name, (heads, head_dim, _, registers) in streams.items():
            if heads * head_dim != caption_channels:
                raise ValueError(f"{name} connector width {heads} x {head_dim} = {heads * head_dim} must equal "
                                 f"caption_channels={caption_channels}.")
            if registers is not None and registers < 1:
                raise ValueError(f"{name}_connector_num_learnable_registers must be positive or None, got "
                                 f"{registers}.")
        if (video_connector_num_learnable_registers is None) != (audio_connector_num_learnable_registers is None):
            raise ValueError("Both connectors must use learnable registers, or neither: got "
                             f"{video_connector_num_learnable_registers} (video) and "
                             f"{audio_connector_num_learnable_registers} (audio).")

        self.text_proj_in = nn.Linear(caption_channels * text_proj_in_factor, caption_channels, bias=proj_bias)
        rope = dict(rope_max_position=connector_rope_base_seq_len, rope_theta=rope_theta,
                    rope_double_precision=rope_double_precision, rope_type=rope_type)
        self.video_connector = LTX2TextConnector(*streams["video"], **rope)
        self.audio_connector = LTX2TextConnector(*streams["audio"], **rope)

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
        valid = attention_mask if attention_mask.dtype == torch.bool else attention_mask > 0.5
        return hidden_states, valid.to(hidden_states.device)

    def project_text_features(
        self,
        text_encoder_hidden_states: torch.Tensor | Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        scale_factor: float = 8.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised multi-layer features projected by ``text_proj_in``: ``[B, T, caption_channels]`` and the
        ``[B, T]`` bool validity (inputs as in :meth:`forward`)."""
        hidden_states, valid = self._stacked(text_encoder_hidden_states, attention_mask)
        features = normalize_text_hidden_states(hidden_states, valid, scale_factor)  # [B, T, D * L]
        return self.text_proj_in(features.to(self.text_proj_in.weight.dtype)), valid  # [B, T, D]

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
            scale_factor: the normalisation's scale (8).

        Returns:
            :class:`LTX2TextEmbeddings` ``(video_embeds, audio_embeds, attention_mask)``; a batch gives exactly what
            one-sample calls give.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
        features, valid = self.project_text_features(text_encoder_hidden_states, attention_mask, scale_factor)
        video, video_valid = self.video_connector(features, valid)
        audio, _ = self.audio_connector(features, valid)
        return LTX2TextEmbeddings(video, audio, video_valid.to(torch.int64))
