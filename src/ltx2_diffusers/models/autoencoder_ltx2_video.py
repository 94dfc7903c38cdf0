"""The LTX-2 video VAE: a causal 3-D convolutional autoencoder with 32×32×8 compression (paper §3.2).

``8k+1`` frames of ``H × W`` pixels become ``k+1`` latent frames of ``H/32 × W/32`` cells with 128 channels; the
first frame is encoded alone. The encoder is causal in time, the LTX-2.0 decoder is not and may be conditioned on a
decode timestep (with 2.5 % fresh noise mixed into the latents, as the reference does). Encoding and decoding can be
tiled in space and time (:class:`~ltx2_diffusers.models.tiling.VideoTiling`); tiled decoding can stream the video
one temporal tile at a time (:meth:`LTX2VideoAutoencoder.decode_chunks`).

Latent conventions follow diffusers: ``encode(x).latent_dist`` and ``decode(z)`` work on *un-normalised* latents;
the transformer works on latents normalised per channel with the ``latents_mean`` / ``latents_std`` buffers
(:func:`normalize_latents`, :func:`denormalize_latents`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import logging
from diffusers.utils.accelerate_utils import apply_forward_hook
from diffusers.utils.torch_utils import randn_tensor

from .strict_loading import StrictLoadingMixin
from .tiling import AxisPlan, VideoTiling, plan_axis
from .video_vae_blocks import LTX2VideoDecoder3d, LTX2VideoEncoder3d, per_block

logger = logging.get_logger(__name__)

# The reference decode settings of a timestep-conditioned decoder (ltx-core's VideoDecoder).
DEFAULT_DECODE_TIMESTEP = 0.05
DEFAULT_DECODE_NOISE_SCALE = 0.025

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def _channel_view(stats: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return stats.to(device=like.device, dtype=like.dtype).view(1, -1, *([1] * (like.ndim - 2)))


def normalize_latents(latents: torch.Tensor, latents_mean: torch.Tensor, latents_std: torch.Tensor,
                      scaling_factor: float = 1.0) -> torch.Tensor:
    """Per-channel ``(z - mean) · scaling_factor / std`` of ``[B, C, ...]`` latents (VAE space -> model space)."""
    return (latents - _channel_view(latents_mean, latents)) * scaling_factor / _channel_view(latents_std, latents)


def denormalize_latents(latents: torch.Tensor, latents_mean: torch.Tensor, latents_std: torch.Tensor,
                        scaling_factor: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`normalize_latents`: ``z · std / scaling_factor + mean`` (model space -> VAE space)."""
    return latents * _channel_view(latents_std, latents) / scaling_factor + _channel_view(latents_mean, latents)


def _outer3(t: torch.Tensor, h: torch.Tensor, w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[T] ⊗ [H] ⊗ [W] -> [T, H, W]`` in ``like``'s dtype and device."""
    t, h, w = (v.to(device=like.device, dtype=like.dtype) for v in (t, h, w))
    return t[:, None, None] * h[None, :, None] * w[None, None, :]


def _nearest_multiples(value: int, step: int, offset: int = 0) -> str:
    """The valid sizes ``k·step + offset`` around ``value``, as text for an error message."""
    lower = (value - offset) // step * step + offset
    return f"{lower} or {lower + step}" if lower > 0 else f"{lower + step}"


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class LTX2VideoAutoencoder(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    The LTX-2 video VAE. Loads diffusers-format ``vae/`` folders of ``AutoencoderKLLTX2Video`` unchanged (same config
    keys, same state-dict names); the defaults are the LTX-2.0 (19B) values.

    Args:
        in_channels (`int`, defaults to 3): pixel channels.
        out_channels (`int`, defaults to 3): decoded channels.
        latent_channels (`int`, defaults to 128): latent channels; the encoder's first width too.
        block_out_channels (`tuple[int, ...]`, defaults to `(256, 512, 1024, 2048)`): encoder width after each down
            block.
        down_block_types (`tuple[str, ...]`): only `"LTX2VideoDownBlock3D"`.
        decoder_block_out_channels (`tuple[int, ...]`, defaults to `(256, 512, 1024)`): decoder width entering each up
            block's up-sampler, listed from the output side.
        layers_per_block (`tuple[int, ...]`, defaults to `(4, 6, 6, 2, 2)`): residual blocks per encoder block; the
            last entry is the mid block's (as in diffusers, a list of one entry per down block shares its last entry
            with the mid block).
        decoder_layers_per_block (`tuple[int, ...]`, defaults to `(5, 5, 5, 5)`): residual blocks per decoder block,
            listed from the output side (the last entry is the mid block).
        spatio_temporal_scaling, decoder_spatio_temporal_scaling (`bool` or `tuple[bool, ...]`): which blocks
            re-sample (decoder list from the output side).
        decoder_inject_noise (`bool` or `tuple[bool, ...]`): spatial noise injection per decoder block.
        downsample_type (`tuple[str, ...]`, defaults to `("spatial", "temporal", "spatiotemporal", "spatiotemporal")`):
            per encoder block: `"spatial"`, `"temporal"`, `"spatiotemporal"` (space-to-depth with a skip) or `"conv"`.
        upsample_type (`tuple[str, ...]`, defaults to 3 × `"spatiotemporal"`): per decoder block, from the input side.
        upsample_residual (`bool` or `tuple[bool, ...]`), upsample_factor (`tuple[int, ...]`, defaults to `(2, 2, 2)`):
            up-sampler skip connections and channel reductions (from the output side).
        timestep_conditioning (`bool`, defaults to `False`): decoder conditioned on a decode timestep.
        patch_size (`int`, defaults to 4), patch_size_t (`int`, defaults to 1): input space-to-depth patch.
        resnet_norm_eps (`float`, defaults to 1e-6): epsilon of the channel-changing residual blocks' LayerNorm.
        scaling_factor (`float`, defaults to 1.0): extra latent scale used by (de)normalisation.
        encoder_causal (`bool`, defaults to `True`), decoder_causal (`bool`, defaults to `False`): temporal padding
            (the LTX-2 decoder is not causal; diffusers' class default is `True`, but its saved configs always state
            the value).
        encoder_spatial_padding_mode (`str`, defaults to `"zeros"`), decoder_spatial_padding_mode (`str`, defaults to
            `"reflect"`): spatial padding of every convolution.
        spatial_compression_ratio (`int`, *optional*), temporal_compression_ratio (`int`, *optional*): the
            decoder's expansion (32 and 8 for LTX-2). `None` (the default) derives them from the blocks and stores the
            result in the config; a given value must equal what the blocks do.

    Per-block lists longer than the number of blocks are accepted and read as diffusers reads them (encoder lists and
    `upsample_type` from their start, the other decoder lists from their input-side end). The attributes
    `spatial_compression_ratio`, `temporal_compression_ratio`, `latents_mean`, `latents_std`, `use_tiling` and
    `use_slicing` are the ones diffusers' LTX-2 pipelines read.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 128,
        block_out_channels: tuple[int, ...] = (256, 512, 1024, 2048),
        down_block_types: tuple[str, ...] = ("LTX2VideoDownBlock3D",) * 4,
        decoder_block_out_channels: tuple[int, ...] = (256, 512, 1024),
        layers_per_block: tuple[int, ...] = (4, 6, 6, 2, 2),
        decoder_layers_per_block: tuple[int, ...] = (5, 5, 5, 5),
        spatio_temporal_scaling: bool | tuple[bool, ...] = (True, True, True, True),
        decoder_spatio_temporal_scaling: bool | tuple[bool, ...] = (True, True, True),
        decoder_inject_noise: bool | tuple[bool, ...] = (False, False, False, False),
        downsample_type: tuple[str, ...] = ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type: tuple[str, ...] = ("spatiotemporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual: bool | tuple[bool, ...] = (True, True, True),
        upsample_factor: tuple[int, ...] = (2, 2, 2),
        timestep_conditioning: bool = False,
        patch_size: int = 4,
        patch_size_t: int = 1,
        resnet_norm_eps: float = 1e-6,
        scaling_factor: float = 1.0,
        encoder_causal: bool = True,
        decoder_causal: bool = False,
        encoder_spatial_padding_mode: str = "zeros",
        decoder_spatial_padding_mode: str = "reflect",
        spatial_compression_ratio: int | None = None,
        temporal_compression_ratio: int | None = None,
    ) -> None:
        super().__init__()
        unknown = sorted(set(per_block(tuple(down_block_types), len(block_out_channels), "down_block_types"))
                         - {"LTX2VideoDownBlock3D"})
        if unknown:
            raise ValueError(f"unknown down_block_types {unknown}; only 'LTX2VideoDownBlock3D' exists.")
        for name, mode in (("encoder", encoder_spatial_padding_mode), ("decoder", decoder_spatial_padding_mode)):
            if mode not in ("zeros", "reflect", "replicate", "circular"):
                raise ValueError(f"{name}_spatial_padding_mode must be zeros, reflect, replicate or circular, got "
                                 f"{mode!r}.")
        self.encoder = LTX2VideoEncoder3d(
            in_channels, latent_channels, block_out_channels, layers_per_block, spatio_temporal_scaling,
            downsample_type, patch_size, patch_size_t, resnet_norm_eps, encoder_spatial_padding_mode,
        )
        self.decoder = LTX2VideoDecoder3d(
            latent_channels, out_channels, decoder_block_out_channels, decoder_layers_per_block,
            decoder_spatio_temporal_scaling, upsample_type, upsample_residual, upsample_factor, decoder_inject_noise,
            timestep_conditioning, patch_size, patch_size_t, resnet_norm_eps, decoder_spatial_padding_mode,
        )
        self.register_buffer("latents_mean", torch.zeros(latent_channels), persistent=True)
        self.register_buffer("latents_std", torch.ones(latent_channels), persistent=True)

        ft, fh, _ = self.decoder.factors
        if self.encoder.factors != self.decoder.factors:
            logger.warning(
                "The encoder compresses (frames, height, width) by %s but the decoder expands by %s, so "
                "decode(encode(x)) does not return x's size; spatial_compression_ratio and temporal_compression_ratio "
                "follow the decoder (the latent grid a pipeline generates on).", self.encoder.factors,
                self.decoder.factors,
            )
        for name, given, derived in (("spatial_compression_ratio", spatial_compression_ratio, fh),
                                     ("temporal_compression_ratio", temporal_compression_ratio, ft)):
            if given is not None and given != derived:
                raise ValueError(f"{name}={given} does not match the blocks, which compress by {derived}; pass "
                                 f"{name}={derived} or None.")
        self.spatial_compression_ratio = fh
        self.temporal_compression_ratio = ft
        # the resolved ratios go into the config, so a saved folder tells diffusers the true values (diffusers derives
        # `None` as patch_size · 2^(number of re-sampling blocks), which is 64 / 16 for the LTX-2 layouts)
        self.register_to_config(spatial_compression_ratio=fh, temporal_compression_ratio=ft)

        self.use_slicing = False
        self.use_tiling = False
        self.tiling = VideoTiling()

    # ------------------------------------------------------------------------------------------------------------
    # Settings
    # ------------------------------------------------------------------------------------------------------------

    def enable_tiling(
        self,
        tile_sample_min_height: int | VideoTiling | None = None,
        tile_sample_min_width: int | None = None,
        tile_sample_min_num_frames: int | None = None,
        tile_sample_stride_height: int | None = None,
        tile_sample_stride_width: int | None = None,
        tile_sample_stride_num_frames: int | None = None,
        *,
        tiling: VideoTiling | None = None,
    ) -> None:
        """Tile every later ``encode``/``decode`` in space and time (default :class:`VideoTiling`: 512 px tiles
        overlapping by 64, 64-frame tiles overlapping by 24).

        Takes diffusers' arguments, in diffusers' order: tile size = ``tile_sample_min_*``, overlap = size minus
        ``tile_sample_stride_*`` (tiles are square: height and width must agree). A :class:`VideoTiling` may be passed
        instead, as ``tiling=`` or as the only positional argument; the diffusers arguments then override its fields.
        """
        if isinstance(tile_sample_min_height, VideoTiling):
            if tiling is not None:
                raise ValueError("pass the VideoTiling once: positionally or as tiling=, not both.")
            tiling, tile_sample_min_height = tile_sample_min_height, None
        tiling = tiling or VideoTiling()
        size = tile_sample_min_height or tile_sample_min_width
        if tile_sample_min_height and tile_sample_min_width and tile_sample_min_height != tile_sample_min_width:
            raise ValueError("tiles are square: pass equal tile_sample_min_height and tile_sample_min_width.")
        stride = tile_sample_stride_height or tile_sample_stride_width
        if tile_sample_stride_height and tile_sample_stride_width and tile_sample_stride_height != \
                tile_sample_stride_width:
            raise ValueError("tiles are square: pass equal tile_sample_stride_height and tile_sample_stride_width.")
        if size or stride:
            size = size or tiling.tile_size
            stride = stride or size - tiling.tile_overlap
            tiling = VideoTiling(size, size - stride, tiling.tile_frames, tiling.tile_overlap_frames)
        if tile_sample_min_num_frames or tile_sample_stride_num_frames:
            frames = tile_sample_min_num_frames or tiling.tile_frames
            stride_t = tile_sample_stride_num_frames or frames - tiling.tile_overlap_frames
            tiling = VideoTiling(tiling.tile_size, tiling.tile_overlap, frames, frames - stride_t)
        for side in ("encoder", "decoder"):
            tiling.latent_sizes(*self._scales(side))  # validates before anything is stored
        self.tiling = tiling
        self.use_tiling = True

    def disable_tiling(self) -> None:
        """Encode and decode whole videos again."""
        self.use_tiling = False

    def enable_slicing(self) -> None:
        """Encode and decode one batch element at a time."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latents -> the normalised latents the transformer works on (this VAE's statistics)."""
        return normalize_latents(latents, self.latents_mean, self.latents_std, self.config.scaling_factor)

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> VAE latents (this VAE's statistics)."""
        return denormalize_latents(latents, self.latents_mean, self.latents_std, self.config.scaling_factor)

    # ------------------------------------------------------------------------------------------------------------
    # Input checks
    # ------------------------------------------------------------------------------------------------------------

    def _scales(self, side: str) -> tuple[int, int]:
        """``(spatial, temporal)`` compression of the encoder or the decoder (they differ only in odd configs)."""
        ft, fh, _ = (self.encoder if side == "encoder" else self.decoder).factors
        return fh, ft

    def _resolve_tiling(self, tiling: VideoTiling | None, side: str) -> VideoTiling | None:
        tiling = tiling if tiling is not None else (self.tiling if self.use_tiling else None)
        if tiling is not None:
            tiling.latent_sizes(*self._scales(side))
        return tiling

    def _check_video(self, x: torch.Tensor) -> None:
        s, t = self._scales("encoder")
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"encode expects a video tensor [batch, channels, frames, height, width], got {shape}; "
                             "for images add a frame axis with x.unsqueeze(2).")
        _, c, f, h, w = x.shape
        if c != self.config.in_channels:
            raise ValueError(f"encode expects {self.config.in_channels} channels on dim 1 ([B, C, F, H, W]), got {c} "
                             f"(shape {tuple(x.shape)}).")
        if (f - 1) % t:
            raise ValueError(f"the video has {f} frames but the VAE needs {t}k+1 frames; pass "
                             f"{_nearest_multiples(f, t, offset=1)} frames (nothing is cropped for you).")
        for name, size in (("height", h), ("width", w)):
            if size % s or size == 0:
                raise ValueError(f"video {name} {size} is not a multiple of {s}; resize or crop to "
                                 f"{_nearest_multiples(size, s)} pixels.")
        if self.config.encoder_spatial_padding_mode == "reflect" and min(h, w) < 2 * s:
            raise ValueError(f"with reflect padding the video must be at least {2 * s} pixels high and wide, got "
                             f"{h}x{w}.")

    def _check_latents(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or z.ndim != 5:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"decode expects latents [batch, {self.config.latent_channels}, frames, height, width], "
                             f"got {shape}; unpack transformer tokens to 5-D first.")
        if z.shape[1] != self.config.latent_channels:
            raise ValueError(f"decode expects {self.config.latent_channels} latent channels on dim 1, got "
                             f"{z.shape[1]} (shape {tuple(z.shape)}).")
        if self.config.decoder_spatial_padding_mode == "reflect" and min(z.shape[-2:]) < 2:
            raise ValueError(f"with reflect padding the latents must be at least 2 cells high and wide "
                             f"({2 * self.spatial_compression_ratio} px), got {tuple(z.shape[-2:])}.")

    def _decode_conditioning(
        self, z: torch.Tensor, temb: float | torch.Tensor | None, noise_scale: float | torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(timestep [B] | None, noise scale [B] | None)`` for a decode call, with the reference defaults."""
        if not self.config.timestep_conditioning:
            if temb is not None or noise_scale is not None:
                raise ValueError("this VAE's decoder is not timestep-conditioned (timestep_conditioning=False); "
                                 "pass temb=None and decode_noise_scale=None.")
            return None, None
        if temb is None:  # the reference decode: timestep 0.05 with 2.5 % fresh noise
            temb = DEFAULT_DECODE_TIMESTEP
            noise_scale = DEFAULT_DECODE_NOISE_SCALE if noise_scale is None else noise_scale
        batch = z.shape[0]
        values = []
        for name, value in (("temb", temb), ("decode_noise_scale", noise_scale)):
            if value is None:
                values.append(None)
                continue
            value = torch.as_tensor(value, device=z.device, dtype=z.dtype).flatten()
            if value.numel() == 1:
                value = value.expand(batch)
            if value.numel() != batch:
                raise ValueError(f"{name} needs one value or one per batch element ({batch}), got {value.numel()}.")
            values.append(value)
        return values[0], values[1]

    def _mix_noise(self, z: torch.Tensor, noise_scale: torch.Tensor | None, generator: torch.Generator | None
                   ) -> torch.Tensor:
        """``(1 - s)·z + s·ε`` in normalised space, expressed on the un-normalised latents ``z``."""
        if noise_scale is None or not bool((noise_scale != 0).any()):
            return z
        noise = randn_tensor(tuple(z.shape), generator=generator, device=z.device, dtype=z.dtype)  # [B, C, F, H, W]
        noise = self.denormalize_latents(noise)
        s = noise_scale.view(-1, 1, 1, 1, 1)
        return (1 - s) * z + s * noise

    # ------------------------------------------------------------------------------------------------------------
    # Encode
    # ------------------------------------------------------------------------------------------------------------

    def _plans(self, latent_shape: Sequence[int], tiling: VideoTiling | None, output: str, causal: bool
               ) -> tuple[AxisPlan, AxisPlan, AxisPlan]:
        """Tile plans for (time, height, width); with causal convolutions the earlier temporal tile keeps overlaps."""
        f, h, w = latent_shape
        s, t = self._scales("encoder" if output == "latent" else "decoder")
        tile, overlap, tile_t, overlap_t = (tiling.latent_sizes(s, t) if tiling is not None
                                            else (None, 0, None, 0))
        return (plan_axis(f, tile_t, overlap_t, t, True, output, hard=causal),
                plan_axis(h, tile, overlap, s, False, output), plan_axis(w, tile, overlap, s, False, output))

    def _encode_moments(self, x: torch.Tensor, causal: bool, tiling: VideoTiling | None) -> torch.Tensor:
        """``[B, C, F, H, W] -> [B, latent + 1, F', H', W']``, tiled when ``tiling`` is given."""
        s, t = self._scales("encoder")
        shape = ((x.shape[2] - 1) // t + 1, x.shape[3] // s, x.shape[4] // s)
        plans = self._plans(shape, tiling, "latent", causal)
        if all(len(p) == 1 for p in plans):
            return self.encoder(x, causal=causal)
        out = None
        for tt in plans[0].tiles:
            for th in plans[1].tiles:
                for tw in plans[2].tiles:
                    piece = self.encoder(x[:, :, tt.pixel, th.pixel, tw.pixel], causal=causal)
                    if out is None:
                        out = piece.new_zeros(*piece.shape[:2], *shape)
                    out[:, :, tt.latent, th.latent, tw.latent] += piece * _outer3(tt.weight, th.weight, tw.weight,
                                                                                  piece)
        return out / _outer3(*(p.weight_sum for p in plans), out)

    @apply_forward_hook
    def encode(
        self,
        x: torch.Tensor,
        causal: bool | None = None,
        return_dict: bool = True,
        *,
        tiling: VideoTiling | None = None,
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        r"""
        Encodes a video into the (un-normalised) latent posterior.

        Args:
            x (`torch.Tensor` of shape `[B, C, F, H, W]`): pixels in [-1, 1], `F = 8k+1`, `H` and `W` multiples of 32.
            causal (`bool`, *optional*): temporal padding; defaults to `config.encoder_causal`.
            return_dict (`bool`, defaults to `True`): return an `AutoencoderKLOutput` instead of a tuple.
            tiling (`VideoTiling`, *optional*): tile this call; defaults to the `enable_tiling` setting.

        Returns:
            `AutoencoderKLOutput` whose `latent_dist` is a `DiagonalGaussianDistribution` over `[B, 128, F', H', W']`
            latents (`.mode()`, `.sample(generator)`); normalise with `normalize_latents` for the transformer.
        """
        self._check_video(x)
        tiling = self._resolve_tiling(tiling, "encoder")
        causal = self.config.encoder_causal if causal is None else causal
        if self.use_slicing and x.shape[0] > 1:
            raw = torch.cat([self._encode_moments(one, causal, tiling) for one in x.split(1)])
        else:
            raw = self._encode_moments(x, causal, tiling)
        means, logvar = raw[:, :-1], raw[:, -1:]
        moments = torch.cat([means, logvar.expand_as(means)], dim=1)  # [B, 2·latent, F', H', W']
        posterior = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # ------------------------------------------------------------------------------------------------------------
    # Decode
    # ------------------------------------------------------------------------------------------------------------

    def _decode_tiles(self, z: torch.Tensor, temb: torch.Tensor | None, generator: torch.Generator | None,
                      causal: bool, tiling: VideoTiling | None) -> Iterator[torch.Tensor]:
        """Yields the decoded video in temporal chunks, each final (blended and normalised)."""
        plan_t, plan_h, plan_w = self._plans(z.shape[2:], tiling, "pixel", causal)
        pending = None  # weighted sum of the frames the previous temporal tile shares with the next one
        for k, tt in enumerate(plan_t.tiles):
            start, stop = tt.pixel.start, tt.pixel.stop
            chunk = None
            for th in plan_h.tiles:
                for tw in plan_w.tiles:
                    piece = self.decoder(z[:, :, tt.latent, th.latent, tw.latent], temb, generator, causal)
                    if chunk is None:
                        size = (plan_h.weight_sum.numel(), plan_w.weight_sum.numel())
                        chunk = piece.new_zeros(*piece.shape[:2], stop - start, *size)  # [B, C, frames, H, W]
                    chunk[:, :, :, th.pixel, tw.pixel] += piece * _outer3(tt.weight, th.weight, tw.weight, piece)
                    del piece
            if pending is not None:
                chunk[:, :, : pending.shape[2]] += pending
            ready = plan_t.tiles[k + 1].pixel.start if k + 1 < len(plan_t) else stop
            weight = _outer3(plan_t.weight_sum[start:ready], plan_h.weight_sum, plan_w.weight_sum, chunk)
            pending = chunk[:, :, ready - start:]
            yield chunk[:, :, : ready - start] / weight

    def _decode_prepared(self, z: torch.Tensor, temb: torch.Tensor | None, generator: torch.Generator | None,
                         causal: bool, tiling: VideoTiling | None) -> torch.Tensor:
        if tiling is None or all(len(p) == 1 for p in self._plans(z.shape[2:], tiling, "pixel", causal)):
            return self.decoder(z, temb, generator, causal)  # one tile: no blending buffers
        video, at = None, 0
        for chunk in self._decode_tiles(z, temb, generator, causal, tiling):
            if video is None:
                frames = (z.shape[2] - 1) * self.temporal_compression_ratio + 1
                video = chunk.new_empty(*chunk.shape[:2], frames, *chunk.shape[3:])
            video[:, :, at: at + chunk.shape[2]] = chunk
            at += chunk.shape[2]
        return video

    def _prepare_decode(self, z: torch.Tensor, temb: float | torch.Tensor | None, causal: bool | None,
                        generator: torch.Generator | None, decode_noise_scale: float | torch.Tensor | None,
                        tiling: VideoTiling | None) -> tuple:
        self._check_latents(z)
        tiling = self._resolve_tiling(tiling, "decoder")
        temb, noise_scale = self._decode_conditioning(z, temb, decode_noise_scale)
        z = self._mix_noise(z, noise_scale, generator)
        causal = self.config.decoder_causal if causal is None else causal
        return z, temb, causal, tiling

    @apply_forward_hook
    def decode(
        self,
        z: torch.Tensor,
        temb: float | torch.Tensor | None = None,
        causal: bool | None = None,
        return_dict: bool = True,
        *,
        generator: torch.Generator | None = None,
        decode_noise_scale: float | torch.Tensor | None = None,
        tiling: VideoTiling | None = None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        r"""
        Decodes un-normalised latents into pixels.

        Args:
            z (`torch.Tensor` of shape `[B, latent_channels, F', H', W']`): un-normalised latents
                (`denormalize_latents` of what the transformer produced).
            temb (`float` or `torch.Tensor` of shape `[B]`, *optional*): decode timestep of a timestep-conditioned
                decoder. Left out, the reference decode runs: timestep 0.05 with 2.5 % fresh noise mixed into the
                normalised latents (drawn with `generator`). Given, no noise is mixed unless `decode_noise_scale` says
                so (the diffusers convention, where the pipeline mixes it).
            causal (`bool`, *optional*): temporal padding; defaults to `config.decoder_causal`.
            return_dict (`bool`, defaults to `True`): return a `DecoderOutput` instead of a tuple.
            generator (`torch.Generator`, *optional*): drives the noise mixing (and noise injection, if configured).
            decode_noise_scale (`float` or `torch.Tensor` of shape `[B]`, *optional*): `s` in `(1 - s)·z + s·ε`.
            tiling (`VideoTiling`, *optional*): tile this call; defaults to the `enable_tiling` setting.

        Returns:
            `DecoderOutput` with `sample` of shape `[B, out_channels, 8(F'-1)+1, 32H', 32W']` (LTX-2 layout).
        """
        z, temb, causal, tiling = self._prepare_decode(z, temb, causal, generator, decode_noise_scale, tiling)
        if self.use_slicing and z.shape[0] > 1:
            video = torch.cat([
                self._decode_prepared(z[i: i + 1], None if temb is None else temb[i: i + 1], generator, causal, tiling)
                for i in range(z.shape[0])
            ])
        else:
            video = self._decode_prepared(z, temb, generator, causal, tiling)
        return DecoderOutput(sample=video) if return_dict else (video,)

    @apply_forward_hook
    def decode_chunks(
        self,
        z: torch.Tensor,
        temb: float | torch.Tensor | None = None,
        causal: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        decode_noise_scale: float | torch.Tensor | None = None,
        tiling: VideoTiling | None = None,
    ) -> Iterator[torch.Tensor]:
        r"""
        Decodes tile by tile and yields the video in consecutive temporal chunks `[B, C, frames, H, W]` (concatenated
        along dim 2 they equal the tiled `decode`). Only one temporal tile is held at a time, so peak memory does not
        grow with the number of frames. Arguments as in `decode`; `tiling` defaults to the `enable_tiling` setting,
        else to `VideoTiling()`. Input errors are raised here, before the first chunk is computed.
        """
        tiling = tiling if tiling is not None else self.tiling
        z, temb, causal, tiling = self._prepare_decode(z, temb, causal, generator, decode_noise_scale, tiling)
        return self._decode_tiles(z, temb, generator, causal, tiling)

    def forward(
        self,
        sample: torch.Tensor,
        temb: float | torch.Tensor | None = None,
        sample_posterior: bool = False,
        encoder_causal: bool | None = None,
        decoder_causal: bool | None = None,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        r"""
        Encodes and decodes a video.

        Args:
            sample (`torch.Tensor` of shape `[B, C, F, H, W]`): input video.
            temb (`float` or `torch.Tensor`, *optional*): decode timestep (see `decode`).
            sample_posterior (`bool`, defaults to `False`): sample the posterior instead of taking its mode.
            encoder_causal, decoder_causal (`bool`, *optional*): override the configured temporal padding.
            return_dict (`bool`, defaults to `True`): return a `DecoderOutput` instead of a tuple.
            generator (`torch.Generator`, *optional*): for posterior sampling and decode noise.
        """
        posterior = self.encode(sample, causal=encoder_causal).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, temb, causal=decoder_causal, return_dict=return_dict, generator=generator)
