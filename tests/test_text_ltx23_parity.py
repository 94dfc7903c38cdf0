"""LTX-2.3 text-path parity: ltx-core 1.0.0 (ground truth: FeatureExtractorV2 + gated connectors built by its own
configurators from a 2.3-style header) and diffusers 0.42.1's 2.3 connectors, on identical random weights, fp32.

The references run one prompt at a time (ltx-core's register code only works for batch 1); ours runs every prompt in
one batch and must still match each of them."""

import pytest
import torch

from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors, per_token_rms_features
from ltx2_diffusers.pipelines.text_encoding import LTX2PromptEncoder
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_c23 import HEADER_23_FALLBACKS, HEADER_23_STYLE, diffusers_ltx23_connectors, ltxcore_v2_processor
from .oracles_text import (
    HIDDEN,
    LAYERS,
    diffusers_prompt_hidden_states,
    ltxcore_prompt_hidden_states,
    ours_from_ltxcore,
    random_hidden_states,
)

pytestmark = pytest.mark.parity
TOL = 1e-5
PROMPTS = ["a fox", "A red fox jumps over the lazy dog, slow motion.", "",
           "Rain on a tin roof at night; thunder rolls far away while a dog barks twice near the door." * 2]
LENGTH = 128  # ltx-core's configurators always build 128 registers

CASES = {  # header, text length, valid lengths (left padded), expected (video, audio) widths and depths
    "23-style": (HEADER_23_STYLE, 128, [1, 7, 60, 128], (48, 16), (2, 2)),
    "23-fallbacks": (HEADER_23_FALLBACKS, 256, [3, 130, 256], (48, 48), (3, 1)),
}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(CASES))
def test_ltx23_connectors_match_ltxcore_embeddings_processor(name):
    header, tokens, lengths, widths, depths = CASES[name]
    reference = ltxcore_v2_processor(header)
    ours = ours_from_ltxcore(reference, header)  # through the single-file conversion
    assert ours.embedding_dims == widths and ours.config.per_modality_projections
    assert (ours.config.video_connector_num_layers, ours.config.audio_connector_num_layers) == depths
    hidden, mask = random_hidden_states(lengths, tokens)
    with torch.no_grad():
        batched = ours(hidden, mask)
        for i in range(len(lengths)):
            ref = reference.process_hidden_states(tuple(h[i:i + 1] for h in hidden), mask[i:i + 1], "left")
            assert ref.video_encoding.abs().mean() > 0.1 and ref.audio_encoding.shape[-1] == widths[1]
            assert _max_diff(ref.video_encoding, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(ref.audio_encoding, batched.audio_embeds[i:i + 1]) <= TOL
            torch.testing.assert_close(ref.attention_mask, batched.attention_mask[i:i + 1])
    assert (batched.video_embeds[0] - batched.video_embeds[1]).abs().max() > 0.1  # the text does matter


def test_ltx23_connectors_match_diffusers_on_the_same_weights(tmp_path):
    reference = diffusers_ltx23_connectors(seed=5)
    reference.save_pretrained(tmp_path)
    ours = LTX2TextConnectors.from_pretrained(tmp_path).eval()
    hidden, mask = random_hidden_states([3, 17, 32], tokens=32)
    packed = torch.stack(hidden, dim=-1).flatten(2)  # diffusers' prompt_embeds layout
    with torch.no_grad():
        batched = ours(packed, mask)
        for i in range(3):
            video, audio, ref_mask = reference(packed[i:i + 1], mask[i:i + 1], padding_side="left")
            assert video.abs().mean() > 0.1 and audio.shape == (1, 32, 16)
            assert _max_diff(video, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(audio, batched.audio_embeds[i:i + 1]) <= TOL
            torch.testing.assert_close(ref_mask, batched.attention_mask[i:i + 1])


def test_ltx23_prompts_to_embeddings_match_ltxcore_end_to_end(tmp_path):
    """Prompt strings through ltx-core's tokenizer wrapper, GemmaTextEncoder and the V2 processor vs ours."""
    gemma, tokenizer = tiny_gemma3(HIDDEN, LAYERS, seed=2), tiny_gemma_tokenizer()
    reference = ltxcore_v2_processor(HEADER_23_STYLE, seed=4)
    ours = LTX2PromptEncoder(gemma, tokenizer, ours_from_ltxcore(reference, HEADER_23_STYLE),
                             max_sequence_length=LENGTH)
    batched = ours.encode(PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        hidden, mask = ltxcore_prompt_hidden_states(gemma, tokenizer, prompt, LENGTH, tmp_path)
        with torch.no_grad():
            ref = reference.process_hidden_states(hidden, mask, "left")
        assert _max_diff(ref.video_encoding, batched.video_embeds[i:i + 1]) <= TOL
        assert _max_diff(ref.audio_encoding, batched.audio_embeds[i:i + 1]) <= TOL


def test_ltx23_prompts_to_embeddings_match_the_diffusers_pipeline_text_path(tmp_path):
    gemma, tokenizer = tiny_gemma3(HIDDEN, LAYERS, seed=3), tiny_gemma_tokenizer()
    reference = diffusers_ltx23_connectors(seed=6)
    reference.save_pretrained(tmp_path)
    ours = LTX2PromptEncoder(gemma, tokenizer, LTX2TextConnectors.from_pretrained(tmp_path).eval(),
                             max_sequence_length=32)
    batched = ours.encode(PROMPTS)
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            packed, mask = diffusers_prompt_hidden_states(gemma, tokenizer, [prompt], 32)
            video, audio, _ = reference(packed, mask, padding_side="left")
            assert _max_diff(video, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(audio, batched.audio_embeds[i:i + 1]) <= TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_per_token_rms_features_are_bit_identical_to_both_references(dtype):
    pytest.importorskip("ltx_core")
    from diffusers.pipelines.ltx2.connectors import per_token_rms_norm
    from ltx_core.text_encoders.gemma.feature_extractor import norm_and_concat_per_token_rms

    hidden, mask = random_hidden_states([10, 64, 1], tokens=64)
    stacked = (torch.stack(hidden, dim=-1) * 0.01 + 3).to(dtype)  # [B, T, D, L]
    ours = per_token_rms_features(stacked, mask.bool())
    ltxcore = norm_and_concat_per_token_rms(stacked, mask)
    theirs = per_token_rms_norm(stacked).flatten(2)
    theirs = torch.where(mask.bool()[..., None], theirs, torch.zeros_like(theirs))
    assert ours.dtype == dtype and ours.abs().max() > 1
    torch.testing.assert_close(ours, ltxcore, rtol=0, atol=0)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
