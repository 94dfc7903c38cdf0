"""The attributes diffusers' LTX-2 pipelines expose, so diffusers-style callbacks and code work on ours.

During a call the guidance values live on the pipeline (``pipe._guidance_scale``, ``pipe._audio_stg_scale``, ...),
as in diffusers: a callback may change them between steps (e.g. ``pipe._guidance_scale = 1.0`` to stop classifier-free
guidance after some steps, the pattern of ``diffusers.callbacks``' CFG cut-off callbacks), and the next step runs
only the transformer passes the new values need. The values keep this package's meaning: CFG and modality guidance
are off at 1, STG and rescale at 0 (the reference's rule, which diffusers shares for LTX-2 except that it treats a
CFG scale below 1 as off).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .denoising import StreamInputs
from .guidance import GuidanceParams

GUIDANCE_FIELDS = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")


class LTX2PipelineAttributes:
    """diffusers' ``LTX2Pipeline`` attributes: guidance values, step bookkeeping and component facts."""

    _guidance_scale: float | None = None
    _stg_scale: float | None = None
    _modality_scale: float | None = None
    _guidance_rescale: float | None = None
    _audio_guidance_scale: float | None = None
    _audio_stg_scale: float | None = None
    _audio_modality_scale: float | None = None
    _audio_guidance_rescale: float | None = None
    _num_timesteps: int | None = None
    _current_timestep: torch.Tensor | None = None
    _attention_kwargs: dict[str, Any] | None = None
    _interrupt: bool = False

    # -- guidance (readable and settable by callbacks) ---------------------------------------------------------

    @property
    def guidance_scale(self) -> float | None:
        return self._guidance_scale

    @property
    def stg_scale(self) -> float | None:
        return self._stg_scale

    @property
    def modality_scale(self) -> float | None:
        return self._modality_scale

    @property
    def guidance_rescale(self) -> float | None:
        return self._guidance_rescale

    @property
    def audio_guidance_scale(self) -> float | None:
        return self._audio_guidance_scale

    @property
    def audio_stg_scale(self) -> float | None:
        return self._audio_stg_scale

    @property
    def audio_modality_scale(self) -> float | None:
        return self._audio_modality_scale

    @property
    def audio_guidance_rescale(self) -> float | None:
        return self._audio_guidance_rescale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Either stream runs the negative-prompt pass (CFG scale other than 1)."""
        return any(g.uses_uncond for g in self._attribute_guidance())

    @property
    def do_spatio_temporal_guidance(self) -> bool:
        return any(g.uses_perturbed for g in self._attribute_guidance())

    @property
    def do_modality_isolation_guidance(self) -> bool:
        return any(g.uses_isolated for g in self._attribute_guidance())

    def _set_guidance_attributes(self, video: GuidanceParams, audio: GuidanceParams) -> None:
        for prefix, params in (("", video), ("audio_", audio)):
            for name in GUIDANCE_FIELDS:
                setattr(self, f"_{prefix}{name}", getattr(params, name))

    def _attribute_guidance(self) -> tuple[GuidanceParams, GuidanceParams]:
        """Both streams' guidance as the attributes hold it now; ``ValueError`` naming a bad value."""
        if self._guidance_scale is None:  # outside a call
            return GuidanceParams(), GuidanceParams()
        streams = []
        for prefix in ("", "audio_"):
            values = {name: getattr(self, f"_{prefix}{name}") for name in GUIDANCE_FIELDS}
            try:
                streams.append(GuidanceParams(**values))
            except ValueError as error:
                raise ValueError(f"the pipeline's {prefix or 'video '}guidance attributes (set by a callback?) are "
                                 f"invalid: {error}") from None
        return streams[0], streams[1]

    # -- steps ---------------------------------------------------------------------------------------------------

    @property
    def num_timesteps(self) -> int | None:
        """Denoising steps of the call (all stages); callback step indices run from 0 to this minus 1."""
        return self._num_timesteps

    @property
    def current_timestep(self) -> torch.Tensor | None:
        """σ · num_train_timesteps of the step running now (``None`` outside the loop)."""
        return self._current_timestep

    @property
    def attention_kwargs(self) -> dict[str, Any] | None:
        return self._attention_kwargs

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # -- component facts -----------------------------------------------------------------------------------------

    def _component(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self, name, None)

    @property
    def vae_spatial_compression_ratio(self) -> int:
        vae = self._component("vae")
        return vae.spatial_compression_ratio if vae is not None else 32

    @property
    def vae_temporal_compression_ratio(self) -> int:
        vae = self._component("vae")
        return vae.temporal_compression_ratio if vae is not None else 8

    @property
    def audio_vae_mel_compression_ratio(self) -> int:
        audio_vae = self._component("audio_vae")
        return audio_vae.mel_compression_ratio if audio_vae is not None else 4

    @property
    def audio_vae_temporal_compression_ratio(self) -> int:
        audio_vae = self._component("audio_vae")
        return audio_vae.temporal_compression_ratio if audio_vae is not None else 4

    @property
    def audio_sampling_rate(self) -> int:
        audio_vae = self._component("audio_vae")
        return audio_vae.config.sample_rate if audio_vae is not None else 16000

    @property
    def audio_hop_length(self) -> int:
        audio_vae = self._component("audio_vae")
        return audio_vae.config.mel_hop_length if audio_vae is not None else 160

    @property
    def transformer_spatial_patch_size(self) -> int:
        transformer = self._component("transformer")
        return transformer.config.patch_size if transformer is not None else 1

    @property
    def transformer_temporal_patch_size(self) -> int:
        transformer = self._component("transformer")
        return transformer.config.patch_size_t if transformer is not None else 1

    @property
    def tokenizer_max_length(self) -> int:
        tokenizer = self._component("tokenizer")
        return tokenizer.model_max_length if tokenizer is not None else 1024


def follow_guidance(video: StreamInputs, audio: StreamInputs, video_guidance: GuidanceParams,
                    audio_guidance: GuidanceParams) -> tuple[StreamInputs, StreamInputs]:
    """Both streams with the guidance the pipeline's attributes hold now; ``ValueError`` when it needs negative-prompt
    embeddings the call did not encode."""
    streams = []
    for stream, guidance in ((video, video_guidance), (audio, audio_guidance)):
        if guidance != stream.guidance:
            if guidance.uses_uncond and stream.negative_context is None:
                raise ValueError("a callback switched on classifier-free guidance in a call that started without it, "
                                 "so no negative prompt was encoded: start the call with the guidance on (and turn "
                                 "it off from the callback), or keep it off.")
            stream = replace(stream, guidance=guidance)
        streams.append(stream)
    return streams[0], streams[1]
