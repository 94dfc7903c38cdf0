"""Guided denoising steps against ltx-core's sampler (Euler loop + multimodal guider + X0 model)."""

from functools import partial

import pytest
import torch

from ltx2_diffusers.pipelines.denoising import StreamInputs, denoise_step, predict_x0
from ltx2_diffusers.pipelines.guidance import GuidanceParams
from ltx2_diffusers.schedulers import ltx2_sigmas

from .test_transformer_parity import HEADERS, _pair

pytestmark = pytest.mark.parity

ltx_core = pytest.importorskip("ltx_core")
from ltx_core.components.diffusion_steps import EulerDiffusionStep  # noqa: E402
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams  # noqa: E402
from ltx_core.model.transformer import X0Model  # noqa: E402
from ltx_core.types import LatentState  # noqa: E402
from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func  # noqa: E402
from ltx_pipelines.utils.samplers import euler_denoising_loop  # noqa: E402

from .oracles import av_inputs  # noqa: E402

VIDEO = GuidanceParams(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)
AUDIO = GuidanceParams(guidance_scale=7.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7)


def _setup(video_params: GuidanceParams, audio_params: GuidanceParams, stg_blocks=(1,)):
    reference, ours = _pair(HEADERS["19b-style"])
    inputs = av_inputs(batch=1, frames=17, height=64, width=96)
    g = torch.Generator().manual_seed(5)
    v, a = inputs.video, inputs.audio
    clean_video = torch.randn(v.latent.shape, generator=g)
    mask = (v.timesteps[..., 0] > 0).float()  # frame 0 is a clean conditioning frame
    noisy_video = torch.where(mask.bool().unsqueeze(-1), v.latent, clean_video)
    neg_v, neg_a = torch.randn(v.context.shape, generator=g), torch.randn(a.context.shape, generator=g)

    def ref_params(p: GuidanceParams) -> MultiModalGuiderParams:
        return MultiModalGuiderParams(cfg_scale=p.guidance_scale, stg_scale=p.stg_scale, stg_blocks=list(stg_blocks),
                                      rescale_scale=p.guidance_rescale, modality_scale=p.modality_scale, skip_step=0)

    ref_states = (
        LatentState(latent=noisy_video, denoise_mask=mask.unsqueeze(-1), positions=v.positions,
                    clean_latent=clean_video),
        LatentState(latent=a.latent, denoise_mask=torch.ones(*a.latent.shape[:2], 1), positions=a.positions,
                    clean_latent=torch.zeros_like(a.latent)),
    )
    ref_fn = multi_modal_guider_denoising_func(
        MultiModalGuider(ref_params(video_params), neg_v), MultiModalGuider(ref_params(audio_params), neg_a),
        v.context, a.context, X0Model(reference))
    ours_video = StreamInputs(noisy_video, v.positions, v.context, neg_v, mask, clean_video, video_params,
                              tuple(stg_blocks))
    ours_audio = StreamInputs(a.latent, a.positions, a.context, neg_a, None, None, audio_params, tuple(stg_blocks))
    return ours, ref_states, ref_fn, ours_video, ours_audio


@pytest.mark.parametrize("batch_passes", [True, False])
def test_three_guided_steps_match_the_reference_loop(batch_passes):
    ours, ref_states, ref_fn, video, audio = _setup(VIDEO, AUDIO)
    sigmas = ltx2_sigmas(3)
    with torch.no_grad():
        ref_video, ref_audio = euler_denoising_loop(sigmas, *ref_states, EulerDiffusionStep(), ref_fn)
        for i in range(3):
            predict = partial(predict_x0, ours, fps=24.0, batch_passes=batch_passes)
            video, audio = denoise_step(predict, video, audio, sigmas[i], sigmas[i + 1])
    assert ref_video.latent.abs().mean() > 0.1
    torch.testing.assert_close(video.latents, ref_video.latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio.latents, ref_audio.latent, rtol=1e-5, atol=1e-5)
    # clean conditioning tokens never move
    assert torch.equal(video.latents[:, :6], ref_states[0].clean_latent[:, :6])


def test_video_only_stg_and_cfg_only_audio_match_the_reference():
    """Only the video stream uses STG, audio only CFG: the passes and the perturbation differ per stream."""
    video_params = GuidanceParams(guidance_scale=2.0, stg_scale=1.5)
    audio_params = GuidanceParams(guidance_scale=5.0)
    ours, ref_states, ref_fn, video, audio = _setup(video_params, audio_params, stg_blocks=(0,))
    sigmas = ltx2_sigmas(2)
    with torch.no_grad():
        ref_video, ref_audio = euler_denoising_loop(sigmas, *ref_states, EulerDiffusionStep(), ref_fn)
        for i in range(2):
            video, audio = denoise_step(partial(predict_x0, ours, fps=24.0), video, audio, sigmas[i], sigmas[i + 1])
    torch.testing.assert_close(video.latents, ref_video.latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio.latents, ref_audio.latent, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("video_params, audio_params, batched, unbatched", [
    (GuidanceParams(), GuidanceParams(), 1, 1),
    (GuidanceParams(guidance_scale=3.0), GuidanceParams(guidance_scale=7.0), 1, 2),
    (GuidanceParams(guidance_scale=3.0, modality_scale=3.0), GuidanceParams(guidance_scale=7.0), 2, 3),
    (VIDEO, AUDIO, 3, 4),
    (GuidanceParams(stg_scale=1.0), GuidanceParams(), 2, 2),
])
def test_transformer_calls_per_step(video_params, audio_params, batched, unbatched):
    ours, _, _, video, audio = _setup(video_params, audio_params)
    calls = []
    handle = ours.register_forward_hook(lambda module, args, out: calls.append(args))
    with torch.no_grad():
        predict_x0(ours, video, audio, torch.tensor(0.9), fps=24.0)
        assert len(calls) == batched
        predict_x0(ours, video, audio, torch.tensor(0.9), fps=24.0, batch_passes=False)
        assert len(calls) == batched + unbatched
    handle.remove()


def test_missing_negative_embeddings_is_a_clear_error():
    ours, _, _, video, audio = _setup(VIDEO, AUDIO)
    with pytest.raises(ValueError, match="negative-prompt embeddings"):
        predict_x0(ours, StreamInputs(video.latents, video.coords, video.context, guidance=VIDEO), audio,
                   torch.tensor(0.5), fps=24.0)
