"""Input side of :class:`~ltx2_diffusers.LTX2AudioVideoPipeline`: argument checks and the starting state of both
streams (noise, image conditions, and the clean tokens of a given video or audio clip with their hold masks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..models.audio_processing import latents_for_mel_frames, mel_frames_for_samples
from ..models.text_connectors_ltx2 import LTX2TextEmbeddings
from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
from .conditioning import ImageCondition, keyframe_coordinates, preprocess_image
from .denoising import StreamInputs
from .latents import VideoLatentShape, check_video_size, pack_video_latents
from .media import check_time_window, window_mask
from .stage_adapters import check_stage_adapters
from .text_encoding import check_max_sequence_length, check_prompts
from .token_tiling import TokenTiling

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass(frozen=True)
class SourceTokens:
    """The clean, normalised tokens of a given clip and which of them are held (not regenerated).

    Args:
        clean: ``[1, T, C]`` packed normalised latents (zeros where the clip does not reach).
        held: ``[T]`` bool, True for tokens kept as given.
    """

    clean: torch.Tensor
    held: torch.Tensor

    @property
    def fully_held(self) -> bool:
        return bool(self.held.all())


def _is_int(value: Any, minimum: int) -> bool:  # noqa: ANN401
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


class LTX2InputsMixin:
    """Checks and latent preparation shared by every mode of the pipeline (needs ``vae``, ``audio_vae``,
    ``transformer``, ``connectors`` and ``_callback_tensor_inputs``)."""

    def check_inputs(
        self,
        prompt: Any,  # noqa: ANN401
        prompt_embeds: Any,  # noqa: ANN401
        negative_prompt_embeds: Any,  # noqa: ANN401
        height: int,
        width: int,
        num_frames: int,
        frame_rate: float,
        num_inference_steps: int,
        sigmas: Sequence[float] | None,
        num_videos_per_prompt: int,
        output_type: str,
        max_sequence_length: int,
        noise_scale: float | None,
        image_crf: int,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> None:
        """Rejects invalid arguments with an actionable ``ValueError`` before any model runs."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Pass exactly one of `prompt` and `prompt_embeds`.")
        if prompt is not None:
            check_prompts(prompt)
            if self.text_encoder is None or self.tokenizer is None:
                raise ValueError("This pipeline has no text encoder/tokenizer: pass `prompt_embeds` instead of "
                                 "`prompt`.")
        for name, embeds in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if embeds is not None and not isinstance(embeds, LTX2TextEmbeddings):
                raise ValueError(f"`{name}` must be the LTX2TextEmbeddings that `encode_prompt` returns, got "
                                 f"{type(embeds).__name__}.")
        check_video_size(num_frames, height, width, self.temporal_compression, self.spatial_compression)
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not (
                math.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f"`frame_rate` must be a positive number of frames per second, got {frame_rate!r}.")
        if sigmas is None:
            if not _is_int(num_inference_steps, 1):
                raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        else:
            check_sigma_list(sigmas, "sigmas")
        if not _is_int(num_videos_per_prompt, 1):
            raise ValueError(f"`num_videos_per_prompt` must be a positive integer, got {num_videos_per_prompt!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        check_max_sequence_length(max_sequence_length, self.connectors.register_multiple)
        if noise_scale is not None and not (isinstance(noise_scale, (int, float)) and 0 <= noise_scale <= 1):
            raise ValueError(f"`noise_scale` must lie in [0, 1] (or be None), got {noise_scale!r}.")
        if not _is_int(image_crf, 0) or image_crf > 51:
            raise ValueError(f"`image_crf` must be an integer in [0, 51] (0 = no compression), got {image_crf!r}.")
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` may only name {self._callback_tensor_inputs}, "
                             f"got {unknown}.")

    def _check_latents(self, latents: torch.Tensor | None, batch: int, tokens: int, channels: int, name: str
                       ) -> None:
        if latents is None:
            return
        if not isinstance(latents, torch.Tensor) or not latents.is_floating_point() or latents.shape != (
                batch, tokens, channels):
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"`{name}` must be packed, normalised float latents [{batch}, {tokens}, {channels}] (as "
                             f"output_type='latent' returns them), got {shape}.")

    @staticmethod
    def _noise(shape: tuple[int, ...], generator: Any, dtype: torch.dtype, device: torch.device  # noqa: ANN401
               ) -> torch.Tensor:
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

    # -- sources (video-to-audio, audio-to-video, retake) -------------------------------------------------------

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, F, H, W]`` pixels in [-1, 1] -> packed normalised latents (the posterior's mode)."""
        return pack_video_latents(self.vae.normalize_latents(self.vae.encode(pixels).latent_dist.mode()))

    def encode_video_source(
        self, pixels: torch.Tensor, shape: VideoLatentShape, fps: float, window: tuple[float, float] | None,
        device: torch.device,
    ) -> SourceTokens:
        """``[F, 3, H, W]`` pixels in [-1, 1] (``F = 8k+1`` up to the clip's frames) -> the clip's video tokens.

        Latent frames the source reaches are held, except those overlapping the retake ``window`` (seconds); the
        rest of the clip (an extension) is generated.
        """
        frames = pixels.shape[0]
        x = pixels.permute(1, 0, 2, 3).unsqueeze(0).to(device=device, dtype=self.vae.dtype)  # [1, 3, F, H, W]
        tokens = self._encode_pixels(x)
        per_frame = shape.height * shape.width
        clean = torch.zeros(1, shape.num_tokens, shape.channels, device=device, dtype=tokens.dtype)
        clean[:, : tokens.shape[1]] = tokens
        source_frames = (frames - 1) // self.temporal_compression + 1
        held = torch.arange(shape.frames) < source_frames  # [F']
        if window is not None:
            bounds = self.transformer.video_coordinates(shape.frames, 1, 1, fps)[0, 0]  # [F', 2] seconds
            held &= ~window_mask(bounds, *window)
        return SourceTokens(clean, held.repeat_interleave(per_frame).to(device))

    def encode_audio_source(
        self, waveform: torch.Tensor, sample_rate: int, num_tokens: int, window: tuple[float, float] | None,
        device: torch.device,
    ) -> SourceTokens:
        """``[2, N]`` waveform -> the clip's audio tokens: the encoded audio trimmed to ``num_tokens`` (held, except
        tokens overlapping the retake ``window``); tokens past the end of a shorter clip are generated."""
        mel = self.audio_vae.mel_spectrogram(waveform.to(device), sample_rate)  # [1, 2, T, M]
        latents = self.audio_vae.encode(mel.to(self.audio_vae.dtype)).latent_dist.mode()
        tokens = self.audio_vae.normalize_latents(latents)[:, :num_tokens]  # [1, L, C·M]
        clean = torch.zeros(1, num_tokens, tokens.shape[-1], device=device, dtype=tokens.dtype)
        clean[:, : tokens.shape[1]] = tokens
        held = torch.arange(num_tokens) < tokens.shape[1]
        if window is not None:
            held &= ~window_mask(self.transformer.audio_coordinates(num_tokens)[0, 0], *window)
        return SourceTokens(clean, held.to(device))

    def audio_source_tokens(self, waveform: torch.Tensor, sample_rate: int) -> int:
        """Audio latents the encoder makes from a waveform (after resampling to the audio VAE's rate)."""
        c = self.audio_vae.config
        samples = math.ceil(waveform.shape[-1] * c.sample_rate / sample_rate)
        return latents_for_mel_frames(mel_frames_for_samples(samples, c.mel_hop_length),
                                      self.audio_vae.temporal_compression_ratio,
                                      self.audio_vae.causality_axis != "none")

    def audio_source_seconds(self, waveform: torch.Tensor, sample_rate: int) -> float:
        """Duration of a waveform; ``ValueError`` when it is shorter than one audio latent (4 mel hops, 40 ms)."""
        seconds = waveform.shape[-1] / sample_rate
        c = self.audio_vae.config
        latent_seconds = c.mel_hop_length * self.audio_vae.temporal_compression_ratio / c.sample_rate
        if seconds < latent_seconds:
            raise ValueError(f"the conditioning audio lasts {seconds * 1000:.1f} ms, shorter than one audio latent "
                             f"({latent_seconds * 1000:.0f} ms); pass a longer clip.")
        return seconds

    # -- checks of the modes ----------------------------------------------------------------------------------

    def _check_sources(
        self, pixels: torch.Tensor | None, waveform: torch.Tensor | None, sample_rate: int | None,
        retake_window: Any, retake_modalities: Sequence[str], num_frames: int, height: int, width: int,  # noqa: ANN401
        frame_rate: float,
    ) -> tuple[float, float] | None:
        """Validates the given video / audio against the clip; returns the retake window (or ``None``)."""
        if pixels is not None:
            frames, _, h, w = pixels.shape
            if (h, w) != (height, width):
                raise ValueError(f"`video` is {h}x{w} (height x width) but the clip is {height}x{width}: resize the "
                                 f"frames first, or leave height/width unset to use the video's size.")
            if (frames - 1) % self.temporal_compression or frames > num_frames:
                raise ValueError(f"`video` has {frames} frames: pass {self.temporal_compression}k+1 frames, at most "
                                 f"num_frames={num_frames} (fewer frames extend the clip); e.g. trim to "
                                 f"{(frames - 1) // self.temporal_compression * self.temporal_compression + 1}.")
        if waveform is not None:
            self.audio_source_seconds(waveform, sample_rate)
        if retake_window is None:
            return None
        if pixels is None and waveform is None:
            raise ValueError("retake_window regenerates part of a given clip: pass `video` and/or `audio` too.")
        modalities = [retake_modalities] if isinstance(retake_modalities, str) else list(retake_modalities)
        if not modalities or any(m not in ("video", "audio") for m in modalities):
            raise ValueError(f"retake_modalities must name 'video' and/or 'audio', got {retake_modalities!r}.")
        return check_time_window(retake_window, num_frames / frame_rate)

    def _check_stages(
        self, upsample: bool, height: int, width: int, pixels: torch.Tensor | None,
        window: tuple[float, float] | None, stage_2_sigmas: Sequence[float],
        stage_2_transformer: Any, stage_2_adapters: Any, refine_tiling: Any,  # noqa: ANN401
    ) -> list[str]:
        """Validates the multi-scale arguments; returns the stage-2-only adapter names."""
        if not isinstance(upsample, bool):
            raise ValueError(f"`upsample` must be True or False, got {upsample!r}.")
        if refine_tiling is not None and not isinstance(refine_tiling, (bool, TokenTiling)):
            raise ValueError(f"`refine_tiling` must be a TokenTiling, True, False or None, got "
                             f"{type(refine_tiling).__name__}.")
        if not upsample:
            if stage_2_transformer is not None or stage_2_adapters:
                raise ValueError("stage_2_transformer / stage_2_adapters act in the refinement of upsample=True; "
                                 "pass upsample=True or drop them.")
            return []
        multiple = 2 * self.spatial_compression
        if height % multiple or width % multiple:
            raise ValueError(f"upsample=True runs stage 1 at half size, so height and width must be multiples of "
                             f"{multiple}; got {height}x{width}, use e.g. {height // multiple * multiple or multiple}x"
                             f"{width // multiple * multiple or multiple}.")
        if pixels is not None or window is not None:
            raise ValueError("upsample=True generates the video at half size; it cannot hold a given `video` or "
                             "retake a window. Use upsample=False with `video` / `retake_window`.")
        self._check_upsampler()
        check_sigma_list(stage_2_sigmas, "stage_2_sigmas")
        if stage_2_transformer is not None and not isinstance(stage_2_transformer, LTX2AudioVideoTransformer):
            raise ValueError(f"stage_2_transformer must be an LTX2AudioVideoTransformer, got "
                             f"{type(stage_2_transformer).__name__}.")
        return check_stage_adapters(self.transformer, stage_2_adapters or [])

    def _check_upsampler(self) -> None:
        upsampler = self.latent_upsampler
        if upsampler is None:
            raise ValueError("upsample=True needs a latent upsampler: pass latent_upsampler=LTX2LatentUpsampler."
                             "from_pretrained(...) to the pipeline (or load a folder that has latent_upsampler/).")
        c = upsampler.config
        if c.temporal_upsample or not c.spatial_upsample or (
                c.use_rational_resampler and float(c.rational_spatial_scale) != 2.0):
            raise ValueError("upsample=True needs a x2 spatial latent upsampler (ltx-2-spatial-upscaler-x2); this "
                             "one is configured differently.")

    # -- starting states ---------------------------------------------------------------------------------------

    def prepare_latents(
        self,
        shape: VideoLatentShape,
        batch: int,
        fps: float,
        conditions: list[ImageCondition],
        generator: Any,  # noqa: ANN401
        latents: torch.Tensor | None,
        noise_scale: float | None,
        image_crf: int,
        dtype: torch.dtype,
        device: torch.device,
        source: SourceTokens | None = None,
    ) -> StreamInputs:
        """Video tokens (grid first, then appended keyframes), their coordinates, clean values and denoise mask.

        Held ``source`` tokens (video-to-audio, retake) start clean with mask 0; image conditions then replace
        frame 0 or append keyframes. Noise covers every token and is drawn before the audio noise, from the same
        generator, as the reference.
        """
        grid = shape.num_tokens
        clean, mask = _clean_and_mask(batch, grid, shape.channels, latents, source, dtype, device)
        coords = self.transformer.video_coordinates(shape.frames, shape.height, shape.width, fps, batch, dtype,
                                                    device)
        extra_clean, extra_mask, extra_coords = [], [], []
        height, width = shape.height * self.spatial_compression, shape.width * self.spatial_compression
        for condition in conditions:
            pixels = preprocess_image(condition.image, height, width, image_crf)
            pixels = pixels.to(device=device, dtype=self.vae.dtype).view(1, 3, 1, height, width)
            tokens = self._encode_pixels(pixels)
            tokens = tokens.to(dtype).expand(batch, -1, -1)  # [B, H'·W', C]
            if condition.frame_index == 0:
                count = tokens.shape[1]
                clean[:, :count], mask[:, :count] = tokens, 1.0 - condition.strength
            else:
                extra_clean.append(tokens)
                extra_mask.append(torch.full(tokens.shape[:2], 1.0 - condition.strength, device=device))
                extra_coords.append(keyframe_coordinates(condition.frame_index, shape.height, shape.width, fps, batch,
                                                         self.spatial_compression, self.temporal_compression
                                                         ).to(device))
        clean = torch.cat([clean, *extra_clean], dim=1)
        mask = torch.cat([mask, *extra_mask], dim=1)
        if extra_coords:  # float32 keyframe positions promote the (latent-dtype) grid ones, as in the reference
            coords = torch.cat([coords.float(), *extra_coords], dim=2)
        return self._noised(clean, mask, coords, generator, latents, noise_scale, grid)

    def prepare_audio_latents(
        self,
        batch: int,
        num_tokens: int,
        generator: Any,  # noqa: ANN401
        latents: torch.Tensor | None,
        noise_scale: float | None,
        dtype: torch.dtype,
        device: torch.device,
        source: SourceTokens | None = None,
    ) -> StreamInputs:
        """Audio tokens (noise, given latents, and held ``source`` tokens) and their coordinates."""
        channels = self.transformer.config.audio_in_channels
        clean, mask = _clean_and_mask(batch, num_tokens, channels, latents, source, dtype, device)
        coords = self.transformer.audio_coordinates(num_tokens, batch, device)
        return self._noised(clean, mask, coords, generator, latents, noise_scale, num_tokens)

    def _noised(
        self, clean: torch.Tensor, mask: torch.Tensor, coords: torch.Tensor, generator: Any,  # noqa: ANN401
        latents: torch.Tensor | None, noise_scale: float | None, given_tokens: int,
    ) -> StreamInputs:
        """The reference's noiser ``x = ε·(m·k) + clean·(1 - m·k)``; given latents without ``noise_scale`` start as
        they are where the mask is 1. Noise is drawn for every token (held ones too), so the generator advances as
        in the reference."""
        noise = self._noise(tuple(clean.shape), generator, clean.dtype, clean.device)
        scale = mask.unsqueeze(-1) * (1.0 if noise_scale is None else noise_scale)
        start = (noise * scale + clean * (1 - scale)).to(clean.dtype)
        if latents is not None and noise_scale is None:
            as_given = torch.zeros_like(mask, dtype=torch.bool)
            as_given[:, :given_tokens] = mask[:, :given_tokens] == 1
            start = torch.where(as_given.unsqueeze(-1), clean, start)
        conditioned = bool((mask < 1).any())
        return StreamInputs(start, coords, context=None, denoise_mask=mask if conditioned else None,
                            clean=clean if conditioned else None)


def _clean_and_mask(
    batch: int, tokens: int, channels: int, latents: torch.Tensor | None, source: SourceTokens | None,
    dtype: torch.dtype, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stream's clean values ``[B, T, C]`` (given latents, copied, or zeros; held ``source`` tokens over them) and
    its denoise mask ``[B, T]`` (1, and 0 where the source is held)."""
    clean = torch.zeros(batch, tokens, channels, device=device, dtype=dtype) if latents is None else \
        latents.to(device=device, dtype=dtype, copy=True)  # never write into the caller's tensor
    mask = torch.ones(batch, tokens, device=device)
    if source is not None:
        clean = torch.where(source.held.view(1, -1, 1), source.clean.to(dtype), clean)
        mask = mask.masked_fill(source.held.view(1, -1), 0.0)
    return clean, mask


def check_sigma_list(sigmas: Sequence[float], name: str) -> None:
    """``ValueError`` unless ``sigmas`` is a non-empty, non-increasing list of values in (0, 1]."""
    values = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if values.numel() == 0 or bool((values <= 0).any() | (values > 1).any()) or bool(
            (values[1:] > values[:-1]).any()):
        raise ValueError(f"`{name}` must be non-increasing values in (0, 1] without the final 0, e.g. "
                         f"DISTILLED_SIGMAS; got {values.tolist()}.")
