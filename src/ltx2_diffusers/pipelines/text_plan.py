"""The text part of a generation plan: prompts or given embeddings (ours or diffusers' tensors), the negative prompt
and prompt enhancement, checked once before any model runs (pure; used by :mod:`~ltx2_diffusers.pipelines.plan`).

``prompt_embeds`` come in two forms:

* :class:`~ltx2_diffusers.models.text_connectors_ltx2.LTX2TextEmbeddings`, what our ``encode_prompt`` returns (the
  connectors' per-stream outputs, mask included);
* diffusers' form: the packed text-encoder features ``[B, T, D·(L+1)]`` that diffusers' ``encode_prompt`` returns,
  with ``prompt_attention_mask`` ``[B, T]``; the pipeline runs the connectors on them (:class:`TextFeatures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ..models.text_connectors_ltx2 import LTX2TextEmbeddings
from .arguments import as_bool, as_int, check_tensor
from .defaults import DEFAULT_NEGATIVE_PROMPT
from .text_encoding import check_max_sequence_length, check_prompts, negatives_per_prompt


class TextFeatures(NamedTuple):
    """diffusers' ``prompt_embeds``: packed text-encoder hidden states ``[B, T, D·(L+1)]`` (hidden-major, layer-minor)
    and their ``[B, T]`` attention mask (1 = token, 0 = padding)."""

    features: torch.Tensor
    attention_mask: torch.Tensor


GivenEmbeds = LTX2TextEmbeddings | TextFeatures


@dataclass(frozen=True)
class EnhancementPlan:
    """Prompt enhancement with the pipeline's Gemma-3 (as diffusers' ``enable_prompt_enhancement``): the system
    prompt, the generation settings, and the seed that makes it repeatable."""

    system_prompt: str
    max_new_tokens: int
    generation_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 10


@dataclass(frozen=True)
class TextPlan:
    """Prompts (or given embeddings) and whether the negative prompt must be encoded."""

    prompts: list[str] | None
    negative_prompts: list[str] | None
    prompt_embeds: GivenEmbeds | None
    negative_prompt_embeds: GivenEmbeds | None
    max_sequence_length: int
    needs_negative: bool
    enhancement: EnhancementPlan | None = None

    @property
    def num_prompts(self) -> int:
        if self.prompts is not None:
            return len(self.prompts)
        return embeds_batch(self.prompt_embeds)


def embeds_batch(embeds: GivenEmbeds) -> int:
    return (embeds.features if isinstance(embeds, TextFeatures) else embeds.video_embeds).shape[0]


def embeds_length(embeds: GivenEmbeds) -> int:
    return (embeds.features if isinstance(embeds, TextFeatures) else embeds.video_embeds).shape[1]


def text_plan(a: dict[str, Any], has_text_encoder: bool, register_multiple: int) -> TextPlan:
    """Prompts, given embeddings (either form, with their masks) and the text length, checked."""
    prompt, embeds, negative_embeds = a["prompt"], a["prompt_embeds"], a["negative_prompt_embeds"]
    if (prompt is None) == (embeds is None):
        raise ValueError("Pass exactly one of `prompt` and `prompt_embeds`.")
    prompts = None
    if prompt is not None:
        prompts = check_prompts(prompt)
        if not has_text_encoder:
            raise ValueError("This pipeline has no text encoder/tokenizer: pass `prompt_embeds` (from "
                             "pipe.encode_prompt with a text encoder attached) instead of `prompt`.")
    embeds = check_embeds(embeds, a["prompt_attention_mask"], "prompt_embeds", "prompt_attention_mask")
    negative_embeds = check_embeds(negative_embeds, a["negative_prompt_attention_mask"], "negative_prompt_embeds",
                                   "negative_prompt_attention_mask")
    if isinstance(embeds, TextFeatures) and isinstance(negative_embeds, TextFeatures) and \
            embeds.features.shape != negative_embeds.features.shape:
        raise ValueError(f"`prompt_embeds` {tuple(embeds.features.shape)} and `negative_prompt_embeds` "
                         f"{tuple(negative_embeds.features.shape)} must have the same shape.")
    length = check_max_sequence_length(as_int(a["max_sequence_length"], "max_sequence_length", minimum=1),
                                       register_multiple)
    given = embeds if embeds is not None else negative_embeds
    if given is not None:  # a prompt encoded beside given embeddings takes their length
        length = embeds_length(given)
    negative = a["negative_prompt"]
    negatives = None if negative is None else check_prompts(negative, "negative_prompt")
    return TextPlan(prompts, negatives, embeds, negative_embeds, length, needs_negative=False)


def check_embeds(embeds: Any, mask: Any, name: str, mask_name: str) -> GivenEmbeds | None:  # noqa: ANN401
    """Given embeddings: our :class:`LTX2TextEmbeddings`, or a diffusers feature tensor with its attention mask."""
    if embeds is None:
        if mask is not None:
            raise ValueError(f"`{mask_name}` goes with a `{name}` tensor; pass both, or neither.")
        return None
    if isinstance(embeds, LTX2TextEmbeddings):
        if mask is not None:
            raise ValueError(f"`{name}` is LTX2TextEmbeddings, which carry their own mask: drop `{mask_name}` (it "
                             f"goes with diffusers' feature tensors).")
        for part, tensor in zip(("video_embeds", "audio_embeds"), embeds[:2]):
            check_tensor(tensor, f"{name}.{part}", (None, None, None))
        return embeds
    if isinstance(embeds, torch.Tensor):
        features = check_tensor(embeds, name, (None, None, None))
        if mask is None:
            raise ValueError(f"a `{name}` tensor (diffusers' packed text-encoder features) needs its `{mask_name}` "
                             f"[{features.shape[0]}, {features.shape[1]}] (1 = token, 0 = padding), as diffusers' "
                             f"encode_prompt returns them.")
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(features.shape[:2]):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"`{mask_name}` must be a [{features.shape[0]}, {features.shape[1]}] tensor matching "
                             f"`{name}`, got {shape}.")
        if mask.is_floating_point() and not bool(torch.isfinite(mask).all()):
            raise ValueError(f"`{mask_name}` holds NaN/inf values; pass 1 for tokens and 0 for padding.")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"`{mask_name}` must hold only 0 (padding) and 1 (token).")
        return TextFeatures(features, mask)
    raise ValueError(f"`{name}` must be the LTX2TextEmbeddings that pipe.encode_text_embeddings returns, or "
                     f"diffusers' packed text-encoder features tensor [B, T, D·(L+1)] (pipe.encode_prompt) with "
                     f"`{mask_name}`; got {type(embeds).__name__}.")


def with_negative(text: TextPlan, needed: bool) -> TextPlan:
    """The plan with the negative prompts the guidance needs (the reference's default negative prompt if none)."""
    negatives, num_prompts = text.negative_prompts, text.num_prompts
    if needed and text.negative_prompt_embeds is None:
        negatives = negatives_per_prompt(negatives or [DEFAULT_NEGATIVE_PROMPT], num_prompts)
    elif needed and embeds_batch(text.negative_prompt_embeds) != num_prompts:
        raise ValueError(f"`negative_prompt_embeds` has {embeds_batch(text.negative_prompt_embeds)} rows but there "
                         f"are {num_prompts} prompts: pass one row per prompt.")
    return TextPlan(text.prompts, negatives if needed else None, text.prompt_embeds,
                    text.negative_prompt_embeds if needed else None, text.max_sequence_length, needed,
                    text.enhancement)


def with_enhancement(text: TextPlan, a: dict[str, Any], has_text_encoder: bool, has_image: bool) -> TextPlan:
    """The plan with prompt enhancement resolved: diffusers' arguments, its LTX-2 (Gemma-3) defaults."""
    settings = {k: a[k] for k in ("system_prompt", "prompt_max_new_tokens", "prompt_enhancement_kwargs")}
    seed = as_int(a["prompt_enhancement_seed"], "prompt_enhancement_seed", minimum=0)
    if not as_bool(a["enable_prompt_enhancement"], "enable_prompt_enhancement"):
        given = [k for k, v in settings.items() if v is not None]
        if given:
            raise ValueError(f"{given} act only with enable_prompt_enhancement=True; pass it, or drop them.")
        return text
    if text.prompts is None:
        raise ValueError("enable_prompt_enhancement rewrites `prompt`, but the call gives `prompt_embeds`: pass the "
                         "prompt text instead.")
    if not has_text_encoder:
        raise ValueError("prompt enhancement runs the pipeline's Gemma-3 text encoder, and this pipeline has none.")
    if has_image:
        raise ValueError("image-conditioned prompt enhancement needs Gemma-3's image processor, which this pipeline "
                         "does not load: enhance the text alone with pipe.enhance_prompt(prompt) and pass the "
                         "result as `prompt`.")
    from diffusers.pipelines.ltx2.utils import GEMMA3_PROMPT_ENHANCEMENT_CONFIG, T2V_DEFAULT_SYSTEM_PROMPT

    system = settings["system_prompt"]
    if system is None:
        system = T2V_DEFAULT_SYSTEM_PROMPT
    elif not isinstance(system, str) or not system.strip():
        raise ValueError(f"`system_prompt` must be a non-empty string, got {system!r}.")
    tokens = settings["prompt_max_new_tokens"]
    tokens = GEMMA3_PROMPT_ENHANCEMENT_CONFIG.max_new_tokens if tokens is None else as_int(
        tokens, "prompt_max_new_tokens", minimum=1)
    kwargs = settings["prompt_enhancement_kwargs"]
    if kwargs is None:
        kwargs = dict(GEMMA3_PROMPT_ENHANCEMENT_CONFIG.generation_kwargs)
    elif not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"`prompt_enhancement_kwargs` must be a dict of `generate` keyword arguments, got "
                         f"{type(kwargs).__name__}.")
    reserved = sorted(set(kwargs) & {"max_new_tokens", "input_ids", "attention_mask"})
    if reserved:
        raise ValueError(f"`prompt_enhancement_kwargs` may not set {reserved}: use prompt_max_new_tokens for the "
                         f"length; the pipeline builds the inputs.")
    enhancement = EnhancementPlan(system, tokens, dict(kwargs), seed)
    return TextPlan(text.prompts, text.negative_prompts, text.prompt_embeds, text.negative_prompt_embeds,
                    text.max_sequence_length, text.needs_negative, enhancement)
