"""Text-path parity: ltx-core 1.0.0 (ground truth) and diffusers 0.42.1 on identical random weights, fp32.

The references run one prompt at a time (ltx-core's register code only works for batch 1); ours runs every prompt in
one batch and must still match each of them."""

import pytest
import torch

from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors, normalize_text_hidden_states
from ltx2_diffusers.pipelines.text_encoding import LTX2PromptEncoder
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_text import (
    HEADER_19B_STYLE,
    HEADER_LEGACY,
    HIDDEN,
    LAYERS,
    REGISTERS,
    diffusers_connectors,
    diffusers_prompt_hidden_states,
    ltxcore_processor,
    ltxcore_prompt_hidden_states,
    ours_from_ltxcore,
    random_hidden_states,
)

pytestmark = pytest.mark.parity
TOL = 1e-5
PROMPTS = ["a fox", "A red fox jumps over the lazy dog, slow motion.", "",
           "Rain on a tin roof at night; thunder rolls far away while a dog barks twice near the door."]  # truncated
LENGTH = 64

CASES = {  # header, (video layers, audio layers), registers, text length, valid lengths
    "19b-style": (HEADER_19B_STYLE, (2, 2), REGISTERS, 32, [1, 5, 19, 32]),
    "legacy-defaults": (HEADER_LEGACY, (1, 3), 16, 48, [2, 30, 48]),
}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(CASES))
def test_connectors_match_ltxcore_embeddings_processor(name):
    header, layers, registers, tokens, lengths = CASES[name]
    reference = ltxcore_processor(header, layers, registers)
    ours = ours_from_ltxcore(reference, header)
    hidden, mask = random_hidden_states(lengths, tokens)
    with torch.no_grad():
        batched = ours(hidden, mask)
        for i in range(len(lengths)):
            ref = reference.process_hidden_states(tuple(h[i:i + 1] for h in hidden), mask[i:i + 1], "left")
            assert ref.video_encoding.abs().mean() > 0.1
            assert _max_diff(ref.video_encoding, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(ref.audio_encoding, batched.audio_embeds[i:i + 1]) <= TOL
            torch.testing.assert_close(ref.attention_mask, batched.attention_mask[i:i + 1])
    assert (batched.video_embeds[0] - batched.video_embeds[1]).abs().max() > 0.1  # the text does matter


def test_connectors_match_diffusers_on_the_same_weights(tmp_path):
    reference = diffusers_connectors(seed=5)
    reference.save_pretrained(tmp_path)
    ours = LTX2TextConnectors.from_pretrained(tmp_path).eval()
    hidden, mask = random_hidden_states([3, 17, 32], tokens=32)
    packed = torch.stack(hidden, dim=-1).flatten(2)  # diffusers' prompt_embeds layout
    with torch.no_grad():
        batched = ours(packed, mask)
        for i in range(3):
            video, audio, ref_mask = reference(packed[i:i + 1], mask[i:i + 1], padding_side="left")
            assert _max_diff(video, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(audio, batched.audio_embeds[i:i + 1]) <= TOL
            torch.testing.assert_close(ref_mask, batched.attention_mask[i:i + 1])


def test_prompts_to_embeddings_match_ltxcore_end_to_end(tmp_path):
    """Prompt strings through ltx-core's tokenizer wrapper, GemmaTextEncoder and EmbeddingsProcessor vs ours."""
    gemma, tokenizer = tiny_gemma3(HIDDEN, LAYERS, seed=2), tiny_gemma_tokenizer()
    reference = ltxcore_processor(HEADER_19B_STYLE, seed=4)
    ours = LTX2PromptEncoder(gemma, tokenizer, ours_from_ltxcore(reference, HEADER_19B_STYLE),
                             max_sequence_length=LENGTH)
    batched = ours.encode(PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        hidden, mask = ltxcore_prompt_hidden_states(gemma, tokenizer, prompt, LENGTH, tmp_path)
        with torch.no_grad():
            ref = reference.process_hidden_states(hidden, mask, "left")
        assert _max_diff(ref.video_encoding, batched.video_embeds[i:i + 1]) <= TOL
        assert _max_diff(ref.audio_encoding, batched.audio_embeds[i:i + 1]) <= TOL


def test_prompts_to_embeddings_match_the_diffusers_pipeline_text_path(tmp_path):
    """diffusers' LTX2Pipeline Gemma step (full model forward, logits included) + its connectors vs ours."""
    gemma, tokenizer = tiny_gemma3(HIDDEN, LAYERS, seed=3), tiny_gemma_tokenizer()
    reference = diffusers_connectors(seed=6)
    reference.save_pretrained(tmp_path)
    ours = LTX2PromptEncoder(gemma, tokenizer, LTX2TextConnectors.from_pretrained(tmp_path).eval(),
                             max_sequence_length=LENGTH)
    batched = ours.encode(PROMPTS)
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            packed, mask = diffusers_prompt_hidden_states(gemma, tokenizer, [prompt], LENGTH)
            video, audio, _ = reference(packed, mask, padding_side="left")
            assert _max_diff(video, batched.video_embeds[i:i + 1]) <= TOL
            assert _max_diff(audio, batched.audio_embeds[i:i + 1]) <= TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_feature_normalisation_is_bit_identical_to_diffusers(dtype):
    """Including the half-precision promotion: the mean is float32 for bf16 hidden states, then cast back."""
    from diffusers.pipelines.ltx2.connectors import per_layer_masked_mean_norm

    hidden, mask = random_hidden_states([10, 64, 1], tokens=64)
    stacked = (torch.stack(hidden, dim=-1) * 0.01 + 3).to(dtype)  # [B, T, D, L], pads at 13 (garbage)
    reference = per_layer_masked_mean_norm(stacked, mask.sum(dim=-1), "cpu")
    ours = normalize_text_hidden_states(stacked, mask.bool()).to(dtype)
    assert ours.dtype == reference.dtype == dtype and ours.abs().max() > 1
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)
