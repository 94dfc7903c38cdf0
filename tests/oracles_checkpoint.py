"""A tiny original-format LTX-2 single file (and upsampler file) built from ltx-core 1.0.0 modules with random
weights and a ``config`` header shaped like the real 19B one; and the real 19B key list as meta tensors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ltx2_diffusers.conversion.transformer import TRANSFORMER_PREFIX

from .oracles import ltxcore_header, ltxcore_transformer
from .oracles_audio import (
    ltxcore_audio_header,
    ltxcore_vocoder_header,
    original_audio_state_dict,
    tiny_ltxcore_audio,
    tiny_ltxcore_vocoder,
)
from .oracles_text import HIDDEN, ltxcore_processor
from .oracles_text import original_state_dict as original_text_state_dict
from .oracles_video import ltxcore_upsampler, ltxcore_vae, upsampler_header, vae_header

KEYS_FILE = Path(__file__).parent / "data" / "ltx2_19b_original_keys.txt"

# 19B-style transformer block (split RoPE, float64 grid, multiplier 1000) with tiny widths and connector keys
TINY_TRANSFORMER_HEADER = ltxcore_header(
    caption_channels=HIDDEN, connector_num_attention_heads=2, connector_attention_head_dim=16,
    connector_positional_embedding_max_pos=[4096], connector_num_layers=2, connector_num_learnable_registers=8,
)


@dataclass
class TinyOriginal:
    """The ltx-core modules, the single file's tensors and header."""

    transformer: torch.nn.Module
    text: torch.nn.Module
    vae_encoder: torch.nn.Module
    vae_decoder: torch.nn.Module
    audio_encoder: torch.nn.Module
    audio_decoder: torch.nn.Module
    vocoder: torch.nn.Module
    tensors: dict[str, torch.Tensor]
    header: dict


def tiny_original() -> TinyOriginal:
    transformer = ltxcore_transformer(TINY_TRANSFORMER_HEADER)
    text = ltxcore_processor(TINY_TRANSFORMER_HEADER)
    video_header = vae_header()
    vae_encoder, vae_decoder, vae_tensors = ltxcore_vae(video_header)
    audio_encoder, audio_decoder = tiny_ltxcore_audio()
    vocoder = tiny_ltxcore_vocoder()
    tensors = {TRANSFORMER_PREFIX + k: v for k, v in transformer.state_dict().items()}
    tensors.update(original_text_state_dict(text))
    tensors.update(vae_tensors)
    tensors.update(original_audio_state_dict(audio_encoder, audio_decoder, vocoder))
    header = {
        "transformer": TINY_TRANSFORMER_HEADER,
        "vae": video_header,
        "audio_vae": ltxcore_audio_header(ch=32, z_channels=2),
        "vocoder": ltxcore_vocoder_header(upsample_initial_channel=64),
    }
    return TinyOriginal(transformer, text, vae_encoder, vae_decoder, audio_encoder, audio_decoder, vocoder,
                        {k: v.detach().contiguous().clone() for k, v in tensors.items()}, header)


def write_original(path: Path, tensors: dict[str, torch.Tensor], header: dict | None) -> Path:
    save_file(tensors, str(path), metadata=None if header is None else {"config": json.dumps(header)})
    return path


def tiny_upsampler_file(path: Path, **header_overrides) -> tuple[torch.nn.Module, Path]:
    header = upsampler_header(**header_overrides)
    reference = ltxcore_upsampler(header)
    tensors = {k: v.detach().contiguous().clone() for k, v in reference.state_dict().items()}
    return reference, write_original(path, tensors, header)


# ----------------------------------------------------------------------------------------------------------------
# The real 19B key list
# ----------------------------------------------------------------------------------------------------------------


def split_key_list(path: Path, rational_upsampler: bool
                   ) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """A key-list file (``### section`` titles, then ``name<TAB>[shape]`` lines) -> (single file, upsampler file)
    name -> shape: the upsampler of the given layout, the single file without the timestep-conditioned decoder."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if line.startswith("###"):
            current = line
            sections[current] = {}
        elif "\t" in line:
            name, shape = line.split("\t")
            sections[current][name] = tuple(json.loads(shape))
    single, upsampler = {}, {}
    layout = f"rational_resampler={'true' if rational_upsampler else 'false'}"
    for title, keys in sections.items():
        if "SPATIAL UPSCALER" in title:
            if layout in title:
                upsampler.update(keys)
        elif "only if timestep_conditioning=true" not in title:
            single.update(keys)
    return single, upsampler


def real_19b_keys() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """(single file, upsampler file) name -> shape, as the 19B files hold them (decoder without timestep
    conditioning, rational-resampler upsampler), plus the file's unused statistics."""
    single, upsampler = split_key_list(KEYS_FILE, rational_upsampler=True)
    single["vae.per_channel_statistics.channel"] = (128,)
    single["vae.per_channel_statistics.mean-of-stds"] = (128,)
    return single, upsampler


def real_19b_header() -> dict:
    """The 19B ``config`` header's values (ltx-core-facts.md §1) for the blocks the converter reads."""
    transformer = ltxcore_header(
        num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096,
        audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048,
        caption_channels=3840, connector_num_attention_heads=30, connector_attention_head_dim=128,
        connector_num_layers=2, connector_num_learnable_registers=128, connector_positional_embedding_max_pos=[4096],
    )
    del transformer["audio_in_channels"]  # the 19B header does not state it
    res = [["res_x", {"num_layers": n}] for n in (4, 6, 6, 2, 2)]
    down = [["compress_space_res", {"multiplier": 2}], ["compress_time_res", {"multiplier": 2}],
            ["compress_all_res", {"multiplier": 2}], ["compress_all_res", {"multiplier": 2}]]
    encoder = [block for pair in zip(res, [*down, None]) for block in pair if block is not None]
    decoder = []
    for i in range(4):
        decoder.append(["res_x", {"num_layers": 5, "inject_noise": False}])
        if i < 3:
            decoder.append(["compress_all", {"residual": True, "multiplier": 2}])
    vae = {"dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 4,
           "norm_layer": "pixel_norm", "latent_log_var": "uniform", "causal_decoder": False,
           "timestep_conditioning": False, "decoder_base_channels": 128, "encoder_blocks": encoder,
           "decoder_blocks": decoder}
    return {"transformer": transformer, "vae": vae, "audio_vae": ltxcore_audio_header(),
            "vocoder": ltxcore_vocoder_header()}
