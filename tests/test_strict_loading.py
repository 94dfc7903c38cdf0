"""Every model class loads strictly on its own too (not only through the pipeline): a checkpoint missing a tensor or
holding an extra one is refused by name, and pickled weights are read only when asked for."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from ltx2_diffusers import (
    LTX2AudioAutoencoder,
    LTX2AudioVideoTransformer,
    LTX2LatentUpsampler,
    LTX2TextConnectors,
    LTX2VideoAutoencoder,
    LTX2Vocoder,
)
from ltx2_diffusers.models.strict_loading import WeightLoadError
from ltx2_diffusers.utils.tiny import tiny_components

WEIGHTS = "diffusion_pytorch_model.safetensors"
CLASSES = {"transformer": LTX2AudioVideoTransformer, "vae": LTX2VideoAutoencoder, "audio_vae": LTX2AudioAutoencoder,
           "connectors": LTX2TextConnectors, "vocoder": LTX2Vocoder}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("components")
    components = tiny_components(0)
    for name in CLASSES:
        components[name].save_pretrained(folder / name)
    upsampler = LTX2LatentUpsampler(in_channels=8, mid_channels=32, num_blocks_per_stage=1)
    upsampler.save_pretrained(folder / "latent_upsampler")
    return folder, components


@pytest.mark.parametrize("name", list(CLASSES))
def test_a_missing_or_extra_tensor_is_refused_by_name(saved, tmp_path, name):
    folder, components = saved
    weights = load_file(folder / name / WEIGHTS)
    dropped = sorted(weights)[0]
    config = (folder / name / "config.json").read_text()
    for label, changed in (("missing", {k: v for k, v in weights.items() if k != dropped}),
                           ("unexpected", {**weights, "stray.weight": torch.zeros(2)})):
        target = tmp_path / label / name
        target.mkdir(parents=True)
        (target / "config.json").write_text(config)
        save_file(changed, target / WEIGHTS)
        name_of = "stray.weight" if label == "unexpected" else dropped
        with pytest.raises(WeightLoadError, match=f"1 {label}: {name_of}"):
            CLASSES[name].from_pretrained(target)
    loaded = CLASSES[name].from_pretrained(folder, subfolder=name)  # the intact one loads, every tensor equal
    for key, value in components[name].state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_pickled_weights_are_read_only_when_asked_for(saved, tmp_path):
    folder, _ = saved
    target = tmp_path / "pickled"
    target.mkdir()
    (target / "config.json").write_text((folder / "latent_upsampler" / "config.json").read_text())
    torch.save(load_file(folder / "latent_upsampler" / WEIGHTS), target / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError, match=r"only pickled weights \(diffusion_pytorch_model.bin\).*use_safetensors=False"):
        LTX2LatentUpsampler.from_pretrained(target)
    model, info = LTX2LatentUpsampler.from_pretrained(target, use_safetensors=False, output_loading_info=True)
    assert not any(info.values()) and not any(p.is_meta for p in model.parameters())


def test_a_folder_without_the_asked_variant_gets_diffusers_error(saved, tmp_path):
    folder, components = saved
    components["latent_upsampler"].save_pretrained(tmp_path, variant="fp16")
    with pytest.raises(OSError, match="Error no file named diffusion_pytorch_model.bin found in directory"):
        LTX2LatentUpsampler.from_pretrained(tmp_path)
    with pytest.raises(OSError, match="diffusion_pytorch_model.bf16.bin"):
        LTX2LatentUpsampler.from_pretrained(tmp_path, variant="bf16")
    loaded = LTX2LatentUpsampler.from_pretrained(tmp_path, variant="fp16")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in components["latent_upsampler"].state_dict().items())
