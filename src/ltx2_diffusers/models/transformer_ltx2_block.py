"""One dual-stream block of the LTX-2 transformer, and the per-stream state it reads (paper §3.1).

Every block runs, per stream: AdaLN-modulated self-attention with RoPE, text cross-attention, then the two-sided
audio<->video exchange (temporal-only RoPE, modulated by the *other* stream's σ), then an AdaLN-modulated
feed-forward. Both streams run the same code; their layers differ only by the ``audio_`` name prefix.

LTX-2.3 switches, per stream (diffusers' names):

* ``gated_attn``: every attention whose query is this stream scales each head's output by ``2 sigmoid(logit)``.
* ``cross_attn_mod``: the text cross-attention is AdaLN-modulated too. Its query takes (shift, scale, gate) from rows
  6-8 of the block table (per-token σ, like the other rows); the text keys/values take (shift, scale) from the
  block's ``prompt_scale_shift_table`` plus the model's ``prompt_adaln`` of the stream's own per-sample σ. As in
  diffusers, the text K/V of *both* streams are modulated when either stream has the switch.

The file reads bottom-up: per-stream state -> block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import FeedForward, LTX2Attention, modulate, rms_norm
from .rope import RotaryTable

BASE_ROWS = 6  # (shift, scale, gate) self-attention, (shift, scale, gate) feed-forward
TEXT_QUERY_ROWS = 3  # (shift, scale, gate) of the text cross-attention query (``cross_attn_mod``)


def block_table_rows(cross_attn_mod: bool) -> int:
    """Rows of a stream's block AdaLN table (and of its ``time_embed`` output): 6, or 9 with ``cross_attn_mod``."""
    return BASE_ROWS + (TEXT_QUERY_ROWS if cross_attn_mod else 0)


# ----------------------------------------------------------------------------------------------------------------
# Per-stream state
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modulation:
    """AdaLN output ``values`` and, when tokens share few distinct timesteps, which one each token uses.

    ``values`` is ``[B, rows, D]`` per sample (or ``[1, rows, D]`` shared by the batch), ``[B, T, rows, D]`` per
    token, or ``[N, rows, D]`` for N distinct timesteps with ``index [B, T]`` into them: then the ``rows × D``
    vectors are computed once per distinct σ, not once per token.
    """

    values: torch.Tensor
    index: torch.Tensor | None = None

    def rows(self, table: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """``table[start:stop] + values[..., start:stop, :]`` per token: a tuple of ``[B, T or 1, D]`` tensors."""
        rows = table[start:stop].to(self.values.dtype) + self.values[..., start:stop, :]  # [N | B | B, T, k, D]
        if self.index is not None:
            rows = rows[self.index]  # [B, T, k, D]
        elif rows.ndim == 3:
            rows = rows.unsqueeze(1)  # [B, 1, k, D]
        return rows.unbind(-2)


@dataclass(frozen=True)
class StreamState:
    """Everything one stream (video or audio) carries through the blocks."""

    hidden_states: torch.Tensor  # [B, T, D]
    context: torch.Tensor  # [B, L, D] text at the stream width
    context_mask: torch.Tensor | None  # additive [B, 1, 1, L], None = attend to all text tokens
    modulation: Modulation  # 6 rows (9 with cross_attn_mod), see BASE_ROWS / TEXT_QUERY_ROWS
    rotary: RotaryTable
    prompt_modulation: Modulation | None = None  # 2 rows (shift, scale) of the text K/V; None = not modulated
    cross_rotary: RotaryTable | None = None  # temporal RoPE for the audio<->video attention
    cross_modulation: Modulation | None = None  # 4 rows from the other stream's σ: a2v (scale, shift), v2a (...)
    cross_gate: Modulation | None = None  # 1 row: gate of the attention whose query is this stream
    self_attention_mask: torch.Tensor | None = None  # additive [B, 1, T, T] self-attention bias, None = full


# ----------------------------------------------------------------------------------------------------------------
# Block
# ----------------------------------------------------------------------------------------------------------------

VIDEO, AUDIO = "", "audio_"  # name prefixes of each stream's layers


class LTX2TransformerBlock(nn.Module):
    """One dual-stream block. Both streams run the same self/text/feed-forward code; only A<->V is two-sided."""

    def __init__(
        self,
        dim: int,
        heads: int,
        head_dim: int,
        audio_dim: int,
        audio_heads: int,
        audio_head_dim: int,
        eps: float = 1e-6,
        attention_bias: bool = True,
        attention_out_bias: bool = True,
        ff_bias: bool = True,
        gated_attn: bool = False,
        cross_attn_mod: bool = False,
        audio_gated_attn: bool = False,
        audio_cross_attn_mod: bool = False,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.text_query_modulation = {VIDEO: cross_attn_mod, AUDIO: audio_cross_attn_mod}
        kw = dict(bias=attention_bias, out_bias=attention_out_bias, eps=eps)
        video_kw = dict(kw, apply_gated_attention=gated_attn)  # attentions whose query is the video stream
        audio_kw = dict(kw, apply_gated_attention=audio_gated_attn)

        self.attn1 = LTX2Attention(dim, heads, head_dim, **video_kw)
        self.attn2 = LTX2Attention(dim, heads, head_dim, context_dim=dim, **video_kw)
        self.ff = FeedForward(dim, bias=ff_bias)
        self.scale_shift_table = nn.Parameter(torch.randn(block_table_rows(cross_attn_mod), dim) / dim**0.5)

        self.audio_attn1 = LTX2Attention(audio_dim, audio_heads, audio_head_dim, **audio_kw)
        self.audio_attn2 = LTX2Attention(audio_dim, audio_heads, audio_head_dim, context_dim=audio_dim, **audio_kw)
        self.audio_ff = FeedForward(audio_dim, bias=ff_bias)
        self.audio_scale_shift_table = nn.Parameter(
            torch.randn(block_table_rows(audio_cross_attn_mod), audio_dim) / audio_dim**0.5)

        if cross_attn_mod or audio_cross_attn_mod:  # text K/V modulation of both streams
            self.prompt_scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
            self.audio_prompt_scale_shift_table = nn.Parameter(torch.randn(2, audio_dim) / audio_dim**0.5)
        else:
            self.register_parameter("prompt_scale_shift_table", None)
            self.register_parameter("audio_prompt_scale_shift_table", None)

        # Both exchange directions run at the audio width.
        self.audio_to_video_attn = LTX2Attention(dim, audio_heads, audio_head_dim, context_dim=audio_dim, **video_kw)
        self.video_to_audio_attn = LTX2Attention(audio_dim, audio_heads, audio_head_dim, context_dim=dim, **audio_kw)
        # rows: a2v scale, a2v shift, v2a scale, v2a shift, gate (of the direction whose query is this stream)
        self.video_a2v_cross_attn_scale_shift_table = nn.Parameter(torch.randn(5, dim) / dim**0.5)
        self.audio_a2v_cross_attn_scale_shift_table = nn.Parameter(torch.randn(5, audio_dim) / audio_dim**0.5)

    def _text_attention(self, x: torch.Tensor, state: StreamState, stream: str) -> torch.Tensor:
        """Residual update of the text cross-attention (AdaLN-modulated query and text with ``cross_attn_mod``)."""
        query, context, gate = rms_norm(x, self.eps), state.context, None
        if self.text_query_modulation[stream]:
            table = getattr(self, stream + "scale_shift_table")
            shift, scale, gate = state.modulation.rows(table, BASE_ROWS, BASE_ROWS + TEXT_QUERY_ROWS)
            query = modulate(query, shift, scale)
        if state.prompt_modulation is not None:
            shift, scale = state.prompt_modulation.rows(getattr(self, stream + "prompt_scale_shift_table"), 0, 2)
            context = modulate(context, shift, scale)
        attended = getattr(self, stream + "attn2")(query, context, attention_mask=state.context_mask)
        return attended if gate is None else attended * gate

    def _self_and_text_attention(self, state: StreamState, stream: str, perturb: torch.Tensor | bool) -> torch.Tensor:
        x = state.hidden_states
        shift, scale, gate = state.modulation.rows(getattr(self, stream + "scale_shift_table"), 0, 3)
        attended = getattr(self, stream + "attn1")(
            modulate(rms_norm(x, self.eps), shift, scale), attention_mask=state.self_attention_mask,
            rotary=state.rotary, value_only=perturb is True,
            perturbation_mask=None if isinstance(perturb, bool) else perturb)
        x = x + attended * gate
        return x + self._text_attention(x, state, stream)

    def _feed_forward(self, x: torch.Tensor, state: StreamState, stream: str) -> torch.Tensor:
        shift, scale, gate = state.modulation.rows(getattr(self, stream + "scale_shift_table"), 3, 6)
        return x + getattr(self, stream + "ff")(modulate(rms_norm(x, self.eps), shift, scale)) * gate

    def _audio_video_exchange(
        self, vx: torch.Tensor, ax: torch.Tensor, video: StreamState, audio: StreamState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual updates ``(Δvideo, Δaudio)``; both directions read the states normalised before either update."""
        v_table, a_table = self.video_a2v_cross_attn_scale_shift_table, self.audio_a2v_cross_attn_scale_shift_table
        v_norm, a_norm = rms_norm(vx, self.eps), rms_norm(ax, self.eps)
        v_a2v_scale, v_a2v_shift, v_v2a_scale, v_v2a_shift = video.cross_modulation.rows(v_table, 0, 4)
        a_a2v_scale, a_a2v_shift, a_v2a_scale, a_v2a_shift = audio.cross_modulation.rows(a_table, 0, 4)
        (v_gate,) = video.cross_gate.rows(v_table[4:], 0, 1)
        (a_gate,) = audio.cross_gate.rows(a_table[4:], 0, 1)

        to_video = self.audio_to_video_attn(
            modulate(v_norm, v_a2v_shift, v_a2v_scale),
            modulate(a_norm, a_a2v_shift, a_a2v_scale),
            rotary=video.cross_rotary,
            key_rotary=audio.cross_rotary,
        )
        to_audio = self.video_to_audio_attn(
            modulate(a_norm, a_v2a_shift, a_v2a_scale),
            modulate(v_norm, v_v2a_shift, v_v2a_scale),
            rotary=audio.cross_rotary,
            key_rotary=video.cross_rotary,
        )
        return to_video * v_gate, to_audio * a_gate

    def forward(
        self,
        video: StreamState | None,
        audio: StreamState | None,
        perturb_video: torch.Tensor | bool = False,
        perturb_audio: torch.Tensor | bool = False,
        isolate_modalities: torch.Tensor | bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Returns the new hidden states of both streams (``None`` for an absent stream).

        Args:
            perturb_video / perturb_audio: STG of each stream's self-attention in this block: ``False``, ``True``
                (every sample: the attention is skipped for its value path) or a ``[B, 1, 1]`` perturbation mask
                (0 = perturbed, 1 = not, between = blend of the two).
            isolate_modalities: drop the audio<->video exchange: ``True`` skips its compute, a ``[B]`` bool tensor
                zeroes it for the marked samples.
        """
        vx = None if video is None else self._self_and_text_attention(video, VIDEO, perturb_video)
        ax = None if audio is None else self._self_and_text_attention(audio, AUDIO, perturb_audio)
        if vx is not None and ax is not None and isolate_modalities is not True:
            to_video, to_audio = self._audio_video_exchange(vx, ax, video, audio)
            if isinstance(isolate_modalities, torch.Tensor):
                keep = (~isolate_modalities).to(vx.dtype).view(-1, 1, 1)
                to_video, to_audio = to_video * keep, to_audio * keep
            vx, ax = vx + to_video, ax + to_audio
        if vx is not None:
            vx = self._feed_forward(vx, video, VIDEO)
        if ax is not None:
            ax = self._feed_forward(ax, audio, AUDIO)
        return vx, ax
