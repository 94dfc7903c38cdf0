"""One guided denoising step of the joint audio+video flow, on packed latents.

Every step needs up to four predictions of both streams: conditional, text-unconditional (negative prompt),
STG-perturbed and modality-isolated. Only the passes that some stream's guidance uses are run. The conditional and
negative-prompt passes share one batched call (or run one after the other with ``batch_passes=False`` when memory is
tight); the STG pass and the modality-isolated pass run alone, so the perturbed self-attention and the dropped
audio<->video attention are skipped rather than computed and discarded. Guidance is applied per stream in x0 space;
conditioning tokens (denoise mask < 1) are blended back to their clean latents before the Euler step, as in the
reference sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..schedulers.scheduling_ltx2 import euler_step_from_x0, x0_from_velocity
from .guidance import GuidanceParams, guide, passes_needed


@dataclass(frozen=True)
class MaskLevels:
    """A denoise mask as its few distinct values and each token's index into them.

    The per-token timestep of a conditioned stream is ``mask · σ``: with these, the transformer's AdaLN runs once per
    distinct value instead of once per token, and no step has to find the distinct values again (that search waits
    for the device). ``mask`` is the tensor they were computed from.
    """

    mask: torch.Tensor  # [B, T]
    values: torch.Tensor  # [N] float32, ascending
    index: torch.Tensor  # [B, T] int64 into values

    @classmethod
    def of(cls, mask: torch.Tensor) -> MaskLevels:
        values, index = torch.unique(mask.to(torch.float32), return_inverse=True)  # one host sync per mask
        return cls(mask, values, index)

    def select(self, index: torch.Tensor) -> MaskLevels:
        """The levels of the tokens ``index`` (a tile): no new search."""
        return MaskLevels(self.mask[:, index], self.values, self.index[:, index])


@dataclass(frozen=True)
class StreamInputs:
    """One stream's state during sampling (all batch-first, packed tokens).

    Args:
        latents: ``[B, T, C]`` current noisy latents.
        coords: ``[B, axes, T, 2]`` RoPE coordinates.
        context / negative_context: ``[B, L, D]`` text-connector outputs for the prompt and the negative prompt.
        denoise_mask: ``[B, T]``, 1 where tokens are generated, 0 for clean conditioning tokens (fractions for
            partial strength); ``None`` = all 1.
        clean: ``[B, T, C]`` clean latents of conditioning tokens (needed where the mask is below 1).
        guidance: this stream's guidance knobs.
        stg_blocks: transformer blocks whose self-attention STG perturbs for this stream.
        mask_levels: the denoise mask's distinct values (:class:`MaskLevels`); computed when the stream is built
            with a new mask and carried along by ``dataclasses.replace``, so once per stage.
    """

    latents: torch.Tensor
    coords: torch.Tensor
    context: torch.Tensor
    negative_context: torch.Tensor | None = None
    denoise_mask: torch.Tensor | None = None
    clean: torch.Tensor | None = None
    guidance: GuidanceParams = GuidanceParams()
    stg_blocks: tuple[int, ...] = ()
    mask_levels: MaskLevels | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        levels = self.mask_levels
        if self.denoise_mask is None:
            levels = None
        elif levels is None or levels.mask is not self.denoise_mask:  # a new mask (not one carried by replace)
            levels = MaskLevels.of(self.denoise_mask)
        object.__setattr__(self, "mask_levels", levels)

    def timesteps(self, sigma: torch.Tensor) -> torch.Tensor:
        """Per-token σ ``[B, T]``: σ on generated tokens, 0 on clean ones."""
        if self.denoise_mask is None:
            return sigma.expand(self.latents.shape[:2]).to(torch.float32)
        return self.denoise_mask.to(torch.float32) * sigma

    def scaled_timestep(self, sigma: torch.Tensor, multiplier: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The transformer's ``(timestep, timestep_index)`` at σ, in its units (σ·``multiplier``): ``[B]`` per
        sample without a mask; else the ``[N]`` distinct values ``mask · σ · multiplier`` and ``[B, T]`` indices."""
        if self.mask_levels is None:
            return (sigma * multiplier).expand(self.latents.shape[0]), None
        return (self.mask_levels.values * sigma) * multiplier, self.mask_levels.index

    def blend_clean(self, x0: torch.Tensor) -> torch.Tensor:
        """``x0 · m + clean · (1 - m)``: conditioning tokens keep their clean value."""
        if self.denoise_mask is None:
            return x0
        mask = self.denoise_mask.to(torch.float32).unsqueeze(-1)
        return (x0.float() * mask + self.clean.float() * (1 - mask)).to(x0.dtype)


def _repeat(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.repeat(n, *([1] * (x.ndim - 1)))


def predict_x0(
    transformer: torch.nn.Module,
    video: StreamInputs,
    audio: StreamInputs | None,
    sigma: torch.Tensor,
    fps: float,
    batch_passes: bool = True,
    use_cross_timestep: bool = True,
    attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Guided x0 of both streams at noise level ``sigma`` (a 0-d tensor shared by both streams).

    ``use_cross_timestep`` / ``attention_kwargs``: the call's options, passed to the forward as diffusers names them
    (``True``: each stream's audio<->video modulation by the other stream's σ, the reference's rule).

    The transformer gets diffusers' arguments and units (σ·``timestep_scale_multiplier``, per-sample σ for the
    other stream's audio<->video modulation with ``use_cross_timestep=True``, as the reference computes it), and
    the distinct timesteps of a conditioned stream with their per-token index. Nothing here reads tensor values
    on the host, so a step never waits for the device.
    """
    streams = [video] + ([audio] if audio is not None else [])
    passes = passes_needed(*(s.guidance for s in streams))
    if "uncond" in passes and any(s.negative_context is None for s in streams):
        raise ValueError("guidance_scale != 1 needs negative-prompt embeddings for every stream.")
    batch = video.latents.shape[0]
    sigma = sigma.to(torch.float32)
    multiplier = transformer.config.timestep_scale_multiplier
    t_video, index_video = video.scaled_timestep(sigma, multiplier)
    t_audio, index_audio = audio.scaled_timestep(sigma, multiplier) if audio is not None else (None, None)
    scaled_sigma = sigma * multiplier

    def run(names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = len(names)
        kwargs = dict(
            hidden_states=_repeat(video.latents, n),
            encoder_hidden_states=torch.cat(
                [video.negative_context if p == "uncond" else video.context for p in names]),
            timestep=t_video if index_video is not None else _repeat(t_video, n),
            timestep_index=None if index_video is None else _repeat(index_video, n),
            sigma=scaled_sigma.expand(batch * n),
            video_coords=_repeat(video.coords, n),
            fps=fps,
            use_cross_timestep=use_cross_timestep,
            attention_kwargs=attention_kwargs,
        )
        if audio is not None:
            kwargs.update(
                audio_hidden_states=_repeat(audio.latents, n),
                audio_encoder_hidden_states=torch.cat(
                    [audio.negative_context if p == "uncond" else audio.context for p in names]),
                audio_timestep=t_audio if index_audio is not None else _repeat(t_audio, n),
                audio_timestep_index=None if index_audio is None else _repeat(index_audio, n),
                audio_sigma=scaled_sigma.expand(batch * n),
                audio_coords=_repeat(audio.coords, n),
            )
        if names == ("perturbed",):  # each stream perturbed only if its own STG scale is set
            kwargs.update(
                spatio_temporal_guidance_blocks=list(video.stg_blocks) if video.guidance.uses_perturbed else [],
                audio_spatio_temporal_guidance_blocks=(
                    list(audio.stg_blocks) if audio is not None and audio.guidance.uses_perturbed else []),
            )
        if names == ("isolated",):
            kwargs["isolate_modalities"] = True
        v_video, v_audio = transformer(**kwargs, return_dict=False)
        x0_video = x0_from_velocity(kwargs["hidden_states"], v_video, _repeat(video.timesteps(sigma), n))
        x0_audio = None if audio is None else x0_from_velocity(kwargs["audio_hidden_states"], v_audio,
                                                               _repeat(audio.timesteps(sigma), n))
        return x0_video, x0_audio

    groups = [("cond", "uncond")] if batch_passes and "uncond" in passes else [("cond",)] + (
        [("uncond",)] if "uncond" in passes else [])
    groups += [(name,) for name in ("perturbed", "isolated") if name in passes]
    per_pass_video, per_pass_audio = {}, {}
    for names in groups:
        x0_video, x0_audio = run(names)
        per_pass_video.update(zip(names, x0_video.chunk(len(names))))
        if audio is not None:
            per_pass_audio.update(zip(names, x0_audio.chunk(len(names))))

    def guided(stream: StreamInputs, preds: dict[str, torch.Tensor]) -> torch.Tensor:
        x0 = guide(stream.guidance, preds["cond"], preds.get("uncond"), preds.get("perturbed"), preds.get("isolated"))
        return stream.blend_clean(x0)

    return guided(video, per_pass_video), guided(audio, per_pass_audio) if audio is not None else None


# (video, audio, σ) -> guided (x0_video, x0_audio): predict_x0 or predict_x0_tiled with their other arguments bound.
Predictor = Callable[[StreamInputs, "StreamInputs | None", torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


def denoise_step(
    predict: Predictor, video: StreamInputs, audio: StreamInputs | None, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> tuple[StreamInputs, StreamInputs | None]:
    """One Euler step of both streams from ``sigma`` to ``sigma_next`` towards the guided x0 of ``predict``."""
    x0_video, x0_audio = predict(video, audio, sigma)
    video = replace(video, latents=euler_step_from_x0(video.latents, x0_video, sigma, sigma_next))
    if audio is not None:
        audio = replace(audio, latents=euler_step_from_x0(audio.latents, x0_audio, sigma, sigma_next))
    return video, audio
