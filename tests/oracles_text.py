"""Tiny text-path fixtures: random multi-layer hidden states, our connectors, and the two reference text paths
(ltx-core 1.0.0's GemmaTextEncoder + EmbeddingsProcessor, diffusers 0.42.1's LTX2TextConnectors) on shared weights."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from ltx2_diffusers.conversion.common import expected_shapes
from ltx2_diffusers.conversion.text import (
    TEXT_PROJECTION_PREFIX,
    connectors_config_from_original,
    convert_connectors_state_dict,
    original_connectors_key,
)
from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors
from ltx2_diffusers.utils.tiny_gemma import tiny_connectors_config

HIDDEN, LAYERS, REGISTERS = 32, 2, 8  # tiny Gemma: width, decoder layers (3 hidden states), registers

# ltx-core header keys that drive the connectors, at the released model's values (tiny widths)
HEADER_19B_STYLE = {
    "rope_type": "split", "frequencies_precision": "float64", "positional_embedding_theta": 10000.0,
    "connector_positional_embedding_max_pos": [4096], "connector_num_attention_heads": 2,
    "connector_attention_head_dim": 16, "caption_channels": HIDDEN,
}
# what ltx-core does when a header omits them: interleaved RoPE, float32 grid, normaliser 1; other shapes too
HEADER_LEGACY = {"connector_num_attention_heads": 4, "connector_attention_head_dim": 8, "caption_channels": HIDDEN}


def init_text_weights_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded values of a realistic scale: norm weights near 1, registers uniform in [-1, 1), small biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith(("norm_q.weight", "norm_k.weight", "q_norm.weight", "k_norm.weight")):
                p.copy_(1 + 0.1 * noise)
            elif name.endswith("learnable_registers"):
                p.copy_(torch.rand(p.shape, generator=generator) * 2 - 1)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return model


def tiny_connectors(seed: int = 0, **overrides) -> LTX2TextConnectors:
    config = {**tiny_connectors_config(HIDDEN, LAYERS, REGISTERS), **overrides}
    return init_text_weights_(LTX2TextConnectors(**config), seed).eval()


def left_padded_mask(lengths: list[int], tokens: int) -> torch.Tensor:
    mask = torch.zeros(len(lengths), tokens, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, tokens - n:] = 1
    return mask


def random_hidden_states(lengths: list[int], tokens: int, width: int = HIDDEN, states: int = LAYERS + 1,
                         seed: int = 1) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """``states`` tensors ``[B, T, width]`` with per-layer offsets and scales (the normalisation must matter), and a
    left-padded mask. Padded positions hold large garbage that must not leak into valid outputs."""
    g = torch.Generator().manual_seed(seed)
    mask = left_padded_mask(lengths, tokens)
    out = []
    for layer in range(states):
        x = torch.randn(len(lengths), tokens, width, generator=g) * (1 + layer) + 0.5 * layer
        out.append(torch.where(mask[..., None].bool(), x, torch.full_like(x, 1e3)))
    return tuple(out), mask


# ----------------------------------------------------------------------------------------------------------------
# ltx-core 1.0.0
# ----------------------------------------------------------------------------------------------------------------


def _ltx_core():
    pytest.importorskip("ltx_core", reason="the ltx-core 1.0.0 oracle is not installed (see README)")
    import ltx_core.loader  # noqa: F401  (import order: avoids ltx-core's circular import)
    from ltx_core.model.transformer.rope import LTXRopeType
    from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EMBEDDINGS_PROCESSOR_KEY_OPS
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1

    return SimpleNamespace(LTXRopeType=LTXRopeType, Embeddings1DConnector=Embeddings1DConnector,
                           EmbeddingsProcessor=EmbeddingsProcessor, FeatureExtractorV1=FeatureExtractorV1,
                           KEY_OPS=EMBEDDINGS_PROCESSOR_KEY_OPS)


def ltxcore_processor(header: dict, layers: tuple[int, int] = (2, 2), registers: int = REGISTERS,
                      states: int = LAYERS + 1, seed: int = 0) -> torch.nn.Module:
    """ltx-core's EmbeddingsProcessor (FeatureExtractorV1 + two Embeddings1DConnector), built as its configurators
    would from ``header``, with random weights."""
    lc = _ltx_core()
    rope_type = lc.LTXRopeType(header.get("rope_type", "interleaved"))

    def connector(num_layers: int) -> torch.nn.Module:
        return lc.Embeddings1DConnector(
            attention_head_dim=header["connector_attention_head_dim"],
            num_attention_heads=header["connector_num_attention_heads"], num_layers=num_layers,
            positional_embedding_theta=header.get("positional_embedding_theta", 10000.0),
            positional_embedding_max_pos=header.get("connector_positional_embedding_max_pos", [1]),
            num_learnable_registers=registers, rope_type=rope_type,
            double_precision_rope=header.get("frequencies_precision", False) == "float64",
        )

    width = header["caption_channels"]
    extractor = lc.FeatureExtractorV1(torch.nn.Linear(width * states, width, bias=False), is_av=True)
    processor = lc.EmbeddingsProcessor(feature_extractor=extractor, video_connector=connector(layers[0]),
                                       audio_connector=connector(layers[1]))
    return init_text_weights_(processor.float(), seed).eval()


def original_state_dict(processor: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The processor's weights under their single-file names (checked against ltx-core's own loader mapping)."""
    lc = _ltx_core()
    ours = {"feature_extractor.": TEXT_PROJECTION_PREFIX,  # aggregate_embed (2.0), {video,audio}_aggregate_embed
            "video_connector.": "model.diffusion_model.video_embeddings_connector.",
            "audio_connector.": "model.diffusion_model.audio_embeddings_connector."}
    original = {}
    for key, value in processor.state_dict().items():
        prefix = next(p for p in ours if key.startswith(p))
        name = ours[prefix] + key[len(prefix):]
        assert lc.KEY_OPS.apply_to_key(name) == key  # ltx-core loads this name into this tensor
        original[name] = value
    return original


def ours_from_ltxcore(processor: torch.nn.Module, header: dict) -> LTX2TextConnectors:
    """Our connectors from the processor's weights, through the single-file conversion (strict)."""
    original = original_state_dict(processor)
    ours = LTX2TextConnectors(**connectors_config_from_original(header, original)).eval()
    ours.load_state_dict(convert_connectors_state_dict(original, expected_shapes(ours)), strict=True)
    assert {original_connectors_key(k) for k in ours.state_dict()} == set(original)
    return ours


# ----------------------------------------------------------------------------------------------------------------
# diffusers 0.42.1
# ----------------------------------------------------------------------------------------------------------------


def diffusers_connectors(seed: int = 0, **overrides) -> torch.nn.Module:
    from diffusers.pipelines.ltx2 import LTX2TextConnectors as DiffusersConnectors

    config = {**tiny_connectors_config(HIDDEN, LAYERS, REGISTERS), "rope_type": "split", **overrides}
    return init_text_weights_(DiffusersConnectors(**config), seed).eval()


def diffusers_prompt_hidden_states(text_encoder, tokenizer, prompts: list[str], max_sequence_length: int):
    """diffusers' LTX2Pipeline text-encoder step (``_get_gemma_prompt_embeds``) without building a pipeline."""
    from diffusers import LTX2Pipeline

    host = SimpleNamespace(tokenizer=tokenizer, text_encoder=text_encoder, _execution_device=torch.device("cpu"))
    return LTX2Pipeline._get_gemma_prompt_embeds(host, prompts, max_sequence_length=max_sequence_length,
                                                 dtype=torch.float32)


def ltxcore_prompt_hidden_states(text_encoder, tokenizer, prompt: str, max_length: int, folder) -> tuple:
    """ltx-core's GemmaTextEncoder.encode (its own tokenizer wrapper, loaded from ``folder``): hidden states, mask."""
    _ltx_core()
    from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    tokenizer.save_pretrained(folder)
    encoder = GemmaTextEncoder(model=text_encoder, tokenizer=LTXVGemmaTokenizer(str(folder), max_length))
    with torch.no_grad():
        return encoder.encode(prompt)
