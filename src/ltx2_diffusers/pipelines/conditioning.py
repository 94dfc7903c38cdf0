"""Image conditioning: preprocessing of condition images and the tokens they add to the video stream.

An image conditions one pixel frame of the clip. At frame 0 its latent replaces the first latent frame's tokens;
at any other frame ``k`` its latent is appended as extra "keyframe" tokens whose RoPE time covers pixel frames
``[k, k + 8)``, and these tokens are dropped after denoising. Either way the tokens start from the clean image latent
with a denoise mask of ``1 - strength`` (1.0 strength: kept exactly).

Before encoding, the image is round-tripped through H.264 at ``crf`` (33 by default, as the model was trained on
compressed video), resized to cover the target size with bilinear filtering and centre-cropped.
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

from ..utils.paths import existing_file
from ..utils.sample_formats import pil_pixels, pixels_to_uint8

DEFAULT_IMAGE_CRF = 33


@dataclass(frozen=True)
class ImageCondition:
    """An image that conditions pixel frame ``frame_index`` with ``strength`` in [0, 1] (1 = kept exactly)."""

    image: Any
    frame_index: int = 0
    strength: float = 1.0


def as_conditions(image: Any, num_frames: int) -> list[ImageCondition]:  # noqa: ANN401
    """``image`` (an image, an :class:`ImageCondition`, a ``(image, frame_index[, strength])`` tuple, or a list of
    those) -> validated conditions; a negative ``frame_index`` counts from the end (-1 = last frame)."""
    if image is None:
        return []
    items = image if isinstance(image, list) else [image]
    conditions = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            item = ImageCondition(*item)
        elif not isinstance(item, ImageCondition):
            item = ImageCondition(item)
        index, strength = item.frame_index, item.strength
        if isinstance(index, bool) or not isinstance(index, int) or not -num_frames <= index < num_frames:
            raise ValueError(f"image[{i}] frame_index must be an integer in [-{num_frames}, {num_frames}) for "
                             f"num_frames={num_frames}, got {index!r}.")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise ValueError(f"image[{i}] strength must lie in [0, 1], got {strength!r}.")
        image_array(item.image, f"image[{i}]")  # type, shape and value checks before any model runs
        conditions.append(ImageCondition(item.image, index % num_frames, float(strength)))
    if sum(c.frame_index == 0 for c in conditions) > 1:
        raise ValueError("Only one image can condition frame 0.")
    return conditions


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


def resize_and_center_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W, 3]`` -> ``[3, height, width]``: bilinear resize that covers the target, then a centred crop."""
    pixels = image.permute(2, 0, 1).unsqueeze(0)  # [1, 3, H, W]
    scale = max(height / pixels.shape[2], width / pixels.shape[3])
    size = (math.ceil(pixels.shape[2] * scale), math.ceil(pixels.shape[3] * scale))
    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return pixels[0, :, top:top + height, left:left + width]


def preprocess_image(image: Any, height: int, width: int, crf: int = DEFAULT_IMAGE_CRF) -> torch.Tensor:  # noqa: ANN401
    """Condition image -> ``[3, height, width]`` float32 pixels in [-1, 1], as the reference prepares them."""
    array = image_array(image)
    if crf:
        array = compress_like_video(array, crf)
    pixels = resize_and_center_crop(torch.from_numpy(array.copy()).float(), height, width)
    return pixels / 127.5 - 1.0


def keyframe_coordinates(
    frame_index: int, latent_height: int, latent_width: int, fps: float, batch_size: int,
    spatial_scale: int = 32, temporal_scale: int = 8,
) -> torch.Tensor:
    """``[B, 3, H·W, 2]`` bounds of an appended keyframe: time ``[k, k + 8) / fps``, space as the grid's."""
    rows, cols = torch.meshgrid(torch.arange(latent_height), torch.arange(latent_width), indexing="ij")
    starts = torch.stack([torch.zeros_like(rows.flatten()), rows.flatten(), cols.flatten()])  # [3, N]
    scale = torch.tensor([temporal_scale, spatial_scale, spatial_scale]).view(3, 1, 1)
    bounds = (torch.stack((starts, starts + 1), dim=-1) * scale).float()  # [3, N, 2]
    bounds[0] = (bounds[0] + frame_index) / fps
    return bounds.unsqueeze(0).expand(batch_size, -1, -1, -1)
