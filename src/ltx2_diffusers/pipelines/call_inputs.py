"""Call arguments that diffusers' LTX-2 pipelines define, turned into the plan's values (pure checks, no models):
latents in either layout, ``timesteps``, frame-0 images (one per prompt), decode settings, ``attention_kwargs`` and
the duration bounds. :mod:`~ltx2_diffusers.pipelines.plan` calls them once per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .arguments import as_float, as_number_list, as_sigmas, check_tensor
from .conditioning import ImageCondition, PerSampleImages, condition_pixels
from .latents import VideoLatentShape
from .model_facts import PipelineFacts


def given_sigmas(sigmas: Any, timesteps: Any, train_steps: int) -> tuple[float, ...] | None:  # noqa: ANN401
    """``sigmas``, or diffusers' ``timesteps`` (σ · num_train_timesteps), used exactly as given (final 0 added)."""
    if sigmas is not None and timesteps is not None:
        raise ValueError("Pass `sigmas` or `timesteps` (σ x num_train_timesteps), not both.")
    if timesteps is None:
        return None if sigmas is None else as_sigmas(sigmas, "sigmas")
    values = as_number_list(timesteps, "timesteps")
    if any(not 0 < t <= train_steps for t in values) or any(b > a for a, b in zip(values, values[1:])):
        raise ValueError(f"`timesteps` must be non-increasing values in (0, {train_steps}] (σ x num_train_timesteps, "
                         f"without the final 0), got {values}.")
    return tuple(t / train_steps for t in values)


def latent_sizes(latents: Any, facts: PipelineFacts, upsample: bool  # noqa: ANN401
                      ) -> tuple[int | None, int | None, int | None]:
    """``(num_frames, height, width)`` of 5-D ``[B, C, F', H', W']`` latents (stage 1 of ``upsample`` is half size);
    ``None`` s for anything else (checked later)."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or min(latents.shape) < 1:
        return None, None, None
    frames, h, w = latents.shape[2:]
    scale = facts.spatial_compression * (2 if upsample else 1)
    return (frames - 1) * facts.temporal_compression + 1, h * scale, w * scale


def given_latents(value: Any, name: str, batch: int, shape: VideoLatentShape) -> torch.Tensor | None:  # noqa: ANN401
    """Packed normalised tokens ``[B, T, C]``, or diffusers' unpacked VAE-space latents ``[B, C, F', H', W']``."""
    if value is None:
        return None
    packed, unpacked = (batch, shape.num_tokens, shape.channels), (batch, shape.channels, *shape[:3])
    if not isinstance(value, torch.Tensor) or tuple(value.shape) not in (packed, unpacked):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"`{name}` must be packed, normalised latents {list(packed)} (the tokens callbacks see) or "
                         f"unpacked latents {list(unpacked)} as output_type='latent' returns them, got {got}.")
    return check_tensor(value, name)


def given_audio_latents(value: Any, batch: int, tokens: int, channels: int) -> torch.Tensor | None:  # noqa: ANN401
    """Packed normalised tokens ``[B, L, C·M]``, or diffusers' unpacked VAE-space latents ``[B, C, L, M]``."""
    if value is None:
        return None
    ok = isinstance(value, torch.Tensor) and (
        tuple(value.shape) == (batch, tokens, channels)
        or (value.ndim == 4 and value.shape[0] == batch and value.shape[2] == tokens
            and value.shape[1] * value.shape[3] == channels))
    if not ok:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"`audio_latents` must be packed, normalised latents [{batch}, {tokens}, {channels}] (the "
                         f"tokens callbacks see) or unpacked latents [{batch}, C, {tokens}, M] with C·M = {channels} "
                         f"as output_type='latent' returns them, got {got}.")
    return check_tensor(value, "audio_latents")


def frame_zero_images(image: Any, num_prompts: int, num_videos: int) -> tuple[ImageCondition, ...]:  # noqa: ANN401
    """diffusers' ``image``: one image for every video, or a list (or a 4-D batch) of one image per prompt."""
    if image is None:
        return ()
    if isinstance(image, (ImageCondition, tuple)):
        raise ValueError("`image` is the frame-0 image (or one per prompt); pass ImageCondition / (image, "
                         "frame_index[, strength]) items as conditions=[...].")
    if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4:
        image = list(image)
    if not isinstance(image, list):
        return (ImageCondition(condition_pixels(image, "image"), 0, 1.0),)
    if any(isinstance(item, (ImageCondition, tuple, list)) for item in image):
        raise ValueError("`image=[...]` holds one frame-0 image per prompt; pass conditions (ImageCondition, "
                         "(image, frame_index[, strength]) tuples, LTX2VideoCondition) as conditions=[...].")
    if len(image) not in (1, num_prompts):
        raise ValueError(f"`image` has {len(image)} images for {num_prompts} prompts: pass one image, or one per "
                         f"prompt (conditions at other frames go in conditions=[...]).")
    arrays = [condition_pixels(item, f"image[{i}]") for i, item in enumerate(image)]
    if any(array.ndim != 3 for array in arrays):
        raise ValueError("each entry of `image` must be a single image; clips go in conditions=[...].")
    if len(arrays) == 1:
        return (ImageCondition(arrays[0], 0, 1.0),)
    per_video = tuple(array for array in arrays for _ in range(num_videos))
    return (ImageCondition(PerSampleImages(per_video), 0, 1.0),)


def check_duration_bounds(low: Any, high: Any) -> None:  # noqa: ANN401
    """diffusers' ``min_seconds`` / ``max_seconds`` bound the duration head of LTX-2.5 (not part of LTX-2.0/2.3,
    where ``num_frames`` or its default sets the length); they are checked as diffusers checks them."""
    low, high = as_float(low, "min_seconds", minimum=0.0), as_float(high, "max_seconds", minimum=0.0)
    if low >= high:
        raise ValueError(f"`min_seconds` ({low:g}) must be less than `max_seconds` ({high:g}).")


def per_video_values(value: Any, name: str, batch: int) -> tuple[float, ...] | None:  # noqa: ANN401
    """A decode setting: ``None``, one number for every video, or a list of one per video."""
    if value is None:
        return None
    values = as_number_list(value, name) if isinstance(value, (list, tuple)) else [as_float(value, name)]
    if len(values) not in (1, batch):
        raise ValueError(f"`{name}` has {len(values)} values for {batch} videos: pass one, or one per video.")
    if any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"`{name}` values must lie in [0, 1], got {values}.")
    return tuple(values * (batch if len(values) == 1 else 1))


def attention_options(value: Any) -> dict[str, Any] | None:  # noqa: ANN401
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"`attention_kwargs` must be a dict (e.g. {{'scale': 0.5}} for the LoRA scale), got "
                         f"{type(value).__name__}.")
    unknown = sorted(set(value) - {"scale"})
    if unknown:
        raise ValueError(f"attention_kwargs {unknown} are not used by LTX-2's attention; only 'scale' (the LoRA "
                         f"scale) is.")
    if "scale" in value:
        as_float(value["scale"], "attention_kwargs['scale']")
    return dict(value)
