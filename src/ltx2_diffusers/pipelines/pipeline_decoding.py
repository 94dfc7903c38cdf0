"""Latents in and out of :class:`~ltx2_diffusers.LTX2AudioVideoPipeline`: the decoders, the x2 latent upsampler,
diffusers' latent layout at the call's boundary (``latents=`` / ``output_type="latent"``) and the final outputs.

Inside a call both streams are packed normalised tokens; diffusers' layout is VAE-space (de-normalised) ``[B, C, F',
H', W']`` video and ``[B, C, L, M]`` audio latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from diffusers.utils import logging

from ..models.audio_processing import resample
from ..models.latent_upsampler_ltx2 import upsample_normalized_latents
from ..models.tiling import VideoTiling
from .denoising import StreamInputs
from .latents import VideoLatentShape, pack_video_latents, unpack_video_latents
from .media import fit_waveform
from .pipeline_output import LTX2PipelineOutput
from .plan import GenerationPlan, resolve_decode_tiling

logger = logging.get_logger(__name__)


class LTX2DecodingMixin:
    """Decoding, upsampling and diffusers' latent layout for the pipeline (uses its ``vae``, ``audio_vae``,
    ``vocoder``, ``latent_upsampler`` and ``video_processor``)."""

    def decode_video(
        self, tokens: torch.Tensor, shape: VideoLatentShape, generator: Any = None,  # noqa: ANN401
        tiling: VideoTiling | bool | None = None, decode_timestep: Sequence[float] | None = None,
        decode_noise_scale: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Packed normalised latents -> pixels ``[B, 3, F, H, W]`` in [-1, 1].

        ``tiling``: a :class:`VideoTiling`, ``True`` (default tiles), ``False`` (never tile) or ``None``: the VAE's
        own setting (``vae.enable_tiling``), and default tiles when a video exceeds 121 frames at 720p.
        ``decode_timestep`` / ``decode_noise_scale`` (one value per video; the noise defaults to the timestep, as in
        diffusers): the decode of a timestep-conditioned VAE; ``None``: the VAE's reference decode. A VAE without
        timestep conditioning ignores them (with a warning).
        """
        latents = self.vae.denormalize_latents(unpack_video_latents(tokens, shape).to(self.vae.dtype))
        generator = generator[0] if isinstance(generator, list) else generator
        tiling = resolve_decode_tiling(tiling, self.vae.tiling if self.vae.use_tiling else None,
                                       self.spatial_compression, self.temporal_compression,
                                       *shape.to_pixels(self.temporal_compression, self.spatial_compression))
        conditioning = {}
        if decode_timestep is not None or decode_noise_scale is not None:
            if not self.vae.config.timestep_conditioning:
                logger.warning("decode_timestep / decode_noise_scale are ignored: this VAE's decoder is not "
                               "timestep-conditioned (as for the released LTX-2 models).")
            else:
                timestep = decode_timestep if decode_timestep is not None else decode_noise_scale
                noise = decode_noise_scale if decode_noise_scale is not None else timestep
                conditioning = dict(temb=torch.tensor(timestep, dtype=latents.dtype, device=latents.device),
                                    decode_noise_scale=torch.tensor(noise, dtype=latents.dtype, device=latents.device))
        if tiling is not False:
            return self.vae.decode(latents, generator=generator, tiling=tiling, **conditioning).sample
        use_tiling, self.vae.use_tiling = self.vae.use_tiling, False
        try:
            return self.vae.decode(latents, generator=generator, **conditioning).sample
        finally:
            self.vae.use_tiling = use_tiling

    def decode_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        """Packed normalised audio latents -> float32 waveform ``[B, 2, samples]`` at the vocoder's rate."""
        latents = self.audio_vae.denormalize_latents(tokens.to(self.audio_vae.dtype))
        mel = self.audio_vae.decode(latents).sample
        return self.vocoder(mel)

    def upsample_video_latents(self, tokens: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
        """Packed normalised latents of ``shape`` -> packed normalised latents at twice the height and width."""
        if self.latent_upsampler is None:
            raise ValueError("upsampling needs a latent upsampler: pass latent_upsampler=LTX2LatentUpsampler."
                             "from_pretrained(...) to the pipeline (or load a folder that has latent_upsampler/).")
        latents = unpack_video_latents(tokens, shape).to(self.latent_upsampler.dtype)
        vae = self.vae
        upsampled = upsample_normalized_latents(self.latent_upsampler, latents, vae.latents_mean.to(latents),
                                                vae.latents_std.to(latents), vae.config.scaling_factor)
        return pack_video_latents(upsampled).to(tokens.dtype)

    def _given_latents(self, plan: GenerationPlan) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The call's latents as packed normalised tokens (diffusers' unpacked VAE-space layout converted)."""
        video, audio = plan.latents, plan.audio_latents
        if video is not None and video.ndim == 5:  # [B, C, F', H', W'] -> [B, F'·H'·W', C]
            video = pack_video_latents(self.vae.normalize_latents(video.to(self.vae.latents_mean.device)))
        if audio is not None and audio.ndim == 4:  # [B, C, L, M] -> [B, L, C·M]
            audio = self.audio_vae.normalize_latents(audio.to(self.audio_vae.latents_mean.device))
        return video, audio

    def _output(self, plan: GenerationPlan, video: StreamInputs, audio: StreamInputs, shape: VideoLatentShape
                ) -> LTX2PipelineOutput:
        """Decodes both streams at ``shape`` (appended keyframe tokens dropped; held sources come back as given);
        ``"latent"``: diffusers' layout, VAE-space ``[B, C, F', H', W']`` video and ``[B, C, L, M]`` audio."""
        tokens = video.latents[:, : shape.num_tokens]
        if plan.output_type == "latent":
            frames = self.vae.denormalize_latents(unpack_video_latents(tokens, shape))  # [B, C, F', H', W']
            return LTX2PipelineOutput(frames=frames, audio=self.audio_vae.denormalize_latents(audio.latents),
                                      sample_rate=None, frame_rate=plan.frame_rate)
        if plan.video.held:
            pixels = plan.video_source.media.permute(1, 0, 2, 3).unsqueeze(0).expand(plan.batch, -1, -1, -1, -1)
        else:
            pixels = self.decode_video(tokens, shape, plan.generator, plan.decode_tiling, plan.decode_timestep,
                                       plan.decode_noise_scale)
        frames = self.video_processor.postprocess_video(pixels, output_type=plan.output_type)
        rate = self.vocoder.config.output_sampling_rate
        if plan.audio.held:
            source = plan.audio_source
            # the given clip at the vocoder's rate (48 kHz for LTX-2.3), cut to the returned length
            clip = fit_waveform(resample(source.media, source.rate, rate), plan.audio_samples)
            waveform = clip.unsqueeze(0).expand(plan.batch, -1, -1).contiguous()
        else:
            waveform = self.decode_audio(audio.latents).float()
        if plan.output_type == "np":
            waveform = waveform.cpu().numpy().astype(np.float32)
        return LTX2PipelineOutput(frames=frames, audio=waveform, sample_rate=rate, frame_rate=plan.frame_rate)
