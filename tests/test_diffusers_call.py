"""diffusers' call conventions on tiny components: callbacks that change the guidance through the pipeline's
attributes (the CFG cut-off pattern of ``diffusers.callbacks``), one frame-0 image per prompt, latents in both
layouts, a source video of another size and length, prompt enhancement, decode timesteps and the LoRA scale."""

import logging

import numpy as np
import pytest
import torch
from diffusers.callbacks import PipelineCallback
from PIL import Image

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2VideoAutoencoder
from ltx2_diffusers.pipelines.latents import VideoLatentShape
from ltx2_diffusers.utils.tiny import tiny_pipeline

CLIP = dict(num_frames=9, height=64, width=96, num_inference_steps=2, max_sequence_length=32, negative_prompt="bad")
CFG_ONLY = dict(guidance_scale=3.0, audio_guidance_scale=5.0, stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0,
                audio_modality_scale=1.0)
OFF = dict(CFG_ONLY, guidance_scale=1.0, audio_guidance_scale=1.0)
# A Gemma-3-style chat template for the byte-level tiny tokenizer (the real tokenizer ships its own).
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else "
                 "'user' }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}"
                 "<start_of_turn>model\n{% endif %}")


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _image(seed, height=64, width=96):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


class Batches:
    """Records the batch size of every transformer call."""

    def __init__(self, model):
        self.sizes = []
        self.handle = model.register_forward_hook(
            lambda module, args, kwargs, out: self.sizes.append(kwargs["hidden_states"].shape[0]), with_kwargs=True)


class CFGCutoff(PipelineCallback):
    """diffusers' CFG cut-off pattern (``SDCFGCutoffCallback``): at ``cutoff_step_index`` switch the text guidance
    off through the pipeline's attributes (here both streams; 1 is "off" for LTX-2, as in the reference)."""

    tensor_inputs = ["latents"]

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        cutoff = self.config.cutoff_step_index
        if cutoff is None:
            cutoff = int(pipeline.num_timesteps * self.config.cutoff_step_ratio)
        if step_index == cutoff:
            pipeline._guidance_scale = 1.0
            pipeline._audio_guidance_scale = 1.0
        return callback_kwargs


# ----------------------------------------------------------------------------------------------------------------
# Guidance through the pipeline's attributes
# ----------------------------------------------------------------------------------------------------------------


def test_a_cfg_cutoff_callback_stops_the_negative_prompt_pass(pipe):
    batches = Batches(pipe.transformer)
    try:
        cut = pipe("a drum solo", generator=_gen(), output_type="latent", callback_on_step_end=CFGCutoff(
            cutoff_step_ratio=None, cutoff_step_index=0), **{**CLIP, **CFG_ONLY, "num_inference_steps": 3})
    finally:
        batches.handle.remove()
    assert batches.sizes == [2, 1, 1]  # cond + uncond batched, then the conditional pass alone
    assert pipe.guidance_scale == 1.0 and not pipe.do_classifier_free_guidance and pipe.num_timesteps == 3
    assert torch.isfinite(cut.frames).all()


def test_guidance_changed_every_step_is_used_and_kept(pipe):
    """diffusers' ``test_callback_cfg`` pattern: ``pipe._guidance_scale += 1`` after every step."""
    def increase(p, step, timestep, tensors):
        p._guidance_scale += 1.0
        return tensors

    grown = pipe("a drum solo", generator=_gen(), output_type="latent", callback_on_step_end=increase,
                 **{**CLIP, **CFG_ONLY, "guidance_scale": 2.0})
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps
    fixed = pipe("a drum solo", generator=_gen(), output_type="latent", **{**CLIP, **CFG_ONLY, "guidance_scale": 2.0})
    assert (grown.frames - fixed.frames).abs().max() > 1e-4  # the second step ran at 3.0


def test_guidance_set_by_a_callback_is_checked(pipe):
    def switch_on(p, step, timestep, tensors):
        p._guidance_scale = 4.0
        return {}

    def nan(p, step, timestep, tensors):
        p._audio_stg_scale = float("nan")
        return {}

    with pytest.raises(ValueError, match="switched on classifier-free guidance"):
        pipe("a drum solo", callback_on_step_end=switch_on, **{**CLIP, **OFF})
    with pytest.raises(ValueError, match="audio_guidance attributes .* stg_scale must be a finite number"):
        pipe("a drum solo", callback_on_step_end=nan, **{**CLIP, **OFF})


# ----------------------------------------------------------------------------------------------------------------
# Images, latents, video
# ----------------------------------------------------------------------------------------------------------------


def test_one_frame_zero_image_per_prompt(pipe, tmp_path):
    images = [_image(1), _image(2)]
    path = tmp_path / "second.png"
    Image.fromarray(images[1]).save(path)
    final = {}
    batch = pipe(["a red car", "a blue boat"], image=[Image.fromarray(images[0]), images[1]], image_crf=0,
                 generator=[_gen(1), _gen(2)], output_type="latent",
                 callback_on_step_end=lambda p, i, t, x: final.update(x), **{**CLIP, **OFF})
    second = pipe("a blue boat", image=str(path), image_crf=0, generator=_gen(2), output_type="latent",
                  **{**CLIP, **OFF})
    torch.testing.assert_close(batch.frames[1:], second.frames, rtol=1e-5, atol=1e-5)
    tokens = 2 * 3  # one latent frame of 64x96
    first_frames = final["latents"][:, :tokens]  # each sample keeps its own image latent
    assert (first_frames[0] - first_frames[1]).abs().max() > 0.1


def test_latents_in_either_layout_start_the_same_sample(pipe):
    final = {}
    first = pipe("a bell rings", generator=_gen(), output_type="latent",
                 callback_on_step_end=lambda p, i, t, x: final.update(x),
                 callback_on_step_end_tensor_inputs=["latents", "audio_latents"], **{**CLIP, **OFF})
    assert first.frames.shape == (1, 8, 2, 2, 3) and first.audio.ndim == 4  # diffusers' layout
    again = dict(sigmas=[0.4], noise_scale=0.4, output_type="latent", **{**CLIP, **OFF, "num_inference_steps": 1})
    unpacked = pipe("a bell rings", latents=first.frames, audio_latents=first.audio, generator=_gen(1), **again)
    packed = pipe("a bell rings", latents=final["latents"], audio_latents=final["audio_latents"], generator=_gen(1),
                  **again)
    torch.testing.assert_close(unpacked.frames, packed.frames, rtol=0, atol=1e-5)
    torch.testing.assert_close(unpacked.audio, packed.audio, rtol=0, atol=1e-5)
    sizes = pipe.plan(prompt="x", latents=first.frames, **{**OFF, "max_sequence_length": 32})  # sizes from 5-D
    assert (sizes.num_frames, sizes.height, sizes.width) == (9, 64, 96)


def test_a_video_of_another_size_and_length_is_resized_and_trimmed(pipe, caplog):
    frames = torch.rand(12, 48, 80, 3, generator=_gen(7))  # 12 frames -> the first 9; 48x80 -> cover 64x96
    with caplog.at_level(logging.INFO, logger="ltx2_diffusers.pipelines.plan"):
        out = pipe("a train passes", video=frames, generator=_gen(), output_type="pt", **{**CLIP, **OFF})
    assert out.frames.shape == (1, 9, 3, 64, 96)
    assert "resized to cover 64x96" in caplog.text and "using the first 9" in caplog.text
    # the held video comes back as fitted: bilinear cover-resize of 48x80 to 64x107, centre crop to 96 wide
    scaled = torch.nn.functional.interpolate(frames[:9].permute(0, 3, 1, 2) * 2 - 1, size=(64, 107), mode="bilinear",
                                             align_corners=False)[..., 5:101]
    torch.testing.assert_close(out.frames[0], (scaled / 2 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)


def test_a_clip_condition_keeps_its_latent_frames(pipe):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    clip = torch.rand(9, 64, 96, 3, generator=_gen(3)).numpy()
    final = {}
    pipe("waves", conditions=LTX2VideoCondition(frames=clip, index=0), num_frames=17, generator=_gen(),
         output_type="latent", callback_on_step_end=lambda p, i, t, x: final.update(x),
         **{k: v for k, v in {**CLIP, **OFF}.items() if k != "num_frames"})
    pixels = torch.from_numpy((clip * 255).round().astype(np.uint8)).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
    expected = pipe.vae.normalize_latents(pipe.vae.encode(pixels).latent_dist.mode())  # [1, C, 2, 2, 3]
    torch.testing.assert_close(final["latents"][:, : 2 * 6], expected.flatten(2).transpose(1, 2), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Prompt enhancement, decode timestep, LoRA scale
# ----------------------------------------------------------------------------------------------------------------


def test_prompt_enhancement_is_seedable_and_feeds_the_call(pipe):
    pipe.tokenizer.chat_template = CHAT_TEMPLATE
    # a short system prompt: the tiny tokenizer spells diffusers' 4 kB default out byte by byte (slow to run)
    settings = dict(system_prompt="Describe the scene.", max_new_tokens=12,
                    generation_kwargs={"do_sample": True, "temperature": 1.0})
    state = torch.random.get_rng_state()
    first = pipe.enhance_prompt(["a cat", "a dog"], seed=3, **settings)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    assert pipe.enhance_prompt("a cat", seed=3, **settings) == first[:1]  # same seed: same prompt, batch or not
    assert pipe.enhance_prompt("a cat", seed=4, **settings) != first[:1]
    enhanced = pipe("a cat", enable_prompt_enhancement=True, system_prompt=settings["system_prompt"],
                    prompt_enhancement_seed=3, prompt_max_new_tokens=12,
                    prompt_enhancement_kwargs=settings["generation_kwargs"], generator=_gen(), output_type="latent",
                    **{**CLIP, **OFF})
    direct = pipe(first[0], generator=_gen(), output_type="latent", **{**CLIP, **OFF})
    assert torch.equal(enhanced.frames, direct.frames)
    pipe.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        pipe.enhance_prompt("a cat")


def test_decode_timestep_and_noise_have_diffusers_meaning(pipe, caplog):
    config = {k: v for k, v in pipe.vae.config.items() if not k.startswith("_")}
    vae = LTX2VideoAutoencoder.from_config({**config, "timestep_conditioning": True})
    conditioned = LTX2AudioVideoPipeline(**{**pipe.components, "vae": vae})
    tokens = torch.randn(1, 12, 8, generator=_gen(4))
    shape = VideoLatentShape(2, 2, 3, 8)
    with torch.no_grad():
        reference = conditioned.decode_video(tokens, shape, _gen(9))  # the VAE's own decode: 0.05 and 2.5 % noise
        same = conditioned.decode_video(tokens, shape, _gen(9), decode_timestep=[0.05], decode_noise_scale=[0.025])
        noise_is_timestep = conditioned.decode_video(tokens, shape, _gen(9), decode_timestep=[0.05])
        with caplog.at_level(logging.WARNING):
            ignored = pipe.decode_video(tokens, shape, _gen(9), decode_timestep=[0.05])
        plain = pipe.decode_video(tokens, shape, _gen(9))
    assert torch.equal(same, reference) and (noise_is_timestep - reference).abs().max() > 1e-4
    assert torch.equal(ignored, plain) and "not timestep-conditioned" in caplog.text


def test_attention_kwargs_scale_weights_the_lora():
    pytest.importorskip("peft")
    from peft import LoraConfig

    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    call = dict(output_type="latent", **{**CLIP, **OFF, "num_inference_steps": 1})
    base = pipe("a cat", generator=_gen(), **call)
    pipe.transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_v"],
                                            init_lora_weights=False))
    off = pipe("a cat", attention_kwargs={"scale": 0.0}, generator=_gen(), **call)
    assert pipe.attention_kwargs == {"scale": 0.0}
    full = pipe("a cat", generator=_gen(), **call)
    assert torch.equal(off.frames, base.frames) and (full.frames - base.frames).abs().max() > 1e-4
    with pytest.raises(ValueError, match="only 'scale'"):
        pipe("a cat", attention_kwargs={"scale": 1.0, "mask": 1}, **call)
