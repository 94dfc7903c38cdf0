"""Prompt enhancement with the pipeline's own Gemma-3 (diffusers' ``enable_prompt_enhancement`` for LTX-2.0/2.3).

Each prompt becomes a chat (diffusers' / the reference's system prompt, then ``"user prompt: <prompt>"``) rendered
with the tokenizer's chat template; Gemma-3 generates the rewrite, which is cleaned as diffusers cleans it. Every
prompt is generated under ``torch.manual_seed(seed)`` inside a forked RNG, so the same seed gives the same enhanced
prompt (whatever else is in the batch) and the caller's global random state is left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.utils import logging

from .text_plan import EnhancementPlan

logger = logging.get_logger(__name__)


def enhancement_messages(prompt: str, system_prompt: str) -> list[dict[str, str]]:
    """The chat of one text-to-video enhancement (the reference's message layout)."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": f"user prompt: {prompt}"}]


@torch.no_grad()
def enhance_prompts(
    text_encoder: Any, tokenizer: Any, prompts: Sequence[str], plan: EnhancementPlan,  # noqa: ANN401
    device: torch.device,
) -> list[str]:
    """The enhanced version of each prompt (see the module docstring); ``ValueError`` when the tokenizer has no chat
    template or the model cannot generate."""
    from diffusers.pipelines.ltx2.prompt_enhancement import clean_response

    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt enhancement needs the tokenizer's chat template (Gemma-3's instruction-tuned "
                         "tokenizer has one); this tokenizer has none: set tokenizer.chat_template, or enhance "
                         "the prompt elsewhere and pass the result as `prompt`.")
    if not callable(getattr(text_encoder, "generate", None)):
        raise ValueError(f"prompt enhancement needs a text encoder that can generate (Gemma3ForConditionalGeneration "
                         f"or Gemma3ForCausalLM), got {type(text_encoder).__name__}.")
    devices = [device] if device.type == "cuda" else []
    enhanced = []
    for prompt in prompts:
        chat = tokenizer.apply_chat_template(enhancement_messages(prompt, plan.system_prompt), tokenize=False,
                                             add_generation_prompt=True)
        inputs = tokenizer(chat, return_tensors="pt", add_special_tokens=False)  # the template writes <bos>
        input_ids = inputs["input_ids"].to(device)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(plan.seed)
            generated = text_encoder.generate(input_ids=input_ids, attention_mask=inputs["attention_mask"].to(device),
                                              max_new_tokens=plan.max_new_tokens, **plan.generation_kwargs)
        text = tokenizer.decode(generated[0, input_ids.shape[1]:], skip_special_tokens=True)  # [new tokens]
        enhanced.append(clean_response(text).strip())
        logger.info("Enhanced prompt %r -> %r", prompt, enhanced[-1])
    return enhanced
