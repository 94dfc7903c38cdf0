"""LTX2AudioVideoPipeline end to end on tiny components."""

import math

import numpy as np
import pytest
import torch

from ltx2_diffusers.models.audio_processing import audio_latent_length, waveform_length
from ltx2_diffusers.pipelines.conditioning import ImageCondition, preprocess_image
from ltx2_diffusers.utils.tiny import tiny_pipeline

CLIP = dict(num_frames=9, height=64, width=96, num_inference_steps=2, max_sequence_length=32)
NO_GUIDANCE = dict(guidance_scale=1.0, audio_guidance_scale=1.0, stg_scale=0.0, audio_stg_scale=0.0,
                   modality_scale=1.0, audio_modality_scale=1.0)


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _image(h=64, w=96):
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    return np.stack([yy, xx, 0.5 * np.ones_like(xx)], axis=-1).astype(np.float32)


def test_text_to_audio_video_outputs(pipe):
    out = pipe("a cat plays the piano", generator=_gen(), output_type="np", **CLIP)
    assert out.frames.shape == (1, 9, 64, 96, 3) and 0 <= out.frames.min() and out.frames.max() <= 1
    tokens = audio_latent_length(9, 24.0)
    assert out.sample_rate == pipe.vocoder.config.output_sampling_rate == 24000
    assert out.audio.shape == (1, 2, waveform_length(tokens)) and np.isfinite(out.audio).all()
    pil = pipe("a cat plays the piano", generator=_gen(), output_type="pil", **CLIP)
    assert len(pil.frames) == 1 and len(pil.frames[0]) == 9 and pil.frames[0][0].size == (96, 64)
    pt = pipe("a cat plays the piano", generator=_gen(), output_type="pt", **CLIP)
    assert pt.frames.shape == (1, 9, 3, 64, 96)
    torch.testing.assert_close(pt.audio, torch.from_numpy(out.audio))


def test_same_seed_is_bit_identical_and_another_seed_differs(pipe):
    a = pipe("rain on a tin roof", generator=_gen(3), output_type="latent", **CLIP)
    b = pipe("rain on a tin roof", generator=_gen(3), output_type="latent", **CLIP)
    c = pipe("rain on a tin roof", generator=_gen(4), output_type="latent", **CLIP)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.frames, c.frames)


def test_batch_with_generator_list_equals_single_runs(pipe):
    prompts = ["a dog barks", "waves crash on rocks"]
    batch = pipe(prompts, generator=[_gen(1), _gen(2)], output_type="latent", **CLIP)
    for i, prompt in enumerate(prompts):
        single = pipe(prompt, generator=_gen(i + 1), output_type="latent", **CLIP)
        torch.testing.assert_close(batch.frames[i:i + 1], single.frames, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batch.audio[i:i + 1], single.audio, rtol=1e-5, atol=1e-5)


def test_latent_output_goes_back_in(pipe):
    first = pipe("a bell rings", generator=_gen(), output_type="latent", **CLIP)
    again = pipe("a bell rings", latents=first.frames, audio_latents=first.audio, noise_scale=0.5,
                 sigmas=[0.5], generator=_gen(), output_type="latent", **{**CLIP, "num_inference_steps": 1})
    assert again.frames.shape == first.frames.shape and again.audio.shape == first.audio.shape


def test_given_latents_are_not_modified(pipe):
    start = pipe("a bell rings", generator=_gen(), output_type="latent", **CLIP).frames
    before = start.clone()
    pipe("a bell rings", image=_image(), image_crf=0, latents=start, generator=_gen(), output_type="latent", **CLIP)
    assert torch.equal(start, before)


def test_image_at_frame_zero_is_kept_exactly(pipe):
    image = _image()
    out = pipe("a gradient", image=image, image_crf=0, generator=_gen(), output_type="latent", **CLIP)
    pixels = preprocess_image(image, 64, 96, crf=0).view(1, 3, 1, 64, 96)
    normalised = pipe.vae.normalize_latents(pipe.vae.encode(pixels).latent_dist.mode())  # [1, C, 1, h, w]
    # latent output is VAE-space [B, C, F', H', W'] (diffusers' layout): the model's frame-0 tokens, de-normalised
    torch.testing.assert_close(out.frames[:, :, :1], pipe.vae.denormalize_latents(normalised), rtol=0, atol=0)
    plain = pipe("a gradient", generator=_gen(), output_type="latent", **CLIP)
    assert (out.frames[:, :, 1:] - plain.frames[:, :, 1:]).abs().max() > 1e-3


def test_image_at_a_later_frame_conditions_without_changing_shapes(pipe):
    plain = pipe("a gradient", generator=_gen(), output_type="latent", **CLIP)
    out = pipe("a gradient", conditions=ImageCondition(_image(), frame_index=8, strength=0.9), generator=_gen(),
               output_type="latent", **CLIP)
    assert out.frames.shape == plain.frames.shape
    assert (out.frames - plain.frames).abs().max() > 1e-3
    video = pipe("a gradient", conditions=[(_image(), 0), (_image(), -1, 0.5)], generator=_gen(), output_type="pt",
                 **CLIP)
    assert video.frames.shape == (1, 9, 3, 64, 96)


@pytest.mark.parametrize("guidance, calls_per_step", [
    (NO_GUIDANCE, 1),
    ({**NO_GUIDANCE, "guidance_scale": 3.0, "audio_guidance_scale": 7.0}, 1),
    ({**NO_GUIDANCE, "guidance_scale": 3.0, "modality_scale": 3.0}, 2),
    ({}, 3),  # the reference defaults: CFG + modality + STG on both streams
])
def test_transformer_calls_per_step(pipe, guidance, calls_per_step):
    calls = []
    handle = pipe.transformer.register_forward_hook(lambda *args: calls.append(1))
    try:
        pipe("a drum solo", generator=_gen(), output_type="latent", **guidance, **CLIP)
    finally:
        handle.remove()
    assert len(calls) == calls_per_step * CLIP["num_inference_steps"]


def test_audio_knob_zero_is_used_as_given(pipe):
    on = pipe("thunder", generator=_gen(), output_type="latent", **{**CLIP, **NO_GUIDANCE, "stg_scale": 1.0,
                                                                         "audio_stg_scale": None})
    off = pipe("thunder", generator=_gen(), output_type="latent", **{**CLIP, **NO_GUIDANCE, "stg_scale": 1.0,
                                                                          "audio_stg_scale": 0.0})
    assert (on.audio - off.audio).abs().max() > 1e-4  # None = the default 1.0; 0.0 = off, not the video value


def test_callback_reads_and_edits_both_streams(pipe):
    seen = []

    def callback(p, step, t, tensors):
        seen.append((step, tensors["latents"].shape, tensors["audio_latents"].shape))
        return {"audio_latents": torch.zeros_like(tensors["audio_latents"])}

    out = pipe("silence", generator=_gen(), output_type="latent", callback_on_step_end=callback,
               callback_on_step_end_tensor_inputs=["latents", "audio_latents"], **CLIP)
    assert [s[0] for s in seen] == [0, 1]
    assert torch.count_nonzero(pipe.audio_vae.normalize_latents(out.audio).abs() > 1e-6) == 0


def test_prompt_embeds_round_trip_and_cache(pipe):
    positive, negative = pipe.encode_text_embeddings("a cello", "noise", max_sequence_length=32)
    from_embeds = pipe(prompt_embeds=positive, negative_prompt_embeds=negative, generator=_gen(),
                       output_type="latent", **CLIP)
    from_text = pipe("a cello", negative_prompt="noise", generator=_gen(), output_type="latent", **CLIP)
    torch.testing.assert_close(from_embeds.frames, from_text.frames, rtol=0, atol=0)


def test_pipeline_mp4_export_reads_back(pipe, tmp_path):
    av = pytest.importorskip("av")
    from ltx2_diffusers.utils.export import export_to_mp4

    out = pipe("a clock ticks", generator=_gen(), output_type="np", **CLIP)
    path = export_to_mp4(out.frames[0], tmp_path / "clip.mp4", fps=24.0, audio=out.audio[0],
                         sample_rate=out.sample_rate)
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert container.streams.audio[0].rate == 24000
    assert frames == 9


def test_save_and_load_round_trip(pipe, tmp_path):
    from ltx2_diffusers import LTX2AudioVideoPipeline

    pipe.save_pretrained(tmp_path)
    loaded = LTX2AudioVideoPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    a = pipe("a bird sings", generator=_gen(), output_type="latent", **CLIP)
    b = loaded("a bird sings", generator=_gen(), output_type="latent", **CLIP)
    torch.testing.assert_close(a.frames, b.frames, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Invalid calls: each raises before any model runs
# ----------------------------------------------------------------------------------------------------------------

BAD_CALLS = [
    (dict(prompt=None), "exactly one of `prompt` and `prompt_embeds`"),
    (dict(prompt=3), "must be a string"),
    (dict(prompt=[]), "empty list"),
    (dict(prompt=["ok", None]), r"prompt\[1\] must be a string"),
    (dict(height=70), "height must be a multiple of 32"),
    (dict(width=0), "positive integer"),
    (dict(num_frames=10), "8k\\+1"),
    (dict(frame_rate=0), "frame_rate"),
    (dict(frame_rate=float("nan")), "frame_rate"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(sigmas=[0.5, 0.9]), "non-increasing"),
    (dict(sigmas=[1.0, 0.0]), "without the final 0"),
    (dict(guidance_scale=-1.0), "guidance_scale must be >= 0"),
    (dict(audio_stg_scale=-0.5), "stg_scale must be >= 0"),
    (dict(guidance_rescale=2.0), r"guidance_rescale must lie in \[0, 1\]"),
    (dict(spatio_temporal_guidance_blocks=[7]), r"`spatio_temporal_guidance_blocks` must lie in \[0, 2\)"),
    (dict(num_videos_per_prompt=0), "num_videos_per_prompt"),
    (dict(generator=[torch.Generator()] * 3), "3 generators for 1 videos"),
    (dict(output_type="gif"), "output_type"),
    (dict(max_sequence_length=30), "multiple"),
    (dict(noise_scale=1.5), "noise_scale"),
    (dict(image_crf=-1), "image_crf"),
    (dict(latents=torch.zeros(1, 5, 8)), r"\[1, 12, 8\]"),
    (dict(audio_latents=torch.zeros(1, 9, 31)), r"\[1, 9, 32\]"),
    (dict(image="not an image"), "PIL image"),
    (dict(conditions=(np.zeros((64, 96, 3), np.uint8), 9)), "frame_index"),
    (dict(conditions=(np.zeros((64, 96, 3), np.uint8), 0, 1.5)), "strength"),
    (dict(callback_on_step_end_tensor_inputs=["noise"]), "callback_on_step_end_tensor_inputs"),
    (dict(prompt_embeds=torch.zeros(1, 32, 32), prompt=None), "needs its `prompt_attention_mask`"),
    (dict(decode_tiling="yes"), "decode_tiling"),
    # hostile numbers and types
    (dict(sigmas=[1.0, float("nan")]), "finite"),
    (dict(latents=torch.full((1, 12, 8), float("nan"))), "`latents` holds 96 NaN/inf"),
    (dict(image=np.full((64, 96, 3), np.inf, np.float32)), "finite"),
    (dict(audio=(torch.full((2, 8000), float("inf")), 16000)), "NaN or infinite"),
    (dict(video=torch.full((9, 64, 96, 3), float("nan"))), "finite"),
    (dict(height=64.5), "`height` must be an integer"),
    (dict(spatio_temporal_guidance_blocks=[0.7]), "`spatio_temporal_guidance_blocks\\[0\\]` must be an integer"),
    (dict(frame_rate=1e5), "less than one audio latent"),
    (dict(height=2**16, width=2**16, num_frames=1025), "working memory"),
    (dict(callback_on_step_end="print"), "must be callable"),
]


@pytest.mark.parametrize("change, message", BAD_CALLS)
def test_invalid_call_raises_before_any_model_runs(pipe, change, message):
    calls = []
    models = (pipe.text_encoder, pipe.connectors, pipe.transformer, pipe.vae, pipe.audio_vae, pipe.vocoder)
    hooks = [m.register_forward_hook(lambda *args: calls.append(1)) for model in models for m in model.modules()]
    try:
        with pytest.raises(ValueError, match=message):
            pipe(**{"prompt": "a cat", **CLIP, **change})
    finally:
        for h in hooks:
            h.remove()
    assert calls == []


def _returns(value):
    def callback(pipe, step, timestep, tensors):
        return value(tensors) if callable(value) else value
    return callback


@pytest.mark.parametrize("returned, message", [
    (_returns(["latents"]), "must return a dict"),
    (_returns({"noise": torch.zeros(1)}), "returned \\['noise'\\]; it may only return"),
    (_returns(lambda t: {"latents": t["latents"][:, :3]}), "returned `latents` as \\(1, 3, 8\\)"),
    (_returns(lambda t: {"latents": t["latents"].double()}), "torch.float64"),
    (_returns(lambda t: {"latents": t["latents"] * float("nan")}), "`latents returned by callback_on_step_end"),
    (_returns(lambda t: {"audio_latents": t["audio_latents"].numpy()}), "returned `audio_latents` as ndarray"),
    (_returns(lambda t: {"prompt_embeds": t["prompt_embeds"][0]}), "not LTX2TextEmbeddings"),
])
def test_callback_outputs_are_checked_and_name_the_callback(pipe, returned, message):
    with pytest.raises(ValueError, match=message) as error:
        pipe("a cat", callback_on_step_end=returned, callback_on_step_end_tensor_inputs=["latents", "audio_latents",
                                                                                          "prompt_embeds"], **CLIP)
    assert "callback" in str(error.value)


def test_a_callback_may_replace_the_prompt_embeddings(pipe):
    seen = []

    def swap(pipe, step, timestep, tensors):
        seen.append(step)
        embeds = tensors["prompt_embeds"]
        return {"prompt_embeds": type(embeds)(embeds.video_embeds * 0, embeds.audio_embeds * 0,
                                              embeds.attention_mask)}

    kept = pipe("a cat", generator=_gen(), output_type="latent", **CLIP)
    swapped = pipe("a cat", generator=_gen(), output_type="latent", callback_on_step_end=swap,
                   callback_on_step_end_tensor_inputs=["prompt_embeds"], **CLIP)
    assert seen == [0, 1] and not torch.equal(kept.frames, swapped.frames)  # step 2 saw the new embeddings


def test_loads_a_diffusers_format_pipeline_folder(pipe, tmp_path):
    """A folder saved by diffusers' LTX2Pipeline maps onto our classes and generates what our pipeline does."""
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.ltx2 import LTX2TextConnectors as TheirConnectors
    from diffusers.pipelines.ltx2 import LTX2Vocoder as TheirVocoder

    from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2AudioVideoTransformer, LTX2Scheduler

    ours_dir = tmp_path / "ours"
    pipe.save_pretrained(ours_dir)
    theirs = diffusers.LTX2Pipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift=math.exp(2.05),
                                                            shift_terminal=0.1),
        vae=diffusers.AutoencoderKLLTX2Video.from_pretrained(ours_dir, subfolder="vae"),
        audio_vae=diffusers.AutoencoderKLLTX2Audio.from_pretrained(ours_dir, subfolder="audio_vae"),
        text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
        connectors=TheirConnectors.from_pretrained(ours_dir, subfolder="connectors"),
        transformer=diffusers.LTX2VideoTransformer3DModel.from_pretrained(ours_dir, subfolder="transformer"),
        vocoder=TheirVocoder.from_pretrained(ours_dir, subfolder="vocoder"),
    )
    theirs_dir = tmp_path / "diffusers"
    theirs.save_pretrained(theirs_dir)
    assert '"LTX2VideoTransformer3DModel"' in (theirs_dir / "model_index.json").read_text()

    loaded = LTX2AudioVideoPipeline.from_pretrained(theirs_dir)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.transformer, LTX2AudioVideoTransformer) and isinstance(loaded.scheduler, LTX2Scheduler)
    a = pipe("a bird sings", generator=_gen(), output_type="latent", **CLIP)
    b = loaded("a bird sings", generator=_gen(), output_type="latent", **CLIP)
    torch.testing.assert_close(a.frames, b.frames, rtol=0, atol=0)
    for key in ("torch_dtype", "dtype"):  # diffusers 0.42 accepts both; the mapped components must honour either
        half = LTX2AudioVideoPipeline.from_pretrained(theirs_dir, **{key: torch.bfloat16})
        assert half.transformer.dtype == half.vae.dtype == half.connectors.dtype == torch.bfloat16, key
    torch.testing.assert_close(a.audio, b.audio, rtol=0, atol=0)


def test_foreign_components_are_refused_with_a_pointer(pipe):
    from ltx2_diffusers import LTX2AudioVideoPipeline

    components = dict(pipe.components)
    components["transformer"] = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="must be a LTX2VideoTransformer3DModel"):
        LTX2AudioVideoPipeline(**components)


def test_diffusers_constructor_keywords_build_the_pipeline(pipe):
    """diffusers' LTX2Pipeline components dict has the LTX-2.5 slots set to None: the same dict builds ours."""
    from ltx2_diffusers import LTX2AudioVideoPipeline

    slots = dict(processor=None, prompt_enhancer=None, duration_head=None, audio_scheduler=None)
    built = LTX2AudioVideoPipeline(**dict(pipe.components), **slots)
    assert built.transformer is pipe.transformer and "duration_head" not in built.components
    with pytest.raises(ValueError, match=r"\['duration_head'\] belong to LTX-2.5.*pass None"):
        LTX2AudioVideoPipeline(**dict(pipe.components), **{**slots, "duration_head": torch.nn.Linear(2, 2)})


def test_memory_features_of_diffusers_work():
    """fp8 layerwise casting, group offload and model CPU offload run the same generation."""
    kwargs = dict(generator=_gen(), output_type="latent", negative_prompt="bad", **CLIP)
    reference = tiny_pipeline(seed=0)
    reference.set_progress_bar_config(disable=True)
    expected = reference("a cat", **kwargs).frames

    grouped = tiny_pipeline(seed=0)
    grouped.set_progress_bar_config(disable=True)
    grouped.transformer.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"),
                                             offload_type="block_level", num_blocks_per_group=1)
    assert torch.equal(grouped("a cat", **{**kwargs, "generator": _gen()}).frames, expected)
    offloaded = tiny_pipeline(seed=0)
    offloaded.set_progress_bar_config(disable=True)
    offloaded.enable_model_cpu_offload(device="cpu")
    assert torch.equal(offloaded("a cat", **{**kwargs, "generator": _gen()}).frames, expected)

    fp8 = tiny_pipeline(seed=0)
    fp8.set_progress_bar_config(disable=True)
    fp8.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert fp8.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert fp8.transformer.transformer_blocks[0].attn1.norm_q.weight.dtype == torch.float32  # norms stay precise
    frames = fp8("a cat", **{**kwargs, "generator": _gen()}).frames
    assert torch.isfinite(frames).all()
    assert 0 < (frames - expected).abs().mean() < 0.1 * expected.abs().mean()  # fp8 weights: close, not equal


def test_decode_tiling_can_be_asked_for_and_refused(pipe):
    """The pipeline's decode uses exactly the tiling asked for (or none when refused)."""
    from ltx2_diffusers import VideoTiling
    from ltx2_diffusers.pipelines.latents import VideoLatentShape

    tiles = VideoTiling(tile_size=64, tile_overlap=32, tile_frames=None)
    kwargs = dict(negative_prompt="bad", **{**CLIP, "width": 128})
    final = {}  # the packed normalised tokens after the last step (decode_video's input)
    pipe("a train passes", generator=_gen(), output_type="latent", **kwargs,
         callback_on_step_end=lambda p, i, t, tensors: final.update(tensors))
    latents = final["latents"]
    shape = VideoLatentShape.from_pixels(9, 64, 128, channels=8)
    with torch.no_grad():
        expected_tiled = pipe.video_processor.postprocess_video(pipe.decode_video(latents, shape, tiling=tiles), "pt")
        expected_whole = pipe.video_processor.postprocess_video(pipe.decode_video(latents, shape, tiling=False), "pt")
    assert (expected_tiled - expected_whole).abs().max() > 1e-3  # the tiling really changes the decode
    tiled = pipe("a train passes", decode_tiling=tiles, generator=_gen(), output_type="pt", **kwargs).frames
    torch.testing.assert_close(tiled, expected_tiled, rtol=0, atol=0)
    pipe.vae.enable_tiling(tiles)
    try:
        refused = pipe("a train passes", decode_tiling=False, generator=_gen(), output_type="pt", **kwargs).frames
        assert pipe.vae.use_tiling  # the VAE's own setting is restored
    finally:
        pipe.vae.disable_tiling()
    torch.testing.assert_close(refused, expected_whole, rtol=0, atol=0)


def test_encode_prompt_defaults_to_the_negative_prompt_the_call_uses(pipe):
    from ltx2_diffusers.pipelines.defaults import DEFAULT_NEGATIVE_PROMPT

    with torch.no_grad():
        _, default = pipe.encode_text_embeddings("a bird sings", max_sequence_length=64)
        _, explicit = pipe.encode_text_embeddings("a bird sings", DEFAULT_NEGATIVE_PROMPT, max_sequence_length=64)
        _, empty = pipe.encode_text_embeddings("a bird sings", "", max_sequence_length=64)
    assert torch.equal(default.video_embeds, explicit.video_embeds)
    assert not torch.equal(default.video_embeds, empty.video_embeds)
