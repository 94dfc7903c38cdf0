"""LTX-2.3 original single file -> pipeline folder -> mp4: the real-size key list routes 1:1; a tiny file written
from ltx-core modules (with an x2 1.1 upsampler file) converts to the LTX-2.3 classes bit for bit through
``ltx2-diffusers convert``, and ``ltx2-diffusers generate`` writes mp4s with 48 kHz stereo audio from it (one and two
stages, the folder's 2.3 defaults); the version / variant rules (header switches, metadata ``model_version``,
``variant=`` > metadata > file name) with their refusals."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2LatentUpsampler, LTX2VocoderWithBWE, cli
from ltx2_diffusers.conversion.audio import original_vocoder_key
from ltx2_diffusers.conversion.checkpoint import convert_checkpoint, convert_original_state_dict, format_summary
from ltx2_diffusers.conversion.text import original_connectors_key
from ltx2_diffusers.conversion.transformer import original_transformer_key
from ltx2_diffusers.conversion.version import (
    check_variant,
    checked_version,
    checkpoint_variant,
    header_version,
    identify_checkpoint,
    metadata_version,
)
from ltx2_diffusers.conversion.video_vae import (
    convert_latent_upsampler_state_dict,
    latent_upsampler_config_from_original,
)
from ltx2_diffusers.pipelines.model_facts import PipelineFacts
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import call_arguments
from ltx2_diffusers.pipelines.plan import plan_generation
from ltx2_diffusers.schedulers import DISTILLED_SIGMAS, LTX2Scheduler
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_checkpoint import real_19b_header
from .oracles_int23 import (
    REAL_UPSAMPLER_HEADER,
    real_23_header,
    real_23_keys,
    tiny_original_23,
    tiny_upsampler_23_file,
    write_single_file,
)
from .oracles_t23 import av_inputs_23
from .oracles_text import HIDDEN, LAYERS

INVERSE_KEYS = {"transformer": original_transformer_key, "connectors": original_connectors_key,
                "vocoder": original_vocoder_key}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # narrow convolutions on a shared machine


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def tiny():
    return tiny_original_23()


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    """``ltx2-diffusers convert`` of the tiny 2.3 file, its upsampler file and a local Gemma-3 folder."""
    root = tmp_path_factory.mktemp("convert23")
    source = write_single_file(root / "ltx-2.3-tiny-dev.safetensors", tiny.tensors, tiny.header, tiny.metadata)
    upsampler, upsampler_file = tiny_upsampler_23_file(root / "ltx-2.3-spatial-upscaler-x2-1.1.safetensors")
    gemma = root / "gemma"
    tiny_gemma3(hidden_size=HIDDEN, num_layers=LAYERS).save_pretrained(gemma)
    tiny_gemma_tokenizer().save_pretrained(gemma)
    assert cli.main(["convert", "--checkpoint", str(source), "--upsampler", str(upsampler_file), "--text-encoder",
                     str(gemma), "--output", str(root / "pipe")]) == 0
    return root / "pipe", upsampler


@pytest.fixture(scope="module")
def pipe(converted):
    return LTX2AudioVideoPipeline.from_pretrained(converted[0])


# ----------------------------------------------------------------------------------------------------------------
# The real-size 2.3 files
# ----------------------------------------------------------------------------------------------------------------


def test_real_23_single_file_routes_and_maps_one_to_one():
    """All 5947 tensors of ltx-2.3-22b-dev (names and shapes) through the converter's own routing on meta tensors,
    onto the LTX-2.3 classes with the released parameter counts; the x2 1.1 upsampler's 72 tensors likewise."""
    single, upsampler = real_23_keys()
    assert len(single) == 5947 and len(upsampler) == 72
    result = convert_original_state_dict(real_23_header(), {k: torch.empty(s, device="meta")
                                                            for k, s in single.items()})
    counts = {name: len(state) for name, (_, _, state) in result.items()}
    assert counts == {"transformer": 4186, "connectors": 262, "vae": 170, "audio_vae": 102, "vocoder": 1227}
    assert sum(counts.values()) == len(single)  # every tensor, each exactly once
    classes = {name: cls.__name__ for name, (cls, _, _) in result.items()}
    assert classes["vocoder"] == "LTX2VocoderWithBWE" and classes["transformer"] == "LTX2VideoTransformer3DModel"
    # elements per component: parameters (reference/ltx23-facts.md section 11) plus the stored buffers (latent
    # statistics 2 x 128 in each VAE; anti-aliasing filters and STFT / mel bases in the vocoder)
    elements = {name: sum(v.numel() for v in state.values()) for name, (_, _, state) in result.items()}
    assert elements == {"transformer": 18_988_838_144, "connectors": 3_172_227_584, "vae": 726_105_969 + 256,
                        "audio_vae": 53_248_146 + 256, "vocoder": 128_537_448 + 547_584}
    transformer, connectors = result["transformer"][1], result["connectors"][1]
    assert transformer["gated_attn"] and transformer["cross_attn_mod"] and not transformer["use_prompt_embeddings"]
    assert (connectors["video_hidden_dim"], connectors["audio_hidden_dim"]) == (4096, 2048)
    assert "video_text_proj_in.bias" in result["connectors"][2]  # text_embedding_projection.* -> connectors
    assert not any("aggregate_embed" in k or "text_proj_in" in k for k in result["transformer"][2])
    assert result["vocoder"][1]["output_sampling_rate"] == 48000 and result["vocoder"][1]["final_act_fn"] == "clamp"
    meta_up = {k: torch.empty(s, device="meta") for k, s in upsampler.items()}
    config = latent_upsampler_config_from_original(REAL_UPSAMPLER_HEADER, meta_up)
    assert config["use_rational_resampler"] is False and config["mid_channels"] == 1024
    with torch.device("meta"):
        model = LTX2LatentUpsampler(**config)
    assert len(convert_latent_upsampler_state_dict(meta_up, {k: v.shape for k, v in model.state_dict().items()})) == 72
    assert sum(p.numel() for p in model.parameters()) == 497_867_904


# ----------------------------------------------------------------------------------------------------------------
# A tiny 2.3 file written from ltx-core modules
# ----------------------------------------------------------------------------------------------------------------


def test_tiny_23_file_converts_to_the_23_classes_bit_for_bit(tiny, converted, pipe):
    folder, _ = converted
    index = json.loads((folder / "model_index.json").read_text())
    assert index["vocoder"] == ["ltx2", "LTX2VocoderWithBWE"]  # what diffusers writes for it
    assert isinstance(pipe.vocoder, LTX2VocoderWithBWE) and pipe.vocoder.config.output_sampling_rate == 48000
    assert isinstance(pipe.latent_upsampler, LTX2LatentUpsampler)
    assert pipe.latent_upsampler.config.use_rational_resampler is False
    record = json.loads((folder / "ltx2_conversion.json").read_text())
    assert (record["version"], record["model_version"], record["variant"], record["variant_source"]) == (
        "2.3", "2.3.0", "dev", "file name")
    card = (folder / "README.md").read_text()
    assert "# LTX-2.3 (dev)" in card and "num_inference_steps=30" in card and "48 kHz" in card
    assert "(LTX-2.3, dev by its file name" in format_summary(folder)
    for name, inverse in INVERSE_KEYS.items():  # every saved tensor is its source tensor
        for key, value in getattr(pipe, name).state_dict().items():
            assert torch.equal(value, tiny.tensors[inverse(key)]), (name, key)
    facts = pipe.facts()
    assert facts.defaults.version == "2.3" and facts.samples_per_mel_frame == 480


@pytest.mark.parity
def test_converted_23_transformer_vocoder_and_upsampler_match_ltxcore(tiny, pipe):
    inputs = av_inputs_23(64, 32, frames=17, height=64, width=96)  # 128-channel latents, cut to the tiny widths
    video, audio = replace(inputs.video, latent=inputs.video.latent[..., :8]), replace(
        inputs.audio, latent=inputs.audio.latent[..., :32])
    ours_inputs = {**inputs.ours, "hidden_states": video.latent, "audio_hidden_states": audio.latent}
    mel = -4.0 + 1.5 * torch.randn(1, 2, 20, 64, generator=torch.Generator().manual_seed(2))
    x = torch.randn(1, 8, 2, 3, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref_v, ref_a = tiny.transformer(video=video, audio=audio, perturbations=None)
        out_v, out_a = pipe.transformer.eval()(**ours_inputs, return_dict=False)
        reference_wave, wave = tiny.vocoder(mel), pipe.vocoder.eval()(mel)
        upsampled = pipe.latent_upsampler.eval()(x)
    assert ref_v.abs().mean() > 0.1 and reference_wave.abs().mean() > 1e-3
    assert _max_diff(ref_v, out_v) <= 1e-5 and _max_diff(ref_a, out_a) <= 1e-5
    assert wave.shape == (1, 2, 20 * 480) and _max_diff(reference_wave, wave) <= 1e-4
    assert upsampled.shape == (1, 8, 2, 6, 8) and upsampled.abs().mean() > 0.01


def test_converted_23_components_load_in_diffusers_classes(converted):
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors
    from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE as DiffusersVocoder

    classes = {"transformer": diffusers.LTX2VideoTransformer3DModel, "connectors": LTX2TextConnectors,
               "vae": diffusers.AutoencoderKLLTX2Video, "audio_vae": diffusers.AutoencoderKLLTX2Audio,
               "vocoder": DiffusersVocoder, "latent_upsampler": LTX2LatentUpsamplerModel}
    for subfolder, cls in classes.items():
        _, info = cls.from_pretrained(converted[0], subfolder=subfolder, output_loading_info=True)
        assert not any(info.values()), (subfolder, info)


def test_a_bf16_fp8_distilled_23_file_by_its_metadata(tiny, tmp_path):
    """bf16 weights, one fp8 weight with its scale (a 2.3-only tensor), the variant stated in the metadata: a
    bf16 folder with the weight de-quantised once and the distilled schedule."""
    key = "model.diffusion_model.prompt_adaln_single.linear.weight"
    tensors = {k: v.to(torch.bfloat16) for k, v in tiny.tensors.items()}
    tensors[key] = tiny.tensors[key].to(torch.float8_e4m3fn)
    tensors[key.replace(".weight", ".weight_scale")] = torch.tensor(0.25)
    source = write_single_file(tmp_path / "ltx-2.3-tiny.safetensors", tensors, tiny.header,
                               {**tiny.metadata, "model_variant": "distilled"})
    folder = convert_checkpoint(source, tmp_path / "out")
    record = json.loads((folder / "ltx2_conversion.json").read_text())
    assert (record["variant"], record["variant_source"], record["dtype"]) == ("distilled", "metadata", "bfloat16")
    assert record["fp8_source"] == ["F8_E4M3"] and record["sigmas"] == list(DISTILLED_SIGMAS)
    assert "per its metadata" in format_summary(folder)
    scheduler = LTX2Scheduler.from_pretrained(folder, subfolder="scheduler")
    scheduler.set_timesteps(num_inference_steps=30)
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([*DISTILLED_SIGMAS, 0.0]))
    saved = load_file(next((folder / "transformer").glob("*.safetensors")))
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}
    expected = (tensors[key].float() * 0.25).to(torch.bfloat16)
    assert torch.equal(saved["prompt_adaln.linear.weight"], expected)


# ----------------------------------------------------------------------------------------------------------------
# ltx2-diffusers generate from the converted folder
# ----------------------------------------------------------------------------------------------------------------


def _generate(folder, output, *extra):
    argv = ["generate", "--model", str(folder), "--prompt", "a dog barks at a train", "--negative-prompt", "blurry",
            "--max-sequence-length", "128", "--steps", "2", "--frames", "9", "--seed", "1", "--output", str(output),
            *extra]
    assert cli.main(argv) == 0
    return output


def _streams(path):
    """(frames, height, width, fps), (audio rate, channels, seconds) of an mp4."""
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        info = (frames, video.height, video.width, float(video.average_rate))
        container.seek(0)
        samples = sum(f.samples for f in container.decode(audio=0))
        return info, (audio.rate, audio.layout.nb_channels, samples / audio.rate)


def test_generate_writes_48khz_stereo_with_the_folders_23_defaults(converted, tmp_path, capsys):
    folder, _ = converted
    facts = PipelineFacts.from_folder(folder)  # the defaults the command uses without --steps / --stg-blocks
    plan = plan_generation(facts, call_arguments(prompt="a", max_sequence_length=128))
    assert facts.defaults.version == "2.3" and plan.stages[0].num_steps == 30 and plan.video.stg_blocks == (1,)
    video, audio = _streams(_generate(folder, tmp_path / "t2av.mp4", "--height", "64", "--width", "96"))
    assert video == (9, 64, 96, 24.0)
    assert audio[:2] == (48000, 2) and abs(audio[2] - 9 / 24) < 2048 / 48000  # AAC frames (+ priming)
    captured = capsys.readouterr()
    assert "LTX-2.3 model: stage 1 2 steps, STG blocks [1] (video) / [1] (audio), audio at 48000 Hz" in captured.err
    assert "at 48000 Hz" in captured.out and "stage 1 (2 steps)" in captured.out


def test_generate_with_the_x2_upsampler_writes_full_size(converted, tmp_path, capsys):
    path = _generate(converted[0], tmp_path / "ms.mp4", "--height", "128", "--width", "192", "--upsample",
                     "--tile-tokens", "48", "--quiet")
    video, audio = _streams(path)
    assert video == (9, 128, 192, 24.0) and audio[:2] == (48000, 2)
    summary = capsys.readouterr().out
    assert "stage 1 (2 steps)" in summary and "stage 2 (3 steps)" in summary


# ----------------------------------------------------------------------------------------------------------------
# Version and variant rules
# ----------------------------------------------------------------------------------------------------------------


def test_version_comes_from_the_header_switches_and_must_match_the_metadata():
    header_23, header_20 = real_23_header(), real_19b_header()
    assert header_version(header_23) == "2.3" and header_version(header_20) == "2.0"
    assert checked_version(header_23, {"model_version": "2.3.0"}) == "2.3"
    assert checked_version(header_23, {}) == "2.3" and checked_version(header_20, {"model_version": ""}) == "2.0"
    assert [metadata_version(v) for v in ("2.3.0", "2.3", "2.3.x", "2.0.1", None, " ")] == [
        "2.3", "2.3", "2.3", "2.0", None, None]
    with pytest.raises(ValueError, match=r"model_version='2.3.0' \(LTX-2.3\) but the header sets none"):
        checked_version(header_20, {"model_version": "2.3.0"})
    with pytest.raises(ValueError, match=r"model_version='2.0' \(LTX-2.0\) but the header sets .*apply_gated"):
        checked_version(header_23, {"model_version": "2.0"})
    for unknown in ("2.5", "2.5.0", "3.0", "latest", "2"):
        with pytest.raises(ValueError, match=f"model_version='{unknown}', a model version this package does not"):
            metadata_version(unknown)


def test_a_partial_23_header_is_converted_as_it_says_with_a_warning(caplog):
    header = real_23_header()
    header["vocoder"] = {"resblock": "1"}  # a flat (LTX-2.0) vocoder block beside a 2.3 transformer
    with caplog.at_level("WARNING"):
        assert header_version(header, "mixed.safetensors") == "2.3"
    assert "sets the LTX-2.3 switches" in caplog.text and "but not vocoder.bwe" in caplog.text


def test_variant_rule_argument_then_metadata_then_file_name(caplog):
    assert checkpoint_variant("distilled", {"model_variant": "dev"}, "x-dev.safetensors") == ("distilled", "argument")
    assert checkpoint_variant(None, {"variant": "Distilled"}, "x-dev.safetensors") == ("distilled", "metadata")
    with caplog.at_level("INFO"):
        assert checkpoint_variant(None, {}, "ltx-2.3-22b-distilled.safetensors") == ("distilled", "file name")
        assert checkpoint_variant(None, {}, "ltx-2.3-22b-dev-fp8.safetensors") == ("dev", "file name")
    assert "taken from the file name" in caplog.text
    with pytest.raises(ValueError, match="model_variant='turbo'"):
        checkpoint_variant(None, {"model_variant": "turbo"}, "x.safetensors")
    with pytest.raises(ValueError, match="variant='fast': pass one of"):
        check_variant("fast")
    identity = identify_checkpoint(real_23_header(), {"model_version": "2.3.0"}, "a.safetensors", "dev")
    assert identity.name == "LTX-2.3 dev" and identity.model_version == "2.3.0" and not identity.distilled


@pytest.mark.parametrize("change, message", [
    ("version 2.5", r"model_version='2.5.0', a model version this package does not implement"),
    ("flat vocoder header", r"vocoder block is flat .* LTX-2.3's vocoder tensors \(vocoder.bwe_generator"),
    ("stray tensor", r"no component uses .*mystery.weight.*LTX-2.0 or LTX-2.3 single file"),
    ("missing BWE header key", r"lacks config\['vocoder'\]\['bwe'\]\['output_sampling_rate'\]"),
    ("bad variant argument", r"variant='fast'"),
])
def test_refusals_name_the_problem_and_leave_nothing(tiny, tmp_path, change, message):
    tensors, header = dict(tiny.tensors), json.loads(json.dumps(tiny.header))
    metadata, variant = dict(tiny.metadata), None
    if change == "version 2.5":
        metadata["model_version"] = "2.5.0"
    elif change == "flat vocoder header":
        header["vocoder"] = {"resblock": "1", "upsample_rates": [6, 5, 2, 2, 2],
                             "resblock_dilation_sizes": [[1, 3, 5]] * 3}
    elif change == "stray tensor":
        tensors["mystery.weight"] = torch.zeros(2)
    elif change == "missing BWE header key":
        del header["vocoder"]["bwe"]["output_sampling_rate"]
    else:
        variant = "fast"
    source = write_single_file(tmp_path / "ltx-2.3-tiny.safetensors", tensors, header, metadata)
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(source, tmp_path / "out", variant=variant)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ltx-2.3-tiny.safetensors"]


def test_an_ltx20_file_that_claims_23_in_its_metadata_is_refused(tmp_path):
    from .oracles_checkpoint import tiny_original

    tiny_20 = tiny_original()
    source = write_single_file(tmp_path / "ltx-2-tiny.safetensors", tiny_20.tensors, tiny_20.header,
                               {"model_version": "2.3.0"})
    with pytest.raises(ValueError, match=r"model_version='2.3.0' \(LTX-2.3\) but the header sets none"):
        convert_checkpoint(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
