"""Output and constants of the LTX-2 audio+video pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput

from .guidance import GuidanceParams

# The reference's default negative prompt (LTX-2 model card / ltx-pipelines constants).
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, artifacts "
    "around text, inconsistent perspective, camera shake, incorrect depth of field, background too sharp, background "
    "clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color banding, cartoonish "
    "rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect ethnicity, wrong gender, "
    "exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted audio, distorted voice, "
    "robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive speech, "
    "jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, "
    "flat lighting, inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)

# The reference's LTX-2.0 guidance (ltx-pipelines 1.0.0): STG at block 29 of 48.
DEFAULT_VIDEO_GUIDANCE = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
DEFAULT_AUDIO_GUIDANCE = GuidanceParams(guidance_scale=7.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
DEFAULT_STG_BLOCK, REFERENCE_DEPTH = 29, 48


def default_stg_blocks(num_layers: int) -> list[int]:
    """Block 29 for the 48-block model; the block at the same relative depth for other depths."""
    return [DEFAULT_STG_BLOCK * num_layers // REFERENCE_DEPTH]


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
