"""The reference's defaults (ltx-pipelines 1.0.0) per LTX version: guidance, STG block, steps, image CRF and the
negative prompt. LTX-2.0 and 2.3 differ only in the step count and the STG block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conditioning import DEFAULT_IMAGE_CRF
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

REFERENCE_DEPTH = 48


@dataclass(frozen=True)
class ModelDefaults:
    """The reference's defaults for one LTX version."""

    version: str
    num_inference_steps: int
    stg_block: int  # of the 48-block model; other depths use the block at the same relative depth
    video_guidance: GuidanceParams = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0,
                                                    guidance_rescale=0.7)
    audio_guidance: GuidanceParams = GuidanceParams(guidance_scale=7.0, stg_scale=1.0, modality_scale=3.0,
                                                    guidance_rescale=0.7)
    image_crf: int = DEFAULT_IMAGE_CRF

    def stg_blocks(self, num_layers: int) -> tuple[int, ...]:
        return (self.stg_block * num_layers // REFERENCE_DEPTH,)


LTX_2_0 = ModelDefaults("2.0", num_inference_steps=40, stg_block=29)
LTX_2_3 = ModelDefaults("2.3", num_inference_steps=30, stg_block=28)


def model_version(transformer_config: Any) -> str:  # noqa: ANN401
    """``"2.3"`` for a transformer with LTX-2.3's gated attention / text-attention modulation, else ``"2.0"``."""
    flags = ("gated_attn", "audio_gated_attn", "cross_attn_mod", "audio_cross_attn_mod")
    return "2.3" if any(transformer_config.get(f, False) for f in flags) else "2.0"
