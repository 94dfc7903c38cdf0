"""Every mode of ``LTX2AudioVideoPipeline.__call__`` on tiny components: audio-to-video, video-to-audio, retake and
extension, multi-scale (two stages, stage-2 transformer / LoRA) and tiled refinement, and their input errors."""

import math

import numpy as np
import pytest
import torch

from ltx2_diffusers import STAGE_2_DISTILLED_SIGMAS
from ltx2_diffusers.models.audio_processing import audio_latent_length, resample, waveform_length
from ltx2_diffusers.pipelines.latents import VideoLatentShape, pack_video_latents
from ltx2_diffusers.pipelines.media import read_audio
from ltx2_diffusers.pipelines.plan import audio_source_tokens
from ltx2_diffusers.pipelines.sources import encode_audio_source, encode_video_source
from ltx2_diffusers.pipelines.token_tiling import TokenTiling, plan_token_tiles
from ltx2_diffusers.utils.export import export_to_mp4
from ltx2_diffusers.utils.tiny import tiny_pipeline

TEXT = dict(max_sequence_length=32, negative_prompt="blurry")
CLIP = dict(num_frames=9, height=64, width=96, num_inference_steps=2, **TEXT)
OFF = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, guidance_rescale=0.0, audio_guidance_scale=1.0,
           audio_stg_scale=0.0, audio_modality_scale=1.0, audio_guidance_rescale=0.0)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _waveform(seconds, rate=16000, seed=1):
    return 0.3 * torch.randn(2, round(seconds * rate), generator=_gen(seed))


def _frames(count=9, height=64, width=96, seed=2):
    return torch.rand(count, height, width, 3, generator=_gen(seed))


class Recorder:
    """A step callback keeping (stage, sigma index, video latents, audio latents) of every step."""

    def __init__(self):
        self.steps = []

    def __call__(self, pipe, step, t, tensors):
        self.steps.append((pipe.stage, step, float(t), tensors["latents"].clone(), tensors["audio_latents"].clone()))
        return {}


def _call(pipe, recorder=None, **kwargs):
    extra = dict(callback_on_step_end=recorder, callback_on_step_end_tensor_inputs=["latents", "audio_latents"]) \
        if recorder is not None else {}
    with torch.no_grad():
        return pipe("a dog barks", generator=kwargs.pop("generator", _gen()), **extra, **kwargs)


def _audio_source(pipe, waveform, rate, tokens, window, device):
    bounds = pipe.transformer.audio_coordinates(tokens)[0, 0]
    return encode_audio_source(pipe.audio_vae, waveform, rate, tokens, bounds, window, device)


def _video_source(pipe, pixels, shape, fps, window, device):
    bounds = pipe.transformer.video_coordinates(shape.frames, 1, 1, fps)[0, 0]
    return encode_video_source(pipe.vae, pixels, shape, bounds, window, device)


# ----------------------------------------------------------------------------------------------------------------
# Audio to video
# ----------------------------------------------------------------------------------------------------------------


def test_audio_to_video_holds_the_audio_and_returns_the_input_waveform(pipe):
    waveform = _waveform(0.5, rate=44100)
    recorder = Recorder()
    out = _call(pipe, recorder, audio=waveform, audio_sample_rate=44100, output_type="np", **CLIP)
    tokens = audio_latent_length(9, 24.0)
    held = _audio_source(pipe, waveform, 44100, tokens, None, CPU)
    assert bool(held.held.all())
    for _, _, _, _, audio in recorder.steps:  # the audio latents never move
        assert torch.equal(audio, held.clean)
    assert not torch.equal(recorder.steps[0][3], recorder.steps[-1][3])  # the video does
    expected = resample(waveform, 44100, 24000)[:, : round(9 / 24 * 24000)]
    assert out.audio.shape == (1, 2, 9000) and out.sample_rate == 24000
    np.testing.assert_allclose(out.audio[0], expected.numpy(), rtol=0, atol=1e-6)
    assert out.frames.shape == (1, 9, 64, 96, 3)


def test_audio_from_a_file_equals_the_same_waveform_passed_in_memory(pipe, tmp_path):
    path = export_to_mp4(np.zeros((9, 64, 96, 3), np.float32), tmp_path / "voice.mp4", 24.0, _waveform(0.5, 24000),
                         24000)
    from_file = _call(pipe, audio=path, output_type="latent", **CLIP)
    waveform, rate = read_audio(path)
    in_memory = _call(pipe, audio=(waveform, rate), output_type="latent", **CLIP)
    assert rate == 24000
    assert torch.equal(from_file.frames, in_memory.frames) and torch.equal(from_file.audio, in_memory.audio)


def test_audio_shorter_than_the_clip_is_continued(pipe):
    tokens = audio_latent_length(17, 24.0)  # 0.708 s
    waveform = _waveform(0.3)
    recorder = Recorder()
    out = _call(pipe, recorder, audio=(waveform, 16000), output_type="np", **dict(CLIP, num_frames=17))
    held = _audio_source(pipe, waveform, 16000, tokens, None, CPU)
    count = int(held.held.sum())
    assert 0 < count < tokens and bool(held.held[:count].all())
    assert audio_source_tokens(waveform, 16000, pipe.facts()) == count  # the arithmetic that decides "held whole"
    last = recorder.steps[-1][4]
    assert torch.equal(last[:, :count], held.clean[:, :count])
    assert not torch.equal(last[:, count:], recorder.steps[0][4][:, count:])
    assert out.audio.shape == (1, 2, waveform_length(tokens))  # decoded: part of it was generated


# ----------------------------------------------------------------------------------------------------------------
# Video to audio
# ----------------------------------------------------------------------------------------------------------------


def test_video_to_audio_keeps_the_video_latents_exactly_and_generates_audio(pipe):
    frames = _frames()
    recorder = Recorder()
    out = _call(pipe, recorder, video=frames, output_type="np", num_inference_steps=3, **TEXT)  # size from the video
    source = _video_source(pipe, frames.permute(0, 3, 1, 2) * 2 - 1, VideoLatentShape(2, 2, 3, 8), 24.0, None,
                                      CPU)
    for _, _, _, video, _ in recorder.steps:
        assert torch.equal(video, source.clean)
    assert len(recorder.steps) == 3 and not torch.equal(recorder.steps[0][4], recorder.steps[-1][4])
    np.testing.assert_allclose(out.frames[0], frames.numpy(), rtol=0, atol=1e-6)  # returned as given
    assert out.frame_rate == 24.0
    assert out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 24.0)))
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() > 0


def test_a_video_file_sets_size_frames_and_frame_rate(pipe, tmp_path):
    path = export_to_mp4(_frames().numpy(), tmp_path / "clip.mp4", 25.0)
    out = _call(pipe, video=path, output_type="np", num_inference_steps=2, **TEXT)
    assert out.frame_rate == 25.0 and out.frames.shape == (1, 9, 64, 96, 3)
    assert out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 25.0)))


def test_a_shorter_video_is_extended(pipe):
    frames = _frames(9)
    recorder = Recorder()
    _call(pipe, recorder, video=frames, output_type="latent", **dict(CLIP, num_frames=17))
    per_frame = 2 * 3
    source = _video_source(pipe, frames.permute(0, 3, 1, 2) * 2 - 1, VideoLatentShape(3, 2, 3, 8), 24.0, None,
                                      CPU)
    assert source.held.tolist() == [True] * 2 * per_frame + [False] * per_frame
    first, last = recorder.steps[0][3], recorder.steps[-1][3]
    assert torch.equal(last[:, : 2 * per_frame], source.clean[:, : 2 * per_frame])
    assert not torch.equal(last[:, 2 * per_frame:], first[:, 2 * per_frame:])


# ----------------------------------------------------------------------------------------------------------------
# Retake
# ----------------------------------------------------------------------------------------------------------------


def test_retake_regenerates_only_the_window(pipe):
    frames, waveform = _frames(17), _waveform(1.0)
    window = (0.4, 0.6)  # seconds of a 17-frame clip at 24 fps (0.708 s): latent frame 2 only
    recorder = Recorder()
    _call(pipe, recorder, video=frames, audio=(waveform, 16000), retake_window=window, output_type="latent",
          **dict(CLIP, num_frames=17))
    out_video, out_audio = recorder.steps[-1][3:]  # the final packed normalised tokens
    shape = VideoLatentShape(3, 2, 3, 8)
    video = _video_source(pipe, frames.permute(0, 3, 1, 2) * 2 - 1, shape, 24.0, window, CPU)
    audio = _audio_source(pipe, waveform, 16000, audio_latent_length(17, 24.0), window, CPU)
    assert video.held.tolist() == [True] * 12 + [False] * 6  # frame 2 covers pixel frames 9..16 = 0.375..0.708 s
    times = pipe.transformer.audio_coordinates(audio.held.numel())[0, 0]
    assert torch.equal(~audio.held, (times[:, 1] > 0.4) & (times[:, 0] < 0.6))
    for held, result in ((video, out_video), (audio, out_audio)):
        kept = held.held
        assert torch.equal(result[0, kept], held.clean[0, kept])
        assert (result[0, ~kept] - held.clean[0, ~kept]).abs().max() > 0.1


def test_retake_of_the_audio_only_holds_the_whole_video(pipe):
    frames, waveform = _frames(9), _waveform(0.5)
    recorder = Recorder()
    _call(pipe, recorder, video=frames, audio=(waveform, 16000), retake_window=(0.1, 0.2),
          retake_modalities=["audio"], output_type="latent", **CLIP)
    out_video, out_audio = recorder.steps[-1][3:]  # the final packed normalised tokens
    video = _video_source(pipe, frames.permute(0, 3, 1, 2) * 2 - 1, VideoLatentShape(2, 2, 3, 8), 24.0, None,
                                     CPU)
    assert torch.equal(out_video, video.clean)
    audio = _audio_source(pipe, waveform, 16000, out_audio.shape[1], (0.1, 0.2), CPU)
    assert 0 < int((~audio.held).sum()) < audio.held.numel()
    assert torch.equal(out_audio[0, audio.held], audio.clean[0, audio.held])


# ----------------------------------------------------------------------------------------------------------------
# Multi-scale
# ----------------------------------------------------------------------------------------------------------------

BIG = dict(num_frames=9, height=128, width=192, num_inference_steps=2, **TEXT)


def test_two_stages_in_one_call_equal_the_stages_run_by_hand(pipe):
    recorder = Recorder()
    one = _call(pipe, recorder, upsample=True, output_type="latent", generator=_gen(4), **BIG)
    stages = [s[0] for s in recorder.steps]
    assert stages == [1, 1, 2, 2, 2] and [s[1] for s in recorder.steps] == list(range(5))
    stage_2_timesteps = torch.tensor([s[2] for s in recorder.steps[2:]])
    torch.testing.assert_close(stage_2_timesteps, torch.tensor(STAGE_2_DISTILLED_SIGMAS) * 1000)
    assert one.frames.shape == (1, 8, 2, 4, 6)  # diffusers' latent layout [B, C, F', H', W']

    g = _gen(4)  # by hand, through the public API, one generator continued across the calls
    first = _call(pipe, generator=g, output_type="latent", **dict(BIG, height=64, width=96))
    tokens = pack_video_latents(pipe.vae.normalize_latents(first.frames))  # packed normalised, as the model sees
    upsampled = pipe.upsample_video_latents(tokens, VideoLatentShape(2, 2, 3, 8))
    second = _call(pipe, generator=g, latents=upsampled, audio_latents=first.audio, noise_scale=0.909375,
                   sigmas=STAGE_2_DISTILLED_SIGMAS, output_type="latent", **OFF, **BIG)
    torch.testing.assert_close(one.frames, second.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(one.audio, second.audio, rtol=0, atol=1e-5)


def test_two_stage_decoded_output_has_the_full_size(pipe):
    out = _call(pipe, upsample=True, output_type="np", **BIG)
    assert out.frames.shape == (1, 9, 128, 192, 3)
    assert out.audio.shape == (1, 2, waveform_length(audio_latent_length(9, 24.0)))


def test_a_second_transformer_runs_the_refinement(pipe):
    other = tiny_pipeline(seed=5).transformer
    calls = {"main": 0, "other": 0}
    hooks = [pipe.transformer.register_forward_hook(lambda *_: calls.__setitem__("main", calls["main"] + 1)),
             other.register_forward_hook(lambda *_: calls.__setitem__("other", calls["other"] + 1))]
    try:
        out = _call(pipe, upsample=True, stage_2_transformer=other, output_type="latent", **BIG, **OFF)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"main": 2, "other": 3}  # no guidance: one pass per step
    same = _call(pipe, upsample=True, output_type="latent", **BIG, **OFF)
    assert not torch.equal(out.frames, same.frames)


def test_a_lora_limited_to_stage_2_leaves_stage_1_untouched():
    pytest.importorskip("peft")
    from peft import LoraConfig

    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)

    def run(**kwargs):
        recorder = Recorder()
        out = _call(pipe, recorder, upsample=True, output_type="latent", **BIG, **OFF, **kwargs)
        stage_1_end = [s for s in recorder.steps if s[0] == 1][-1][3]
        return stage_1_end, out.frames

    plain_1, plain = run()
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    pipe.transformer.add_adapter(config, adapter_name="distilled")
    limited_1, limited = run(stage_2_adapters="distilled")
    always_1, _ = run()
    assert torch.equal(limited_1, plain_1)  # muted in stage 1
    assert not torch.equal(limited, plain)  # acting in stage 2
    assert not torch.equal(always_1, plain_1)  # and restored afterwards
    with pytest.raises(ValueError, match="not loaded"):
        run(stage_2_adapters="missing")


def test_tiled_refinement_in_2x2_tiles_completes_with_the_right_shapes(pipe):
    tiling = TokenTiling(max_tokens=32, spatial_overlap=1, temporal_overlap=0)
    tiles = plan_token_tiles((2, 6, 6), tiling)
    assert len(tiles) == 4 and {t.shape for t in tiles} == {(2, 4, 4)}
    calls = []
    hook = pipe.transformer.register_forward_hook(lambda module, args, kwargs, output: calls.append(
        kwargs["hidden_states"].shape[1]), with_kwargs=True)
    try:
        out = _call(pipe, upsample=True, refine_tiling=tiling, output_type="np",
                    **dict(BIG, height=192, width=192), **OFF)
    finally:
        hook.remove()
    assert calls == [2 * 3 * 3] * 2 + [32] * 4 * 3  # stage 1 whole, stage 2: 3 steps x 4 tiles of 32 tokens
    assert out.frames.shape == (1, 9, 192, 192, 3) and np.isfinite(out.frames).all()


# ----------------------------------------------------------------------------------------------------------------
# Errors: clear, and before any model runs
# ----------------------------------------------------------------------------------------------------------------

ERRORS = {
    "audio shorter than one latent": (dict(audio=(torch.zeros(2, 100), 16000)), "shorter than one audio latent"),
    "waveform without rate": (dict(audio=torch.zeros(2, 16000)), "audio_sample_rate"),
    "missing audio file": (dict(audio="/nonexistent/voice.wav"), "does not exist"),
    "video of a size off the grid": (dict(video=torch.rand(9, 60, 96, 3), height=None), "multiple of 32"),
    "both held": (dict(video=torch.rand(9, 64, 96, 3), audio=(torch.zeros(2, 16000), 16000)), "nothing to generate"),
    "retake without a source": (dict(retake_window=(0.1, 0.2)), "pass `video` and/or `audio`"),
    "retake window outside the clip": (dict(video=torch.rand(9, 64, 96, 3), retake_window=(0.5, 0.9)), "inside"),
    "retake of an unknown stream": (dict(video=torch.rand(9, 64, 96, 3), retake_window=(0.1, 0.2),
                                         retake_modalities=["text"]), "retake_modalities"),
    "upsample with sizes not multiples of 64": (dict(upsample=True, height=96, width=128), "multiples of 64"),
    "upsample with a held video": (dict(upsample=True, height=64, width=128, video=torch.rand(9, 64, 128, 3)),
                                   "cannot hold"),
    "tile budget below one tile": (dict(upsample=True, height=128, width=192, refine_tiling=TokenTiling(
        max_tokens=4)), "below the smallest tile"),
    "stage-2 transformer without upsample": (dict(stage_2_transformer=object()), "upsample=True"),
    "negative stage-2 sigma": (dict(upsample=True, height=128, width=192, stage_2_sigmas=[0.9, -0.1]),
                               "stage_2_sigmas"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_mode_arguments_raise_before_any_model_runs(pipe, case):
    kwargs, message = ERRORS[case]
    args = dict(num_frames=9, height=64, width=96, num_inference_steps=2, **TEXT)
    args.update(kwargs)
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in (pipe.transformer, pipe.vae, pipe.audio_vae)]
    try:
        with pytest.raises(ValueError, match=message):
            _call(pipe, output_type="latent", **args)
    finally:
        for hook in hooks:
            hook.remove()
    assert not calls


def test_upsample_without_an_upsampler_names_the_component():
    pipe = tiny_pipeline(seed=0)
    pipe.latent_upsampler = None
    with pytest.raises(ValueError, match="latent_upsampler"):
        _call(pipe, upsample=True, output_type="latent", **BIG)


def test_pipeline_folder_round_trips_the_latent_upsampler(pipe, tmp_path):
    from ltx2_diffusers import LTX2AudioVideoPipeline

    pipe.save_pretrained(tmp_path)
    loaded = LTX2AudioVideoPipeline.from_pretrained(tmp_path)
    assert type(loaded.latent_upsampler).__name__ == "LTX2LatentUpsampler"
    for (name, a), b in zip(pipe.latent_upsampler.state_dict().items(), loaded.latent_upsampler.state_dict().values()):
        assert torch.equal(a, b), name
    assert math.isclose(loaded.latent_upsampler.config.rational_spatial_scale, 2.0)
