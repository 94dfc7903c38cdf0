"""The text side of :class:`~ltx2_diffusers.LTX2AudioVideoPipeline`: diffusers' ``encode_prompt`` (packed Gemma-3
features and masks), the connectors' cached embeddings (``encode_text_embeddings``), prompt enhancement, and the
call's text phase (prompts or given embeddings -> both streams' embeddings)."""

from __future__ import annotations

from typing import Any

import torch

from ..models.text_connectors_ltx2 import LTX2TextEmbeddings
from .defaults import DEFAULT_NEGATIVE_PROMPT
from .plan import GenerationPlan
from .prompt_enhancement import enhance_prompts
from .text_encoding import (
    DEFAULT_MAX_SEQUENCE_LENGTH,
    LTX2PromptEncoder,
    check_max_sequence_length,
    check_prompts,
    negatives_per_prompt,
    packed_text_features,
)
from .text_plan import TextFeatures, TextPlan, with_enhancement


def _per_video(t: torch.Tensor | None, num_videos_per_prompt: int, device: torch.device,
               dtype: torch.dtype | None) -> torch.Tensor | None:
    """``t`` repeated for each video of a prompt, on ``device`` (and in ``dtype`` when given)."""
    if t is None:
        return None
    t = t.repeat_interleave(num_videos_per_prompt, dim=0).to(device)
    return t if dtype is None else t.to(dtype)


class LTX2TextMixin:
    """Text encoding for the pipeline (uses its ``text_encoder``, ``tokenizer`` and ``connectors``)."""

    @property
    def prompt_encoder(self) -> LTX2PromptEncoder:
        """The prompt encoder, with its prompt-embedding cache kept across calls (rebuilt if components change)."""
        encoder = self._prompt_encoder
        if encoder is None or encoder.connectors is not self.connectors:
            encoder = self._prompt_encoder = LTX2PromptEncoder(self.text_encoder, self.tokenizer, self.connectors)
        elif self.text_encoder is not None and encoder.text_encoder is not self.text_encoder:
            encoder.set_text_encoder(self.text_encoder, self.tokenizer)
        encoder.disk_cache = self._disk_prompt_cache()  # None unless enable_prompt_cache was called
        return encoder

    def encode_prompt(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        max_sequence_length: int = 1024,
        scale_factor: int = 8,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """diffusers' ``encode_prompt``: Gemma-3's packed hidden states ``[B, T, D·(L+1)]`` and ``[B, T]`` masks for
        the prompts and (with guidance) the negative prompts, repeated ``num_videos_per_prompt`` times; the call takes
        them back as ``prompt_embeds`` / ``prompt_attention_mask`` (and the negative pair). Needs only the text
        encoder and tokenizer. With guidance and no negative prompt the negative is the reference's default one, as
        in ``__call__``. ``scale_factor`` is accepted for diffusers' signature (the connectors normalise).

        :meth:`encode_text_embeddings` returns the connectors' outputs instead (cached per prompt; reusing them skips
        the connectors too)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("encode_prompt needs the pipeline's text_encoder and tokenizer; this pipeline has none.")
        length = check_max_sequence_length(
            max_sequence_length, self.connectors.register_multiple if self.connectors is not None else 1)
        if prompt_embeds is None:
            prompts = check_prompts(prompt)
            prompt_embeds, prompt_attention_mask = packed_text_features(self.text_encoder, self.tokenizer, prompts,
                                                                        length)
        elif prompt_attention_mask is None:
            raise ValueError("prompt_embeds given without prompt_attention_mask: pass both (as encode_prompt returns "
                             "them).")
        batch = prompt_embeds.shape[0]
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negatives = negatives_per_prompt(check_prompts(
                DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt, "negative_prompt"), batch)
            negative_prompt_embeds, negative_prompt_attention_mask = packed_text_features(
                self.text_encoder, self.tokenizer, negatives, prompt_embeds.shape[1])
        device = device or self._execution_device
        prompt_embeds, negative_prompt_embeds = (_per_video(t, num_videos_per_prompt, device, dtype)
                                                 for t in (prompt_embeds, negative_prompt_embeds))
        prompt_attention_mask, negative_prompt_attention_mask = (
            _per_video(t, num_videos_per_prompt, device, None)
            for t in (prompt_attention_mask, negative_prompt_attention_mask))
        self._after_text_encoding()  # the low-memory profile frees the accelerator of the text encoder here
        # one return statement naming the call's arguments (diffusers' tests read the names from the source)
        return prompt_embeds, prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask

    def encode_text_embeddings(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: LTX2TextEmbeddings | None = None,
        negative_prompt_embeds: LTX2TextEmbeddings | None = None,
        max_sequence_length: int = 1024,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]:
        """Per-stream text embeddings, the connectors' outputs (see :meth:`LTX2PromptEncoder.encode_prompt`),
        cached per prompt; reusable as ``prompt_embeds`` (the call then skips the text encoder and the connectors).

        With guidance and no negative prompt, the negative is the reference's default one, as in ``__call__``.
        """
        if do_classifier_free_guidance and negative_prompt is None and negative_prompt_embeds is None:
            negative_prompt = DEFAULT_NEGATIVE_PROMPT
        embeds = self.prompt_encoder.encode_prompt(
            prompt, negative_prompt, do_classifier_free_guidance, num_videos_per_prompt, prompt_embeds,
            negative_prompt_embeds, max_sequence_length, device or self._execution_device, dtype,
        )
        self._after_text_encoding()  # the low-memory profile frees the accelerator of the text encoder here
        return embeds

    def enhance_prompt(
        self, prompt: str | list[str], system_prompt: str | None = None, max_new_tokens: int | None = None,
        seed: int = 10, generation_kwargs: dict[str, Any] | None = None, device: torch.device | None = None,
    ) -> list[str]:
        """Rewrites prompts with the pipeline's Gemma-3, as diffusers' ``enhance_prompt`` (text to video): diffusers'
        ``T2V_DEFAULT_SYSTEM_PROMPT`` and sampling settings by default; the same ``seed`` gives the same result."""
        arguments = dict(enable_prompt_enhancement=True, system_prompt=system_prompt,
                         prompt_max_new_tokens=max_new_tokens, prompt_enhancement_kwargs=generation_kwargs,
                         prompt_enhancement_seed=seed)
        text = TextPlan(check_prompts(prompt), None, None, None, DEFAULT_MAX_SEQUENCE_LENGTH, False)
        has_text_encoder = self.text_encoder is not None and self.tokenizer is not None
        text = with_enhancement(text, arguments, has_text_encoder, has_image=False)
        return enhance_prompts(self.text_encoder, self.tokenizer, text.prompts, text.enhancement,
                               device or self._execution_device)

    def _encode_text(self, plan: GenerationPlan, prompts: list[str] | None, device: torch.device, dtype: torch.dtype
                     ) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]:
        """Both prompts' embeddings; diffusers' feature tensors go through the connectors first."""
        t = plan.text
        given = [self._connect(e) if isinstance(e, TextFeatures) else e
                 for e in (t.prompt_embeds, t.negative_prompt_embeds)]
        return self.encode_text_embeddings(prompts, t.negative_prompts, t.needs_negative,
                                           plan.num_videos_per_prompt, *given, t.max_sequence_length, device, dtype)

    def _connect(self, given: TextFeatures) -> LTX2TextEmbeddings:
        """diffusers' packed text-encoder features ``[B, T, D·(L+1)]`` and mask -> the connectors' embeddings."""
        device = self.connectors.device
        return self.connectors(given.features.to(device), given.attention_mask.to(device))
