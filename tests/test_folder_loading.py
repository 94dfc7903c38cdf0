"""``LTX2AudioVideoPipeline.from_pretrained`` behaves as diffusers' (dtype dicts, variants, component overrides,
diffusers' scheduler) and loads strictly: every damaged folder, file or config is one clear error naming it, before
any tensor is read where the headers tell; pickles are never opened unless asked for."""

import json
import logging
import math
import shutil

import diffusers
import pytest
import torch
from safetensors.torch import load_file, save_file

from ltx2_diffusers import LTX2AudioVideoPipeline, LTX2LatentUpsampler, LTX2Scheduler
from ltx2_diffusers.pipelines.folder_loading import FolderLoadError, component_dtypes
from ltx2_diffusers.schedulers import ltx2_sigmas
from ltx2_diffusers.utils.paths import MissingFolderError
from ltx2_diffusers.utils.tiny import tiny_pipeline

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=4)


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture
def copy(saved, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    return folder


def _edit_json(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _load_fails(folder, match, **kwargs):
    with pytest.raises(FolderLoadError, match=match) as error:
        LTX2AudioVideoPipeline.from_pretrained(folder, **kwargs)
    assert "\n" not in str(error.value)
    return str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Arguments as diffusers takes them
# ----------------------------------------------------------------------------------------------------------------


def test_dtype_dicts_reach_every_component(saved):
    loaded = LTX2AudioVideoPipeline.from_pretrained(saved, torch_dtype={"transformer": torch.bfloat16,
                                                                        "default": torch.float32})
    assert loaded.transformer.dtype == torch.bfloat16
    assert {m.dtype for m in (loaded.vae, loaded.audio_vae, loaded.connectors, loaded.vocoder,
                              loaded.latent_upsampler, loaded.text_encoder)} == {torch.float32}
    half = LTX2AudioVideoPipeline.from_pretrained(saved, dtype={"vae": torch.float16, "text_encoder": torch.bfloat16})
    assert (half.vae.dtype, half.text_encoder.dtype, half.transformer.dtype) == (torch.float16, torch.bfloat16,
                                                                                 torch.float32)  # float32 default


def test_bad_dtypes_are_refused_before_loading():
    names = ["transformer", "vae"]
    assert component_dtypes(torch.bfloat16, None, names) == {"transformer": torch.bfloat16, "vae": torch.bfloat16}
    assert component_dtypes(None, {"vae": torch.float16}, names) == {"transformer": torch.float32,
                                                                      "vae": torch.float16}
    with pytest.raises(ValueError, match="torch.dtype"):
        component_dtypes("bfloat16", None, names)
    with pytest.raises(ValueError, match=r"unknown component\(s\) \['transformr'\]"):
        component_dtypes({"transformr": torch.bfloat16}, None, names)
    with pytest.raises(ValueError, match="not both"):
        component_dtypes(torch.float16, torch.float16, names)


def test_a_variant_loads_where_the_folder_has_it_and_a_wrong_one_is_diffusers_value_error(pipe, copy):
    doubled = {k: 2 * v for k, v in pipe.transformer.state_dict().items()}
    save_file(doubled, copy / "transformer" / "diffusion_pytorch_model.alt.safetensors", metadata={"format": "pt"})
    loaded = LTX2AudioVideoPipeline.from_pretrained(copy, variant="alt")
    assert torch.equal(loaded.transformer.proj_out.weight, doubled["proj_out.weight"])
    assert torch.equal(loaded.vae.decoder.conv_out.conv.weight, pipe.vae.decoder.conv_out.conv.weight)  # no variant
    with pytest.raises(ValueError, match="variant=fp16") as error:
        LTX2AudioVideoPipeline.from_pretrained(copy, variant="fp16")
    assert not isinstance(error.value, OSError)


def test_a_typo_in_a_local_path_is_a_missing_folder_not_a_hub_lookup(saved, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(LTX2AudioVideoPipeline, "download", no_hub)
    monkeypatch.chdir(saved.parent)
    typo = f"./{saved.name}x"
    with pytest.raises(MissingFolderError, match=rf"no such folder.*did you mean '{saved.name}'") as error:
        LTX2AudioVideoPipeline.from_pretrained(typo)
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, ValueError)
    with pytest.raises(MissingFolderError, match="does not exist"):
        LTX2AudioVideoPipeline.from_pretrained(str(saved / "nowhere" / "LTX-2"))
    with pytest.raises(MissingFolderError, match="is a file"):
        LTX2AudioVideoPipeline.from_pretrained(saved / "model_index.json")


def test_options_diffusers_would_silently_ignore_are_refused(saved):
    with pytest.raises(ValueError, match=r"does not take \['quantization_config'\]"):
        LTX2AudioVideoPipeline.from_pretrained(saved, quantization_config={"load_in_8bit": True})


def test_diffusers_scheduler_is_mapped_wherever_it_is_given(pipe, saved):
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(shift=math.exp(2.05), shift_terminal=0.1)
    loaded = LTX2AudioVideoPipeline.from_pretrained(saved, scheduler=theirs)
    built = LTX2AudioVideoPipeline(**{**pipe.components, "scheduler": theirs})
    for target in (loaded, built):
        assert isinstance(target.scheduler, LTX2Scheduler)
        torch.testing.assert_close(target.scheduler.schedule(40), ltx2_sigmas(40), rtol=0, atol=1e-7)
    built.scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    assert isinstance(built.scheduler, LTX2Scheduler) and built.config.scheduler[1] == "LTX2Scheduler"
    plan = built.plan(prompt="a cat", num_frames=9, height=64, width=96, num_inference_steps=4)
    torch.testing.assert_close(torch.tensor(plan.stages[0].sigmas), ltx2_sigmas(4, math.log(3.0), terminal=None),
                               rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="must be an LTX2Scheduler"):
        built.scheduler = diffusers.DDIMScheduler()


def test_folders_in_the_earlier_format_still_load(pipe, copy):
    """Our previous layout: our module paths in model_index.json and an LTX2Scheduler config."""
    index = json.loads((copy / "model_index.json").read_text())
    for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder", "latent_upsampler"):
        cls = type(getattr(pipe, name))
        index[name] = [cls.__module__, cls.__name__]
    index.update(_class_name="LTX2AudioVideoPipeline", scheduler=["ltx2_diffusers.schedulers", "LTX2Scheduler"])
    (copy / "model_index.json").write_text(json.dumps(index))
    LTX2Scheduler().save_pretrained(copy / "scheduler")
    loaded = LTX2AudioVideoPipeline.from_pretrained(copy)
    assert torch.equal(loaded.transformer.proj_out.weight, pipe.transformer.proj_out.weight)
    torch.testing.assert_close(loaded.scheduler.schedule(40), ltx2_sigmas(40), rtol=0, atol=0)


def test_an_unlisted_upsampler_subfolder_is_found(copy):
    index = json.loads((copy / "model_index.json").read_text())
    del index["latent_upsampler"]  # how diffusers' converter leaves it
    (copy / "model_index.json").write_text(json.dumps(index))
    assert isinstance(LTX2AudioVideoPipeline.from_pretrained(copy).latent_upsampler, LTX2LatentUpsampler)


# ----------------------------------------------------------------------------------------------------------------
# Damaged folders: one clear error naming the file
# ----------------------------------------------------------------------------------------------------------------


def test_a_shard_lacking_a_tensor_is_refused_by_name(copy):
    weights = load_file(copy / "transformer" / WEIGHTS)
    del weights["proj_out.bias"]
    save_file(weights, copy / "transformer" / WEIGHTS)
    message = _load_fails(copy, "transformer: the weights do not match config.json")
    assert "1 missing: proj_out.bias" in message


def test_a_config_promising_more_layers_than_the_weights_hold_is_refused(copy):
    _edit_json(copy / "transformer" / "config.json", num_layers=3)
    message = _load_fails(copy, "transformer: the weights do not match config.json")
    assert "missing: transformer_blocks.2." in message


def test_missing_or_corrupt_shards_are_named(pipe, copy):
    shutil.rmtree(copy / "vae")
    pipe.vae.save_pretrained(copy / "vae", max_shard_size="200KB")
    shards = sorted((copy / "vae").glob("*-of-*.safetensors"))
    assert len(shards) > 2
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])
    _load_fails(copy, rf"{shards[1].name} is not a readable safetensors file \(truncated or corrupt")
    shards[1].unlink()
    _load_fails(copy, rf"vae: shard\(s\) {shards[1].name} listed in diffusion_pytorch_model.safetensors.index.json "
                      r"are missing")


def test_garbage_model_index_and_entries_are_named(copy):
    (copy / "model_index.json").write_text("{ not json")
    _load_fails(copy, r"model_index.json is not valid JSON")
    (copy / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline", "vae": "AutoencoderKLLTX2Vid"}))
    _load_fails(copy, r"model_index.json: entry 'vae' must be \[library, class\]")
    (copy / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline"}))
    _load_fails(copy, "lists no scheduler, vae, audio_vae, connectors, transformer, vocoder")


def test_configs_with_wrong_types_or_values_are_named(copy):
    _edit_json(copy / "vae" / "config.json", latent_channels="8")
    _load_fails(copy, r"vae/config.json: values that do not fit LTX2VideoAutoencoder: latent_channels='8' "
                      r"\(expected int\)")
    _edit_json(copy / "vae" / "config.json", latent_channels=8, resnet_norm_eps=float("nan"))
    _load_fails(copy, r"vae/config.json: .*resnet_norm_eps=nan \(not finite\)")
    (copy / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "FlowMatchEulerDiscreteScheduler", "use_karras_sigmas": True}))
    _load_fails(copy, r"scheduler_config.json: FlowMatchEulerDiscreteScheduler with use_karras_sigmas=True has no "
                      r"LTX-2 equivalent")


def test_a_missing_subfolder_or_an_unknown_class_is_named(copy):
    shutil.rmtree(copy / "vocoder")
    _load_fails(copy, "vocoder does not exist, but model_index.json lists it")
    _edit_json(copy / "model_index.json", vocoder=["ltx2", "LTX3Vocoder"])
    _load_fails(copy, r"the folder's vocoder is a ltx2.LTX3Vocoder, which this package cannot load")


def test_pickled_weights_are_never_opened_unless_asked_for(pipe, copy, monkeypatch):
    (copy / "vocoder" / WEIGHTS).unlink()
    pipe.vocoder.save_pretrained(copy / "vocoder", safe_serialization=False)
    with monkeypatch.context() as patched:
        patched.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was opened"))
        _load_fails(copy, r"vocoder holds only pickled weights \(diffusion_pytorch_model.bin\).*use_safetensors=False")
    loaded = LTX2AudioVideoPipeline.from_pretrained(copy, use_safetensors=False)
    assert torch.equal(loaded.vocoder.conv_in.weight, pipe.vocoder.conv_in.weight)


def test_a_load_that_would_leave_parameters_on_meta_is_refused(pipe, copy):
    """The pickle path has no header to check first: diffusers' low-memory load leaves the missing tensor on the meta
    device (and only warns); the load is refused after the fact."""
    (copy / "vocoder" / WEIGHTS).unlink()
    state = {k: v for k, v in pipe.vocoder.state_dict().items() if k != "conv_in.bias"}
    torch.save(state, copy / "vocoder" / "diffusion_pytorch_model.bin")
    message = _load_fails(copy, "vocoder: the weights do not load strictly", use_safetensors=False)
    assert "1 missing: conv_in.bias" in message and "left uninitialised on the meta device: conv_in.bias" in message


def test_a_text_encoder_missing_a_tensor_is_refused(copy):
    weights = load_file(copy / "text_encoder" / "model.safetensors")
    dropped = next(k for k in sorted(weights) if k.endswith("mlp.gate_proj.weight"))
    del weights[dropped]
    save_file(weights, copy / "text_encoder" / "model.safetensors", metadata={"format": "pt"})
    message = _load_fails(copy, "text_encoder: the weights do not load strictly")
    assert "1 missing" in message and "gate_proj.weight" in message
    assert LTX2AudioVideoPipeline.from_pretrained(copy, text_encoder=None).text_encoder is None  # skip Gemma


def test_a_pipeline_never_writes_pickles_and_reports_each_load_as_diffusers_does(pipe, tmp_path):
    pipe.save_pretrained(tmp_path, safe_serialization=False)
    assert not list(tmp_path.rglob("*.bin")) and (tmp_path / "vae" / WEIGHTS).is_file()
    channel = diffusers.utils.logging.get_logger("diffusers.pipelines.pipeline_utils")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    channel.addHandler(handler)
    level = channel.level
    channel.setLevel(diffusers.logging.INFO)
    try:
        loaded = LTX2AudioVideoPipeline.from_pretrained(tmp_path)
    finally:
        channel.removeHandler(handler)
        channel.setLevel(level)
    assert torch.equal(loaded.vae.decoder.conv_in.conv.weight, pipe.vae.decoder.conv_in.conv.weight)
    for name in ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder"):
        assert any(line.startswith(f"Loaded {name} as ") and f"`{name}` subfolder" in line for line in lines), name


def test_optional_components_may_be_none_and_text_components_may_be_left_out(pipe, copy):
    assert LTX2AudioVideoPipeline._optional_components == ["latent_upsampler"]
    no_text = LTX2AudioVideoPipeline.from_pretrained(copy, text_encoder=None, tokenizer=None, latent_upsampler=None)
    assert no_text.text_encoder is None and no_text.latent_upsampler is None
    with pytest.raises(ValueError, match="pass `prompt_embeds`"):
        no_text("a cat", num_frames=9, height=64, width=96)


def test_device_map_names_one_device_as_in_diffusers(saved):
    loaded = LTX2AudioVideoPipeline.from_pretrained(saved, device_map="cpu")
    assert loaded.transformer.device.type == "cpu"
    for bad in ("balanced", {"": 0}, True):
        with pytest.raises(ValueError, match="must name one device"):
            LTX2AudioVideoPipeline.from_pretrained(saved, device_map=bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no cuda device"):
            LTX2AudioVideoPipeline.from_pretrained(saved, device_map="cuda")
