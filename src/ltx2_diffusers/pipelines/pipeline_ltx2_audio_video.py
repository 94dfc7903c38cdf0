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
from diffusers.loaders import LTX2LoraLoaderMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from ..models.audio_processing import audio_latent_length
from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ..models.text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from ..models.tiling import VideoTiling
from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
from ..models.vocoder_ltx2 import LTX2Vocoder
from ..schedulers.scheduling_ltx2 import LTX2Scheduler, velocity_from_x0
from .conditioning import (
    DEFAULT_IMAGE_CRF,
    ImageCondition,
    as_conditions,
    keyframe_coordinates,
    preprocess_image,
)
from .denoising import StreamInputs, predict_x0
from .guidance import GuidanceParams, validate_stg_blocks
from .latents import VideoLatentShape, check_video_size, pack_video_latents, unpack_video_latents
from .pipeline_output import (
    DEFAULT_AUDIO_GUIDANCE,
    DEFAULT_NEGATIVE_PROMPT,
    DEFAULT_VIDEO_GUIDANCE,
    LTX2PipelineOutput,
    default_stg_blocks,
)
from .text_encoding import LTX2PromptEncoder, check_max_sequence_length, check_prompts

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
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


class LTX2AudioVideoPipeline(DiffusionPipeline, LTX2LoraLoaderMixin):
    r"""Joint audio + video generation with LTX-2: text-to-audio+video, with optional image conditioning.

    Components (the names of a diffusers-format LTX-2 folder): ``scheduler`` (:class:`LTX2Scheduler`), ``vae``
    (:class:`LTX2VideoAutoencoder`), ``audio_vae`` (:class:`LTX2AudioAutoencoder`), ``text_encoder`` (Gemma-3),
    ``tokenizer``, ``connectors`` (:class:`LTX2TextConnectors`), ``transformer``
    (:class:`LTX2AudioVideoTransformer`), ``vocoder`` (:class:`LTX2Vocoder`).

    LoRAs (diffusers format, or the original / ComfyUI ``diffusion_model.*.lora_A/lora_B`` format, on the video,
    audio, audio<->video and connector modules) load with ``pipe.load_lora_weights(path, adapter_name=...)``, are
    weighted with ``pipe.set_adapters(names, weights)`` (negative strengths allowed) and fused with ``fuse_lora`` /
    ``unfuse_lora``; this needs the ``peft`` package (``pip install ltx2_diffusers[lora]``).

    Example:
    """ + EXAMPLE

    model_cpu_offload_seq = "text_encoder->connectors->transformer->vae->audio_vae->vocoder"
    _optional_components = ["text_encoder", "tokenizer"]
    _callback_tensor_inputs = ["latents", "audio_latents", "prompt_embeds", "negative_prompt_embeds"]

    # Our class for each component of a diffusers-format LTX-2 folder (see `from_pretrained`).
    _component_classes = {
        "scheduler": LTX2Scheduler, "vae": LTX2VideoAutoencoder, "audio_vae": LTX2AudioAutoencoder,
        "connectors": LTX2TextConnectors, "transformer": LTX2AudioVideoTransformer, "vocoder": LTX2Vocoder,
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
    ) -> None:
        super().__init__()
        for name, expected in self._component_classes.items():
            component = locals()[name]
            if component is not None and not isinstance(component, expected):
                raise ValueError(f"`{name}` must be a {expected.__name__} (ltx2_diffusers), got "
                                 f"{type(component).__name__}; load diffusers-format folders with "
                                 f"LTX2AudioVideoPipeline.from_pretrained, which maps them onto these classes.")
        self.register_modules(scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder)
        self.video_processor = VideoProcessor(vae_scale_factor=vae.config.spatial_compression_ratio)
        self._prompt_encoder: LTX2PromptEncoder | None = None
        self._interrupt = False

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
        load_keys = ("torch_dtype", "variant", "use_safetensors", "local_files_only")
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
        """Per-stream text embeddings (see :meth:`LTX2PromptEncoder.encode_prompt`); reusable as ``prompt_embeds``."""
        return self.prompt_encoder.encode_prompt(
            prompt, negative_prompt, do_classifier_free_guidance, num_videos_per_prompt, prompt_embeds,
            negative_prompt_embeds, max_sequence_length, device or self._execution_device, dtype,
        )

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
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or \
                    num_inference_steps < 1:
                raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
        else:
            values = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
            if values.numel() == 0 or bool((values <= 0).any() | (values > 1).any()) or bool(
                    (values[1:] > values[:-1]).any()):
                raise ValueError(f"`sigmas` must be non-increasing values in (0, 1] without the final 0, e.g. "
                                 f"DISTILLED_SIGMAS; got {values.tolist()}.")
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or \
                num_videos_per_prompt < 1:
            raise ValueError(f"`num_videos_per_prompt` must be a positive integer, got {num_videos_per_prompt!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        check_max_sequence_length(max_sequence_length, self.connectors.register_multiple)
        if noise_scale is not None and not (isinstance(noise_scale, (int, float)) and 0 <= noise_scale <= 1):
            raise ValueError(f"`noise_scale` must lie in [0, 1] (or be None), got {noise_scale!r}.")
        if isinstance(image_crf, bool) or not isinstance(image_crf, int) or not 0 <= image_crf <= 51:
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
    ) -> StreamInputs:
        """Video tokens (grid first, then appended keyframes), their coordinates, clean values and denoise mask.

        Noise covers every token and is drawn before the audio noise, from the same generator, as the reference.
        """
        grid = shape.num_tokens
        clean = torch.zeros(batch, grid, shape.channels, device=device, dtype=dtype) if latents is None else \
            latents.to(device=device, dtype=dtype, copy=True)  # never write into the caller's tensor
        mask = torch.ones(batch, grid, device=device)
        coords = self.transformer.video_coordinates(shape.frames, shape.height, shape.width, fps, batch, dtype,
                                                    device)
        extra_clean, extra_mask, extra_coords = [], [], []
        height, width = shape.height * self.spatial_compression, shape.width * self.spatial_compression
        for condition in conditions:
            pixels = preprocess_image(condition.image, height, width, image_crf)
            pixels = pixels.to(device=device, dtype=self.vae.dtype).view(1, 3, 1, height, width)
            tokens = pack_video_latents(self.vae.normalize_latents(self.vae.encode(pixels).latent_dist.mode()))
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
        noise = self._noise(tuple(clean.shape), generator, dtype, device)
        scale = mask.unsqueeze(-1) * (1.0 if noise_scale is None else noise_scale)
        start = (noise * scale + clean * (1 - scale)).to(dtype)  # the reference's noiser
        if latents is not None and noise_scale is None:  # given latents start as they are, where not conditioned
            as_given = torch.zeros_like(mask, dtype=torch.bool)
            as_given[:, :grid] = mask[:, :grid] == 1
            start = torch.where(as_given.unsqueeze(-1), clean, start)
        conditioned = bool((mask < 1).any())
        return StreamInputs(start, coords, context=None, denoise_mask=mask if conditioned else None,
                            clean=clean if conditioned else None)

    def prepare_audio_latents(
        self,
        batch: int,
        num_tokens: int,
        generator: Any,  # noqa: ANN401
        latents: torch.Tensor | None,
        noise_scale: float | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> StreamInputs:
        """Audio tokens (pure noise, or given latents) and their coordinates."""
        channels = self.transformer.config.audio_in_channels
        noise = self._noise((batch, num_tokens, channels), generator, dtype, device)
        coords = self.transformer.audio_coordinates(num_tokens, batch, device)
        if latents is None:
            return StreamInputs(noise, coords, context=None)
        latents = latents.to(device=device, dtype=dtype)
        if noise_scale is None:
            return StreamInputs(latents, coords, context=None)
        start = (noise * noise_scale + latents * (1 - noise_scale)).to(dtype)
        return StreamInputs(start, coords, context=None)

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

    # ------------------------------------------------------------------------------------------------------------
    # Call
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        image: Any = None,  # noqa: ANN401
        height: int = 512,
        width: int = 768,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        num_inference_steps: int = 40,
        sigmas: Sequence[float] | None = None,
        guidance_scale: float = DEFAULT_VIDEO_GUIDANCE.guidance_scale,
        audio_guidance_scale: float | None = None,
        modality_scale: float = DEFAULT_VIDEO_GUIDANCE.modality_scale,
        audio_modality_scale: float | None = None,
        stg_scale: float = DEFAULT_VIDEO_GUIDANCE.stg_scale,
        audio_stg_scale: float | None = None,
        guidance_rescale: float = DEFAULT_VIDEO_GUIDANCE.guidance_rescale,
        audio_guidance_rescale: float | None = None,
        stg_blocks: Sequence[int] | None = None,
        audio_stg_blocks: Sequence[int] | None = None,
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
            height / width: multiples of 32. num_frames: ``8k+1``. frame_rate: frames per second (sets the RoPE time
                axis and the audio length).
            num_inference_steps: steps of the LTX-2 schedule; or ``sigmas``: the steps' σ without the final 0, used
                exactly as given (e.g. ``DISTILLED_SIGMAS``).
            guidance_scale / modality_scale / stg_scale / guidance_rescale: video guidance (CFG, modality,
                STG, rescale); defaults are the reference's 3 / 3 / 1 / 0.7.
            audio_guidance_scale / audio_modality_scale / audio_stg_scale / audio_guidance_rescale: audio guidance;
                ``None`` takes the reference's audio defaults 7 / 3 / 1 / 0.7; any value given is used as given
                (0 is off, never a fallback to the video value).
            stg_blocks / audio_stg_blocks: blocks STG perturbs (default: block 29 of 48; audio: the video list).
            num_videos_per_prompt: videos per prompt.
            generator: a generator or one per video (``B · num_videos_per_prompt``).
            latents / audio_latents: packed normalised latents ``[B, tokens, C]`` to start from (what
                ``output_type="latent"`` returns); frame-0 images still condition them.
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
                ``latents`` and ``audio_latents`` (packed, normalised).
            callback_on_step_end_tensor_inputs: names passed to the callback.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        transformer_config = self.transformer.config

        # 1. Check inputs (nothing runs before every argument is known to be valid)
        self.check_inputs(prompt, prompt_embeds, negative_prompt_embeds, height, width, num_frames, frame_rate,
                          num_inference_steps, sigmas, num_videos_per_prompt, output_type, max_sequence_length,
                          noise_scale, image_crf, callback_on_step_end_tensor_inputs)
        video_guidance = GuidanceParams(guidance_scale, stg_scale, modality_scale, guidance_rescale)
        audio_guidance = GuidanceParams(
            *(DEFAULT_AUDIO_GUIDANCE.__dict__[name] if value is None else value for name, value in (
                ("guidance_scale", audio_guidance_scale), ("stg_scale", audio_stg_scale),
                ("modality_scale", audio_modality_scale), ("guidance_rescale", audio_guidance_rescale))))
        stg_blocks = validate_stg_blocks(default_stg_blocks(transformer_config.num_layers) if stg_blocks is None
                                         else stg_blocks, transformer_config.num_layers)
        audio_stg_blocks = stg_blocks if audio_stg_blocks is None else validate_stg_blocks(
            audio_stg_blocks, transformer_config.num_layers)
        num_prompts = len(check_prompts(prompt)) if prompt is not None else prompt_embeds.video_embeds.shape[0]
        batch = num_prompts * num_videos_per_prompt
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"Got {len(generator)} generators for {batch} videos (prompts × num_videos_per_prompt): "
                             f"pass one generator or exactly {batch}.")
        shape = VideoLatentShape.from_pixels(num_frames, height, width, transformer_config.in_channels,
                                             self.temporal_compression, self.spatial_compression)
        audio_tokens = audio_latent_length(
            num_frames, frame_rate, sample_rate=self.audio_vae.config.sample_rate,
            hop_length=self.audio_vae.config.mel_hop_length,
            temporal_compression=self.audio_vae.temporal_compression_ratio)
        self._check_latents(latents, batch, shape.num_tokens, shape.channels, "latents")
        self._check_latents(audio_latents, batch, audio_tokens, transformer_config.audio_in_channels, "audio_latents")
        conditions = as_conditions(image, num_frames)
        if decode_tiling is not None and not isinstance(decode_tiling, (bool, VideoTiling)):
            raise ValueError(f"`decode_tiling` must be a VideoTiling, True, False or None, got "
                             f"{type(decode_tiling).__name__}.")
        use_cfg = video_guidance.uses_uncond or audio_guidance.uses_uncond
        self._interrupt = False
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. Encode the prompts (cached; the text encoder is not needed again after this)
        if use_cfg and negative_prompt is None and negative_prompt_embeds is None:
            negative_prompt = DEFAULT_NEGATIVE_PROMPT
        positive, negative = self.encode_prompt(
            prompt, negative_prompt, use_cfg, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
            max_sequence_length, device, dtype)

        # 3. Timesteps (one schedule, stepped once per stream)
        self.scheduler.set_timesteps(num_inference_steps, device=device, sigmas=sigmas, num_tokens=shape.num_tokens)
        audio_scheduler = copy.deepcopy(self.scheduler)
        timesteps = self.scheduler.timesteps

        # 4. Latents: video (with image conditions) then audio, noise from one generator in the reference's order
        video = self.prepare_latents(shape, batch, frame_rate, conditions, generator, latents, noise_scale, image_crf,
                                     dtype, device)
        audio = self.prepare_audio_latents(batch, audio_tokens, generator, audio_latents, noise_scale, dtype, device)
        video = replace(video, context=positive.video_embeds, guidance=video_guidance, stg_blocks=tuple(stg_blocks),
                        negative_context=None if negative is None else negative.video_embeds)
        audio = replace(audio, context=positive.audio_embeds, guidance=audio_guidance,
                        stg_blocks=tuple(audio_stg_blocks),
                        negative_context=None if negative is None else negative.audio_embeds)

        # 5. Denoise
        sigmas_all = self.scheduler.sigmas
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self._interrupt:
                    continue
                sigma = sigmas_all[i]
                x0_video, x0_audio = predict_x0(self.transformer, video, audio, sigma, frame_rate, batch_guidance)
                video = _replace_latents(video, self.scheduler.step(
                    velocity_from_x0(video.latents, x0_video, sigma), t, video.latents).prev_sample)
                audio = _replace_latents(audio, audio_scheduler.step(
                    velocity_from_x0(audio.latents, x0_audio, sigma), t, audio.latents).prev_sample)
                if callback_on_step_end is not None:
                    state = {"latents": video.latents, "audio_latents": audio.latents,
                             "prompt_embeds": positive, "negative_prompt_embeds": negative}
                    requested = {k: state[k] for k in callback_on_step_end_tensor_inputs}
                    outputs = callback_on_step_end(self, i, t, requested) or {}
                    if "latents" in outputs:
                        video = _replace_latents(video, outputs["latents"])
                    if "audio_latents" in outputs:
                        audio = _replace_latents(audio, outputs["audio_latents"])
                progress_bar.update()

        # 6. Decode (appended keyframe tokens are dropped first)
        video_tokens = video.latents[:, : shape.num_tokens]
        if output_type == "latent":
            frames, waveform, sample_rate = video_tokens, audio.latents, None
        else:
            pixels = self.decode_video(video_tokens, shape, generator, decode_tiling)
            frames = self.video_processor.postprocess_video(pixels, output_type=output_type)
            waveform = self.decode_audio(audio.latents).float()
            sample_rate = self.vocoder.config.output_sampling_rate
            if output_type == "np":
                waveform = waveform.cpu().numpy().astype(np.float32)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, waveform, sample_rate
        return LTX2PipelineOutput(frames=frames, audio=waveform, sample_rate=sample_rate)


def _replace_latents(stream: StreamInputs, latents: torch.Tensor) -> StreamInputs:
    if latents.shape != stream.latents.shape:
        raise ValueError(f"callback returned latents of shape {tuple(latents.shape)}; expected "
                         f"{tuple(stream.latents.shape)}.")
    return replace(stream, latents=latents.to(stream.latents.dtype))
