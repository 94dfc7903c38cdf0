"""Original / ComfyUI-style LTX-2 LoRAs through the pipeline's LoRA loader."""

import copy

import pytest
import torch

from ltx2_diffusers.conversion import original_transformer_key
from ltx2_diffusers.utils.tiny import tiny_pipeline

pytest.importorskip("peft", reason="LoRA loading needs peft (the test extra installs it)")

# a video attention, an audio feed-forward and an audio->video attention projection
TARGETS = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.audio_ff.net.2",
           "transformer_blocks.0.audio_to_video_attn.to_k")


def _lora(transformer, seed, rank=2):
    """A ComfyUI-style state dict (``diffusion_model.<original name>.lora_A/B.weight``) and its B·A per target."""
    g = torch.Generator().manual_seed(seed)
    state, deltas = {}, {}
    for name in TARGETS:
        weight = transformer.get_submodule(name).weight
        down = torch.randn(rank, weight.shape[1], generator=g) * 0.1
        up = torch.randn(weight.shape[0], rank, generator=g) * 0.1
        original = original_transformer_key(name).replace("model.diffusion_model.", "diffusion_model.")
        state[f"{original}.lora_A.weight"], state[f"{original}.lora_B.weight"] = down, up
        deltas[name] = up @ down
    return state, deltas


def _inputs(transformer):
    g = torch.Generator().manual_seed(7)
    c = transformer.config
    return dict(hidden_states=torch.randn(1, 12, c.in_channels, generator=g),
                audio_hidden_states=torch.randn(1, 5, c.audio_in_channels, generator=g),
                encoder_hidden_states=torch.randn(1, 8, c.caption_channels, generator=g),
                audio_encoder_hidden_states=torch.randn(1, 8, c.caption_channels, generator=g),
                timestep=torch.tensor([0.6]), num_frames=2, height=2, width=3)


def _merged(transformer, deltas_and_scales):
    """A plain copy of the transformer with W + Σ s·B·A written into the targets."""
    merged = copy.deepcopy(transformer)
    with torch.no_grad():
        for deltas, scale in deltas_and_scales:
            for name, delta in deltas.items():
                merged.get_submodule(name).weight += scale * delta
    return merged


def test_two_adapters_with_strengths_match_w_plus_s_ba_and_fuse_unfuse():
    pipe = tiny_pipeline(seed=0)
    base = copy.deepcopy(pipe.transformer)
    first, first_deltas = _lora(pipe.transformer, seed=1)
    second, second_deltas = _lora(pipe.transformer, seed=2)
    pipe.load_lora_weights(first, adapter_name="style")
    pipe.load_lora_weights(second, adapter_name="camera")
    pipe.set_adapters(["style", "camera"], [0.8, -0.5])  # negative strengths are allowed

    inputs = _inputs(base)
    expected = _merged(base, [(first_deltas, 0.8), (second_deltas, -0.5)])(**inputs).sample
    with torch.no_grad():
        out = pipe.transformer(**inputs).sample
    assert (out - base(**inputs).sample).abs().max() > 1e-3  # the LoRA really acts
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)

    pipe.fuse_lora(adapter_names=["style", "camera"])
    with torch.no_grad():
        fused = pipe.transformer(**inputs).sample
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-5)
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    with torch.no_grad():
        torch.testing.assert_close(pipe.transformer(**inputs).sample, base(**inputs).sample, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Files, formats and refusals (every refusal happens before an adapter is injected)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def _untouched(pipe):
    return not getattr(pipe.transformer, "peft_config", None) and not getattr(pipe.connectors, "peft_config", None)


def _output(transformer):
    with torch.no_grad():
        return transformer(**_inputs(transformer)).sample


def test_comfyui_file_and_diffusers_file_with_alpha_metadata(tmp_path):
    from safetensors.torch import save_file

    pipe = tiny_pipeline(seed=0)
    base = copy.deepcopy(pipe.transformer)
    comfy, comfy_deltas = _lora(pipe.transformer, seed=3)
    save_file(comfy, tmp_path / "comfy.safetensors")
    pipe.load_lora_weights(tmp_path / "comfy.safetensors", adapter_name="comfy")  # a Path, not only str
    torch.testing.assert_close(_output(pipe.transformer), _output(_merged(base, [(comfy_deltas, 1.0)])),
                               rtol=0, atol=1e-5)
    pipe.unload_lora_weights()

    # diffusers format written by diffusers' own saver, with lora_alpha = 2 r in its metadata: scale 2
    state, deltas = _lora(base, seed=4)
    diffusers_state = {f"transformer.{name}.lora_{part}.weight": state[
        f"{original_transformer_key(name).replace('model.diffusion_model.', 'diffusion_model.')}.lora_{part}.weight"]
        for name in TARGETS for part in "AB"}
    layers = {k.removeprefix("transformer."): v for k, v in diffusers_state.items()}
    metadata = {"r": 2, "lora_alpha": 4, "target_modules": list(TARGETS)}
    type(pipe).save_lora_weights(tmp_path / "folder", transformer_lora_layers=layers,
                                 transformer_lora_adapter_metadata=metadata)
    pipe.load_lora_weights(str(tmp_path / "folder"), adapter_name="scaled")  # a folder holding the file
    out = _output(pipe.transformer)
    torch.testing.assert_close(out, _output(_merged(base, [(deltas, 2.0)])), rtol=0, atol=1e-5)
    assert (out - _output(_merged(base, [(deltas, 1.0)]))).abs().max() > 1e-4  # the metadata's alpha really acts
    assert pipe.lora_state_dict(diffusers_state).keys() == diffusers_state.keys()
    named = type(pipe).lora_state_dict(tmp_path, subfolder="folder", weight_name="pytorch_lora_weights.safetensors")
    assert named.keys() == diffusers_state.keys()
    with pytest.raises(FileNotFoundError, match="has no 'other.safetensors'"):
        type(pipe).lora_state_dict(tmp_path / "folder", weight_name="other.safetensors")


def _other_model_file(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(5)  # a ComfyUI LoRA for a Flux-like model: no layer of LTX-2 has these names
    state = {f"diffusion_model.double_blocks.{i}.img_attn.qkv.lora_{p}.weight": torch.randn(2, 16, generator=g)
             for i in range(2) for p in "AB"}
    save_file(state, tmp_path / "flux_style.safetensors")
    return tmp_path / "flux_style.safetensors"


def test_a_lora_for_another_model_is_refused(pipe, tmp_path):
    path = _other_model_file(tmp_path)
    with pytest.raises(ValueError, match=r"flux_style\.safetensors' has no weights for this pipeline: none of its 4"):
        pipe.load_lora_weights(str(path))
    sd_unet = {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 8),
               "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.zeros(8, 2)}
    with pytest.raises(ValueError, match="the LoRA state dict has no weights for this pipeline"):
        pipe.load_lora_weights(sd_unet)
    assert _untouched(pipe)


def test_a_lora_for_another_size_is_refused(pipe):
    state, _ = _lora(pipe.transformer, seed=6)
    key = next(k for k in state if k.endswith("lora_A.weight"))
    state[key] = torch.zeros(2, state[key].shape[1] + 8)
    with pytest.raises(ValueError, match=r"does not fit this pipeline's transformer: .*input features"):
        pipe.load_lora_weights(state)
    assert _untouched(pipe)


def test_empty_and_non_finite_loras_are_refused(pipe, tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "zero.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.safetensors' is empty \(0 bytes\)"):
        pipe.load_lora_weights(tmp_path / "zero.safetensors")
    save_file({}, tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match=r"none\.safetensors' holds no tensors"):
        pipe.load_lora_weights(str(tmp_path / "none.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(ValueError, match=r"cut\.safetensors' is not a readable \.safetensors file"):
        pipe.load_lora_weights(str(tmp_path / "cut.safetensors"))
    state, _ = _lora(pipe.transformer, seed=7)
    key = sorted(state)[2]
    state[key][0, 0] = float("nan")
    save_file(state, tmp_path / "nan.safetensors")
    with pytest.raises(ValueError, match=rf"nan\.safetensors'.*{key}.*NaN or infinite"):
        pipe.load_lora_weights(str(tmp_path / "nan.safetensors"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pipe.lora_state_dict(state)
    assert _untouched(pipe)


def test_missing_local_files_are_file_errors_not_hub_lookups(pipe, tmp_path, monkeypatch):
    from ltx2_diffusers.pipelines.lora import looks_local

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for missing in (tmp_path / "gone.safetensors", str(tmp_path / "gone.safetensors"), "gone.safetensors",
                    "./loras/style", "~/loras/style.safetensors"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            pipe.load_lora_weights(missing)
    with pytest.raises(ValueError, match="does not exist"):  # MissingFileError is a ValueError too
        pipe.lora_state_dict(tmp_path / "gone.safetensors")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(FileNotFoundError, match="folder without a LoRA .safetensors file"):
        pipe.load_lora_weights(tmp_path / "empty_folder")
    assert [looks_local(s) for s in ("Lightricks/LTX-2", "owner/name.v2", "a/b/c", "x.safetensors", "C:\\x")] == [
        False, False, True, True, True]
    assert _untouched(pipe)


def test_pickled_weights_are_never_read(pipe, tmp_path):
    state, _ = _lora(pipe.transformer, seed=8)
    torch.save(state, tmp_path / "pytorch_lora_weights.bin")
    for kwargs in (dict(weight_name="pytorch_lora_weights.bin"), dict(use_safetensors=False)):
        with pytest.raises(ValueError, match="never unpickled"):
            pipe.load_lora_weights(str(tmp_path), **kwargs)
    with pytest.raises(FileNotFoundError, match="folder without a LoRA .safetensors"):
        pipe.load_lora_weights(str(tmp_path))  # only the .bin is there: not a fallback
    assert _untouched(pipe)


def test_without_peft_the_error_names_the_extra(pipe, monkeypatch):
    import diffusers.utils

    monkeypatch.setattr(diffusers.utils, "USE_PEFT_BACKEND", False)
    with pytest.raises(ImportError, match=r"pip install peft"):
        pipe.load_lora_weights({})


def test_partly_matching_lora_loads_what_matches_with_a_warning(tmp_path):
    from diffusers.utils import logging as diffusers_logging

    pipe = tiny_pipeline(seed=0)
    base = copy.deepcopy(pipe.transformer)
    state, deltas = _lora(pipe.transformer, seed=9)
    state["diffusion_model.no_such_block.to_q.lora_A.weight"] = torch.zeros(2, 4)
    state["diffusion_model.no_such_block.to_q.lora_B.weight"] = torch.zeros(4, 2)
    messages = []
    handler = __import__("logging").Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = diffusers_logging.get_logger("ltx2_diffusers.pipelines.lora")
    logger.addHandler(handler)
    try:
        pipe.load_lora_weights(state, adapter_name="partial")
    finally:
        logger.removeHandler(handler)
    assert any("2 of its 8 keys name no layer" in m and "no_such_block" in m for m in messages)
    torch.testing.assert_close(_output(pipe.transformer), _output(_merged(base, [(deltas, 1.0)])), rtol=0, atol=1e-5)
