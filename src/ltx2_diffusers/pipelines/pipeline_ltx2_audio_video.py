"""``LTX2AudioVideoPipeline``: text (and images, audio, video) to joint video + audio with LTX-2, every mode in one
call.

A call reads as plan -> encode prompts -> encode sources -> one denoising loop per stage -> decode. The plan
(:mod:`~ltx2_diffusers.pipelines.plan`) checks every argument before any model runs and fixes sizes, streams,
guidance and stages; the loop body is :func:`~ltx2_diffusers.pipelines.denoising.denoise_step`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from ..models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ..models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ..models.latent_upsampler_ltx2 import LTX2LatentUpsampler
from ..models.text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from ..models.tiling import VideoTiling
from ..models.transformer_ltx2 import LTX2AudioVideoTransformer
from ..models.vocoder_bwe_ltx2 import LTX2VocoderWithBWE
from ..models.vocoder_ltx2 import LTX2Vocoder
from ..schedulers.flow_match_config import as_ltx2_scheduler
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler
from .callbacks import check_callback_outputs
from .conditioning import keyframe_coordinates
from .denoising import StreamInputs, denoise_step, predict_x0
from .folder_format import write_folder_format
from .folder_loading import load_pipeline_components, single_device_map
from .lora import LTX2LoraLoaderMixin
from .low_memory import LTX2LowMemoryMixin
from .model_facts import PipelineFacts
from .pipeline_attributes import LTX2PipelineAttributes, follow_guidance
from .pipeline_decoding import LTX2DecodingMixin
from .pipeline_output import LTX2PipelineOutput
from .pipeline_text import LTX2TextMixin
from .plan import CALLBACK_TENSORS, GenerationPlan, Stage, plan_generation
from .prompt_cache import LTX2PromptCacheMixin
from .prompt_enhancement import enhance_prompts
from .sources import SourceTokens, encode_audio_source, encode_conditions, encode_video_source
from .stage_adapters import muted_adapters
from .starting_state import audio_starting_point, noised, video_starting_point
from .text_encoding import (
    LTX2PromptEncoder,
)
from .token_tiling import TokenTiling, predict_x0_tiled, tile_layouts

logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class EncodedSources:
    """What the VAEs made of the call's inputs: held / retaken clips and the condition images at each stage's size."""

    video: SourceTokens | None
    audio: SourceTokens | None
    conditions: dict[int, list]  # stage index -> [EncodedCondition]



class LTX2AudioVideoPipeline(LTX2PipelineAttributes, LTX2TextMixin, LTX2DecodingMixin, LTX2LowMemoryMixin,
                             LTX2PromptCacheMixin, DiffusionPipeline, LTX2LoraLoaderMixin):
    r"""Joint audio + video generation with LTX-2, every mode in one call.

    * text (and images) -> video + audio; ``image=`` conditions frames (frame 0 in place, others as keyframes);
    * audio -> video (``audio=``: the audio is held, the video generated to match it);
    * video -> audio (``video=``: the video is held, sound generated for it);
    * retake (``video=`` and/or ``audio=`` with ``retake_window=(start, end)``): only that time window is
      regenerated; a ``video`` shorter than ``num_frames`` is extended;
    * multi-scale (``upsample=True``): half-size generation, the x2 latent upsampler, then a short refinement at
      full size (optionally with another transformer or a LoRA active in that stage only), tiled over the latent
      when it exceeds a token budget (``refine_tiling``).

    Defaults (steps, guidance, STG block, CRF, negative prompt) are the reference's for the LTX version the loaded
    transformer's config describes (2.0 or 2.3). :meth:`plan` shows what a call would do without running it.

    Components (the names of a diffusers-format LTX-2 folder): ``scheduler`` (:class:`LTX2Scheduler`; diffusers'
    ``FlowMatchEulerDiscreteScheduler`` is accepted and mapped onto it with the same schedule), ``vae``
    (:class:`LTX2VideoAutoencoder`), ``audio_vae`` (:class:`LTX2AudioAutoencoder`), ``text_encoder`` (Gemma-3),
    ``tokenizer``, ``connectors`` (:class:`LTX2TextConnectors`), ``transformer``
    (:class:`LTX2AudioVideoTransformer`), ``vocoder`` (:class:`LTX2Vocoder`, or :class:`LTX2VocoderWithBWE` for
    LTX-2.3) and, optional, ``latent_upsampler`` (:class:`LTX2LatentUpsampler`, needed by ``upsample=True``). The
    components must fit together (text widths, latent channels, mel grid, ...): a mismatch is a ``ValueError``
    before any model runs (:func:`~ltx2_diffusers.pipelines.compatibility.component_mismatches`).

    LoRAs (diffusers format, or the original / ComfyUI ``diffusion_model.*.lora_A/lora_B`` format, on the video,
    audio, audio<->video and connector modules) load with ``pipe.load_lora_weights(path, adapter_name=...)``, are
    weighted with ``pipe.set_adapters(names, weights)`` (negative strengths allowed) and fused with ``fuse_lora`` /
    ``unfuse_lora``; this needs the ``peft`` package (``pip install peft``).

    Example:

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

    model_cpu_offload_seq = "text_encoder->connectors->transformer->latent_upsampler->vae->audio_vae->vocoder"
    # diffusers' sense: may be None with every call still working. The text encoder and tokenizer may be None too
    # (embeddings-only pipelines: calls then take `prompt_embeds`), see `folder_loading.TEXT_COMPONENTS`.
    _optional_components = ["latent_upsampler"]
    _callback_tensor_inputs = list(CALLBACK_TENSORS)

    # Our class for each component of a pipeline folder: a class, or a tuple of classes that the folder's class name
    # (ours or diffusers', see `folder_format.DIFFUSERS_CLASSES`) chooses between (see `folder_loading`).
    _component_classes: dict[str, type | tuple[type, ...]] = {
        "scheduler": LTX2Scheduler, "vae": LTX2VideoAutoencoder, "audio_vae": LTX2AudioAutoencoder,
        "connectors": LTX2TextConnectors, "transformer": LTX2AudioVideoTransformer,
        "vocoder": (LTX2Vocoder, LTX2VocoderWithBWE), "latent_upsampler": LTX2LatentUpsampler,
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
        vocoder: LTX2Vocoder | LTX2VocoderWithBWE,
        latent_upsampler: LTX2LatentUpsampler | None = None,
        processor: None = None,
        prompt_enhancer: None = None,
        duration_head: None = None,
        audio_scheduler: None = None,
    ) -> None:
        super().__init__()
        # diffusers' LTX-2 pipelines take these LTX-2.5 components (None for LTX-2.0/2.3): accepted as None, so that
        # a components dict built for diffusers' pipelines builds this one
        given = [name for name, value in (("processor", processor), ("prompt_enhancer", prompt_enhancer),
                                          ("duration_head", duration_head), ("audio_scheduler", audio_scheduler))
                 if value is not None]
        if given:
            raise ValueError(f"{given} belong to LTX-2.5 (a Gemma-4 processor / prompt enhancer, the duration head, "
                             f"a separate audio scheduler), which this LTX-2.0/2.3 pipeline does not run (one "
                             f"scheduler drives both streams); pass None or leave them out (prompt enhancement uses "
                             f"the pipeline's Gemma-3: enable_prompt_enhancement=True).")
        scheduler = as_ltx2_scheduler(scheduler) if scheduler is not None else None  # None: a text-only pipeline
        for name, expected in self._component_classes.items():
            component = scheduler if name == "scheduler" else locals()[name]
            if component is not None and not isinstance(component, expected):
                names = " or ".join(c.__name__ for c in (expected if isinstance(expected, tuple) else (expected,)))
                raise ValueError(f"`{name}` must be a {names} (ltx2_diffusers), got {type(component).__name__}; load "
                                 f"diffusers-format folders with LTX2AudioVideoPipeline.from_pretrained, which maps "
                                 f"them onto these classes.")
        self.register_modules(scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder,
                              latent_upsampler=latent_upsampler)
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_spatial_compression_ratio)
        self._prompt_encoder: LTX2PromptEncoder | None = None
        self._interrupt = False
        self._stage = 0

    def __setattr__(self, name: str, value: Any) -> None:  # noqa: ANN401
        if name == "scheduler" and value is not None:  # diffusers' flow-match scheduler -> LTX2Scheduler, or refused
            value = as_ltx2_scheduler(value)
        super().__setattr__(name, value)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any  # noqa: ANN401
    ) -> LTX2AudioVideoPipeline:
        """Loads a pipeline folder (or Hub repo) written by this package **or by diffusers** (``LTX2Pipeline``).

        Each component the folder's ``model_index.json`` lists loads onto this package's class from its subfolder
        (diffusers' class names map onto ours: same configs, same weights; diffusers' flow-match scheduler becomes an
        :class:`LTX2Scheduler` with the same schedule); the text encoder and tokenizer load with transformers. Configs
        and weights are checked before any tensor is read, and a load with a missing, unexpected or misshapen tensor
        fails naming the subfolder (see :mod:`~ltx2_diffusers.pipelines.folder_loading`).

        Keyword arguments: components by name (used as given, e.g. ``text_encoder=None`` to skip Gemma);
        ``torch_dtype`` / ``dtype`` (a ``torch.dtype``, or a dict by component name with ``"default"``); ``variant``;
        ``use_safetensors`` (``False`` allows pickled ``.bin`` weights, refused by default); ``low_cpu_mem_usage``;
        ``device_map`` naming one device (``"cuda"``, ``"cpu"``); and the Hub download options (``cache_dir``,
        ``token``, ``revision``, ``local_files_only``, ...).

        Raises:
            ValueError: a bad argument; ``FolderLoadError`` (a ``ValueError``) for a folder or file that cannot be
                loaded; ``MissingFolderError`` (also a ``FileNotFoundError``) for a local path that does not exist.
        """
        kwargs = dict(kwargs)
        device = single_device_map(kwargs.pop("device_map", None))
        pipe = cls(**load_pipeline_components(cls, pretrained_model_name_or_path, kwargs))
        pipe.register_to_config(_name_or_path=os.fspath(pretrained_model_name_or_path))
        return pipe if device is None else pipe.to(device)

    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True,
                        **kwargs: Any) -> None:  # noqa: ANN401
        """diffusers' ``save_pretrained`` (components, then ``model_index.json`` in diffusers' format, see
        :meth:`save_config`), with weights always written as safetensors: pickles are never written, as they are
        never read by default (``safe_serialization=False`` is logged and ignored)."""
        if not safe_serialization:
            logger.warning("save_pretrained writes safetensors only (pickled .bin weights are never written); "
                           "safe_serialization=False is ignored.")
        super().save_pretrained(save_directory, safe_serialization=True, **kwargs)

    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:  # noqa: ANN401
        """Writes the folder's ``model_index.json`` (``save_pretrained`` calls this after saving the components) in
        diffusers' LTX-2 format: diffusers' pipeline and component class names and a flow-match scheduler config
        with the same schedule, so the folder loads in diffusers too (see
        :mod:`~ltx2_diffusers.pipelines.folder_format`)."""
        if push_to_hub:
            raise ValueError("Upload a pipeline with save_pretrained(..., push_to_hub=True).")
        super().save_config(save_directory, **kwargs)
        write_folder_format(save_directory, {name: getattr(self, name) for name in self._component_classes.keys()
                                             | {"text_encoder", "tokenizer"}})

    # ------------------------------------------------------------------------------------------------------------
    # Properties
    # ------------------------------------------------------------------------------------------------------------

    @property
    def spatial_compression(self) -> int:
        return self.vae.spatial_compression_ratio

    @property
    def temporal_compression(self) -> int:
        return self.vae.temporal_compression_ratio

    @property
    def stage(self) -> int:
        """The denoising stage running now: 1, or 2 for the refinement of ``upsample=True`` (for callbacks)."""
        return self._stage

    # ------------------------------------------------------------------------------------------------------------
    # Planning
    # ------------------------------------------------------------------------------------------------------------

    def facts(self, device: torch.device | str | None = None) -> PipelineFacts:
        """What a plan needs to know of the components (their configs and state, never their weights)."""
        absent = [name for name in ("scheduler", "vae", "audio_vae", "connectors", "transformer", "vocoder")
                  if getattr(self, name) is None]
        if absent:
            raise ValueError(f"This pipeline was built without {', '.join(absent)}, so it cannot generate (it can "
                             f"encode prompts); build it with every component, e.g. from_pretrained(folder).")
        return PipelineFacts.from_components(
            transformer=self.transformer, vae=self.vae, audio_vae=self.audio_vae, vocoder=self.vocoder,
            connectors=self.connectors, scheduler=self.scheduler, latent_upsampler=self.latent_upsampler,
            has_text_encoder=(self.text_encoder is not None and self.tokenizer is not None)
            or self._prompts_from_cache(),
            device=device if device is not None else self._execution_device)

    def plan(self, **kwargs: Any) -> GenerationPlan:  # noqa: ANN401
        """The checked plan of ``pipe(**kwargs)``: sizes, streams, guidance, stages and a memory estimate; raises the
        ``ValueError`` the call would raise. Nothing runs."""
        return plan_generation(self.facts(), self._memory_call_defaults(call_arguments(**kwargs)))

    # ------------------------------------------------------------------------------------------------------------
    # Call
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        image: Any = None,  # noqa: ANN401
        conditions: Any = None,  # noqa: ANN401
        audio: Any = None,  # noqa: ANN401
        audio_sample_rate: int | None = None,
        video: Any = None,  # noqa: ANN401
        retake_window: tuple[float, float] | None = None,
        retake_modalities: Sequence[str] = ("video", "audio"),
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        min_seconds: float = 1.0,
        max_seconds: float = 20.0,
        frame_rate: float | None = None,
        motion_speed: float = 1.0,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        guidance_scale: float | None = None,
        stg_scale: float | None = None,
        modality_scale: float | None = None,
        guidance_rescale: float | None = None,
        audio_guidance_scale: float | None = None,
        audio_stg_scale: float | None = None,
        audio_modality_scale: float | None = None,
        audio_guidance_rescale: float | None = None,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        audio_stg_blocks: Sequence[int] | None = None,
        upsample: bool = False,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        stage_2_transformer: LTX2AudioVideoTransformer | None = None,
        stage_2_adapters: str | Sequence[str] | None = None,
        stage_2_guidance: bool = False,
        refine_tiling: TokenTiling | bool | None = None,
        noise_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        prompt_embeds: LTX2TextEmbeddings | torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_embeds: LTX2TextEmbeddings | torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        decode_timestep: float | list[float] | None = None,
        decode_noise_scale: float | list[float] | None = None,
        use_cross_timestep: bool = True,
        system_prompt: str | None = None,
        enable_prompt_enhancement: bool = False,
        prompt_max_new_tokens: int | None = None,
        prompt_enhancement_kwargs: dict[str, Any] | None = None,
        prompt_enhancement_seed: int = 10,
        image_crf: int | None = None,
        batch_guidance: bool = True,
        decode_tiling: VideoTiling | bool | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        max_sequence_length: int = 1024,
    ) -> LTX2PipelineOutput | tuple:
        r"""Generates video and audio. Takes the arguments of diffusers' ``LTX2Pipeline``,
        ``LTX2ImageToVideoPipeline`` and ``LTX2ConditionPipeline`` with their meaning, and more (held audio / video,
        retake, multi-scale, tiling). Every argument is checked before any model runs (see :meth:`plan`); a mistake
        raises a ``ValueError`` that says what to pass instead.

        Args:
            prompt: text prompt(s); or pass ``prompt_embeds``.
            negative_prompt: used by text guidance; default: the reference's negative prompt.
            image: the frame-0 image (I2V): a file path, PIL image, array or tensor; a list (or a 4-D batch) gives
                one image per prompt.
            conditions: images or clips at any frame: :class:`ImageCondition` (pixel ``frame_index``), ``(image,
                frame_index[, strength])`` tuples or diffusers' ``LTX2VideoCondition`` (latent ``index``), or a list.
                Frame 0 replaces the first latent frame(s); others are appended as keyframe tokens and removed after
                denoising.
            audio: audio to hold (audio-to-video): a file path, ``(waveform, sample_rate)``, or a waveform ``[N]`` /
                ``[channels, N]`` with ``audio_sample_rate``. It is trimmed to the clip; tokens past the end of a
                shorter clip are generated. The returned audio is the input (resampled to the vocoder's rate,
                trimmed or zero-padded to the clip) when all of it is held.
            audio_sample_rate: rate of a waveform passed as ``audio``.
            video: video to hold (video-to-audio): a file path, a list of PIL images or frames (``[F, H, W, 3]``
                uint8 / floats in [0, 1], or ``[F, 3, H, W]`` floats). Resized to cover ``height x width`` and
                centre-cropped, trimmed to ``8k+1`` frames and at most ``num_frames`` (fewer: the clip is extended).
                Returned as given when all of it is held.
            retake_window: ``(start, end)`` seconds of the given ``video`` / ``audio`` to regenerate; everything
                outside is held. Streams not given are generated whole.
            retake_modalities: which given streams the window applies to (the others are held whole).
            height / width: multiples of 32 (64 with ``upsample``); default: the ``video``'s size, else that of 5-D
                ``latents``, else 512 x 768.
            num_frames: ``8k+1``; default: the ``video``'s frame count (trimmed to ``8k+1``), else that of 5-D
                ``latents``, else 121.
            min_seconds / max_seconds: the duration head's bounds in diffusers (LTX-2.5 only); checked, unused.
            frame_rate: frames per second of playback (sets the audio length); default: the video file's rate,
                else 24.
            motion_speed: the video positions use ``frame_rate / motion_speed`` (below 1: slow motion).
            num_inference_steps: steps of the LTX-2 schedule (default: the reference's, 40 for LTX-2.0 and 30 for
                2.3); or ``sigmas``: the steps' σ without the final 0, used exactly as given (e.g.
                ``DISTILLED_SIGMAS``); or ``timesteps``: the same as σ · ``num_train_timesteps``.
            guidance_scale / modality_scale / stg_scale / guidance_rescale: video guidance (CFG, modality,
                STG, rescale); ``None`` takes the reference's 3 / 3 / 1 / 0.7.
            audio_guidance_scale / audio_modality_scale / audio_stg_scale / audio_guidance_rescale: audio guidance;
                ``None`` takes the reference's 7 / 3 / 1 / 0.7. Any value given is used as given (0 is off, never a
                fallback to the video value). A stream held whole (``audio=`` or ``video=`` without a window) has
                its guidance off unless values are given, and sees its own prompt in the negative pass, as in the
                reference's audio-to-video pipeline. Callbacks may change them between steps through the
                pipeline's attributes (``pipe._guidance_scale = 1.0`` stops the negative-prompt pass).
            spatio_temporal_guidance_blocks / audio_stg_blocks: blocks STG perturbs (default: the reference's
                block, 29 of 48 for LTX-2.0 and 28 for 2.3; audio: the video list).
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
            noise_scale: ``None`` (or 0): given latents are the starting sample as they are; a value ``s``: they
                are clean and re-noised to ``s·ε + (1 - s)·latents`` (refinement).
            num_videos_per_prompt: videos per prompt.
            generator: a generator or one per video (``B · num_videos_per_prompt``).
            latents / audio_latents: latents to start from (stage-1 size with ``upsample``), either what
                ``output_type="latent"`` returns (diffusers' layout: VAE-space ``[B, C, F', H', W']`` video and
                ``[B, C, L, M]`` audio) or the packed normalised tokens callbacks see (``[B, tokens, C]``); frame-0
                images still condition them.
            prompt_embeds / negative_prompt_embeds: :class:`LTX2TextEmbeddings` from :meth:`encode_prompt`, or
                diffusers' packed text-encoder features ``[B, T, D·(L+1)]`` with ``prompt_attention_mask`` /
                ``negative_prompt_attention_mask`` ``[B, T]``.
            decode_timestep / decode_noise_scale: decode timestep and noise of a timestep-conditioned VAE decoder
                (one value, or one per video; noise defaults to the timestep); ``None``: the VAE's reference decode.
            use_cross_timestep: each stream's audio<->video modulation uses the other stream's σ (the reference);
                ``False``: each stream's own timestep (diffusers' legacy LTX-2.0 modulation).
            system_prompt / enable_prompt_enhancement / prompt_max_new_tokens / prompt_enhancement_kwargs /
                prompt_enhancement_seed: rewrite the prompts with the pipeline's Gemma-3 first (diffusers' system
                prompt and sampling by default; the same seed gives the same prompt). See :meth:`enhance_prompt`.
            image_crf: H.264 CRF applied to condition images (default: the reference's 33; 0 = off).
            batch_guidance: run the conditional and negative-prompt passes as one batch (faster; ``False`` uses less
                memory).
            decode_tiling: VAE tiling for the decode (see :meth:`decode_video`); default: the VAE's setting, and
                automatic tiling above 121 frames at 720p.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict: return an :class:`LTX2PipelineOutput` instead of the tuple ``(frames, audio)``.
            attention_kwargs: ``{"scale": s}`` scales the active LoRA adapters for the call.
            callback_on_step_end: ``callback(pipe, step, timestep, tensors) -> dict``; may read and replace
                ``latents`` and ``audio_latents`` (packed, normalised; same shape, dtype and device, finite) and the
                prompt embeddings. Steps count on across stages (``pipe.num_timesteps`` in all); ``pipe.stage``
                tells which stage runs.
            callback_on_step_end_tensor_inputs: names passed to the callback.
            max_sequence_length: text length (multiple of the connectors' register count).
        """
        arguments = {name: value for name, value in locals().items() if name != "self"}
        plan = plan_generation(self.facts(), self._memory_call_defaults(arguments))
        device, dtype = self._execution_device, self.transformer.dtype
        self._set_guidance_attributes(plan.video.guidance, plan.audio.guidance)
        self._attention_kwargs, self._num_timesteps = plan.attention_kwargs, sum(s.num_steps for s in plan.stages)
        self._interrupt, self._step, self._current_timestep = False, 0, None
        prompts = plan.text.prompts
        if plan.text.enhancement is not None:
            prompts = enhance_prompts(self.text_encoder, self.tokenizer, prompts, plan.text.enhancement, device)
        texts = self._encode_text(plan, prompts, device, dtype)
        sources = self._encode_sources(plan, device)
        given = self._given_latents(plan)
        previous = None
        for stage in plan.stages:
            if self._interrupt:
                break
            self._stage = stage.index
            video, audio = self._start_stage(plan, stage, sources, texts, given, previous, device, dtype)
            video, audio = self._run_stage(plan, stage, video, audio, texts)
            previous = (stage, video, audio)
        output = self._output(plan, *previous[1:], previous[0].shape)
        self._stage, self._current_timestep = 0, None
        self.maybe_free_model_hooks()
        return output if plan.return_dict else (output.frames, output.audio)

    # ------------------------------------------------------------------------------------------------------------
    # The phases of a call
    # ------------------------------------------------------------------------------------------------------------

    def _encode_sources(self, plan: GenerationPlan, device: torch.device) -> EncodedSources:
        shape, video, audio = plan.stages[0].shape, None, None
        if plan.video_source is not None:
            bounds = self.transformer.video_coordinates(shape.frames, 1, 1, plan.frame_rate)[0, 0]  # [F', 2] s
            video = encode_video_source(self.vae, plan.video_source.media, shape, bounds, plan.video_source.window,
                                        device)
        if plan.audio_source is not None:
            bounds = self.transformer.audio_coordinates(plan.audio_tokens)[0, 0]  # [L, 2] seconds
            audio = encode_audio_source(self.audio_vae, plan.audio_source.media, plan.audio_source.rate,
                                        plan.audio_tokens, bounds, plan.audio_source.window, device)
        conditions = {stage.index: encode_conditions(self.vae, plan.conditions, stage.shape, plan.image_crf, device)
                      for stage in plan.stages}
        return EncodedSources(video, audio, conditions)

    def _start_stage(
        self, plan: GenerationPlan, stage: Stage, sources: EncodedSources,
        texts: tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None],
        given: tuple[torch.Tensor | None, torch.Tensor | None],
        previous: tuple[Stage, StreamInputs, StreamInputs] | None, device: torch.device, dtype: torch.dtype,
    ) -> tuple[StreamInputs, StreamInputs]:
        """Both streams' starting state: the call's latents (or noise), or the previous stage's result upsampled x2
        and re-noised to ``stage.renoise``. Video noise is drawn before audio noise, from the same generator."""
        if previous is None:
            (video_base, audio_base), noise_scale = given, plan.noise_scale
        else:
            last, video, audio = previous
            video_base = self.upsample_video_latents(video.latents[:, : last.shape.num_tokens], last.shape)
            audio_base, noise_scale = audio.latents, stage.renoise
        shape, batch = stage.shape, plan.batch
        fps = plan.conditioning_frame_rate
        coords = self.transformer.video_coordinates(shape.frames, shape.height, shape.width, fps, batch, dtype, device)
        keyframes = partial(keyframe_coordinates, latent_height=shape.height, latent_width=shape.width,
                            fps=fps, batch_size=batch, spatial_scale=self.spatial_compression,
                            temporal_scale=self.temporal_compression)
        video_point = video_starting_point(shape, batch, coords, video_base, sources.video,
                                           sources.conditions[stage.index], keyframes, dtype, device)
        audio_point = audio_starting_point(plan.audio_tokens, self.transformer.config.audio_in_channels, batch,
                                           self.transformer.audio_coordinates(plan.audio_tokens, batch, device),
                                           audio_base, sources.audio, dtype, device)
        video = noised(video_point, randn_tensor(video_point.clean.shape, plan.generator, device, dtype), noise_scale)
        audio = noised(audio_point, randn_tensor(audio_point.clean.shape, plan.generator, device, dtype), noise_scale)
        return (_with_text(video, stage.video_guidance, plan.video.stg_blocks, plan.video.own_negative, texts,
                           "video_embeds"),
                _with_text(audio, stage.audio_guidance, plan.audio.stg_blocks, plan.audio.own_negative, texts,
                           "audio_embeds"))

    def _run_stage(
        self, plan: GenerationPlan, stage: Stage, video: StreamInputs, audio: StreamInputs,
        texts: tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None],
    ) -> tuple[StreamInputs, StreamInputs]:
        """The stage's steps: :func:`denoise_step` with the plain or tiled predictor, then the callback. A stage
        that runs the call's guidance reads it from the pipeline's attributes before every step (callbacks may
        change them)."""
        transformer = stage.transformer or self.transformer
        options = dict(fps=plan.conditioning_frame_rate, batch_passes=plan.batch_guidance,
                       use_cross_timestep=plan.use_cross_timestep, attention_kwargs=plan.attention_kwargs)
        if stage.tiles is None:
            predict = partial(predict_x0, transformer, **options)
        else:
            layouts = tile_layouts(list(stage.tiles), tuple(stage.shape[:3]), video.latents.shape[1],
                                   video.latents.device)
            predict = partial(predict_x0_tiled, transformer, layouts=layouts, **options)
        sigmas = torch.tensor(stage.sigmas, dtype=torch.float32, device=video.latents.device)
        timesteps = sigmas[:-1] * self.scheduler.config.num_train_timesteps
        muted = muted_adapters(self.transformer, stage.muted_adapters) if stage.muted_adapters else nullcontext()
        with self._progress(stage) as progress_bar, muted:
            for i in range(stage.num_steps):
                if self._interrupt:
                    continue
                if stage.call_guidance:
                    video, audio = follow_guidance(video, audio, *self._attribute_guidance())
                self._current_timestep = timesteps[i]
                video, audio = denoise_step(predict, video, audio, sigmas[i], sigmas[i + 1])
                if plan.callback is not None:
                    video, audio, texts = self._callback(plan, timesteps[i], video, audio, texts)
                self._step += 1
                progress_bar.update()
        for name, stream in (("video", video), ("audio", audio)):
            if not bool(torch.isfinite(stream.latents).all()):
                raise ValueError(f"stage {stage.index} produced NaN/inf {name} latents: the model overflowed (run it "
                                 f"in bfloat16 or float32 rather than float16) or its weights hold NaN.")
        return video, audio

    def _progress(self, stage: Stage) -> Any:  # noqa: ANN401
        user_config = dict(getattr(self, "_progress_bar_config", {}))
        self._progress_bar_config = {"desc": f"stage {stage.index}", **user_config}  # the user's desc wins
        try:
            return self.progress_bar(total=stage.num_steps)
        finally:
            self._progress_bar_config = user_config

    def _callback(
        self, plan: GenerationPlan, timestep: torch.Tensor, video: StreamInputs, audio: StreamInputs,
        texts: tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None],
    ) -> tuple[StreamInputs, StreamInputs, tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]]:
        """Runs ``callback_on_step_end`` and applies what it returns, after checking it."""
        state = {"latents": video.latents, "audio_latents": audio.latents, "prompt_embeds": texts[0],
                 "negative_prompt_embeds": texts[1]}
        outputs = plan.callback(self, self._step, timestep, {k: state[k] for k in plan.callback_tensor_inputs})
        name = getattr(plan.callback, "__qualname__", type(plan.callback).__name__)
        outputs = check_callback_outputs(outputs, state, name)
        if "latents" in outputs:
            video = replace(video, latents=outputs["latents"])
        if "audio_latents" in outputs:
            audio = replace(audio, latents=outputs["audio_latents"])
        if "prompt_embeds" in outputs or "negative_prompt_embeds" in outputs:
            texts = (outputs.get("prompt_embeds", texts[0]), outputs.get("negative_prompt_embeds", texts[1]))
            video = _with_text(video, video.guidance, video.stg_blocks, plan.video.own_negative, texts, "video_embeds")
            audio = _with_text(audio, audio.guidance, audio.stg_blocks, plan.audio.own_negative, texts, "audio_embeds")
        return video, audio, texts

# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


# The call's keywords and their defaults: the one place they are written is `__call__`'s signature.
CALL_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(
    LTX2AudioVideoPipeline.__call__).parameters.items() if name != "self"}


def call_arguments(**overrides: Any) -> dict[str, Any]:  # noqa: ANN401
    """Every keyword of :meth:`LTX2AudioVideoPipeline.__call__` with its default, updated with ``overrides``."""
    unknown = sorted(set(overrides) - set(CALL_DEFAULTS))
    if unknown:
        raise TypeError(f"LTX2AudioVideoPipeline.__call__ has no argument(s) {unknown}.")
    return {**CALL_DEFAULTS, **overrides}


def _with_text(
    stream: StreamInputs, guidance: Any, stg_blocks: tuple[int, ...], own_negative: bool,  # noqa: ANN401
    texts: tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None], field: str,
) -> StreamInputs:
    """Attaches a stream's prompt contexts and guidance (``own_negative``: its own prompt in the negative pass)."""
    positive, negative = texts
    context = getattr(positive, field)
    negative_context = context if own_negative else None if negative is None else getattr(negative, field)
    return replace(stream, context=context, negative_context=negative_context, guidance=guidance,
                   stg_blocks=tuple(stg_blocks))
