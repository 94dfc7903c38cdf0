"""The LTX-2 asymmetric dual-stream audio+video diffusion transformer (paper §3.1).

A 14B video stream and a 5B audio stream share depth (LTX-2.0; LTX-2.3 adds gated attention and AdaLN on the text
cross-attention, see :mod:`.transformer_ltx2_block`). The model embeds the inputs, builds each stream's state (RoPE,
AdaLN of the per-token σ, text K/V AdaLN of the per-sample σ, audio<->video terms of the other stream's σ), runs the
blocks and the output heads. It predicts the flow velocity ``v = ε - x0`` of each stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput, apply_lora_scale
from torch import nn

from .layers import AdaLayerNormSingle, modulate, text_projection
from .rope import (
    ROPE_TYPES,
    CoordinatePreparer,
    RotaryTable,
    audio_coordinates,
    rope_angles,
    rope_frequencies,
    rotary_table,
    video_coordinates,
)
from .strict_loading import StrictLoadingMixin
from .transformer_inputs import (
    StreamTimestep,
    check_blocks,
    check_context,
    check_coords,
    check_timestep,
    check_tokens,
    check_units,
    isolation_flag,
    perturbation_weight,
    self_attention_bias,
    text_bias,
)
from .transformer_ltx2_block import LTX2TransformerBlock, Modulation, StreamState, block_table_rows

__all__ = ["LTX2AudioVideoTransformer", "LTX2TransformerBlock", "LTX2TransformerOutput", "LTX2VideoTransformer3DModel",
           "Modulation", "StreamState"]

# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LTX2TransformerOutput(BaseOutput):
    """Predicted velocities: ``sample [B, T_video, out_channels]``, ``audio_sample [B, T_audio, audio_out_channels]``
    (``None`` when the call had no audio stream)."""

    sample: torch.Tensor
    audio_sample: torch.Tensor | None = None


_UNSUPPORTED_FLAGS = {  # config flags of other LTX versions and the value LTX-2.0 and LTX-2.3 have
    "use_keyframes_abs_pos_embedding": False,
    "patch_size": 1,
    "patch_size_t": 1,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "qk_norm": "rms_norm_across_heads",
    "activation_fn": "gelu-approximate",
    "norm_elementwise_affine": False,
}


class LTX2VideoTransformer3DModel(
    StrictLoadingMixin, ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin, CacheMixin
):
    r"""LTX-2 dual-stream audio+video transformer.

    Loads diffusers-format LTX-2.0 and LTX-2.3 ``transformer/`` folders unchanged (same config keys and parameter
    names as ``diffusers.LTX2VideoTransformer3DModel``). The defaults are the released LTX-2.0 19B model
    (18,876,174,592 parameters); LTX-2.3 (22B, 18,988,838,144 transformer parameters) sets ``gated_attn``,
    ``cross_attn_mod``, ``audio_gated_attn``, ``audio_cross_attn_mod`` and ``use_prompt_embeddings=False``.

    Args:
        in_channels / out_channels: video latent channels per token (128).
        num_attention_heads / attention_head_dim: video heads × width (32 × 128 → 4096).
        cross_attention_dim: video text-attention width; must equal the video inner width.
        vae_scale_factors: pixels per latent along (time, height, width), for RoPE coordinates.
        pos_embed_max_pos / base_height / base_width: RoPE normalisers (seconds, pixels, pixels).
        audio_in_channels / audio_out_channels: audio token width (8 latent channels × 16 mel bins = 128).
        audio_num_attention_heads / audio_attention_head_dim: audio heads × width (32 × 64 → 2048).
        audio_cross_attention_dim: audio text-attention width (= audio inner width); also the width of the
            audio<->video attentions and of their temporal RoPE.
        audio_scale_factor / audio_sampling_rate / audio_hop_length: mel frames per audio token and the mel grid,
            for audio RoPE coordinates in seconds.
        audio_pos_embed_max_pos: audio RoPE normaliser in seconds.
        num_layers: number of dual-stream blocks (48).
        norm_eps: epsilon of every RMSNorm and of the output LayerNorm.
        caption_channels: width of the text-connector output (3840) that ``use_prompt_embeddings`` projects to each
            stream inside the model.
        attention_bias / attention_out_bias / ff_bias: biases of the attention and feed-forward projections.
        rope_theta / rope_double_precision / rope_type: RoPE base, float64 frequency grid, ``"split"`` layout.
        causal_offset: causal first-frame shift of the video time axis (1).
        timestep_scale_multiplier: σ → AdaLN input scale (1000).
        cross_attn_timestep_scale_multiplier: scale of the A<->V gate input (1000 for the 19B checkpoints).
        gated_attn / audio_gated_attn: per-head output gate ``2 sigmoid(to_gate_logits(x))`` in every attention whose
            query is the video / audio stream (LTX-2.3).
        cross_attn_mod / audio_cross_attn_mod: AdaLN on the text cross-attention of the video / audio stream: 9-row
            block tables, and (either flag) the text K/V of both streams modulated by ``prompt_scale_shift_table`` +
            ``prompt_adaln`` of the stream's per-sample σ (LTX-2.3).
        use_prompt_embeddings: project the ``caption_channels``-wide text inside the model (LTX-2.0). ``False``
            (LTX-2.3): the text arrives at each stream's width (``cross_attention_dim`` /
            ``audio_cross_attention_dim``).
        use_prompt_adaln_single: with ``cross_attn_mod``, whether the text K/V modulation depends on σ (the
            ``prompt_adaln`` layers); ``False`` uses the per-block tables alone.

    Other config keys of the diffusers format (``patch_size`` ...) are accepted; values that describe other LTX
    versions (e.g. LTX-2.5's ``use_keyframes_abs_pos_embedding=True``) raise a ``ValueError``. ``perturbed_attn`` is
    accepted and has no effect: spatio-temporal guidance works for every checkpoint (diffusers silently skips it when
    the flag is ``False``, as LTX-2.0 folders have it).
    """

    _supports_gradient_checkpointing = True
    _former_names = ("LTX2AudioVideoTransformer",)  # folders saved under this package's earlier class name
    _no_split_modules = ["LTX2TransformerBlock"]
    _repeated_blocks = ["LTX2TransformerBlock"]
    _skip_layerwise_casting_patterns = [
        "norm", "proj_in", "proj_out", "time_embed", "prompt_adaln", "caption_projection", "av_cross"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        out_channels: int | None = 128,
        patch_size: int = 1,
        patch_size_t: int = 1,
        num_attention_heads: int = 32,
        attention_head_dim: int = 128,
        cross_attention_dim: int = 4096,
        vae_scale_factors: tuple[int, int, int] = (8, 32, 32),
        pos_embed_max_pos: int = 20,
        base_height: int = 2048,
        base_width: int = 2048,
        gated_attn: bool = False,
        cross_attn_mod: bool = False,
        audio_in_channels: int = 128,
        audio_out_channels: int | None = 128,
        audio_patch_size: int = 1,
        audio_patch_size_t: int = 1,
        audio_num_attention_heads: int = 32,
        audio_attention_head_dim: int = 64,
        audio_cross_attention_dim: int = 2048,
        audio_scale_factor: int = 4,
        audio_pos_embed_max_pos: int = 20,
        audio_sampling_rate: int = 16000,
        audio_hop_length: int = 160,
        audio_gated_attn: bool = False,
        audio_cross_attn_mod: bool = False,
        num_layers: int = 48,
        activation_fn: str = "gelu-approximate",
        qk_norm: str = "rms_norm_across_heads",
        norm_elementwise_affine: bool = False,
        norm_eps: float = 1e-6,
        caption_channels: int = 3840,
        attention_bias: bool = True,
        attention_out_bias: bool = True,
        rope_theta: float = 10000.0,
        rope_double_precision: bool = True,
        causal_offset: int = 1,
        timestep_scale_multiplier: int = 1000,
        cross_attn_timestep_scale_multiplier: int = 1000,
        rope_type: str = "split",
        use_prompt_embeddings: bool = True,
        perturbed_attn: bool = False,
        ff_bias: bool = True,
        audio_ff_bias: bool = True,
        use_prompt_adaln_single: bool = True,
        use_keyframes_abs_pos_embedding: bool = False,
    ) -> None:
        super().__init__()
        for key, supported in _UNSUPPORTED_FLAGS.items():
            if locals()[key] != supported:
                raise ValueError(
                    f"{key}={locals()[key]!r} describes an LTX version this transformer does not implement (it "
                    f"implements LTX-2.0 and LTX-2.3); pass {key}={supported!r}."
                )
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}.")
        if ff_bias != audio_ff_bias:
            raise ValueError(f"ff_bias={ff_bias} and audio_ff_bias={audio_ff_bias} must agree.")
        dim = num_attention_heads * attention_head_dim
        audio_dim = audio_num_attention_heads * audio_attention_head_dim
        if cross_attention_dim != dim:
            raise ValueError(f"cross_attention_dim={cross_attention_dim} must equal the video width {dim}.")
        if audio_cross_attention_dim != audio_dim:
            raise ValueError(f"audio_cross_attention_dim={audio_cross_attention_dim} must equal the audio width "
                             f"{audio_dim}.")
        out_channels = out_channels or in_channels
        audio_out_channels = audio_out_channels or audio_in_channels

        self.proj_in = nn.Linear(in_channels, dim)
        self.audio_proj_in = nn.Linear(audio_in_channels, audio_dim)
        self.caption_projection = self.audio_caption_projection = None
        if use_prompt_embeddings:  # LTX-2.0: text projected inside the model; LTX-2.3 projects it in the connectors
            self.caption_projection = text_projection(caption_channels, dim)
            self.audio_caption_projection = text_projection(caption_channels, audio_dim)
        self.time_embed = AdaLayerNormSingle(dim, rows=block_table_rows(cross_attn_mod))
        self.audio_time_embed = AdaLayerNormSingle(audio_dim, rows=block_table_rows(audio_cross_attn_mod))
        self.prompt_adaln = self.audio_prompt_adaln = None
        if (cross_attn_mod or audio_cross_attn_mod) and use_prompt_adaln_single:  # text K/V AdaLN of σ
            self.prompt_adaln = AdaLayerNormSingle(dim, rows=2)
            self.audio_prompt_adaln = AdaLayerNormSingle(audio_dim, rows=2)
        self.av_cross_attn_video_scale_shift = AdaLayerNormSingle(dim, rows=4)
        self.av_cross_attn_audio_scale_shift = AdaLayerNormSingle(audio_dim, rows=4)
        self.av_cross_attn_video_a2v_gate = AdaLayerNormSingle(dim, rows=1)
        self.av_cross_attn_audio_v2a_gate = AdaLayerNormSingle(audio_dim, rows=1)

        self.transformer_blocks = nn.ModuleList(
            LTX2TransformerBlock(
                dim, num_attention_heads, attention_head_dim,
                audio_dim, audio_num_attention_heads, audio_attention_head_dim,
                eps=norm_eps, attention_bias=attention_bias, attention_out_bias=attention_out_bias, ff_bias=ff_bias,
                gated_attn=gated_attn, cross_attn_mod=cross_attn_mod,
                audio_gated_attn=audio_gated_attn, audio_cross_attn_mod=audio_cross_attn_mod,
            )
            for _ in range(num_layers)
        )

        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.audio_scale_shift_table = nn.Parameter(torch.randn(2, audio_dim) / audio_dim**0.5)
        self.norm_out = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=False)
        self.audio_norm_out = nn.LayerNorm(audio_dim, eps=norm_eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, out_channels)
        self.audio_proj_out = nn.Linear(audio_dim, audio_out_channels)
        self.gradient_checkpointing = False
        self._context_parallel = None  # ContextParallelRuntime once enable_parallelism ran

    # ------------------------------------------------------------------------------------------------------------
    # Context parallelism
    # ------------------------------------------------------------------------------------------------------------

    def enable_parallelism(self, *, config: Any, cp_plan: dict | None = None,  # noqa: ANN401
                           process_group: Any = None) -> None:  # noqa: ANN401
        """Splits the video tokens over a ``torch.distributed`` group (NCCL or gloo), diffusers' entry point.

        ``config``: ``diffusers.ContextParallelConfig(ulysses_degree=N)`` (N must divide ``num_attention_heads``) or
        ``ContextParallelConfig(ring_degree=N)``, N the group size (``process_group``, else the config's ``mesh``,
        else the default group); ``cp_plan`` must be ``None`` (this model shards its own inputs). Every rank then runs
        the same call and gets the single-process result (see :mod:`.context_parallel`). Inference only.
        """
        from diffusers import ParallelConfig

        from .context_parallel import install, resolve_plan

        if self._context_parallel is not None:
            raise ValueError(f"Parallelism is already applied to this {type(self).__name__}; enable_parallelism "
                             f"cannot be called twice.")
        if cp_plan is not None:
            raise ValueError("cp_plan is not used by this transformer, which shards its own inputs; leave it None.")
        self._context_parallel = install(self, resolve_plan(config, self.config.num_attention_heads, process_group))
        self._parallel_config = config if isinstance(config, ParallelConfig) else ParallelConfig(
            context_parallel_config=config)

    def _check_parallel_call(self) -> None:
        if torch.is_grad_enabled():
            raise ValueError("the context-parallel forward is inference-only (its collectives carry no gradients); "
                             "call it under torch.no_grad() or torch.inference_mode().")

    @property
    def text_widths(self) -> tuple[int, int]:
        """Width of the video and audio text contexts the forward takes: ``caption_channels`` for both (LTX-2.0),
        or each stream's width when ``use_prompt_embeddings=False`` (LTX-2.3: 4096 / 2048)."""
        c = self.config
        if c.use_prompt_embeddings:
            return c.caption_channels, c.caption_channels
        return c.cross_attention_dim, c.audio_cross_attention_dim

    # ------------------------------------------------------------------------------------------------------------
    # Coordinates and RoPE
    # ------------------------------------------------------------------------------------------------------------

    def video_coordinates(
        self, latent_frames: int, latent_height: int, latent_width: int, fps: float, batch_size: int = 1,
        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """:func:`~ltx2_diffusers.models.rope.video_coordinates` with this model's VAE scale factors."""
        return video_coordinates(
            latent_frames, latent_height, latent_width, fps, batch_size,
            scale_factors=tuple(self.config.vae_scale_factors), causal_offset=self.config.causal_offset,
            dtype=dtype, device=device,
        )

    def audio_coordinates(
        self, num_tokens: int, batch_size: int = 1, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """:func:`~ltx2_diffusers.models.rope.audio_coordinates` with this model's mel grid."""
        c = self.config
        return audio_coordinates(
            num_tokens, batch_size, sampling_rate=c.audio_sampling_rate, hop_length=c.audio_hop_length,
            downsample_factor=c.audio_scale_factor, causal_offset=c.causal_offset, device=device,
        )

    @property
    def rope(self) -> CoordinatePreparer:
        """``prepare_video_coords`` / ``prepare_audio_coords``, where diffusers' LTX-2 pipelines look for them."""
        return CoordinatePreparer(self)

    audio_rope = rope

    def _rotary(
        self, coords: torch.Tensor, max_pos: tuple[float, ...], width: int, heads: int, dtype: torch.dtype
    ) -> RotaryTable:
        c = self.config
        freqs = rope_frequencies(len(max_pos), width, c.rope_theta, c.rope_double_precision)
        return rotary_table(rope_angles(coords, max_pos, freqs), width, heads, c.rope_type, dtype)

    # ------------------------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------------------------

    def _adaln(self, adaln: AdaLayerNormSingle, t: StreamTimestep, dtype: torch.dtype
               ) -> tuple[Modulation, Modulation]:
        """One AdaLN-single at a stream's timestep: ``(modulation, output-head modulation)``.

        Evaluated once per distinct value (``t.index``), per sample, or per token, as the timestep comes.
        """
        modulation, embedded = adaln(t.values.flatten(), dtype)  # [M, rows, D], [M, D]
        if t.values.ndim == 2:  # per token
            modulation, embedded = modulation.unflatten(0, t.values.shape), embedded.unflatten(0, t.values.shape)
        head = embedded.unsqueeze(-2).expand(*embedded.shape[:-1], 2, embedded.shape[-1])  # [..., 2, D]
        return Modulation(modulation, t.index), Modulation(head, t.index)

    def _stream(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None, t: StreamTimestep,
        sigma: torch.Tensor, rotary: RotaryTable, prefix: str,
    ) -> tuple[StreamState, Modulation]:
        """Input projection, text projection and AdaLN of one stream; returns its state and output-head AdaLN."""
        project_text = getattr(self, f"{prefix}caption_projection")
        modulation, head = self._adaln(getattr(self, f"{prefix}time_embed"), t, x.dtype)
        hidden_states = getattr(self, f"{prefix}proj_in")(x)  # [B, T, D]
        if project_text is not None:
            context = project_text(context)  # [B, L, caption_channels] -> [B, L, D]
        state = StreamState(hidden_states, context, context_mask, modulation, rotary,
                            prompt_modulation=self._prompt_modulation(sigma, prefix, hidden_states))
        return state, head

    def _prompt_modulation(self, sigma: torch.Tensor, prefix: str, x: torch.Tensor) -> Modulation | None:
        """Text K/V AdaLN of one stream from its own per-sample (scaled) σ (LTX-2.3); ``None`` when it has none."""
        c = self.config
        if not (c.cross_attn_mod or c.audio_cross_attn_mod):
            return None
        prompt_adaln = getattr(self, f"{prefix}prompt_adaln")
        if prompt_adaln is None:  # use_prompt_adaln_single=False: the per-block tables alone
            return Modulation(x.new_zeros(1, 2, x.shape[-1]))
        return Modulation(prompt_adaln(sigma, x.dtype)[0])  # [B, 2, D]

    def _cross_terms(
        self, t: StreamTimestep, scale_shift: AdaLayerNormSingle, gate: AdaLayerNormSingle, dtype: torch.dtype
    ) -> tuple[Modulation, Modulation]:
        """A<->V modulation and gate of one stream at timestep ``t`` (scaled)."""
        c = self.config
        gate_t = StreamTimestep(t.values * (c.cross_attn_timestep_scale_multiplier / c.timestep_scale_multiplier),
                                t.index)
        return self._adaln(scale_shift, t, dtype)[0], self._adaln(gate, gate_t, dtype)[0]

    @staticmethod
    def _output(x: torch.Tensor, head: Modulation, table: torch.Tensor, norm: nn.LayerNorm, proj: nn.Linear
                ) -> torch.Tensor:
        shift, scale = head.rows(table, 0, 2)
        return proj(modulate(norm(x), shift, scale))

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        audio_hidden_states: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        audio_encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.Tensor | float | None = None,
        audio_timestep: torch.Tensor | float | None = None,
        sigma: torch.Tensor | float | None = None,
        audio_sigma: torch.Tensor | float | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        audio_encoder_attention_mask: torch.Tensor | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        fps: float = 24.0,
        audio_num_frames: int | None = None,
        video_coords: torch.Tensor | None = None,
        audio_coords: torch.Tensor | None = None,
        isolate_modalities: bool | torch.Tensor = False,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        perturbation_mask: torch.Tensor | None = None,
        use_cross_timestep: bool = False,
        attention_kwargs: dict[str, Any] | None = None,
        video_self_attention_mask: torch.Tensor | None = None,
        video_keyframes_mask: torch.Tensor | None = None,
        return_dict: bool = True,
        *,
        audio_spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        timestep_index: torch.Tensor | None = None,
        audio_timestep_index: torch.Tensor | None = None,
        timestep_units: str = "scaled",
    ) -> LTX2TransformerOutput | tuple[torch.Tensor, torch.Tensor | None]:
        r"""Predicts the flow velocity of both streams.

        The arguments up to ``return_dict`` are diffusers' ``LTX2VideoTransformer3DModel.forward``'s, in its order,
        units and meaning; the keyword-only ones after it are this package's additions.

        Args:
            hidden_states: packed, normalised video latents ``[B, T_v, in_channels]`` (token order frame, row,
                column). ``T_v = 0`` runs audio only.
            audio_hidden_states: packed, normalised audio latents ``[B, T_a, audio_in_channels]``; ``None`` or
                ``T_a = 0`` runs video only (no audio stream, no audio<->video attention), as the reference does.
            encoder_hidden_states / audio_encoder_hidden_states: text-connector outputs for each stream,
                ``[B, L, caption_channels]`` (LTX-2.0), or at the stream's width ``[B, L, cross_attention_dim]`` /
                ``[B, L, audio_cross_attention_dim]`` when ``use_prompt_embeddings=False`` (LTX-2.3).
            timestep / audio_timestep: the noise level already scaled by ``timestep_scale_multiplier`` (σ·1000, as
                diffusers' pipelines pass it): a float, ``[B]`` per sample, or ``[B, T]`` per token (clean
                conditioning tokens carry less). ``audio_timestep`` defaults to ``timestep`` when that is per sample,
                else to its per-sample maximum.
            sigma / audio_sigma: per-sample scaled σ ``[B]``: each stream's text K/V modulation (LTX-2.3
                ``cross_attn_mod``) and, with ``use_cross_timestep``, the *other* stream's audio<->video modulation.
                ``sigma`` defaults to the per-sample maximum of ``timestep``; ``audio_sigma`` to ``sigma`` when that
                is given (as in diffusers), else to the per-sample maximum of ``audio_timestep``.
            encoder_attention_mask / audio_encoder_attention_mask: ``[B, L]``, 1 for text tokens to attend to and 0
                for padding (turned into an additive ``-10000`` bias as diffusers does), or a ready additive bias
                ``[B, 1, L]``. ``None`` attends to every token (and lets mask-less attention kernels run).
            num_frames / height / width / fps: latent grid and frame rate, used to build ``video_coords`` when they
                are not given. Built video coordinates use the latent dtype, like the reference pipelines.
            audio_num_frames: audio latent frames (= ``T_a``; checked when given).
            video_coords / audio_coords: ``[B, 3, T_v, 2]`` and ``[B, 1, T_a, 2]`` ``[start, end)`` bounds (see
                :func:`~ltx2_diffusers.models.rope.video_coordinates`).
            isolate_modalities: ``True`` drops the audio<->video attention in every block and skips its compute; a
                ``[B]`` bool tensor drops it for the marked samples only (modality guidance in a batched pass).
            spatio_temporal_guidance_blocks: block indices whose self-attention (of both streams, unless
                ``audio_spatio_temporal_guidance_blocks`` says otherwise) is replaced by its value path (STG). It
                works whatever the config's ``perturbed_attn`` says (diffusers skips STG when that is ``False``).
            perturbation_mask: ``[B]`` or ``[B, 1, 1]``: 0 for samples that STG perturbs, 1 for the others, values
                between blend the two. ``None``: every sample is perturbed and the attention is not computed.
            use_cross_timestep: ``True``: each stream's audio<->video modulation follows the other stream's
                ``sigma`` (the reference's rule for LTX-2.0 and 2.3); ``False`` (diffusers' default): its own
                ``timestep``.
            attention_kwargs: ``{"scale": s}`` scales the active PEFT LoRA layers for this call, as in diffusers.
            video_self_attention_mask: ``[B, T_v, T_v]`` multiplicative video self-attention mask in ``[0, 1]``
                (1 full attention, 0 masked), turned into the additive bias ``(1 - m)·(-10000)`` as diffusers does
                (IC-LoRA). Audio self-attention is not masked.
            video_keyframes_mask: accepted and ignored, as diffusers ignores it without
                ``use_keyframes_abs_pos_embedding`` (an LTX-2.5 flag this model refuses).
            return_dict: return an :class:`LTX2TransformerOutput` instead of a tuple.
            audio_spatio_temporal_guidance_blocks: STG blocks of the audio stream when they differ from the video
                stream's (``[]``: perturb video only, as the reference does when only the video STG scale is set).
            timestep_index / audio_timestep_index: ``[B, T]`` integer index of each token's timestep in
                ``timestep`` / ``audio_timestep``, which then hold the ``[N]`` distinct values: the AdaLN runs N
                times instead of once per token. Equivalent to passing ``timestep[timestep_index]``; the indices
                are not range-checked here (that would wait for the device).
            timestep_units: ``"scaled"`` (default, diffusers' units) or ``"sigma"``: ``timestep``,
                ``audio_timestep``, ``sigma`` and ``audio_sigma`` are σ in ``[0, 1]`` and the model multiplies them by
                ``timestep_scale_multiplier``.

        The forward reads no tensor values on the host: it runs on the meta device, compiles to one graph and
        never waits for the accelerator. Values (finite inputs, σ ranges, index ranges) are the caller's to check.
        """
        c = self.config
        # 1. Check inputs (shapes, dtypes and types only)
        batch, video_tokens = check_tokens(hidden_states, c.in_channels, "hidden_states")
        device, dtype = hidden_states.device, hidden_states.dtype
        has_video = video_tokens > 0
        has_audio = False
        if audio_hidden_states is not None:
            audio_batch, audio_tokens = check_tokens(audio_hidden_states, c.audio_in_channels, "audio_hidden_states")
            if audio_batch != batch:
                raise ValueError(f"audio_hidden_states has batch {audio_batch} but hidden_states has batch {batch}.")
            has_audio = audio_tokens > 0
            if audio_num_frames is not None and audio_num_frames != audio_tokens:
                raise ValueError(f"audio_num_frames={audio_num_frames} but audio_hidden_states has {audio_tokens} "
                                 f"tokens; pass the number of audio latent frames (or leave it out).")
        if not (has_video or has_audio):
            raise ValueError("Both streams are empty: pass video tokens, audio tokens or both.")
        if timestep is None:
            raise ValueError("timestep is required: σ·timestep_scale_multiplier per sample [B] or per token [B, T] "
                             "(or σ itself with timestep_units='sigma').")
        if not isinstance(use_cross_timestep, bool):
            raise ValueError(f"use_cross_timestep must be a bool, got {type(use_cross_timestep).__name__}.")
        if video_keyframes_mask is not None and not isinstance(video_keyframes_mask, torch.Tensor):
            raise ValueError("video_keyframes_mask must be a tensor or None.")
        scale = c.timestep_scale_multiplier if check_units(timestep_units) == "sigma" else 1.0
        t_video = check_timestep(timestep, batch, video_tokens, "timestep", device, timestep_index, scale)
        v_sigma = t_video.sample_max() if sigma is None else check_timestep(
            sigma, batch, None, "sigma", device, scale=scale).values
        isolate = isolation_flag(isolate_modalities, batch)
        stg_blocks = check_blocks(spatio_temporal_guidance_blocks, c.num_layers, "spatio_temporal_guidance_blocks")
        audio_stg_blocks = stg_blocks if audio_spatio_temporal_guidance_blocks is None else check_blocks(
            audio_spatio_temporal_guidance_blocks, c.num_layers, "audio_spatio_temporal_guidance_blocks")
        perturb = perturbation_weight(perturbation_mask, batch, dtype)
        if self._context_parallel is not None:
            self._check_parallel_call()

        # 2. Each stream's state: projections, RoPE, text, AdaLN of its timestep
        video = audio = None
        if has_video:
            ctx = check_context(encoder_hidden_states, batch, self.text_widths[0], "encoder_hidden_states")
            if video_coords is None:
                if None in (num_frames, height, width) or num_frames * height * width != video_tokens:
                    raise ValueError(
                        f"Pass video_coords [B, 3, {video_tokens}, 2] or num_frames, height and width (latent grid) "
                        f"whose product is {video_tokens}; got {num_frames}, {height}, {width}."
                    )
                video_coords = self.video_coordinates(num_frames, height, width, fps, batch, dtype, device)
            video_coords = check_coords(video_coords, batch, 3, video_tokens, "video_coords")
            self_bias = self_attention_bias(video_self_attention_mask, batch, video_tokens, dtype)
            x_video, t_local = hidden_states, t_video
            if self._context_parallel is not None:  # this rank's video tokens (global σ and coordinates first)
                self._context_parallel.begin(video_tokens)
                x_video, t_local, video_coords, self_bias = self._context_parallel.shard_video(
                    hidden_states, t_video, video_coords, self_bias)
            max_pos = (c.pos_embed_max_pos, c.base_height, c.base_width)
            rotary = self._rotary(video_coords, max_pos, c.cross_attention_dim, c.num_attention_heads, dtype)
            video, video_head = self._stream(x_video, ctx, text_bias(encoder_attention_mask, ctx, dtype),
                                             t_local, v_sigma, rotary, "")
            video = replace(video, self_attention_mask=self_bias)
        if has_audio:
            a_dtype = audio_hidden_states.dtype
            ctx = check_context(audio_encoder_hidden_states, batch, self.text_widths[1],
                                "audio_encoder_hidden_states")
            if audio_timestep is None:
                t_audio = t_video if t_video.per_sample else StreamTimestep(t_video.sample_max())
            else:
                t_audio = check_timestep(audio_timestep, batch, audio_tokens, "audio_timestep", device,
                                         audio_timestep_index, scale)
            a_sigma = (v_sigma if sigma is not None else t_audio.sample_max()) if audio_sigma is None else (
                check_timestep(audio_sigma, batch, None, "audio_sigma", device, scale=scale).values)
            if audio_coords is None:
                audio_coords = self.audio_coordinates(audio_tokens, batch, device)
            audio_coords = check_coords(audio_coords, batch, 1, audio_tokens, "audio_coords")
            rotary = self._rotary(audio_coords, (c.audio_pos_embed_max_pos,), c.audio_cross_attention_dim,
                                  c.audio_num_attention_heads, a_dtype)
            audio, audio_head = self._stream(audio_hidden_states, ctx,
                                             text_bias(audio_encoder_attention_mask, ctx, a_dtype), t_audio, a_sigma,
                                             rotary, "audio_")

        # 3. Audio<->video exchange terms: the other stream's σ (use_cross_timestep) or the stream's own timestep
        if video is not None and audio is not None and isolate is not True:
            cross_max = (max(c.pos_embed_max_pos, c.audio_pos_embed_max_pos),)
            width_av = c.audio_cross_attention_dim
            v_cross = StreamTimestep(a_sigma) if use_cross_timestep else t_local
            a_cross = StreamTimestep(v_sigma) if use_cross_timestep else t_audio
            v_mod, v_gate = self._cross_terms(v_cross, self.av_cross_attn_video_scale_shift,
                                              self.av_cross_attn_video_a2v_gate, dtype)
            a_mod, a_gate = self._cross_terms(a_cross, self.av_cross_attn_audio_scale_shift,
                                              self.av_cross_attn_audio_v2a_gate, a_dtype)
            video = replace(video, cross_modulation=v_mod, cross_gate=v_gate, cross_rotary=self._rotary(
                video_coords[:, :1], cross_max, width_av, c.num_attention_heads, dtype))
            audio = replace(audio, cross_modulation=a_mod, cross_gate=a_gate, cross_rotary=self._rotary(
                audio_coords[:, :1], cross_max, width_av, c.audio_num_attention_heads, a_dtype))

        # 4. Blocks
        for i, block in enumerate(self.transformer_blocks):
            perturb_video = perturb if i in stg_blocks else False
            perturb_audio = perturb if i in audio_stg_blocks else False
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                vx, ax = self._gradient_checkpointing_func(block, video, audio, perturb_video, perturb_audio, isolate)
            else:
                vx, ax = block(video, audio, perturb_video, perturb_audio, isolate)
            video = replace(video, hidden_states=vx) if video is not None else None
            audio = replace(audio, hidden_states=ax) if audio is not None else None

        # 5. Output heads
        if video is not None:
            sample = self._output(
                video.hidden_states, video_head, self.scale_shift_table, self.norm_out, self.proj_out
            )
            if self._context_parallel is not None:
                sample = self._context_parallel.gather_video(sample)  # [B, n, C] per rank -> [B, T_v, C]
        else:
            sample = hidden_states.new_zeros(batch, 0, self.proj_out.out_features)
        audio_sample = None
        if audio is not None:
            audio_sample = self._output(audio.hidden_states, audio_head, self.audio_scale_shift_table,
                                        self.audio_norm_out, self.audio_proj_out)
            if self._context_parallel is not None:
                audio_sample = self._context_parallel.share_audio(audio_sample)
        elif audio_hidden_states is not None:
            audio_sample = audio_hidden_states.new_zeros(batch, 0, self.audio_proj_out.out_features)
        if not return_dict:
            return sample, audio_sample
        return LTX2TransformerOutput(sample=sample, audio_sample=audio_sample)


# The class carries diffusers' name (folders, configs and messages read as diffusers' do); this package's earlier name
# stays importable and loadable from folders that were saved under it.
LTX2AudioVideoTransformer = LTX2VideoTransformer3DModel
