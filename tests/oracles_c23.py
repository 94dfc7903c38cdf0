"""LTX-2.3 text-path fixtures: 2.3-style headers, ltx-core 1.0.0's V2 feature extractor + gated connectors built by
its own configurators, diffusers 0.42.1's 2.3 connectors, and the real-size 2.3 key lists as meta tensors."""

from __future__ import annotations

from pathlib import Path

import torch

from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors
from ltx2_diffusers.utils.tiny_gemma import tiny_ltx23_connectors_config

from .oracles_text import HIDDEN, LAYERS, REGISTERS, _ltx_core, init_text_weights_

KEYS_FILE = Path(__file__).parent / "data" / "ltx23_connectors_keys.txt"

V2_KEYS = {"caption_proj_before_connector": True, "caption_projection_first_linear": False,
           "caption_proj_input_norm": False, "caption_projection_second_linear": False}

# The text-relevant part of the reconstructed real 2.3 header's transformer block (ltx23-facts.md §2)
HEADER_23_REAL = {
    "num_layers": 48, "num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096,
    "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048,
    "caption_channels": 3840, "rope_type": "split", "frequencies_precision": "float64",
    "positional_embedding_theta": 10000.0, "connector_num_attention_heads": 32, "connector_attention_head_dim": 128,
    "connector_num_layers": 8, "audio_connector_num_attention_heads": 32, "audio_connector_attention_head_dim": 64,
    "connector_num_learnable_registers": 128, "connector_positional_embedding_max_pos": [4096],
    "connector_apply_gated_attention": True, "apply_gated_attention": True, "cross_attention_adaln": True,
    "text_encoder_norm_type": "per_token_rms", "use_embeddings_connector": True, "connector_norm_output": True,
    **V2_KEYS,
}

# diffusers' real-size 2.3 connectors config (scripts/convert_ltx2_to_diffusers.py --version 2.3)
REAL_23 = dict(
    caption_channels=3840, text_proj_in_factor=49, video_connector_num_attention_heads=32,
    video_connector_attention_head_dim=128, video_connector_num_layers=8, video_connector_num_learnable_registers=128,
    video_gated_attn=True, audio_connector_num_attention_heads=32, audio_connector_attention_head_dim=64,
    audio_connector_num_layers=8, audio_connector_num_learnable_registers=128, audio_gated_attn=True,
    connector_rope_base_seq_len=4096, rope_theta=10000.0, rope_double_precision=True, rope_type="split",
    per_modality_projections=True, video_hidden_dim=4096, audio_hidden_dim=2048, proj_bias=True,
)

# Tiny 2.3-style headers (Gemma width HIDDEN): video connector 4 x 12 = 48, audio 2 x 8 = 16, gated
HEADER_23_STYLE = {
    "num_attention_heads": 4, "attention_head_dim": 12, "audio_num_attention_heads": 2, "audio_attention_head_dim": 8,
    "caption_channels": HIDDEN, "rope_type": "split", "frequencies_precision": "float64",
    "positional_embedding_theta": 10000.0, "connector_positional_embedding_max_pos": [4096],
    "connector_num_attention_heads": 4, "connector_attention_head_dim": 12, "connector_num_layers": 2,
    "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 8,
    "connector_apply_gated_attention": True, **V2_KEYS,
}
# no audio connector keys but its own depth (the audio connector falls back to the video heads x dims), ungated,
# ltx-core's defaults for the RoPE keys (interleaved, float32 grid, normaliser 1)
HEADER_23_FALLBACKS = {
    "num_attention_heads": 4, "attention_head_dim": 12, "audio_num_attention_heads": 4, "audio_attention_head_dim": 12,
    "caption_channels": HIDDEN, "connector_num_attention_heads": 4, "connector_attention_head_dim": 12,
    "connector_num_layers": 3, "audio_connector_num_layers": 1, **V2_KEYS,
}


def ltxcore_v2_processor(header: dict, states: int = LAYERS + 1, seed: int = 0) -> torch.nn.Module:
    """ltx-core's EmbeddingsProcessor for a 2.3-style header: its own connector configurators (128 registers) and
    FeatureExtractorV2 sized as its configurator sizes it (transformer widths; Gemma width = caption_channels)."""
    lc = _ltx_core()
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

    width = header["caption_channels"]
    video_dim = header["num_attention_heads"] * header["attention_head_dim"]
    audio_dim = header["audio_num_attention_heads"] * header["audio_attention_head_dim"]
    extractor = FeatureExtractorV2(
        video_aggregate_embed=torch.nn.Linear(width * states, video_dim, bias=True), embedding_dim=width,
        audio_aggregate_embed=torch.nn.Linear(width * states, audio_dim, bias=True),
    )
    config = {"transformer": header}
    processor = lc.EmbeddingsProcessor(
        feature_extractor=extractor, video_connector=Embeddings1DConnectorConfigurator.from_config(config),
        audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(config),
    )
    return init_text_weights_(processor.float(), seed).eval()


def tiny_ltx23_connectors(seed: int = 0, **overrides) -> LTX2TextConnectors:
    config = {**tiny_ltx23_connectors_config(HIDDEN, LAYERS, REGISTERS), **overrides}
    return init_text_weights_(LTX2TextConnectors(**config), seed).eval()


def diffusers_ltx23_connectors(seed: int = 0, **overrides) -> torch.nn.Module:
    from diffusers.pipelines.ltx2 import LTX2TextConnectors as DiffusersConnectors

    config = {**tiny_ltx23_connectors_config(HIDDEN, LAYERS, REGISTERS), **overrides}
    return init_text_weights_(DiffusersConnectors(**config), seed).eval()


def real_keys(section: str) -> dict[str, torch.Tensor]:
    """One section (``ORIGINAL`` or ``DIFFUSERS``) of the real-size 2.3 connector key list, as meta tensors."""
    tensors, current = {}, None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("###"):
            current = line[3:].strip()
        elif line and not line.startswith("#") and current == section:
            name, shape = line.split("\t")
            tensors[name] = torch.empty([int(s) for s in shape.strip("[]").split(",")], device="meta")
    return tensors
