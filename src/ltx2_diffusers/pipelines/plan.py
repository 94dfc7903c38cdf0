"""The generation plan: one pure function turns a call's arguments and the components' facts into a frozen
:class:`GenerationPlan`, checking every argument once, before any model runs.

The plan resolves sizes and the frame rate (from the arguments, a given video, or the version's defaults), decides
which stream is generated, held or retaken, each stream's guidance and which negative context its unconditional pass
sees, and lists the denoising :class:`Stage` s: one, or two for ``upsample=True`` (half-size generation, then a
refinement of the x2-upsampled latent). Nothing else in the pipeline branches on ``upsample``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging

from ..models.audio_processing import audio_latent_length, latents_for_mel_frames, mel_frames_for_samples
from ..models.tiling import VideoTiling
from .arguments import (
    as_bool,
    as_choice,
    as_float,
    as_generators,
    as_index_list,
    as_int,
    as_sigmas,
    check_finite,
)
from .call_inputs import (
    attention_options,
    check_duration_bounds,
    frame_zero_images,
    given_audio_latents,
    given_latents,
    given_sigmas,
    latent_sizes,
    per_video_values,
)
from .compatibility import check_fit, warn_drifts
from .conditioning import ImageCondition, as_conditions, condition_latent_frames
from .guidance import GuidanceParams, passes_needed
from .latents import VideoLatentShape, check_video_size
from .media import audio_waveform, check_time_window, fit_video, video_pixels
from .memory import MemoryEstimate, check_memory, decode_bytes, denoise_bytes
from .model_facts import PipelineFacts, TransformerFacts
from .text_plan import TextPlan, text_plan, with_enhancement, with_negative
from .token_tiling import TokenTile, TokenTiling, plan_token_tiles

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
CALLBACK_TENSORS = ("latents", "audio_latents", "prompt_embeds", "negative_prompt_embeds")
STREAMS = ("video", "audio")
# Decodes larger than 121 frames at 720p (per video) are tiled unless the call or the VAE says otherwise.
AUTO_TILING_PIXELS = 121 * 720 * 1280
# A held audio clip is trimmed this far past the clip's end before encoding (STFT window, resampler, causal context).
AUDIO_TRIM_MARGIN_SECONDS = 0.5
GUIDANCE_NAMES = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")

# ----------------------------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamPlan:
    """One stream across the call.

    Args:
        held: the stream is given whole and kept (nothing of it is generated).
        guidance: its guidance in stage 1 (later stages are unguided unless ``stage_2_guidance``).
        stg_blocks: blocks whose self-attention its STG pass perturbs.
        own_negative: its unconditional pass sees its own prompt instead of the negative prompt (a held stream with
            its guidance off in a call whose other stream runs text guidance, as the reference does).
    """

    held: bool
    guidance: GuidanceParams
    stg_blocks: tuple[int, ...]
    own_negative: bool = False


@dataclass(frozen=True)
class Stage:
    """One denoising stage.

    Args:
        index: 1, or 2 for the refinement of ``upsample=True``.
        shape: the video latent grid of this stage.
        sigmas: σ per step, ending with 0.
        video_guidance / audio_guidance: each stream's guidance in this stage.
        tiles: the video tiles of a tiled stage (``None``: the whole latent in each call).
        transformer: the transformer of this stage (``None``: the pipeline's).
        muted_adapters: LoRA adapters that contribute nothing in this stage.
        renoise: re-noise the previous stage's result (after x2 upsampling) to this σ before the stage.
        call_guidance: the stage runs the call's guidance, so it follows what callbacks set on the pipeline
            (``pipe._guidance_scale`` ...); ``False`` for the unguided refinement of ``upsample=True``.
    """

    index: int
    shape: VideoLatentShape
    sigmas: tuple[float, ...]
    video_guidance: GuidanceParams
    audio_guidance: GuidanceParams
    tiles: tuple[TokenTile, ...] | None = None
    transformer: torch.nn.Module | None = None
    muted_adapters: tuple[str, ...] = ()
    renoise: float | None = None
    call_guidance: bool = True

    @property
    def passes(self) -> tuple[str, ...]:
        """Transformer passes of every step (``"cond"``, then ``"uncond"``, ``"perturbed"``, ``"isolated"``)."""
        return passes_needed(self.video_guidance, self.audio_guidance)

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1


@dataclass(frozen=True)
class SourcePlan:
    """A given clip: video pixels ``[F, 3, H, W]`` in [-1, 1] or a waveform ``[2, N]`` at ``rate``, and the time
    window of it that is regenerated (``None``: all of it that covers the clip is held)."""

    media: torch.Tensor
    rate: float
    window: tuple[float, float] | None


@dataclass(frozen=True)
class GenerationPlan:
    """A validated call: sizes, streams, stages and the inputs each phase uses.

    ``frame_rate`` is the playback rate (audio length, time windows); ``conditioning_frame_rate`` the rate the
    video positions are built with (``frame_rate / motion_speed``). ``latents`` / ``audio_latents`` are as given:
    packed normalised tokens (3-D) or diffusers' unpacked VAE-space latents (5-D video, 4-D audio).
    ``audio_samples`` is the length of each returned waveform at the vocoder's rate: the decoded length (mel frames
    x the vocoder's samples per frame) when audio is generated, the clip's duration when a given audio is returned
    whole.
    """

    num_frames: int
    height: int
    width: int
    frame_rate: float
    conditioning_frame_rate: float
    batch: int
    num_videos_per_prompt: int
    audio_tokens: int
    audio_samples: int
    video: StreamPlan
    audio: StreamPlan
    stages: tuple[Stage, ...]
    text: TextPlan
    conditions: tuple[ImageCondition, ...]
    video_source: SourcePlan | None
    audio_source: SourcePlan | None
    latents: torch.Tensor | None
    audio_latents: torch.Tensor | None
    noise_scale: float | None
    generator: torch.Generator | list[torch.Generator] | None
    image_crf: int
    batch_guidance: bool
    decode_tiling: VideoTiling | bool
    output_type: str
    return_dict: bool
    callback: Callable | None
    callback_tensor_inputs: tuple[str, ...]
    memory: MemoryEstimate
    decode_timestep: tuple[float, ...] | None = None
    decode_noise_scale: tuple[float, ...] | None = None
    use_cross_timestep: bool = True
    attention_kwargs: dict[str, Any] | None = None

    @property
    def final_shape(self) -> VideoLatentShape:
        return self.stages[-1].shape


# ----------------------------------------------------------------------------------------------------------------
# Building it
# ----------------------------------------------------------------------------------------------------------------


def plan_generation(facts: PipelineFacts, arguments: Mapping[str, Any]) -> GenerationPlan:
    """Checks a call's ``arguments`` (every keyword of :meth:`LTX2AudioVideoPipeline.__call__`, with its defaults)
    against the components' ``facts`` and returns the plan; ``ValueError`` naming the argument for any mistake, or
    the components' disagreements when they do not fit together."""
    check_fit(facts.mismatches)
    warn_drifts(facts.drifts)
    a = dict(arguments)
    output_type = as_choice(a["output_type"], "output_type", OUTPUT_TYPES)
    num_videos = as_int(a["num_videos_per_prompt"], "num_videos_per_prompt", minimum=1)
    text = text_plan(a, facts.has_text_encoder, facts.register_multiple)
    num_prompts = text.num_prompts
    batch = num_prompts * num_videos
    upsample = as_bool(a["upsample"], "upsample")
    check_duration_bounds(a["min_seconds"], a["max_seconds"])

    # sources and sizes (given values, else the video's, else 5-D latents', else the defaults)
    video_source, source_fps = _read_video(a["video"])
    audio_source = _read_audio(a["audio"], a["audio_sample_rate"])
    from_latents = latent_sizes(a["latents"], facts, upsample)
    from_video = (None,) * 3 if video_source is None else (
        (video_source.shape[0] - 1) // facts.temporal_compression * facts.temporal_compression + 1,
        *video_source.shape[2:])
    given = {name: a[name] for name in ("num_frames", "height", "width")}
    if from_latents[0] is not None:  # 5-D latents fix the grid, as in diffusers (which infers it silently)
        for (name, value), inferred in zip(given.items(), from_latents):
            if value is not None and value != inferred:
                logger.warning("%s=%s does not match the given 5-D latents: using their %s=%d.", name, value, name,
                               inferred)
        given = dict(zip(given, from_latents))
    num_frames = as_int(_first(given["num_frames"], from_video[0], 121), "num_frames", minimum=1)
    height = as_int(_first(given["height"], from_video[1], 512), "height", minimum=1)
    width = as_int(_first(given["width"], from_video[2], 768), "width", minimum=1)
    frame_rate = as_float(_first(a["frame_rate"], source_fps, 24.0), "frame_rate", minimum=0.0,
                          exclusive_minimum=True)
    motion_speed = as_float(a["motion_speed"], "motion_speed", minimum=0.0, exclusive_minimum=True)
    check_video_size(num_frames, height, width, facts.temporal_compression, facts.spatial_compression)
    audio_tokens = audio_latent_length(num_frames, frame_rate, sample_rate=facts.audio_sample_rate,
                                       hop_length=facts.audio_hop_length, temporal_compression=facts.audio_compression)
    if audio_tokens < 1:
        raise ValueError(f"{num_frames} frames at frame_rate={frame_rate:g} last {num_frames / frame_rate * 1000:.2f} "
                         f"ms, less than one audio latent; pass more frames or a lower frame_rate.")
    duration = num_frames / frame_rate

    # what is held, retaken or generated
    if video_source is not None:
        video_source = _fit_video_source(video_source, num_frames, height, width, facts.temporal_compression)
    window = _retake_window(a, video_source, audio_source, duration)
    retaken = set() if window is None else window[1]
    video_held = video_source is not None and "video" not in retaken and video_source.shape[0] == num_frames
    audio_plan = None
    if audio_source is not None:
        waveform, rate = audio_source
        waveform = _trim_audio(waveform, rate, duration, facts)
        audio_held = "audio" not in retaken and audio_source_tokens(waveform, rate, facts) >= audio_tokens
        audio_plan = SourcePlan(waveform, rate, window[0] if "audio" in retaken else None)
    else:
        audio_held = False
    audio_samples = round(duration * facts.vocoder_rate) if audio_held else facts.waveform_samples(audio_tokens)
    if video_held and audio_held:
        raise ValueError("both `video` and `audio` are given and held whole: there is nothing to generate. Pass "
                         "retake_window=(start, end) to regenerate part of them, or drop one.")
    video_plan = None if video_source is None else SourcePlan(
        video_source, frame_rate, window[0] if "video" in retaken else None)

    # guidance
    layers = facts.transformer.num_layers
    video = _stream_plan(a, "", facts.defaults.video_guidance, video_held, layers, facts.defaults.stg_blocks(layers),
                         None)
    audio = _stream_plan(a, "audio_", facts.defaults.audio_guidance, audio_held, layers,
                         facts.defaults.stg_blocks(layers), video.stg_blocks)
    needs_negative = video.guidance.uses_uncond or audio.guidance.uses_uncond
    video = _with_own_negative(video, needs_negative)
    audio = _with_own_negative(audio, needs_negative)
    text = with_negative(text, needs_negative)

    # conditions and stages
    conditions = frame_zero_images(a["image"], num_prompts, num_videos) + tuple(
        as_conditions(a["conditions"], num_frames, facts.temporal_compression, "conditions"))
    if sum(c.frame_index == 0 for c in conditions) > 1:
        raise ValueError("`image` and a condition both condition frame 0: pass one of them.")
    text = with_enhancement(text, a, facts.has_text_encoder, any(c.frame_index == 0 for c in conditions))
    stages = _stages(facts, a, upsample, num_frames, height, width, video, audio, video_plan is not None,
                     window is not None)
    first = stages[0].shape
    latents = given_latents(a["latents"], "latents", batch, first)
    audio_latents = given_audio_latents(a["audio_latents"], batch, audio_tokens, facts.transformer.audio_in_channels)
    noise_scale = None if a["noise_scale"] is None else as_float(a["noise_scale"], "noise_scale", 0.0, 1.0)

    image_crf = facts.defaults.image_crf if a["image_crf"] is None else as_int(a["image_crf"], "image_crf", 0, 51)
    decode_tiling = resolve_decode_tiling(a["decode_tiling"], facts.vae_tiling, facts.spatial_compression,
                                          facts.temporal_compression, num_frames, height, width)
    callback, tensor_inputs = _callback(a["callback_on_step_end"], a["callback_on_step_end_tensor_inputs"])
    batch_guidance = as_bool(a["batch_guidance"], "batch_guidance")
    keyframes = sum(condition_latent_frames(c, facts.temporal_compression) for c in conditions if c.frame_index)
    memory = _estimate(facts, stages, batch, audio_tokens, keyframes, batch_guidance, decode_tiling,
                       (num_frames, height, width), output_type == "latent" or video_held)
    check_memory(memory, facts.memory_bytes, f"{batch} video(s) of {num_frames} frames at {height}x{width}")
    return GenerationPlan(
        num_frames=num_frames, height=height, width=width, frame_rate=frame_rate,
        conditioning_frame_rate=frame_rate / motion_speed, batch=batch,
        num_videos_per_prompt=num_videos, audio_tokens=audio_tokens, audio_samples=audio_samples, video=video,
        audio=audio, stages=stages, text=text, conditions=conditions, video_source=video_plan,
        audio_source=audio_plan, latents=latents,
        audio_latents=audio_latents, noise_scale=noise_scale, generator=as_generators(a["generator"], batch),
        image_crf=image_crf, batch_guidance=batch_guidance, decode_tiling=decode_tiling, output_type=output_type,
        return_dict=as_bool(a["return_dict"], "return_dict"), callback=callback, callback_tensor_inputs=tensor_inputs,
        memory=memory, decode_timestep=per_video_values(a["decode_timestep"], "decode_timestep", batch),
        decode_noise_scale=per_video_values(a["decode_noise_scale"], "decode_noise_scale", batch),
        use_cross_timestep=as_bool(a["use_cross_timestep"], "use_cross_timestep"),
        attention_kwargs=attention_options(a["attention_kwargs"]),
    )


def _first(*values: Any) -> Any:  # noqa: ANN401
    return next(v for v in values if v is not None)


# -- sources -------------------------------------------------------------------------------------------------------


def _read_video(video: Any) -> tuple[torch.Tensor | None, float | None]:  # noqa: ANN401
    return (None, None) if video is None else video_pixels(video)


def _read_audio(audio: Any, sample_rate: Any) -> tuple[torch.Tensor, int] | None:  # noqa: ANN401
    if audio is None:
        if sample_rate is not None:
            raise ValueError("`audio_sample_rate` is only used with `audio`.")
        return None
    waveform, rate = audio_waveform(audio, sample_rate)
    check_finite(waveform, "audio")
    return waveform, rate


def _retake_window(a: dict[str, Any], video: torch.Tensor | None, audio: Any, duration: float  # noqa: ANN401
                   ) -> tuple[tuple[float, float], set[str]] | None:
    if a["retake_window"] is None:
        return None
    if video is None and audio is None:
        raise ValueError("retake_window regenerates part of a given clip: pass `video` and/or `audio` too.")
    modalities = a["retake_modalities"]
    modalities = [modalities] if isinstance(modalities, str) else modalities
    if not isinstance(modalities, (list, tuple)) or not modalities or any(m not in STREAMS for m in modalities):
        raise ValueError(f"retake_modalities must name 'video' and/or 'audio', got {a['retake_modalities']!r}.")
    window = check_time_window(a["retake_window"], duration)
    return window, set(modalities)


def _fit_video_source(pixels: torch.Tensor, num_frames: int, height: int, width: int, temporal: int
                      ) -> torch.Tensor:
    """The given video fitted to the clip: resized to cover ``height x width`` and centre-cropped, at most
    ``num_frames`` frames, trimmed to ``temporal·k + 1`` (fewer frames extend the clip)."""
    frames, _, h, w = pixels.shape
    fitted = fit_video(pixels, num_frames, height, width, temporal)
    if (h, w) != (height, width):
        logger.info("`video` is %dx%d (height x width): resized to cover %dx%d and centre-cropped.", h, w, height,
                    width)
    if fitted.shape[0] != frames:
        logger.info("`video` has %d frames: using the first %d (%dk+1, at most num_frames=%d).", frames,
                    fitted.shape[0], temporal, num_frames)
    return fitted


def audio_source_tokens(waveform: torch.Tensor, rate: float, facts: PipelineFacts) -> int:
    """Audio latents the audio VAE makes from a waveform at ``rate`` (after resampling to its own rate)."""
    samples = math.ceil(waveform.shape[-1] * facts.audio_sample_rate / rate)
    mel_frames = mel_frames_for_samples(samples, facts.audio_hop_length)
    return latents_for_mel_frames(mel_frames, facts.audio_compression, facts.audio_causal)


def _trim_audio(waveform: torch.Tensor, rate: float, duration: float, facts: PipelineFacts) -> torch.Tensor:
    """The waveform cut to the clip plus a margin (encoding the rest would be wasted); ``ValueError`` when it is
    shorter than one audio latent."""
    latent_seconds = facts.audio_hop_length * facts.audio_compression / facts.audio_sample_rate
    seconds = waveform.shape[-1] / rate
    if seconds < latent_seconds:
        raise ValueError(f"the conditioning audio lasts {seconds * 1000:.1f} ms, shorter than one audio latent "
                         f"({latent_seconds * 1000:.0f} ms); pass a longer clip.")
    return waveform[..., : math.ceil((duration + AUDIO_TRIM_MARGIN_SECONDS) * rate)]


# -- guidance ------------------------------------------------------------------------------------------------------


def _stream_plan(
    a: dict[str, Any], prefix: str, default: GuidanceParams, held: bool, num_layers: int,
    default_blocks: tuple[int, ...], fallback_blocks: tuple[int, ...] | None,
) -> StreamPlan:
    """Given values as given (0 is off, never a fallback); the rest from ``default``, or off for a held stream."""
    base = GuidanceParams() if held else default
    values = {}
    for name in GUIDANCE_NAMES:
        given = a[prefix + name]
        values[name] = getattr(base, name) if given is None else as_float(given, prefix + name)
    blocks_name = "audio_stg_blocks" if prefix else "spatio_temporal_guidance_blocks"
    given_blocks = a[blocks_name]
    if given_blocks is None:
        blocks = fallback_blocks if fallback_blocks is not None else default_blocks
    else:
        blocks = as_index_list(given_blocks, blocks_name, num_layers)
    guidance = GuidanceParams(**values)
    if guidance.uses_perturbed and not blocks:
        raise ValueError(f"{prefix}stg_scale={guidance.stg_scale:g} needs blocks to perturb, but `{blocks_name}` is "
                         f"empty: pass block indices, or {prefix}stg_scale=0 to turn STG off.")
    return StreamPlan(held, guidance, blocks)


def _with_own_negative(stream: StreamPlan, needs_negative: bool) -> StreamPlan:
    own = stream.held and needs_negative and not stream.guidance.uses_uncond
    return StreamPlan(stream.held, stream.guidance, stream.stg_blocks, own)


# -- stages --------------------------------------------------------------------------------------------------------


def _stages(
    facts: PipelineFacts, a: dict[str, Any], upsample: bool, num_frames: int, height: int, width: int,
    video: StreamPlan, audio: StreamPlan, has_video_source: bool, has_window: bool,
) -> tuple[Stage, ...]:
    t, s, channels = facts.temporal_compression, facts.spatial_compression, facts.transformer.in_channels
    full = VideoLatentShape.from_pixels(num_frames, height, width, channels, t, s)
    tiling = _refine_tiling(a["refine_tiling"])
    stage_2_guidance = as_bool(a["stage_2_guidance"], "stage_2_guidance")
    adapters = _adapter_names(a["stage_2_adapters"])
    sigmas = given_sigmas(a["sigmas"], a["timesteps"], facts.scheduler.config.num_train_timesteps)
    if sigmas is not None:
        steps = None
    else:
        steps = None if a["num_inference_steps"] is None else as_int(
            a["num_inference_steps"], "num_inference_steps", minimum=1)
        steps = steps if steps is not None else facts.defaults.num_inference_steps
    if not upsample:
        if a["stage_2_transformer"] is not None or adapters or stage_2_guidance:
            raise ValueError("stage_2_transformer / stage_2_adapters / stage_2_guidance act in the refinement of "
                             "upsample=True; pass upsample=True or drop them.")
        one_stage_tiling = tiling if tiling not in (None, False) else None
        tiles = _tiles(full, one_stage_tiling)
        schedule = facts.scheduler.schedule(steps, sigmas, full.num_tokens)
        return (Stage(1, full, _sigma_tuple(schedule), video.guidance, audio.guidance, tiles),)

    multiple = 2 * s
    if height % multiple or width % multiple:
        raise ValueError(f"upsample=True runs stage 1 at half size, so height and width must be multiples of "
                         f"{multiple}; got {height}x{width}, use e.g. {max(multiple, height // multiple * multiple)}x"
                         f"{max(multiple, width // multiple * multiple)}.")
    if has_video_source or has_window:
        raise ValueError("upsample=True generates the video at half size; it cannot hold a given `video` or retake a "
                         "window. Use upsample=False with `video` / `retake_window`.")
    if facts.upsampler is None:
        raise ValueError("upsample=True needs a latent upsampler: pass latent_upsampler=LTX2LatentUpsampler."
                         "from_pretrained(...) to the pipeline (or load a folder that has latent_upsampler/).")
    if facts.upsampler != (2.0, 1.0):
        raise ValueError(f"upsample=True needs a x2 spatial latent upsampler (ltx-2-spatial-upscaler-x2); this one "
                         f"scales (space, time) by {facts.upsampler}.")
    half = VideoLatentShape.from_pixels(num_frames, height // 2, width // 2, channels, t, s)
    stage_2 = _stage_2_transformer(a["stage_2_transformer"], facts.transformer)
    refiner = facts.transformer if stage_2 is None else TransformerFacts.of(stage_2)
    _check_adapters(facts.transformer, adapters)
    second_sigmas = as_sigmas(a["stage_2_sigmas"], "stage_2_sigmas")
    off = GuidanceParams()
    if stage_2_guidance and stage_2 is not None:
        for stream, name in ((video, "stg_blocks"), (audio, "audio_stg_blocks")):
            as_index_list(stream.stg_blocks, f"{name} (for stage_2_transformer)", refiner.num_layers)
    first = Stage(1, half, _sigma_tuple(facts.scheduler.schedule(steps, sigmas, half.num_tokens)), video.guidance,
                  audio.guidance, muted_adapters=adapters)
    second = Stage(2, full, second_sigmas + (0.0,), video.guidance if stage_2_guidance else off,
                   audio.guidance if stage_2_guidance else off, _tiles(full, TokenTiling() if tiling in (None, True)
                                                                       else tiling or None),
                   transformer=stage_2, renoise=second_sigmas[0], call_guidance=stage_2_guidance)
    return first, second


def _sigma_tuple(schedule: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(s) for s in schedule.tolist())


def _refine_tiling(value: Any) -> TokenTiling | bool | None:  # noqa: ANN401
    if value is None or isinstance(value, (bool, TokenTiling)):
        return value
    raise ValueError(f"`refine_tiling` must be a TokenTiling, True, False or None, got {type(value).__name__}.")


def _tiles(shape: VideoLatentShape, tiling: TokenTiling | bool | None) -> tuple[TokenTile, ...] | None:
    if tiling is None or tiling is False:
        return None
    tiles = plan_token_tiles(tuple(shape[:3]), TokenTiling() if tiling is True else tiling)
    return tuple(tiles) if len(tiles) > 1 else None


def _stage_2_transformer(model: Any, main: TransformerFacts) -> torch.nn.Module | None:  # noqa: ANN401
    if model is None:
        return None
    from ..models.transformer_ltx2 import LTX2AudioVideoTransformer

    if not isinstance(model, LTX2AudioVideoTransformer):
        raise ValueError(f"stage_2_transformer must be an LTX2AudioVideoTransformer, got {type(model).__name__}.")
    facts = TransformerFacts.of(model)
    if (facts.in_channels, facts.audio_in_channels) != (main.in_channels, main.audio_in_channels):
        raise ValueError(f"stage_2_transformer takes {facts.in_channels} video / {facts.audio_in_channels} audio "
                         f"channels but the pipeline's latents have {main.in_channels} / {main.audio_in_channels}: "
                         f"pass a transformer of the same model family.")
    if None not in (facts.text_widths, main.text_widths) and facts.text_widths != main.text_widths:
        raise ValueError(f"stage_2_transformer takes {facts.text_widths[0]} / {facts.text_widths[1]}-wide video / "
                         f"audio text contexts but the pipeline's connectors give {main.text_widths[0]} / "
                         f"{main.text_widths[1]}: pass a transformer of the same LTX version (2.0 or 2.3).")
    return model


def _adapter_names(value: Any) -> tuple[str, ...]:  # noqa: ANN401
    names = [value] if isinstance(value, str) else list(value or [])
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ValueError(f"stage_2_adapters must be adapter names (strings), got {bad}.")
    return tuple(names)


def _check_adapters(transformer: TransformerFacts, names: Sequence[str]) -> None:
    """Stage-2-only adapters must be loaded, active and unfused."""
    facts = transformer.adapters
    missing = [n for n in names if n not in facts.loaded]
    if missing:
        raise ValueError(f"stage_2_adapters names adapters that are not loaded: {missing}; loaded: "
                         f"{list(facts.loaded)}. Load them with pipe.load_lora_weights(path, adapter_name=...).")
    inactive = [n for n in names if n not in facts.active]
    if inactive:
        raise ValueError(f"stage_2_adapters {inactive} are not active; include them in pipe.set_adapters([...]).")
    fused = [n for n in names if n in facts.fused]
    if fused:
        raise ValueError(f"adapters {fused} are fused into the weights and cannot be limited to stage 2; call "
                         f"pipe.unfuse_lora() first.")


# -- latents, decode, callbacks, memory ----------------------------------------------------------------------------


def resolve_decode_tiling(
    value: Any, vae_tiling: VideoTiling | None, spatial: int, temporal: int, frames: int, height: int,  # noqa: ANN401
    width: int,
) -> VideoTiling | bool:
    """The decode's tiling from ``decode_tiling``: a :class:`VideoTiling`, or ``False`` for one piece. ``None``
    takes the VAE's own tiling (``vae.enable_tiling``), else default tiles above 121 frames at 720p per video."""
    if value is None:
        if vae_tiling is not None:
            return vae_tiling
        value = frames * height * width > AUTO_TILING_PIXELS
        if value:
            logger.info("Decoding %s frames x %sx%s px with tiling to bound memory (pass decode_tiling=False to "
                        "decode in one piece).", frames, height, width)
    if value is True:
        value = VideoTiling()
    if value is False:
        return False
    if not isinstance(value, VideoTiling):
        raise ValueError(f"`decode_tiling` must be a VideoTiling, True, False or None, got {type(value).__name__}.")
    value.latent_sizes(spatial, temporal)  # validates the tile sizes
    return value


def _callback(callback: Any, tensor_inputs: Any) -> tuple[Callable | None, tuple[str, ...]]:  # noqa: ANN401
    if isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
        tensor_inputs = callback.tensor_inputs
    elif callback is not None and not callable(callback):
        raise ValueError(f"callback_on_step_end must be callable (pipe, step, timestep, tensors) -> dict, got "
                         f"{type(callback).__name__}.")
    if isinstance(tensor_inputs, str) or not isinstance(tensor_inputs, (list, tuple)):
        raise ValueError(f"callback_on_step_end_tensor_inputs must be a list of names from {CALLBACK_TENSORS}, got "
                         f"{tensor_inputs!r}.")
    unknown = [k for k in tensor_inputs if k not in CALLBACK_TENSORS]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs may only name {list(CALLBACK_TENSORS)}, got {unknown}.")
    return callback, tuple(tensor_inputs)


def _estimate(
    facts: PipelineFacts, stages: Sequence[Stage], batch: int, audio_tokens: int, keyframes: int,
    batch_guidance: bool, decode_tiling: VideoTiling | bool, pixels: tuple[int, int, int], no_decode: bool,
) -> MemoryEstimate:
    tf = facts.transformer
    denoise = 0
    for stage in stages:
        video_tokens = stage.shape.num_tokens + keyframes * stage.shape.height * stage.shape.width
        passes = 2 if batch_guidance and "uncond" in stage.passes else 1
        tile = None if stage.tiles is None else max(t.num_tokens for t in stage.tiles)
        denoise = max(denoise, denoise_bytes(video_tokens, audio_tokens, tf.video_width, tf.audio_width,
                                             tf.in_channels, tf.audio_in_channels, batch, passes, tf.dtype_bytes,
                                             tile))
    decode = 0
    if not no_decode:
        frames, height, width = pixels
        tile = None
        if isinstance(decode_tiling, VideoTiling):
            size = decode_tiling.tile_size or max(height, width)
            tile = (min(frames, decode_tiling.tile_frames or frames), min(height, size), min(width, size))
        decode = decode_bytes(frames, height, width, batch, facts.decoder_width, facts.vae_dtype_bytes, tile)
    return MemoryEstimate(denoise, decode)
