"""LTX-2.3 video VAE and x2 1.1 latent upsampler at real size (meta device): configs from the real headers and key
lists, parameter counts, 1:1 key mapping onto diffusers' names; header/tensor consistency checks."""

import copy

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.video_vae import (
    convert_latent_upsampler_state_dict,
    convert_video_vae_state_dict,
    latent_upsampler_config_from_original,
    video_vae_config_from_original,
)
from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ltx2_diffusers.models.latent_upsampler_ltx2 import LTX2LatentUpsampler

from .oracles_vae23 import (
    DIFFUSERS_VAE_CONFIG_23,
    REAL_UPSAMPLER_HEADER_23,
    REAL_VAE_HEADER_23,
    key_sections,
    meta_tensors,
)

KEYS = key_sections()
ORIGINAL_VAE = {**KEYS["original vae encoder (with the shared statistics)"], **KEYS["original vae decoder"]}
ORIGINAL_TCOND = KEYS["original vae decoder timestep-conditioning extras"]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(header: dict, shapes: dict) -> tuple[dict, LTX2VideoAutoencoder, dict]:
    original = meta_tensors(shapes)
    config = video_vae_config_from_original(header, original)
    with torch.device("meta"):
        model = LTX2VideoAutoencoder(**config)
    return config, model, convert_video_vae_state_dict(original, expected_shapes(model))


# ----------------------------------------------------------------------------------------------------------------
# Video VAE
# ----------------------------------------------------------------------------------------------------------------


def test_real_2_3_vae_config_sizes_and_key_mapping():
    config, model, converted = _build(REAL_VAE_HEADER_23, ORIGINAL_VAE)
    # the config diffusers' own converter writes, value for value (lists vs tuples aside)
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()} == {
        k: v for k, v in DIFFUSERS_VAE_CONFIG_23.items() if k != "resnet_norm_eps"}
    assert _params(model) == 726_105_969
    assert _params(model.encoder) == 318_936_897 and _params(model.decoder) == 407_169_072
    assert len(model.state_dict()) == 170 and len(ORIGINAL_VAE) == 170
    # 1:1 onto diffusers' real-size 2.3 names and shapes
    assert {k: tuple(v.shape) for k, v in converted.items()} == KEYS["diffusers vae"]
    assert (model.spatial_compression_ratio, model.temporal_compression_ratio) == (32, 8)


def test_real_2_3_vae_with_timestep_conditioning():
    header = {**REAL_VAE_HEADER_23, "timestep_conditioning": True}
    config, model, converted = _build(header, {**ORIGINAL_VAE, **ORIGINAL_TCOND})
    assert config["timestep_conditioning"] is True
    assert _params(model) == 755_252_850 and len(model.state_dict()) == 214
    expected = {**KEYS["diffusers vae"], **KEYS["diffusers vae timestep-conditioning extras"]}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected


def test_2_0_defaults_are_unchanged():
    with torch.device("meta"):
        assert _params(LTX2VideoAutoencoder()) == 1_222_479_601


@pytest.mark.parametrize("stated, with_tensors", [(False, True), (True, False)])
def test_a_header_that_contradicts_the_tensors_raises(stated, with_tensors):
    shapes = {**ORIGINAL_VAE, **(ORIGINAL_TCOND if with_tensors else {})}
    header = {**REAL_VAE_HEADER_23, "timestep_conditioning": stated}
    with pytest.raises(ValueError, match=f"timestep_conditioning={stated}.*last_time_embedder"):
        video_vae_config_from_original(header, meta_tensors(shapes))


@pytest.mark.parametrize("with_tensors", [False, True])
def test_a_missing_header_key_follows_the_tensors(with_tensors):
    # ltx-core would default to True; the tensors are the truth
    header = {k: v for k, v in REAL_VAE_HEADER_23.items() if k != "timestep_conditioning"}
    shapes = {**ORIGINAL_VAE, **(ORIGINAL_TCOND if with_tensors else {})}
    assert video_vae_config_from_original(header, meta_tensors(shapes))["timestep_conditioning"] is with_tensors


def test_residual_counts_only_on_compress_all_decoder_blocks():
    header = copy.deepcopy(REAL_VAE_HEADER_23)
    for _, params in header["decoder_blocks"][1::2]:
        params["residual"] = True
    config = video_vae_config_from_original(header, meta_tensors(ORIGINAL_VAE))
    # output side first: compress_space, compress_time (ignored, as ltx-core does), compress_all, compress_all
    assert config["upsample_residual"] == [False, False, True, True]


@pytest.mark.parametrize("which, index, name, message", [
    ("encoder_blocks", 1, "compress_time", r"encoder_blocks\[1\] is 'compress_time'.*re-sampler"),
    ("encoder_blocks", 2, "res_x_y", r"encoder_blocks\[2\] is 'res_x_y'.*residual stack"),
    ("decoder_blocks", 4, "attn_res_x", r"decoder_blocks\[4\] is 'attn_res_x'"),
    ("decoder_blocks", 3, "compress_space_res", r"decoder_blocks\[3\] is 'compress_space_res'"),
    ("decoder_blocks", 3, "upsample_everything", "upsample_everything"),
])
def test_blocks_without_a_diffusers_equivalent_raise(which, index, name, message):
    header = copy.deepcopy(REAL_VAE_HEADER_23)
    header[which][index][0] = name
    with pytest.raises(ValueError, match=message):
        video_vae_config_from_original(header, meta_tensors(ORIGINAL_VAE))


def test_block_list_must_end_with_the_mid_block():
    header = copy.deepcopy(REAL_VAE_HEADER_23)
    header["decoder_blocks"] = header["decoder_blocks"][:-1]
    with pytest.raises(ValueError, match="must end with a res_x stack"):
        video_vae_config_from_original(header, meta_tensors(ORIGINAL_VAE))


# ----------------------------------------------------------------------------------------------------------------
# Latent upsampler x2 1.1
# ----------------------------------------------------------------------------------------------------------------


def test_real_x2_1_1_upsampler_from_its_header():
    original = meta_tensors(KEYS["original upscaler x2 1.1"])
    config = latent_upsampler_config_from_original(REAL_UPSAMPLER_HEADER_23, original)
    assert config == {"in_channels": 128, "mid_channels": 1024, "num_blocks_per_stage": 4, "dims": 3,
                      "spatial_upsample": True, "temporal_upsample": False, "rational_spatial_scale": 2.0,
                      "use_rational_resampler": False}
    with torch.device("meta"):
        model = LTX2LatentUpsampler(**config)
    assert _params(model) == 497_867_904 and len(model.state_dict()) == 72
    converted = convert_latent_upsampler_state_dict(original, expected_shapes(model))
    assert {k: tuple(v.shape) for k, v in converted.items()} == KEYS["diffusers latent_upsampler"]


def test_the_2_0_rational_layout_of_the_same_upsampler():
    plain = KEYS["original upscaler x2 1.1"]
    rational = {k: v for k, v in plain.items() if not k.startswith("upsampler.")}
    rational.update(KEYS["original upscaler x2 rational layout (replaces upsampler.*)"])
    header = {**REAL_UPSAMPLER_HEADER_23, "rational_resampler": True}
    config = latent_upsampler_config_from_original(header, meta_tensors(rational))
    assert config["use_rational_resampler"] is True
    with torch.device("meta"):
        assert _params(LTX2LatentUpsampler(**config)) == 497_867_904


@pytest.mark.parametrize("header, message", [
    ({"rational_resampler": True}, "rational_resampler=True but its tensors say False"),
    ({"temporal_upsample": True}, "temporal_upsample=True but its tensors say False"),
    ({"spatial_scale": 1.5}, "plain layout .* always upsamples x2"),
    ({"dims": 2}, "dims=2 but its tensors say 3"),
])
def test_upsampler_headers_that_contradict_the_tensors_raise(header, message):
    original = meta_tensors(KEYS["original upscaler x2 1.1"])
    with pytest.raises(ValueError, match=message):
        latent_upsampler_config_from_original({**REAL_UPSAMPLER_HEADER_23, **header}, original)


def test_upsampler_layouts_are_read_from_the_tensors():
    mid = 32
    base = {"initial_conv.weight": (mid, 8, 3, 3, 3), "res_blocks.0.conv1.weight": (mid, mid, 3, 3, 3)}
    cases = {  # upsampler conv shape -> (spatial, temporal)
        (4 * mid, mid, 3, 3): (True, False), (8 * mid, mid, 3, 3, 3): (True, True),
        (2 * mid, mid, 3, 3, 3): (False, True),
    }
    for shape, (spatial, temporal) in cases.items():
        config = latent_upsampler_config_from_original({}, meta_tensors({**base, "upsampler.0.weight": shape}))
        assert (config["spatial_upsample"], config["temporal_upsample"]) == (spatial, temporal)
    with pytest.raises(ValueError, match="not the plain x2 layout"):
        latent_upsampler_config_from_original({}, meta_tensors({**base, "upsampler.0.weight": (3 * mid, mid, 3, 3)}))
    rational = {**base, "upsampler.conv.weight": (9 * mid, mid, 3, 3), "upsampler.blur_down.kernel": (1, 1, 5, 5)}
    assert latent_upsampler_config_from_original({"spatial_scale": 1.5}, meta_tensors(rational))[
        "rational_spatial_scale"] == 1.5
    with pytest.raises(ValueError, match="spatial_scale=2.0 but upsampler.conv makes 3x3"):
        latent_upsampler_config_from_original({}, meta_tensors(rational))
