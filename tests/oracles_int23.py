"""LTX-2.3 end-to-end fixtures: the real-size 2.3 single file as names and shapes (tests/data) with its reconstructed
header, a tiny original-format 2.3 single file (and x2 1.1 upsampler file) written from ltx-core 1.0.0 modules, the
ltx-core header reproducing a tiny LTX-2.3 transformer of ours, and a diffusers-format 2.3 folder saved by diffusers'
own ``LTX2Pipeline`` (the shape of shared/recipes/diffusers_tiny.py --variant 2.3)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ltx2_diffusers.conversion.transformer import TRANSFORMER_PREFIX

from .oracles import ltxcore_header, ltxcore_transformer
from .oracles_audio import ltxcore_audio_header, original_audio_state_dict, tiny_ltxcore_audio
from .oracles_c23 import ltxcore_v2_processor
from .oracles_checkpoint import split_key_list
from .oracles_t23 import LTX23_SWITCHES
from .oracles_text import HIDDEN
from .oracles_text import original_state_dict as original_text_state_dict
from .oracles_vae23 import REAL_UPSAMPLER_HEADER_23, REAL_VAE_HEADER_23, vae_header_23
from .oracles_video import LATENT, ltxcore_upsampler, ltxcore_vae, upsampler_header
from .oracles_voc23 import TINY_BWE_HEADER, ltxcore_bwe_header, tiny_ltxcore_bwe

KEYS_FILE = Path(__file__).parent / "data" / "ltx23_original_keys.txt"
MODEL_VERSION = "2.3.0"

# ----------------------------------------------------------------------------------------------------------------
# The real-size 2.3 single file (names and shapes) and its header (reference/ltx23-facts.md section 2)
# ----------------------------------------------------------------------------------------------------------------


def real_23_keys() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """(single file, x2 1.1 upsampler file): name -> shape, as ltx-core 1.0.0 loads the released 2.3 files."""
    return split_key_list(KEYS_FILE, rational_upsampler=False)


def real_23_header() -> dict:
    """The reconstructed ``config`` header of ltx-2.3-22b-dev.safetensors (every block the converter reads)."""
    transformer = ltxcore_header(
        num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096,
        audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048,
        caption_channels=3840, connector_num_attention_heads=32, connector_attention_head_dim=128,
        connector_num_layers=8, audio_connector_num_attention_heads=32, audio_connector_attention_head_dim=64,
        connector_num_learnable_registers=128, connector_positional_embedding_max_pos=[4096],
        connector_apply_gated_attention=True, text_encoder_norm_type="per_token_rms", **LTX23_SWITCHES,
    )
    del transformer["audio_in_channels"]  # the released header does not state it
    return {"transformer": transformer, "vae": copy.deepcopy(REAL_VAE_HEADER_23),
            "audio_vae": ltxcore_audio_header(), "vocoder": ltxcore_bwe_header()}


REAL_UPSAMPLER_HEADER = REAL_UPSAMPLER_HEADER_23

# ----------------------------------------------------------------------------------------------------------------
# A tiny original-format 2.3 single file written from ltx-core modules
# ----------------------------------------------------------------------------------------------------------------

AUDIO_TOKEN_WIDTH = 32  # tiny_ltxcore_audio: 2 latent channels x 64 / 4 mel bins

# 2.3 transformer block: the real switches, tiny widths (video 4 x 16, audio 2 x 16), connectors as wide as the
# streams they feed (ltx-core's configurators always build 128 registers)
TINY_TRANSFORMER_HEADER_23 = ltxcore_header(
    in_channels=LATENT, out_channels=LATENT, audio_in_channels=AUDIO_TOKEN_WIDTH,
    audio_out_channels=AUDIO_TOKEN_WIDTH, caption_channels=HIDDEN, connector_num_attention_heads=4,
    connector_attention_head_dim=16, connector_num_layers=2, audio_connector_num_attention_heads=2,
    audio_connector_attention_head_dim=16, connector_num_learnable_registers=128,
    connector_positional_embedding_max_pos=[4096], connector_apply_gated_attention=True, **LTX23_SWITCHES,
)


@dataclass
class TinyOriginal23:
    """The ltx-core modules, the single file's tensors, header and metadata."""

    transformer: torch.nn.Module
    text: torch.nn.Module
    vocoder: torch.nn.Module
    tensors: dict[str, torch.Tensor]
    header: dict
    metadata: dict[str, str]


def tiny_original_23() -> TinyOriginal23:
    transformer = ltxcore_transformer(TINY_TRANSFORMER_HEADER_23, seed=3)
    text = ltxcore_v2_processor(TINY_TRANSFORMER_HEADER_23, seed=4)
    video_header = vae_header_23(latent=LATENT)
    _, _, vae_tensors = ltxcore_vae(video_header, seed=5)
    audio_encoder, audio_decoder = tiny_ltxcore_audio(seed=6)
    vocoder = tiny_ltxcore_bwe(seed=7)
    tensors = {TRANSFORMER_PREFIX + k: v for k, v in transformer.state_dict().items()}
    tensors.update(original_text_state_dict(text))
    tensors.update(vae_tensors)
    tensors.update(original_audio_state_dict(audio_encoder, audio_decoder, vocoder))
    header = {"transformer": TINY_TRANSFORMER_HEADER_23, "vae": video_header,
              "audio_vae": ltxcore_audio_header(ch=32, z_channels=2), "vocoder": TINY_BWE_HEADER}
    return TinyOriginal23(transformer, text, vocoder, {k: v.detach().contiguous().clone() for k, v in tensors.items()},
                          header, {"model_version": MODEL_VERSION})


def write_single_file(path: Path, tensors: dict[str, torch.Tensor], header: dict | None,
                      metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file with the ``config`` header (``None``: no config entry) and further metadata entries."""
    entries = dict(metadata or {})
    if header is not None:
        entries["config"] = json.dumps(header)
    save_file(tensors, str(path), metadata=entries or None)
    return path


def tiny_upsampler_23_file(path: Path) -> tuple[torch.nn.Module, Path]:
    """An x2 1.1-layout upsampler file (``upsampler.0.*``, no rational resampler) from ltx-core's module."""
    header = upsampler_header(rational_resampler=False)
    reference = ltxcore_upsampler(header, seed=8)
    tensors = {k: v.detach().contiguous().clone() for k, v in reference.state_dict().items()}
    return reference, write_single_file(path, tensors, header)


# ----------------------------------------------------------------------------------------------------------------
# ltx-core's transformer for a tiny LTX-2.3 transformer of ours
# ----------------------------------------------------------------------------------------------------------------


def ltxcore_header_23_for(transformer: torch.nn.Module) -> dict:
    """A 2.3-style header (the real switches, split RoPE, float64 grid, A<->V gate multiplier 1000) with our
    transformer's widths."""
    c = transformer.config
    return ltxcore_header(
        num_layers=c.num_layers, num_attention_heads=c.num_attention_heads, attention_head_dim=c.attention_head_dim,
        cross_attention_dim=c.cross_attention_dim, audio_num_attention_heads=c.audio_num_attention_heads,
        audio_attention_head_dim=c.audio_attention_head_dim, audio_cross_attention_dim=c.audio_cross_attention_dim,
        in_channels=c.in_channels, out_channels=c.out_channels, audio_in_channels=c.audio_in_channels,
        audio_out_channels=c.audio_out_channels, caption_channels=c.caption_channels,
        av_ca_timestep_scale_multiplier=c.cross_attn_timestep_scale_multiplier,
        timestep_scale_multiplier=c.timestep_scale_multiplier, **LTX23_SWITCHES,
    )


# ----------------------------------------------------------------------------------------------------------------
# A diffusers-format 2.3 folder saved by diffusers itself
# ----------------------------------------------------------------------------------------------------------------


def diffusers_23_pipeline(text_encoder: torch.nn.Module, tokenizer: object, seed: int = 0) -> object:
    """diffusers' ``LTX2Pipeline`` with LTX-2.3 components at tiny widths, configured as diffusers' 2.3 converter
    configures them (gated attention and text AdaLN, per-stream projections, BWE vocoder without the first-stage
    clamp, the LTX-2 "dev" FlowMatch scheduler), random weights and STFT / mel bases."""
    import diffusers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2VocoderWithBWE

    torch.manual_seed(seed)
    width, mel_bins, audio_latent = 32, 16, 4
    audio_in = audio_latent * (mel_bins // 4)
    layers = text_encoder.config.text_config.num_hidden_layers
    connectors = LTX2TextConnectors(
        caption_channels=text_encoder.config.text_config.hidden_size, text_proj_in_factor=layers + 1,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=16, video_connector_num_layers=2,
        video_connector_num_learnable_registers=8, video_gated_attn=True, audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=2, audio_connector_num_learnable_registers=8,
        audio_gated_attn=True, connector_rope_base_seq_len=4096, rope_theta=10000.0, rope_double_precision=True,
        rope_type="split", per_modality_projections=True, video_hidden_dim=32, audio_hidden_dim=16, proj_bias=True)
    transformer = diffusers.LTX2VideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
        gated_attn=True, cross_attn_mod=True, audio_in_channels=audio_in, audio_out_channels=audio_in,
        audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16,
        audio_gated_attn=True, audio_cross_attn_mod=True, num_layers=2, caption_channels=width,
        cross_attn_timestep_scale_multiplier=1000, rope_type="split", use_prompt_embeddings=False,
        perturbed_attn=True)
    vae = diffusers.AutoencoderKLLTX2Video(
        latent_channels=8, block_out_channels=(16, 32, 64, 64), decoder_block_out_channels=(16, 32, 64),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True,) * 4, decoder_spatio_temporal_scaling=(True,) * 3,
        decoder_inject_noise=(False,) * 4, downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True,) * 3, upsample_factor=(2, 2, 2), timestep_conditioning=False,
        spatial_compression_ratio=32, temporal_compression_ratio=8)
    audio_vae = diffusers.AutoencoderKLLTX2Audio(
        base_channels=audio_in, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=audio_latent,
        mel_bins=mel_bins)
    vocoder = LTX2VocoderWithBWE(in_channels=2 * mel_bins, hidden_channels=64, bwe_hidden_channels=32,
                                 final_act_fn=None)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in vocoder.named_buffers():
            if name.startswith("mel_stft."):
                buffer.copy_(torch.rand(buffer.shape, generator=g) * 0.05)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                          base_image_seq_len=1024, max_image_seq_len=4096,
                                                          shift_terminal=0.1)
    return diffusers.LTX2Pipeline(scheduler=scheduler, vae=vae.eval(), audio_vae=audio_vae.eval(),
                                  text_encoder=text_encoder, tokenizer=tokenizer, connectors=connectors.eval(),
                                  transformer=transformer.eval(), vocoder=vocoder.eval())


__all__ = ["AUDIO_TOKEN_WIDTH", "MODEL_VERSION", "REAL_UPSAMPLER_HEADER", "TINY_TRANSFORMER_HEADER_23",
           "TinyOriginal23", "diffusers_23_pipeline", "ltxcore_header_23_for", "real_23_header", "real_23_keys",
           "tiny_original_23", "tiny_upsampler_23_file", "write_single_file"]
