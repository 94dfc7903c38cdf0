"""``LTX2AudioVideoPipeline``: text (and image) to joint video + audio with LTX-2."""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging
from diffusers.video_processor import VideoProcessor

from ..models.audio_processing import audio_latent_length, resample
from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler, upsample_normalized_latents
from ..models.text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from ..models.tiling import VideoTiling
from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
from ..models.vocoder_ltx2 import LTX2Vocoder
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler, velocity_from_x0
from .conditioning import DEFAULT_IMAGE_CRF, as_conditions
from .denoising import StreamInputs, predict_x0
from .guidance import GuidanceParams, validate_stg_blocks
from .latents import VideoLatentShape, pack_video_latents, unpack_video_latents
from .lora import LTX2LoraLoaderMixin
from .media import audio_waveform, fit_waveform, video_pixels
from .pipeline_inputs import LTX2InputsMixin
from .pipeline_output import (
    DEFAULT_AUDIO_GUIDANCE,
    DEFAULT_NEGATIVE_PROMPT,
    DEFAULT_VIDEO_GUIDANCE,
    LTX2PipelineOutput,
    default_stg_blocks,
)
from .stage_adapters import muted_adapters
from .text_encoding import LTX2PromptEncoder, check_prompts
from .token_tiling import TokenTile, TokenTiling, plan_token_tiles, predict_x0_tiled, tile_layouts

logger = logging.get_logger(__name__)

# Decodes larger than 121 frames at 720p (per video) are tiled automatically unless the caller says otherwise.
AUTO_TILING_PIXELS = 121 * 720 * 1280

EXAMPLE = """
    ```py
    >>> import torch
    >>> from ltx2_diffusers import LTX2AudioVideoPipeline
    >>> from ltx2_diffusers.utils.export import export_to_mp4

    >>> pipe = LTX2AudioVideoPipeline.from_pretrained("path/to/LTX-2", torch_dtype=torch.bfloat16)
    >>> pipe.enable_model_cpu_offload()
    >>> out = pipe("A street musician plays a violin at dusk, applause", num_frames=121, height=512, width=768,
    ...            generator=torch.Generator().manual_seed(10))
    >>> export_to_mp4(out.frames[0], "clip.mp4", fps=24, audio=out.audio[0], sample_rate=out.sample_rate)
    ```
"""


class LTX2AudioVideoPipeline(LTX2InputsMixin, DiffusionPipeline, LTX2LoraLoaderMixin):
    r"""Joint audio + video generation with LTX-2, every mode in one call.

    * text (and images) -> video + audio; ``image=`` conditions frames (frame 0 in place, others as keyframes);
    * audio -> video (``audio=``: the audio is held, the video generated to match it);
    * video -> audio (``video=``: the video is held, sound generated for it);
    * retake (``video=`` and/or ``audio=`` with ``retake_window=(start, end)``): only that time window is
      regenerated; a ``video`` shorter than ``num_frames`` is extended;
    * multi-scale (``upsample=True``): half-size generation, the x2 latent upsampler, then a short refinement at
      full size (optionally with another transformer or a LoRA active in that stage only), tiled over the latent
      when it exceeds a token budget (``refine_tiling``).

    Components (the names of a diffusers-format LTX-2 folder): ``scheduler`` (:class:`LTX2Scheduler`), ``vae``
    (:class:`LTX2VideoAutoencoder`), ``audio_vae`` (:class:`LTX2AudioAutoencoder`), ``text_encoder`` (Gemma-3),
    ``tokenizer``, ``connectors`` (:class:`LTX2TextConnectors`), ``transformer``
    (:class:`LTX2AudioVideoTransformer`), ``vocoder`` (:class:`LTX2Vocoder`) and, optional, ``latent_upsampler``
    (:class:`LTX2LatentUpsampler`, needed by ``upsample=True``).

    LoRAs (diffusers format, or the original / ComfyUI ``diffusion_model.*.lora_A/lora_B`` format, on the video,
    audio, audio<->video and connector modules) load with ``pipe.load_lora_weights(path, adapter_name=...)``, are
    weighted with ``pipe.set_adapters(names, weights)`` (negative strengths allowed) and fused with ``fuse_lora`` /
    ``unfuse_lora``; this needs the ``peft`` package (``pip install ltx2_diffusers[lora]``).

    Example:
    """ + EXAMPLE

    model_cpu_offload_seq = "text_encoder->connectors->transformer->latent_upsampler->vae->audio_vae->vocoder"
    _optional_components = ["text_encoder", "tokenizer", "latent_upsampler"]
    _callback_tensor_inputs = ["latents", "audio_latents", "prompt_embeds", "negative_prompt_embeds"]

    # Our class for each component of a diffusers-format LTX-2 folder (see `from_pretrained`).
    _component_classes = {
        "scheduler": LTX2Scheduler, "vae": LTX2VideoAutoencoder, "audio_vae": LTX2AudioAutoencoder,
        "connectors": LTX2TextConnectors, "transformer": LTX2AudioVideoTransformer, "vocoder": LTX2Vocoder,
        "latent_upsampler": LTX2LatentUpsampler,
    }

    def __init__(
        self,
        scheduler: LTX2Scheduler,
        vae: LTX2VideoAutoencoder,
        audio_vae: LTX2AudioAutoencoder,
        text_encoder: Any,  # noqa: ANN401
        tokenizer: Any,  # noqa: ANN401
        connectors: LTX2TextConnectors,
        transformer: LTX2AudioVideoTransformer,
        vocoder: LTX2Vocoder,
        latent_upsampler: LTX2LatentUpsampler | None = None,
    ) -> None:
        super().__init__()
        for name, expected in self._component_classes.items():
            component = locals()[name]
            if component is not None and not isinstance(component, expected):
                raise ValueError(f"`{name}` must be a {expected.__name__} (ltx2_diffusers), got "
                                 f"{type(component).__name__}; load diffusers-format folders with "
                                 f"LTX2AudioVideoPipeline.from_pretrained, which maps them onto these classes.")
        self.register_modules(scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder,
                              latent_upsampler=latent_upsampler)
        self.video_processor = VideoProcessor(vae_scale_factor=vae.config.spatial_compression_ratio)
        self._prompt_encoder: LTX2PromptEncoder | None = None
        self._interrupt = False
        self._stage = 0

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any  # noqa: ANN401
    ) -> LTX2AudioVideoPipeline:
        """Loads a pipeline folder (or Hub repo) saved by this package **or by diffusers** (``LTX2Pipeline``).

        Components that the folder's ``model_index.json`` assigns to diffusers classes are loaded with this package's
        classes from the same subfolders (the weights and configs are the same format); the text encoder and
        tokenizer load with transformers as usual. Keyword arguments are those of
        ``DiffusionPipeline.from_pretrained`` (``torch_dtype``, ``variant``, components to override, ...).
        """
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            download_keys = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision",
                             "variant", "use_safetensors")
            folder = Path(cls.download(pretrained_model_name_or_path,
                                       **{k: kwargs[k] for k in download_keys if k in kwargs}))
        index_file = folder / "model_index.json"
        if not index_file.is_file():
            raise ValueError(f"{folder} has no model_index.json: pass a pipeline folder (or load the components "
                             f"one by one and pass them to LTX2AudioVideoPipeline(...)).")
        index = json.loads(index_file.read_text())
        load_keys = ("torch_dtype", "dtype", "variant", "use_safetensors", "local_files_only")
        for name, our_class in cls._component_classes.items():
            entry = index.get(name)
            if name in kwargs or not isinstance(entry, list) or entry[0] is None or entry[0] == "ltx2_diffusers":
                continue
            if name == "scheduler":
                kwargs[name] = our_class.from_pretrained(folder, subfolder=name)
            else:
                kwargs[name] = our_class.from_pretrained(folder, subfolder=name,
                                                         **{k: kwargs[k] for k in load_keys if k in kwargs})
            logger.info("%s: loaded the folder's %s as %s", name, entry[1], our_class.__name__)
        return super().from_pretrained(folder, **kwargs)

    # ------------------------------------------------------------------------------------------------------------
    # Properties
    # ------------------------------------------------------------------------------------------------------------

    @property
    def spatial_compression(self) -> int:
        return self.vae.config.spatial_compression_ratio

    @property
    def temporal_compression(self) -> int:
        return self.vae.config.temporal_compression_ratio

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def stage(self) -> int:
        """The denoising stage running now: 1, or 2 for the refinement of ``upsample=True`` (for callbacks)."""
        return self._stage

    @property
    def prompt_encoder(self) -> LTX2PromptEncoder:
        """The prompt encoder, with its prompt-embedding cache kept across calls (rebuilt if components change)."""
        encoder = self._prompt_encoder
        if encoder is None or encoder.connectors is not self.connectors:
            encoder = self._prompt_encoder = LTX2PromptEncoder(self.text_encoder, self.tokenizer, self.connectors)
        elif self.text_encoder is not None and encoder.text_encoder is not self.text_encoder:
            encoder.set_text_encoder(self.text_encoder, self.tokenizer)
        return encoder

    # ------------------------------------------------------------------------------------------------------------
    # Lifecycle steps
    # ------------------------------------------------------------------------------------------------------------

    def encode_prompt(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: LTX2TextEmbeddings | None = None,
        negative_prompt_embeds: LTX2TextEmbeddings | None = None,
        max_sequence_length: int = 1024,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]:
        """Per-stream text embeddings (see :meth:`LTX2PromptEncoder.encode_prompt`); reusable as ``prompt_embeds``.

        With guidance and no negative prompt, the negative is the reference's default one, as in ``__call__``.
        """
        if do_classifier_free_guidance and negative_prompt is None and negative_prompt_embeds is None:
            negative_prompt = DEFAULT_NEGATIVE_PROMPT
        return self.prompt_encoder.encode_prompt(
            prompt, negative_prompt, do_classifier_free_guidance, num_videos_per_prompt, prompt_embeds,
            negative_prompt_embeds, max_sequence_length, device or self._execution_device, dtype,
        )

    def decode_video(
        self, tokens: torch.Tensor, shape: VideoLatentShape, generator: Any = None,  # noqa: ANN401
        tiling: VideoTiling | bool | None = None,
    ) -> torch.Tensor:
        """Packed normalised latents -> pixels ``[B, 3, F, H, W]`` in [-1, 1].

        ``tiling``: a :class:`VideoTiling`, ``True`` (default tiles), ``False`` (never tile) or ``None``: the VAE's
        own setting (``vae.enable_tiling``), and default tiles when a video exceeds 121 frames at 720p.
        """
        latents = self.vae.denormalize_latents(unpack_video_latents(tokens, shape).to(self.vae.dtype))
        generator = generator[0] if isinstance(generator, list) else generator
        if tiling is None and not self.vae.use_tiling and math.prod(shape.to_pixels(
                self.temporal_compression, self.spatial_compression)) > AUTO_TILING_PIXELS:
            logger.info("Decoding %s frames x %sx%s px with tiling to bound memory (pass decode_tiling=False to "
                        "decode in one piece).", *shape.to_pixels(self.temporal_compression, self.spatial_compression))
            tiling = True
        if tiling is True:
            tiling = VideoTiling()
        if tiling is False:
            use_tiling, self.vae.use_tiling = self.vae.use_tiling, False
            try:
                return self.vae.decode(latents, generator=generator).sample
            finally:
                self.vae.use_tiling = use_tiling
        return self.vae.decode(latents, generator=generator, tiling=tiling).sample

    def decode_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        """Packed normalised audio latents -> float32 waveform ``[B, 2, samples]`` at the vocoder's rate."""
        latents = self.audio_vae.denormalize_latents(tokens.to(self.audio_vae.dtype))
        mel = self.audio_vae.decode(latents).sample
        return self.vocoder(mel)


    def upsample_video_latents(self, tokens: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
        """Packed normalised latents of ``shape`` -> packed normalised latents at twice the height and width."""
        self._check_upsampler()
        latents = unpack_video_latents(tokens, shape).to(self.latent_upsampler.dtype)
        vae = self.vae
        upsampled = upsample_normalized_latents(self.latent_upsampler, latents, vae.latents_mean.to(latents),
                                                vae.latents_std.to(latents), vae.config.scaling_factor)
        return pack_video_latents(upsampled).to(tokens.dtype)

    def _denoise(
        self,
        video: StreamInputs,
        audio: StreamInputs,
        fps: float,
        transformer: torch.nn.Module,
        batch_guidance: bool,
        tiles: list[TokenTile] | None,
        grid: tuple[int, int, int],
        callback: Callable | None,
        callback_inputs: Sequence[str],
        embeds: tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None],
    ) -> tuple[StreamInputs, StreamInputs]:
        """Runs the scheduler's current σ list on both streams (one Euler step per σ, guided in x0 space)."""
        timesteps, sigmas = self.scheduler.timesteps, self.scheduler.sigmas
        audio_scheduler = copy.deepcopy(self.scheduler)
        layouts = None if tiles is None else tile_layouts(tiles, grid, video.latents.shape[1], video.latents.device)
        user_config = dict(getattr(self, "_progress_bar_config", {}))
        self._progress_bar_config = {"desc": f"stage {self._stage}", **user_config}  # the user's desc wins
        try:
            progress_bar = self.progress_bar(total=len(timesteps))
        finally:
            self._progress_bar_config = user_config
        with progress_bar:
            for i, t in enumerate(timesteps):
                if self._interrupt:
                    continue
                sigma = sigmas[i]
                if layouts is not None:
                    x0_video, x0_audio = predict_x0_tiled(transformer, video, audio, sigma, fps, layouts,
                                                          batch_guidance)
                else:
                    x0_video, x0_audio = predict_x0(transformer, video, audio, sigma, fps, batch_guidance)
                video = _replace_latents(video, self.scheduler.step(
                    velocity_from_x0(video.latents, x0_video, sigma), t, video.latents).prev_sample)
                audio = _replace_latents(audio, audio_scheduler.step(
                    velocity_from_x0(audio.latents, x0_audio, sigma), t, audio.latents).prev_sample)
                if callback is not None:
                    state = {"latents": video.latents, "audio_latents": audio.latents,
                             "prompt_embeds": embeds[0], "negative_prompt_embeds": embeds[1]}
                    outputs = callback(self, self._step, t, {k: state[k] for k in callback_inputs}) or {}
                    if "latents" in outputs:
                        video = _replace_latents(video, outputs["latents"])
                    if "audio_latents" in outputs:
                        audio = _replace_latents(audio, outputs["audio_latents"])
                self._step += 1
                progress_bar.update()
        return video, audio

    # ------------------------------------------------------------------------------------------------------------
    # Call
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        image: Any = None,  # noqa: ANN401
        audio: Any = None,  # noqa: ANN401
        audio_sample_rate: int | None = None,
        video: Any = None,  # noqa: ANN401
        retake_window: tuple[float, float] | None = None,
        retake_modalities: Sequence[str] = ("video", "audio"),
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        num_inference_steps: int = 40,
        sigmas: Sequence[float] | None = None,
        guidance_scale: float | None = None,
        audio_guidance_scale: float | None = None,
        modality_scale: float | None = None,
        audio_modality_scale: float | None = None,
        stg_scale: float | None = None,
        audio_stg_scale: float | None = None,
        guidance_rescale: float | None = None,
        audio_guidance_rescale: float | None = None,
        stg_blocks: Sequence[int] | None = None,
        audio_stg_blocks: Sequence[int] | None = None,
        upsample: bool = False,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        stage_2_transformer: LTX2AudioVideoTransformer | None = None,
        stage_2_adapters: str | Sequence[str] | None = None,
        stage_2_guidance: bool = False,
        refine_tiling: TokenTiling | bool | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        noise_scale: float | None = None,
        prompt_embeds: LTX2TextEmbeddings | None = None,
        negative_prompt_embeds: LTX2TextEmbeddings | None = None,
        max_sequence_length: int = 1024,
        image_crf: int = DEFAULT_IMAGE_CRF,
        batch_guidance: bool = True,
        decode_tiling: VideoTiling | bool | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> LTX2PipelineOutput | tuple:
        r"""Generates video and audio.

        Args:
            prompt: text prompt(s); or pass ``prompt_embeds``.
            negative_prompt: used by text guidance; default: the reference's negative prompt.
            image: condition images: an image (frame 0), an :class:`ImageCondition`, an ``(image, frame_index[,
                strength])`` tuple or a list of those. Frame 0 replaces the first latent frame; other frames are
                appended as keyframe tokens and removed after denoising.
            audio: audio to hold (audio-to-video): a file path, ``(waveform, sample_rate)``, or a waveform ``[N]`` /
                ``[channels, N]`` with ``audio_sample_rate``. It is trimmed to the clip; tokens past the end of a
                shorter clip are generated. The returned audio is the input (resampled to the vocoder's rate,
                trimmed or zero-padded to the clip) when all of it is held.
            audio_sample_rate: rate of a waveform passed as ``audio``.
            video: video to hold (video-to-audio): a file path, a list of PIL images or frames (``[F, H, W, 3]``
                uint8 / floats in [0, 1], or ``[F, 3, H, W]`` floats) at the requested size, ``F = 8k+1`` and at
                most ``num_frames`` (fewer: the clip is extended). Returned as given when all of it is held.
            retake_window: ``(start, end)`` seconds of the given ``video`` / ``audio`` to regenerate; everything
                outside is held. Streams not given are generated whole.
            retake_modalities: which given streams the window applies to (the others are held whole).
            height / width: multiples of 32 (64 with ``upsample``); default: the ``video``'s size, else 512 x 768.
            num_frames: ``8k+1``; default: the ``video``'s frame count, else 121.
            frame_rate: frames per second (sets the RoPE time axis and the audio length); default: the video
                file's rate, else 24.
            num_inference_steps: steps of the LTX-2 schedule; or ``sigmas``: the steps' σ without the final 0, used
                exactly as given (e.g. ``DISTILLED_SIGMAS``).
            guidance_scale / modality_scale / stg_scale / guidance_rescale: video guidance (CFG, modality,
                STG, rescale); ``None`` takes the reference's 3 / 3 / 1 / 0.7.
            audio_guidance_scale / audio_modality_scale / audio_stg_scale / audio_guidance_rescale: audio guidance;
                ``None`` takes the reference's 7 / 3 / 1 / 0.7. Any value given is used as given (0 is off, never a
                fallback to the video value). A stream held whole (``audio=`` or ``video=`` without a window) has
                its guidance off unless values are given, and sees its own prompt in the negative pass, as in the
                reference's audio-to-video pipeline.
            stg_blocks / audio_stg_blocks: blocks STG perturbs (default: block 29 of 48; audio: the video list).
            upsample: multi-scale: generate at half ``height`` x ``width``, upsample the latent x2 with
                ``latent_upsampler``, re-noise both streams to ``stage_2_sigmas[0]`` and refine at full size.
            stage_2_sigmas: the refinement's σ list (default: the distilled 0.909375, 0.725, 0.421875).
            stage_2_transformer: a transformer for the refinement (e.g. the distilled model); default: the same.
            stage_2_adapters: loaded, active LoRA adapters (e.g. the distilled LoRA) muted in stage 1, so they act
                in the refinement only.
            stage_2_guidance: guide the refinement with the stage-1 guidance (default: no guidance, as the reference).
            refine_tiling: tiles the refinement's video latent when it has more tokens than a budget (see
                :class:`TokenTiling`). ``None``: default tiles for the ``upsample`` refinement; ``True`` or a
                :class:`TokenTiling`: also the single stage of a call without ``upsample`` (meant for refining given
                ``latents`` with ``noise_scale``; tiling a generation from pure noise loses global coherence);
                ``False``: never.
            num_videos_per_prompt: videos per prompt.
            generator: a generator or one per video (``B · num_videos_per_prompt``).
            latents / audio_latents: packed normalised latents ``[B, tokens, C]`` to start from (what
                ``output_type="latent"`` returns; stage-1 size with ``upsample``); frame-0 images still condition
                them.
            noise_scale: ``None``: given latents are the starting sample as they are; a value ``s``: they are clean
                and re-noised to ``s·ε + (1 - s)·latents`` (refinement).
            prompt_embeds / negative_prompt_embeds: :class:`LTX2TextEmbeddings` from :meth:`encode_prompt`.
            max_sequence_length: text length (multiple of the connectors' register count).
            image_crf: H.264 CRF applied to condition images (33 as the reference; 0 = off).
            batch_guidance: run the conditional and negative-prompt passes as one batch (faster; ``False`` uses less
                memory).
            decode_tiling: VAE tiling for the decode (see :meth:`decode_video`); default: the VAE's setting, and
                automatic tiling above 121 frames at 720p.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict: return an :class:`LTX2PipelineOutput` instead of a tuple.
            callback_on_step_end: ``callback(pipe, step, timestep, tensors) -> dict``; may read and replace
                ``latents`` and ``audio_latents`` (packed, normalised). Steps count on across stages;
                ``pipe.stage`` tells which stage runs.
            callback_on_step_end_tensor_inputs: names passed to the callback.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        config = self.transformer.config

        # 1. Sources and sizes, then every check (nothing heavy runs before all arguments are known to be valid)
        pixels, source_fps = video_pixels(video) if video is not None else (None, None)
        waveform, source_rate = audio_waveform(audio, audio_sample_rate) if audio is not None else (None, None)
        if audio is None and audio_sample_rate is not None:
            raise ValueError("audio_sample_rate is only used with `audio`.")
        num_frames = num_frames if num_frames is not None else pixels.shape[0] if pixels is not None else 121
        height = height if height is not None else pixels.shape[2] if pixels is not None else 512
        width = width if width is not None else pixels.shape[3] if pixels is not None else 768
        frame_rate = frame_rate if frame_rate is not None else source_fps or 24.0
        self.check_inputs(prompt, prompt_embeds, negative_prompt_embeds, height, width, num_frames, frame_rate,
                          num_inference_steps, sigmas, num_videos_per_prompt, output_type, max_sequence_length,
                          noise_scale, image_crf, callback_on_step_end_tensor_inputs)
        window = self._check_sources(pixels, waveform, source_rate, retake_window, retake_modalities, num_frames,
                                     height, width, frame_rate)
        stage_2_adapters = self._check_stages(upsample, height, width, pixels, window, stage_2_sigmas,
                                              stage_2_transformer, stage_2_adapters, refine_tiling)
        retake = set(retake_modalities) if window is not None else set()
        video_held = pixels is not None and "video" not in retake and pixels.shape[0] == num_frames
        audio_tokens = audio_latent_length(
            num_frames, frame_rate, sample_rate=self.audio_vae.config.sample_rate,
            hop_length=self.audio_vae.config.mel_hop_length,
            temporal_compression=self.audio_vae.temporal_compression_ratio)
        audio_held = waveform is not None and "audio" not in retake and self.audio_source_tokens(
            waveform, source_rate) >= audio_tokens
        if video_held and audio_held:
            raise ValueError("both `video` and `audio` are given and held whole: there is nothing to generate. Pass "
                             "retake_window=(start, end) to regenerate part of them, or drop one.")
        video_guidance = _guidance(DEFAULT_VIDEO_GUIDANCE, video_held, guidance_scale, stg_scale, modality_scale,
                                   guidance_rescale)
        audio_guidance = _guidance(DEFAULT_AUDIO_GUIDANCE, audio_held, audio_guidance_scale, audio_stg_scale,
                                   audio_modality_scale, audio_guidance_rescale)
        stg_blocks = validate_stg_blocks(default_stg_blocks(config.num_layers) if stg_blocks is None
                                         else stg_blocks, config.num_layers)
        audio_stg_blocks = stg_blocks if audio_stg_blocks is None else validate_stg_blocks(
            audio_stg_blocks, config.num_layers)
        num_prompts = len(check_prompts(prompt)) if prompt is not None else prompt_embeds.video_embeds.shape[0]
        batch = num_prompts * num_videos_per_prompt
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"Got {len(generator)} generators for {batch} videos (prompts × num_videos_per_prompt): "
                             f"pass one generator or exactly {batch}.")
        scale = 2 if upsample else 1
        full_shape = VideoLatentShape.from_pixels(num_frames, height, width, config.in_channels,
                                                  self.temporal_compression, self.spatial_compression)
        shape = VideoLatentShape.from_pixels(num_frames, height // scale, width // scale, config.in_channels,
                                             self.temporal_compression, self.spatial_compression)
        self._check_latents(latents, batch, shape.num_tokens, shape.channels, "latents")
        self._check_latents(audio_latents, batch, audio_tokens, config.audio_in_channels, "audio_latents")
        conditions = as_conditions(image, num_frames)
        if decode_tiling is not None and not isinstance(decode_tiling, (bool, VideoTiling)):
            raise ValueError(f"`decode_tiling` must be a VideoTiling, True, False or None, got "
                             f"{type(decode_tiling).__name__}.")
        # the refinement's tiles (planned now: a budget below one tile is an error before any compute)
        refining_one_stage = not upsample and (refine_tiling is True or isinstance(refine_tiling, TokenTiling))
        tiling = TokenTiling() if refine_tiling in (None, True) else refine_tiling
        tiles = plan_token_tiles(full_shape[:3], tiling) if (upsample or refining_one_stage) and tiling else None
        tiles = tiles if tiles is not None and len(tiles) > 1 else None
        use_cfg = video_guidance.uses_uncond or audio_guidance.uses_uncond
        self._interrupt, self._stage, self._step = False, 1, 0
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. Prompts (cached; the text encoder is not needed again after this)
        positive, negative = self.encode_prompt(
            prompt, negative_prompt, use_cfg, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
            max_sequence_length, device, dtype)

        # 3. Sources: the clean tokens of a given video / audio and what of them is held
        video_source = audio_source = None
        if pixels is not None:
            video_source = self.encode_video_source(pixels, shape, frame_rate, window if "video" in retake else None,
                                                    device)
        if waveform is not None:
            audio_source = self.encode_audio_source(waveform, source_rate, audio_tokens,
                                                    window if "audio" in retake else None, device)

        # 4. Stage 1 (the whole generation without upsample): noise from one generator, video first as the reference
        video_state = self.prepare_latents(shape, batch, frame_rate, conditions, generator, latents, noise_scale,
                                           image_crf, dtype, device, video_source)
        audio_state = self.prepare_audio_latents(batch, audio_tokens, generator, audio_latents, noise_scale, dtype,
                                                 device, audio_source)
        video_state = _with_text(video_state, positive.video_embeds, negative, "video_embeds", video_guidance,
                                 stg_blocks, video_held)
        audio_state = _with_text(audio_state, positive.audio_embeds, negative, "audio_embeds", audio_guidance,
                                 audio_stg_blocks, audio_held)
        self.scheduler.set_timesteps(num_inference_steps, device=device, sigmas=sigmas, num_tokens=shape.num_tokens)
        callback_inputs = (callback_on_step_end, callback_on_step_end_tensor_inputs, (positive, negative))
        with muted_adapters(self.transformer, stage_2_adapters):
            video_state, audio_state = self._denoise(video_state, audio_state, frame_rate, self.transformer,
                                                     batch_guidance, None if upsample else tiles, shape[:3],
                                                     *callback_inputs)

        # 5. Stage 2: x2 latent upsampling, re-noise to the first stage-2 σ, refine (guidance off by default)
        if upsample and not self._interrupt:
            self._stage = 2
            upsampled = self.upsample_video_latents(video_state.latents[:, : shape.num_tokens], shape)
            k = float(stage_2_sigmas[0])
            refined_video = self.prepare_latents(full_shape, batch, frame_rate, conditions, generator, upsampled, k,
                                                 image_crf, dtype, device)
            refined_audio = self.prepare_audio_latents(batch, audio_tokens, generator, audio_state.latents, k, dtype,
                                                       device, audio_source)
            off = GuidanceParams()
            video_state = replace(refined_video, **_text_fields(video_state, stage_2_guidance, off))
            audio_state = replace(refined_audio, **_text_fields(audio_state, stage_2_guidance, off))
            shape = full_shape
            self.scheduler.set_timesteps(len(stage_2_sigmas), device=device, sigmas=stage_2_sigmas)
            video_state, audio_state = self._denoise(video_state, audio_state, frame_rate,
                                                     stage_2_transformer or self.transformer, batch_guidance, tiles,
                                                     shape[:3], *callback_inputs)

        # 6. Decode (appended keyframe tokens are dropped first); held sources come back as given
        video_tokens = video_state.latents[:, : shape.num_tokens]
        if output_type == "latent":
            frames, waveform_out, sample_rate = video_tokens, audio_state.latents, None
        else:
            if video_held:
                pixel_video = pixels.permute(1, 0, 2, 3).unsqueeze(0).expand(batch, -1, -1, -1, -1)
            else:
                pixel_video = self.decode_video(video_tokens, shape, generator, decode_tiling)
            frames = self.video_processor.postprocess_video(pixel_video, output_type=output_type)
            sample_rate = self.vocoder.config.output_sampling_rate
            if audio_held:
                clip = fit_waveform(resample(waveform, source_rate, sample_rate),
                                    round(num_frames / frame_rate * sample_rate))
                waveform_out = clip.unsqueeze(0).expand(batch, -1, -1).contiguous()
            else:
                waveform_out = self.decode_audio(audio_state.latents).float()
            if output_type == "np":
                waveform_out = waveform_out.cpu().numpy().astype(np.float32)
        self._stage = 0
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, waveform_out, sample_rate
        return LTX2PipelineOutput(frames=frames, audio=waveform_out, sample_rate=sample_rate, frame_rate=frame_rate)


def _guidance(default: GuidanceParams, held: bool, *values: float | None) -> GuidanceParams:
    """A stream's guidance: given values as given; the rest from ``default``, or off for a stream held whole."""
    base = GuidanceParams() if held else default
    names = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")
    return GuidanceParams(**{n: getattr(base, n) if v is None else v for n, v in zip(names, values)})


def _with_text(
    stream: StreamInputs, context: torch.Tensor, negative: LTX2TextEmbeddings | None, field: str,
    guidance: GuidanceParams, stg_blocks: Sequence[int], held: bool,
) -> StreamInputs:
    """Attaches prompt contexts and guidance; a stream held whole sees its own prompt in the negative pass."""
    negative_context = None if negative is None else getattr(negative, field)
    if held and not guidance.uses_uncond:
        negative_context = context
    return replace(stream, context=context, negative_context=negative_context, guidance=guidance,
                   stg_blocks=tuple(stg_blocks))


def _text_fields(stream: StreamInputs, keep_guidance: bool, off: GuidanceParams) -> dict:
    return dict(context=stream.context, negative_context=stream.negative_context,
                guidance=stream.guidance if keep_guidance else off, stg_blocks=stream.stg_blocks)


def _replace_latents(stream: StreamInputs, latents: torch.Tensor) -> StreamInputs:
    if latents.shape != stream.latents.shape:
        raise ValueError(f"callback returned latents of shape {tuple(latents.shape)}; expected "
                         f"{tuple(stream.latents.shape)}.")
    return replace(stream, latents=latents.to(stream.latents.dtype))
