"""Output of the LTX-2 audio+video pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput


@dataclass
class LTX2PipelineOutput(BaseOutput):
    """Output of :class:`LTX2AudioVideoPipeline`.

    Args:
        frames: ``"pil"``: a list (per video) of lists of PIL images; ``"np"``: ``[B, F, H, W, 3]`` floats in [0, 1];
            ``"pt"``: ``[B, F, 3, H, W]``; ``"latent"``: packed normalised video latents ``[B, F'·H'·W', C]`` (what
            ``latents=`` accepts).
        audio: waveform ``[B, 2, samples]`` (numpy for ``"np"``, else a float32 tensor) at ``sample_rate``;
            ``"latent"``: packed normalised audio latents ``[B, L, C]`` (what ``audio_latents=`` accepts).
        sample_rate: the vocoder's output rate in Hz (``None`` for latents).
        frame_rate: the clip's frames per second (the given ``video``'s rate when it came from a file).
    """

    frames: Any
    audio: Any
    sample_rate: int | None = None
    frame_rate: float | None = None
