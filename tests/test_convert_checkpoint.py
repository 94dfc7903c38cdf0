"""Original single file -> pipeline folder: strict, atomic, and numerically the ltx-core modules it came from."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2LatentUpsampler
from ltx2_diffusers.conversion.__main__ import main
from ltx2_diffusers.conversion.audio import original_audio_vae_key, original_vocoder_key
from ltx2_diffusers.conversion.checkpoint import convert_checkpoint, convert_original_state_dict
from ltx2_diffusers.conversion.text import original_connectors_key
from ltx2_diffusers.conversion.transformer import original_transformer_key
from ltx2_diffusers.conversion.video_vae import (
    convert_latent_upsampler_state_dict,
    latent_upsampler_config_from_original,
)
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder
from ltx2_diffusers.schedulers import DISTILLED_SIGMAS, LTX2Scheduler

from .oracles import av_inputs
from .oracles_checkpoint import real_19b_header, real_19b_keys, tiny_original, tiny_upsampler_file, write_original
from .oracles_text import HIDDEN, random_hidden_states
from .video_helpers import LATENT

SUBFOLDERS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")
INVERSE_KEYS = {"transformer": original_transformer_key, "connectors": original_connectors_key,
                "audio_vae": original_audio_vae_key, "vocoder": original_vocoder_key}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def tiny():
    return tiny_original()


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    source = write_original(root / "ltx-2-tiny-dev.safetensors", tiny.tensors, tiny.header)
    upsampler, upsampler_file = tiny_upsampler_file(root / "upscaler.safetensors")
    folder = convert_checkpoint(source, root / "pipe", upsampler=upsampler_file)
    return folder, upsampler


@pytest.fixture(scope="module")
def pipe(converted):
    return LTX2AudioVideoPipeline.from_pretrained(converted[0])


# ----------------------------------------------------------------------------------------------------------------
# The converted folder
# ----------------------------------------------------------------------------------------------------------------


def test_folder_layout_and_pipeline_loads(converted, pipe):
    folder, _ = converted
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"  # diffusers' format (tests/test_folder_format.py)
    assert index["transformer"] == ["diffusers", "LTX2VideoTransformer3DModel"]
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    assert index["text_encoder"] == [None, None]
    # every component the folder holds is listed, the optional upsampler too, and the pipeline loads it
    assert index["latent_upsampler"] == ["ltx2", "LTX2LatentUpsamplerModel"]
    assert isinstance(pipe.latent_upsampler, LTX2LatentUpsampler)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*SUBFOLDERS, "scheduler", "latent_upsampler", "model_index.json", "ltx2_conversion.json", "README.md"])
    assert pipe.text_encoder is None and pipe.transformer.config.caption_channels == HIDDEN
    assert type(pipe.scheduler).__name__ == "LTX2Scheduler" and pipe.scheduler.config.shift_terminal == 0.1
    record = json.loads((folder / "ltx2_conversion.json").read_text())
    assert record["variant"] == "dev" and "sigmas" not in record
    assert record["ignored_keys"] == ["vae.per_channel_statistics.channel", "vae.per_channel_statistics.mean-of-stds"]
    assert not list(folder.parent.glob(".pipe.converting-*"))  # the temporary folder was renamed away


def test_the_converted_folder_loads_in_diffusers(converted, pipe):
    """diffusers' format (tests/test_folder_format.py): diffusers' LTX2Pipeline loads the folder with the same tensors
    (a Gemma is passed: none was converted) and its scheduler config gives the same schedule."""
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

    folder, _ = converted
    theirs = diffusers.DiffusionPipeline.from_pretrained(folder, text_encoder=tiny_gemma3(HIDDEN, num_layers=1),
                                                         tokenizer=tiny_gemma_tokenizer())
    assert type(theirs).__name__ == "LTX2Pipeline"
    upsampler, info = LTX2LatentUpsamplerModel.from_pretrained(folder, subfolder="latent_upsampler",
                                                               output_loading_info=True)
    assert not any(info.values())
    for name, model in [*((n, getattr(theirs, n)) for n in SUBFOLDERS), ("latent_upsampler", upsampler)]:
        ours, their_state = getattr(pipe, name).state_dict(), model.state_dict()
        assert ours.keys() == their_state.keys() and all(torch.equal(ours[k], their_state[k]) for k in ours), name
    theirs.scheduler.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25], mu=0.0)
    torch.testing.assert_close(theirs.scheduler.sigmas, pipe.scheduler.schedule(4), rtol=0, atol=1e-6)


def test_every_tensor_is_the_original_one(tiny, pipe):
    """Each saved tensor equals its source tensor bit for bit (names mapped back with the inverse tables); every
    file tensor except the two ignored statistics landed in exactly one component."""
    used = set()
    for name, inverse in INVERSE_KEYS.items():
        for key, value in getattr(pipe, name).state_dict().items():
            assert torch.equal(value, tiny.tensors[inverse(key)]), (name, key)
            used.add(inverse(key))
    vae_count = len(pipe.vae.state_dict())
    vae_keys = [k for k in tiny.tensors if k.startswith("vae.")]
    assert vae_count == len(vae_keys) - 2
    assert used | set(vae_keys) == set(tiny.tensors)


@pytest.mark.parity
def test_transformer_matches_ltxcore(tiny, pipe):
    inputs = av_inputs(frames=17, height=64, width=96, caption_channels=HIDDEN)
    with torch.no_grad():
        ref_v, ref_a = tiny.transformer(video=inputs.video, audio=inputs.audio, perturbations=None)
        out_v, out_a = pipe.transformer.eval()(**inputs.ours, return_dict=False)
    assert ref_v.abs().mean() > 0.1
    assert _max_diff(ref_v, out_v) <= 1e-5 and _max_diff(ref_a, out_a) <= 1e-5


@pytest.mark.parity
def test_text_connectors_match_ltxcore(tiny, pipe):
    hidden, mask = random_hidden_states([5, 16], tokens=16)
    with torch.no_grad():
        ours = pipe.connectors.eval()(hidden, mask)
        for i in range(2):
            reference = tiny.text.process_hidden_states(tuple(h[i:i + 1] for h in hidden), mask[i:i + 1], "left")
            assert reference.video_encoding.abs().mean() > 0.1
            assert _max_diff(reference.video_encoding, ours.video_embeds[i:i + 1]) <= 1e-5
            assert _max_diff(reference.audio_encoding, ours.audio_embeds[i:i + 1]) <= 1e-5


@pytest.mark.parity
def test_plain_layout_upsampler_file_converts(tiny, tmp_path):
    """The upsampler's other key layout (``upsampler.0.*``, no rational resampler) converts end to end too."""
    source = write_original(tmp_path / "ltx-2-tiny-dev.safetensors", tiny.tensors, tiny.header)
    reference, upsampler_file = tiny_upsampler_file(tmp_path / "plain.safetensors", rational_resampler=False)
    assert any(k.startswith("upsampler.0.") for k in load_file(upsampler_file))
    folder = convert_checkpoint(source, tmp_path / "pipe", upsampler=upsampler_file)
    upsampler = LTX2LatentUpsampler.from_pretrained(folder, subfolder="latent_upsampler").eval()
    assert upsampler.config.use_rational_resampler is False
    x = torch.randn(1, LATENT, 2, 3, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert reference(x).abs().mean() > 0.01
        assert _max_diff(upsampler(x), reference(x)) <= 1e-4


def test_codecs_and_upsampler_match_ltxcore(tiny, pipe, converted):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(1, LATENT, 2, 2, 3, generator=g)  # normalised, as ltx-core's decoder takes them
    mel = torch.randn(1, 2, 20, 64, generator=g)
    upsampler = LTX2LatentUpsampler.from_pretrained(converted[0], subfolder="latent_upsampler").eval()
    x = torch.randn(1, LATENT, 2, 3, 4, generator=g)
    with torch.no_grad():
        video = pipe.vae.eval().decode(pipe.vae.denormalize_latents(z)).sample
        reference = tiny.vae_decoder(z)
        assert reference.abs().mean() > 0.01
        assert _max_diff(video, reference) <= 1e-4
        assert _max_diff(pipe.vocoder.eval()(mel), tiny.vocoder(mel)) <= 1e-4
        audio_latents = torch.randn(1, 2, 6, 16, generator=g)  # normalised [B, C, L, mel]
        reference_mel = tiny.audio_decoder(audio_latents)
        packed = pipe.audio_vae.denormalize_latents(audio_latents.transpose(1, 2).flatten(2))
        assert _max_diff(pipe.audio_vae.eval().decode(packed).sample, reference_mel) <= 1e-4
        assert _max_diff(upsampler(x), converted[1](x)) <= 1e-4


def test_components_load_in_diffusers_classes(converted):
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel, LTX2TextConnectors
    from diffusers.pipelines.ltx2 import LTX2Vocoder as DiffusersVocoder

    classes = {"transformer": diffusers.LTX2VideoTransformer3DModel, "connectors": LTX2TextConnectors,
               "vae": diffusers.AutoencoderKLLTX2Video, "audio_vae": diffusers.AutoencoderKLLTX2Audio,
               "vocoder": DiffusersVocoder, "latent_upsampler": LTX2LatentUpsamplerModel}
    for subfolder, cls in classes.items():
        _, info = cls.from_pretrained(converted[0], subfolder=subfolder, output_loading_info=True)
        assert not any(info.values()), (subfolder, info)


# ----------------------------------------------------------------------------------------------------------------
# The real 19B key list
# ----------------------------------------------------------------------------------------------------------------


def test_real_19b_key_list_maps_completely():
    single, upsampler = real_19b_keys()
    meta = {k: torch.empty(s, device="meta") for k, s in single.items()}
    result = convert_original_state_dict(real_19b_header(), meta)
    counts = {name: len(state) for name, (_, _, state) in result.items()}
    assert counts == {"transformer": 3510, "connectors": 59, "vae": 184, "audio_vae": 102, "vocoder": 194}
    assert sum(counts.values()) == len(single) - 2  # everything but vae.per_channel_statistics.{channel,mean-of-stds}
    assert result["transformer"][1]["audio_in_channels"] == 128
    assert result["connectors"][1]["text_proj_in_factor"] == 49
    assert result["vae"][1]["decoder_layers_per_block"] == [5, 5, 5, 5]
    meta_up = {k: torch.empty(s, device="meta") for k, s in upsampler.items()}
    config = latent_upsampler_config_from_original({}, meta_up)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in LTX2LatentUpsampler(**config).state_dict().items()}
    assert len(convert_latent_upsampler_state_dict(meta_up, expected)) == 73


# ----------------------------------------------------------------------------------------------------------------
# Failures: clear errors, nothing left behind
# ----------------------------------------------------------------------------------------------------------------


def test_injected_failure_leaves_nothing(tiny, tmp_path, monkeypatch):
    source = write_original(tmp_path / "model.safetensors", tiny.tensors, tiny.header)

    def broken_save(self, *args, **kwargs):
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(LTX2Vocoder, "save_pretrained", broken_save)  # after the transformer, VAEs were written
    with pytest.raises(RuntimeError, match="injected"):
        convert_checkpoint(source, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize("change, message", [
    ("header_key", r"lacks config\['transformer'\]\['attention_head_dim'\]"),
    ("no_metadata", "no 'config' metadata"),
    ("extra_tensor", "no component uses .*lora_unknown.weight"),
    ("truncated", "truncated or corrupt"),
    ("missing_file", "does not exist"),
])
def test_clear_errors(tiny, tmp_path, change, message):
    tensors, header = dict(tiny.tensors), json.loads(json.dumps(tiny.header))
    if change == "header_key":
        del header["transformer"]["attention_head_dim"]
    elif change == "extra_tensor":
        tensors["lora_unknown.weight"] = torch.zeros(2)
    source = write_original(tmp_path / "model.safetensors", tensors, None if change == "no_metadata" else header)
    if change == "truncated":
        data = source.read_bytes()
        source.write_bytes(data[: len(data) // 3])
    elif change == "missing_file":
        source = tmp_path / "absent.safetensors"
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(source, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_existing_output_and_unknown_model_tensor_are_refused(tiny, tmp_path):
    source = write_original(tmp_path / "model.safetensors", tiny.tensors, tiny.header)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        convert_checkpoint(source, tmp_path / "taken")
    extra = write_original(tmp_path / "extra.safetensors",
                           {**tiny.tensors, "model.diffusion_model.new_block.weight": torch.zeros(2)}, tiny.header)
    with pytest.raises(ValueError, match="unexpected: new_block.weight"):
        convert_checkpoint(extra, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------
# fp8, distilled, dtype, command line
# ----------------------------------------------------------------------------------------------------------------


def test_cli_fp8_distilled_and_dtype(tiny, tmp_path, capsys):
    tensors = dict(tiny.tensors)
    key = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    tensors[key] = tiny.tensors[key].to(torch.float8_e4m3fn)
    tensors[key.replace(".weight", ".weight_scale")] = torch.tensor(0.5)
    tensors[key.replace(".weight", ".input_scale")] = torch.tensor(2.0)  # activation scale: dropped
    source = write_original(tmp_path / "ltx-2-tiny-distilled-fp8.safetensors", tensors, tiny.header)
    assert main(["--checkpoint", str(source), "--output", str(tmp_path / "out"), "--dtype", "bf16"]) == 0
    printed = capsys.readouterr().out
    assert "distilled" in printed and "transformer" in printed and "parameters" in printed
    record = json.loads((tmp_path / "out" / "ltx2_conversion.json").read_text())
    assert record["sigmas"] == list(DISTILLED_SIGMAS) and record["fp8_source"] == ["F8_E4M3"]
    scheduler = LTX2Scheduler.from_pretrained(tmp_path / "out", subfolder="scheduler")
    scheduler.set_timesteps(num_inference_steps=40)  # a distilled folder keeps its own 8-step schedule
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([*DISTILLED_SIGMAS, 0.0]))
    saved = {}
    for shard in (tmp_path / "out" / "transformer").glob("*.safetensors"):
        saved.update(load_file(shard))
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}  # stored as bf16, never as fp8
    expected = (tensors[key].float() * 0.5).to(torch.bfloat16)  # de-quantised once, with the scale
    assert torch.equal(saved["transformer_blocks.0.attn1.to_q.weight"], expected)
    original = tiny.tensors["model.diffusion_model.proj_out.weight"]
    assert torch.equal(saved["proj_out.weight"], original.to(torch.bfloat16))
    assert main(["--checkpoint", str(source), "--output", str(tmp_path / "out")]) == 2  # exists: clear error
    assert "already exists" in capsys.readouterr().err


def test_local_gemma_folder_becomes_text_encoder_and_tokenizer(tiny, tmp_path):
    from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

    gemma = tmp_path / "gemma"
    tiny_gemma3(hidden_size=HIDDEN, num_layers=2).save_pretrained(gemma)
    tiny_gemma_tokenizer().save_pretrained(gemma)
    source = write_original(tmp_path / "model.safetensors", tiny.tensors, tiny.header)
    folder = convert_checkpoint(source, tmp_path / "out", text_encoder=gemma)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]
    assert (folder / "tokenizer" / "tokenizer_config.json").is_file()
    assert not list((folder / "text_encoder").glob("tokenizer*"))
    pipe = LTX2AudioVideoPipeline.from_pretrained(folder)
    embeds, _ = pipe.encode_text_embeddings("a cat", do_classifier_free_guidance=False, max_sequence_length=16)
    assert embeds.video_embeds.shape[-1] == HIDDEN and embeds.video_embeds.abs().mean() > 0.01
    with pytest.raises(ValueError, match="no config.json"):
        convert_checkpoint(source, tmp_path / "out2", text_encoder=tmp_path / "nowhere")
    assert not (tmp_path / "out2").exists()
