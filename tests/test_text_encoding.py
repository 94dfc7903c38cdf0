"""Prompt encoding with a (tiny, offline) Gemma-3: tokenization, the base-language-model path, batching, the
prompt-embedding cache, text-encoder lifetime and input validation."""

import logging

import pytest
import torch
from transformers import Gemma3TextConfig, Gemma3TextModel

from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings
from ltx2_diffusers.pipelines.text_encoding import (
    LTX2PromptEncoder,
    PromptEmbeddingCache,
    base_language_model,
    check_text_encoder,
    encode_prompt,
    text_encoder_hidden_states,
    tokenize_prompts,
)
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_text import HIDDEN, LAYERS, tiny_connectors

T = 32  # max_sequence_length in these tests (a multiple of the 8 registers)
PROMPTS = ["a fox", "a red fox jumps over the lazy dog", "Rain on a tin roof, thunder far away. Night."]


@pytest.fixture(scope="module")
def gemma():
    return tiny_gemma3(HIDDEN, LAYERS, seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_gemma_tokenizer()


@pytest.fixture(scope="module")
def connectors():
    return tiny_connectors(seed=0)


class CallCounter:
    """Counts forward calls of a module."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, kwargs_or_output, output=None):
        self.calls += 1

    def remove(self):
        self.handle.remove()


@pytest.fixture
def lm_calls(gemma):
    counter = CallCounter(gemma.model.language_model)
    yield counter
    counter.remove()


def encoder(gemma, tokenizer, connectors, **kwargs) -> LTX2PromptEncoder:
    return LTX2PromptEncoder(gemma, tokenizer, connectors, max_sequence_length=T, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Tokenization and the text encoder
# ----------------------------------------------------------------------------------------------------------------


def test_tokenization_left_pads_like_the_tokenizer_and_leaves_it_unmodified(tokenizer):
    reference = tokenizer(PROMPTS, padding="max_length", max_length=T, truncation=True, return_tensors="pt")
    right = tiny_gemma_tokenizer()
    right.padding_side = "right"
    ids, mask = tokenize_prompts(right, PROMPTS, T)
    torch.testing.assert_close(ids, reference.input_ids)
    torch.testing.assert_close(mask, reference.attention_mask)
    assert right.padding_side == "right"
    assert ids[0, -mask[0].sum()].item() == tokenizer.bos_token_id  # <bos> leads every prompt


def test_over_long_prompts_are_truncated_with_a_warning(tokenizer, caplog):
    long = "the quick brown fox " * 5  # 100 characters, one token each
    full = tokenizer(long)["input_ids"]
    with caplog.at_level(logging.WARNING):
        ids, mask = tokenize_prompts(tokenizer, [long, "short"], T)
    assert bool(mask[0].all()) and ids[0].tolist() == full[:T]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "truncated" in messages[0] and f"{len(full)} tokens" in messages[0]


def test_base_language_model_gives_all_hidden_states_without_the_lm_head(gemma, tokenizer):
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, T)
    head = CallCounter(gemma.lm_head)
    ours = text_encoder_hidden_states(base_language_model(gemma), ids, mask)
    assert head.calls == 0
    with torch.no_grad():
        full = torch.stack(gemma(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states, -1)
    head.remove()
    assert ours.shape == (3, T, HIDDEN, LAYERS + 1)
    torch.testing.assert_close(ours, full, rtol=0, atol=1e-6)


def test_base_language_model_is_found_in_every_gemma_class(gemma):
    language_model = gemma.model.language_model
    for model in (gemma, gemma.model, language_model):
        assert base_language_model(model) is language_model
    with pytest.raises(ValueError, match="must be a transformers Gemma-3 model"):
        base_language_model(torch.nn.Linear(2, 2))


def test_a_different_encoder_size_names_both_geometries(tokenizer, connectors):
    other = tiny_gemma3(hidden_size=48, num_layers=3)
    with pytest.raises(ValueError, match="hidden size 48 and 3 layers.*expect hidden size 32 and 2 layers"):
        LTX2PromptEncoder(other, tokenizer, connectors, max_sequence_length=T)
    with torch.device("meta"):  # what users try: Gemma-3-4B with the released connectors
        gemma_4b = Gemma3TextModel(Gemma3TextConfig(hidden_size=2560, num_hidden_layers=34, vocab_size=16,
                                                    intermediate_size=16, head_dim=16))
        released = LTX2TextConnectors()
    with pytest.raises(ValueError, match=r"hidden size 2560 and 34 layers.*hidden size 3840 and 48 layers \(49 "
                                         r"hidden states\) \(Gemma-3-12B"):
        check_text_encoder(gemma_4b, released)


# ----------------------------------------------------------------------------------------------------------------
# Encoding, batching and the cache
# ----------------------------------------------------------------------------------------------------------------


def test_three_prompts_in_one_batch_equal_three_single_prompt_runs(gemma, tokenizer, connectors):
    enc = encoder(gemma, tokenizer, connectors, cache_size=0)
    batched = enc.encode(PROMPTS)
    assert batched.video_embeds.shape == (3, T, HIDDEN) and batched.attention_mask.shape == (3, T)
    for i, prompt in enumerate(PROMPTS):
        single = enc.encode(prompt)
        for got, want in zip(batched, single):
            assert (got[i:i + 1] - want).abs().max().item() <= 1e-6
    assert (batched.video_embeds[0] - batched.video_embeds[1]).abs().max() > 0.1  # prompts do matter


def test_a_cache_hit_does_not_run_the_text_encoder(gemma, tokenizer, connectors, lm_calls):
    enc = encoder(gemma, tokenizer, connectors)
    first = enc.encode("a fox")
    assert lm_calls.calls == 1
    again = enc.encode("  a fox ")  # prompts are stripped before tokenization, so this is the same prompt
    assert lm_calls.calls == 1 and enc.cache.hits == 1
    for got, want in zip(again, first):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    enc.encode(["a fox", "a cat", "a cat"])  # only "a cat" is new, and it runs once
    assert lm_calls.calls == 2 and len(enc.cache) == 2
    enc.encode_prompt("a cat", negative_prompt="")  # "" is new
    enc.encode_prompt("a fox", negative_prompt="")
    assert lm_calls.calls == 3
    enc.encode("a fox", max_sequence_length=2 * T)  # the length is part of the key
    assert lm_calls.calls == 4


def test_the_cache_key_includes_the_text_encoder_and_connectors(gemma, tokenizer, connectors):
    shared = encoder(gemma, tokenizer, connectors)
    shared.encode("a fox")
    twin = tiny_gemma3(HIDDEN, LAYERS, seed=0)  # same weights, different object: must run again
    counter = CallCounter(twin.model.language_model)
    shared.set_text_encoder(twin)
    shared.encode("a fox")
    assert counter.calls == 1
    counter.remove()


def test_cache_is_a_bounded_lru():
    cache = PromptEmbeddingCache(max_entries=2)
    value = (torch.zeros(1),)
    cache.put("a", value)
    cache.put("b", value)
    assert cache.get("a") is not None  # "a" becomes the most recent
    cache.put("c", value)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    disabled = PromptEmbeddingCache(max_entries=0)
    disabled.put("a", value)
    assert len(disabled) == 0


def test_release_and_offload_keep_cached_prompts_usable(gemma, tokenizer, connectors):
    enc = encoder(gemma, tokenizer, connectors)
    cached = enc.encode("a fox")
    enc.offload_text_encoder("cpu")
    enc.release_text_encoder()
    assert enc.text_encoder is None
    torch.testing.assert_close(enc.encode("a fox").video_embeds, cached.video_embeds, rtol=0, atol=0)
    with pytest.raises(ValueError, match="set_text_encoder"):
        enc.encode("a new prompt")
    enc.set_text_encoder(gemma)
    assert enc.encode("a new prompt").video_embeds.shape == (1, T, HIDDEN)


def test_model_cpu_offload_hook_is_woken_before_the_inner_model_runs(tokenizer, connectors):
    from accelerate import cpu_offload_with_hook

    model = tiny_gemma3(HIDDEN, LAYERS, seed=0)
    model, _ = cpu_offload_with_hook(model, execution_device="cpu")
    calls = []
    original = model._hf_hook.pre_forward
    model._hf_hook.pre_forward = lambda module, *a, **k: calls.append(module) or original(module, *a, **k)
    encoder(model, tokenizer, connectors).encode("a fox")
    assert calls == [model]


# ----------------------------------------------------------------------------------------------------------------
# encode_prompt
# ----------------------------------------------------------------------------------------------------------------


def test_encode_prompt_returns_reusable_positive_and_negative_embeddings(gemma, tokenizer, connectors, lm_calls):
    enc = encoder(gemma, tokenizer, connectors)
    positive, negative = enc.encode_prompt(["a cat", "a dog"], negative_prompt="blurry", num_videos_per_prompt=2)
    assert lm_calls.calls == 1  # positive and negative prompts share one text-encoder batch
    assert isinstance(positive, LTX2TextEmbeddings) and positive.video_embeds.shape == (4, T, HIDDEN)
    torch.testing.assert_close(positive.video_embeds[0], positive.video_embeds[1], rtol=0, atol=0)
    assert (positive.video_embeds[1] - positive.video_embeds[2]).abs().max() > 0.1
    torch.testing.assert_close(negative.audio_embeds[0], negative.audio_embeds[3], rtol=0, atol=0)
    single = enc.encode("blurry")
    torch.testing.assert_close(negative.video_embeds[:1], single.video_embeds, rtol=0, atol=1e-6)

    fresh = LTX2PromptEncoder(None, None, connectors, max_sequence_length=T)  # no text encoder at all
    again, again_negative = fresh.encode_prompt(prompt_embeds=positive, negative_prompt_embeds=negative)
    torch.testing.assert_close(again.video_embeds, positive.video_embeds, rtol=0, atol=0)
    torch.testing.assert_close(again_negative.audio_embeds, negative.audio_embeds, rtol=0, atol=0)

    no_cfg = enc.encode_prompt("a cat", do_classifier_free_guidance=False)
    assert no_cfg[1] is None
    one_shot, _ = encode_prompt("a cat", gemma, tokenizer, connectors, max_sequence_length=T)
    torch.testing.assert_close(one_shot.video_embeds, no_cfg[0].video_embeds, rtol=0, atol=1e-6)
    assert one_shot.video_embeds.dtype == torch.float32


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": []}, "prompt is an empty list"),
    ({"prompt": ["a cat", 3]}, r"prompt\[1\] must be a string, got int"),
    ({"prompt": 7}, "prompt must be a string or a list of strings"),
    ({"prompt": "a cat", "max_sequence_length": 20}, "multiple of the connectors' 8 learnable registers: pass e.g. "
                                                     "24"),
    ({"prompt": ["a", "b"], "negative_prompt": ["x", "y", "z"]}, "negative_prompt has 3 entries but there are 2"),
    ({"prompt": "a", "negative_prompt": [None]}, r"negative_prompt\[0\] must be a string"),
    ({"prompt": "a", "num_videos_per_prompt": 0}, "num_videos_per_prompt must be a positive integer"),
    ({}, "exactly one of prompt and prompt_embeds"),
    ({"prompt_embeds": torch.zeros(1, T, HIDDEN)}, "prompt_embeds must be the LTX2TextEmbeddings"),
])
def test_bad_input_fails_before_the_text_encoder_runs(gemma, tokenizer, connectors, lm_calls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        encoder(gemma, tokenizer, connectors).encode_prompt(**kwargs)
    assert lm_calls.calls == 0


def test_constructor_checks_the_default_length(gemma, tokenizer, connectors):
    with pytest.raises(ValueError, match="max_sequence_length=100 must be a multiple"):
        LTX2PromptEncoder(gemma, tokenizer, connectors, max_sequence_length=100)
    with pytest.raises(ValueError, match="connectors must be an LTX2TextConnectors"):
        LTX2PromptEncoder(gemma, tokenizer, torch.nn.Linear(2, 2))
