"""Image conditioning: preprocessing of condition images (and clips) and the tokens they add to the video stream.

An image conditions one pixel frame of the clip. At frame 0 its latent replaces the first latent frame's tokens;
at any other frame ``k`` its latent is appended as extra "keyframe" tokens whose RoPE time covers pixel frames
``[k, k + 8)``, and these tokens are dropped after denoising. Either way the tokens start from the clean image latent
with a denoise mask of ``1 - strength`` (1.0 strength: kept exactly). A clip of ``8j + 1`` frames works the same way
with ``j + 1`` latent frames (diffusers' multi-frame ``LTX2VideoCondition``).

Before encoding, an image is round-tripped through H.264 at ``crf`` (33 by default, as the model was trained on
compressed video; clips are not), resized to cover the target size with bilinear filtering and centre-cropped.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.utils import logging

from ..utils.paths import existing_file
from ..utils.sample_formats import pil_pixels, pixels_to_uint8

logger = logging.get_logger(__name__)

DEFAULT_IMAGE_CRF = 33


@dataclass(frozen=True)
class ImageCondition:
    """An image (or a clip of ``8j + 1`` frames) that conditions pixel frame ``frame_index`` onwards with
    ``strength`` in [0, 1] (1 = kept exactly); ``crf``: this image's H.264 CRF (``None``: the call's ``image_crf``)."""

    image: Any
    frame_index: int = 0
    strength: float = 1.0
    crf: int | None = None


@dataclass(frozen=True)
class PerSampleImages:
    """Frame-0 images, one ``[H, W, 3]`` uint8 array per video of the batch (``image=[...]``, one per prompt)."""

    images: tuple[np.ndarray, ...]


def _is_diffusers_condition(item: Any) -> bool:  # noqa: ANN401
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    return isinstance(item, LTX2VideoCondition)


def _from_diffusers(item: Any, num_frames: int, temporal: int, what: str) -> ImageCondition:  # noqa: ANN401
    """diffusers' ``LTX2VideoCondition(frames, index, strength, crf)``: ``index`` is a latent frame (negative from the
    end); latent frame ``k > 0`` starts at pixel frame ``(k - 1)·temporal + 1``."""
    latent_frames = (num_frames - 1) // temporal + 1
    index = item.index
    if isinstance(index, bool) or not isinstance(index, int) or not -latent_frames <= index < latent_frames:
        raise ValueError(f"{what}.index is a latent frame index and must be an integer in [-{latent_frames}, "
                         f"{latent_frames}) for num_frames={num_frames}, got {index!r}.")
    index %= latent_frames
    return ImageCondition(item.frames, 0 if index == 0 else (index - 1) * temporal + 1, item.strength, item.crf)


def condition_pixels(image: Any, what: str) -> np.ndarray:  # noqa: ANN401
    """A condition's pixels as uint8: ``[H, W, 3]`` for an image, ``[F, H, W, 3]`` for a clip of ``F > 1`` frames
    (a list of images, or a 4-D ``[F, H, W, 3]`` array / ``[F, 3, H, W]`` or ``[F, H, W, 3]`` tensor)."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"{what} is an empty list of frames; pass an image or at least one frame.")
        frames = [image_array(frame, f"{what} frame {i}") for i, frame in enumerate(image)]
        if any(f.shape != frames[0].shape for f in frames):
            raise ValueError(f"{what}: the frames differ in size; resize them to one size.")
        return frames[0] if len(frames) == 1 else np.stack(frames)
    if isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 4:
        return condition_pixels(list(image), what)
    return image_array(image, what)


def _fit_clip(frames: np.ndarray, start: int, num_frames: int, temporal: int, what: str) -> np.ndarray:
    """A clip trimmed to ``temporal·j + 1`` frames that fit between ``start`` and the end of the video."""
    count = (min(frames.shape[0], num_frames - start) - 1) // temporal * temporal + 1
    if count != frames.shape[0]:
        logger.info("%s: using the first %d of its %d frames (a clip at frame %d of a %d-frame video takes "
                    "%dk+1 frames that fit).", what, count, frames.shape[0], start, num_frames, temporal)
    return frames[0] if count == 1 else frames[:count]


def as_conditions(
    image: Any, num_frames: int, temporal_compression: int = 8, name: str = "image"  # noqa: ANN401
) -> list[ImageCondition]:
    """Conditions -> validated conditions with their pixels read (uint8 arrays).

    ``image``: one or a list of: an image, an :class:`ImageCondition`, an ``(image, frame_index[, strength])`` tuple
    or diffusers' ``LTX2VideoCondition`` (latent ``index``). A negative ``frame_index`` counts from the end (-1 = last
    frame); clips are trimmed to the frames that fit.
    """
    if image is None:
        return []
    items = image if isinstance(image, list) else [image]
    conditions = []
    for i, item in enumerate(items):
        what = f"{name}[{i}]"
        if isinstance(item, tuple):
            item = ImageCondition(*item)
        elif _is_diffusers_condition(item):
            item = _from_diffusers(item, num_frames, temporal_compression, what)
        elif not isinstance(item, ImageCondition):
            item = ImageCondition(item)
        index, strength, crf = item.frame_index, item.strength, item.crf
        if isinstance(index, bool) or not isinstance(index, int) or not -num_frames <= index < num_frames:
            raise ValueError(f"{what} frame_index must be an integer in [-{num_frames}, {num_frames}) for "
                             f"num_frames={num_frames}, got {index!r}.")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise ValueError(f"{what} strength must lie in [0, 1], got {strength!r}.")
        if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51):
            raise ValueError(f"{what} crf must be None (the call's image_crf) or an integer in [0, 51], got {crf!r}.")
        index %= num_frames
        pixels = condition_pixels(item.image, what)  # type, shape and value checks before any model runs
        if pixels.ndim == 4:
            pixels = _fit_clip(pixels, index, num_frames, temporal_compression, what)
        conditions.append(ImageCondition(pixels, index, float(strength), crf))
    if sum(c.frame_index == 0 for c in conditions) > 1:
        raise ValueError("Only one image can condition frame 0.")
    return conditions


def condition_latent_frames(condition: ImageCondition, temporal_compression: int) -> int:
    """Latent frames a validated condition encodes to (1 for an image)."""
    image = condition.image
    if isinstance(image, np.ndarray) and image.ndim == 4:
        return (image.shape[0] - 1) // temporal_compression + 1
    return 1


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> ``[H, W, 3]`` uint8, its EXIF orientation applied (16-bit files scaled by their depth)."""
    from PIL import Image, ImageOps

    path = existing_file(path, "image", ", a PIL image or an array")
    try:
        with Image.open(path) as image:
            return pil_pixels(ImageOps.exif_transpose(image), f"image {str(path)!r}")
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"could not read {str(path)!r} as an image ({error}); pass a PNG/JPEG/... file, a PIL "
                         f"image or an array.") from None


def image_array(image: Any, what: str = "image") -> np.ndarray:  # noqa: ANN401
    """A condition image -> ``[H, W, 3]`` uint8.

    Accepted: a file path; a PIL image of any mode (16-bit and float ones scaled by their depth, see
    :func:`~ltx2_diffusers.utils.sample_formats.pil_pixels`); an ``[H, W, 3]`` array or an ``[H, W, 3]`` /
    ``[3, H, W]`` tensor of uint8, uint16 (16-bit) or floats in [0, 1] (scaled by 255, never clipped). At least 2x2
    pixels; NaN or infinite values are refused.
    """
    if isinstance(image, (str, os.PathLike)):
        array = read_image(image)
    elif hasattr(image, "convert") and hasattr(image, "mode"):
        array = pil_pixels(image, what)
    else:
        if isinstance(image, torch.Tensor):
            tensor = image.detach().cpu()
            if tensor.ndim == 3 and tensor.shape[0] == 3 and tensor.shape[-1] != 3:
                tensor = tensor.permute(1, 2, 0)  # [3, H, W] -> [H, W, 3]
            image = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
        if not isinstance(image, np.ndarray):
            raise ValueError(f"{what} must be a file path, a PIL image, a numpy array or a tensor, got "
                             f"{type(image).__name__}.")
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{what} must be [height, width, 3] (or [3, height, width] as a tensor), got "
                             f"{image.shape}.")
        array = pixels_to_uint8(image, what)
    if min(array.shape[:2]) < 2:
        raise ValueError(f"{what} is {array.shape[0]}x{array.shape[1]} pixels (height x width); pass at least 2x2.")
    return array


def compress_like_video(image: np.ndarray, crf: int) -> np.ndarray:
    """Round-trips an ``[H, W, 3]`` uint8 image through one H.264 frame at ``crf`` (cropped to even size)."""
    import av

    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = height, width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
        for packet in stream.encode(frame.reformat(format="yuv420p")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def resize_and_center_crop_frames(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, C, height, width]``: bilinear resize that covers the target, then a centred crop."""
    scale = max(height / pixels.shape[2], width / pixels.shape[3])
    size = (math.ceil(pixels.shape[2] * scale), math.ceil(pixels.shape[3] * scale))
    if size != tuple(pixels.shape[2:]):
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return pixels[:, :, top:top + height, left:left + width]


def resize_and_center_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W, 3]`` -> ``[3, height, width]``: bilinear resize that covers the target, then a centred crop."""
    return resize_and_center_crop_frames(image.permute(2, 0, 1).unsqueeze(0), height, width)[0]


def preprocess_image(image: Any, height: int, width: int, crf: int = DEFAULT_IMAGE_CRF) -> torch.Tensor:  # noqa: ANN401
    """Condition image -> ``[3, height, width]`` float32 pixels in [-1, 1], as the reference prepares them."""
    array = image_array(image)
    if crf:
        array = compress_like_video(array, crf)
    pixels = resize_and_center_crop(torch.from_numpy(array.copy()).float(), height, width)
    return pixels / 127.5 - 1.0


def preprocess_frames(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """A uint8 clip ``[F, H, W, 3]`` -> ``[3, F, height, width]`` float32 pixels in [-1, 1] (no H.264 round trip)."""
    pixels = torch.stack([resize_and_center_crop(torch.from_numpy(f.copy()).float(), height, width) for f in frames])
    return (pixels / 127.5 - 1.0).permute(1, 0, 2, 3)  # [F, 3, h, w] -> [3, F, h, w]


def keyframe_coordinates(
    frame_index: int, latent_height: int, latent_width: int, fps: float, batch_size: int,
    spatial_scale: int = 32, temporal_scale: int = 8, latent_frames: int = 1,
) -> torch.Tensor:
    """``[B, 3, F'·H·W, 2]`` bounds of appended keyframe tokens (``latent_frames`` of them): latent frame ``f`` covers
    time ``[k + 8f, k + 8f + 8) / fps`` for ``k = frame_index``, space as the grid's."""
    frames, rows, cols = torch.meshgrid(torch.arange(latent_frames), torch.arange(latent_height),
                                        torch.arange(latent_width), indexing="ij")
    starts = torch.stack([frames.flatten(), rows.flatten(), cols.flatten()])  # [3, N]
    scale = torch.tensor([temporal_scale, spatial_scale, spatial_scale]).view(3, 1, 1)
    bounds = (torch.stack((starts, starts + 1), dim=-1) * scale).float()  # [3, N, 2]
    bounds[0] = (bounds[0] + frame_index) / fps
    return bounds.unsqueeze(0).expand(batch_size, -1, -1, -1)
