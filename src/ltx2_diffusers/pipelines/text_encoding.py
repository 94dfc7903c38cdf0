"""Prompt encoding for LTX-2: Gemma-3 hidden states -> :class:`LTX2TextConnectors` -> per-stream embeddings.

Steps, as the released model was trained:

1. strip each prompt, tokenize with the ``<bos>`` prefix, truncate to ``max_sequence_length`` (with a warning) and
   left-pad to exactly ``max_sequence_length`` tokens (default 1024, a multiple of the connectors' registers);
2. run only the base language model of the text encoder (no LM head, no logits) and stack all ``L + 1`` hidden
   states (embedding output first): ``[B, T, D, L + 1]``;
3. run the connectors, which give the video and audio streams' embeddings (:class:`LTX2TextEmbeddings`).

:class:`LTX2PromptEncoder` adds a prompt-embedding cache keyed by (prompt, length, text encoder, tokenizer,
connectors), so a repeated prompt (typically the negative prompt, or a re-run with a new seed) never runs Gemma again,
and lets the 24 GB text encoder be offloaded or released once the prompts are encoded.
"""

from __future__ import annotations

import gc
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from accelerate.hooks import CpuOffload
from diffusers.utils import logging
from torch import nn

from ..models.text_connectors_ltx2 import LTX2TextConnectors, LTX2TextEmbeddings

logger = logging.get_logger(__name__)

DEFAULT_MAX_SEQUENCE_LENGTH = 1024
_GEMMA_12B = (3840, 48)  # (hidden size, layers) of the released model's text encoder

# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def check_prompts(prompt: str | Sequence[str], name: str = "prompt") -> list[str]:
    """A prompt or a non-empty list of prompts -> list of stripped strings; anything else raises ``ValueError``."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"{name} must be a string or a list of strings, got {type(prompt).__name__}.")
    if len(prompts) == 0:
        raise ValueError(f"{name} is an empty list: pass at least one string (use \"\" for an empty prompt).")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"{name}[{i}] must be a string, got {type(p).__name__} ({p!r}).")
    return [p.strip() for p in prompts]


def check_max_sequence_length(max_sequence_length: int, register_multiple: int) -> int:
    """``max_sequence_length`` must be a positive multiple of the connectors' register count."""
    if isinstance(max_sequence_length, bool) or not isinstance(max_sequence_length, int) or max_sequence_length < 1:
        raise ValueError(f"max_sequence_length must be a positive integer, got {max_sequence_length!r}.")
    if max_sequence_length % register_multiple:
        suggestion = -(-max_sequence_length // register_multiple) * register_multiple
        raise ValueError(f"max_sequence_length={max_sequence_length} must be a multiple of the connectors' "
                         f"{register_multiple} learnable registers: pass e.g. {suggestion} (the model was trained "
                         f"with {DEFAULT_MAX_SEQUENCE_LENGTH}).")
    return max_sequence_length


# ----------------------------------------------------------------------------------------------------------------
# Tokenization and the text encoder
# ----------------------------------------------------------------------------------------------------------------


def negatives_per_prompt(negatives: list[str], num_prompts: int) -> list[str]:
    """One (checked) negative prompt per prompt: a single one is repeated, otherwise there must be ``num_prompts``."""
    if len(negatives) == 1:
        return negatives * num_prompts
    if len(negatives) != num_prompts:
        raise ValueError(f"negative_prompt has {len(negatives)} entries but there are {num_prompts} prompts: pass one "
                         f"negative prompt, or one per prompt.")
    return negatives


def tokenize_prompts(
    tokenizer: Any, prompts: Sequence[str], max_sequence_length: int  # noqa: ANN401
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded token ids and mask ``[B, max_sequence_length]``; longer prompts are truncated with a warning.

    The tokenizer object is not modified (its ``padding_side`` is ignored: padding is always on the left).
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("The tokenizer defines neither a pad token nor an eos token; set tokenizer.pad_token.")
    rows = tokenizer(list(prompts), add_special_tokens=True, padding=False, truncation=False)["input_ids"]
    input_ids = torch.full((len(rows), max_sequence_length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), max_sequence_length), dtype=torch.long)
    for i, ids in enumerate(rows):
        if len(ids) > max_sequence_length:
            kept = tokenizer(prompts[i], add_special_tokens=True, truncation=True,
                             max_length=max_sequence_length)["input_ids"]
            dropped = tokenizer.decode(ids[len(kept):]) if ids[:len(kept)] == kept else ""
            logger.warning(
                "Prompt %d has %d tokens but max_sequence_length is %d; it was truncated to %d tokens. "
                "Dropped text: %r", i, len(ids), max_sequence_length, len(kept), dropped,
            )
            ids = kept
        input_ids[i, max_sequence_length - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, max_sequence_length - len(ids):] = 1
    return input_ids, attention_mask


def base_language_model(text_encoder: nn.Module) -> nn.Module:
    """The decoder stack of a transformers Gemma-3 model (``Gemma3TextModel``), without LM head or vision tower."""
    for path in ("model.language_model", "language_model", "model", ""):
        module = text_encoder
        for attr in filter(None, path.split(".")):
            module = getattr(module, attr, None)
        if isinstance(module, nn.Module) and hasattr(module, "embed_tokens") and hasattr(module, "layers"):
            return module
    raise ValueError(
        f"text_encoder must be a transformers Gemma-3 model (Gemma3ForConditionalGeneration, Gemma3ForCausalLM, "
        f"Gemma3Model or Gemma3TextModel), got {type(text_encoder).__name__}."
    )


def check_text_encoder(text_encoder: nn.Module, connectors: LTX2TextConnectors) -> nn.Module:
    """Returns the base language model; raises a ``ValueError`` naming both geometries when they do not match."""
    language_model = base_language_model(text_encoder)
    config = language_model.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    expected = (connectors.config.caption_channels, connectors.num_text_encoder_layers)
    if (hidden, layers) != expected:
        released = " (Gemma-3-12B, e.g. google/gemma-3-12b-it-qat-q4_0-unquantized)" if expected == _GEMMA_12B else ""
        raise ValueError(
            f"The text encoder ({type(text_encoder).__name__}) has hidden size {hidden} and {layers} layers, but "
            f"these connectors expect hidden size {expected[0]} and {expected[1]} layers "
            f"({expected[1] + 1} hidden states){released}. The connectors were trained on that encoder's features, "
            f"so another size (Gemma-3-4B has hidden size 2560 and 34 layers) cannot be used: load the matching "
            f"text encoder, or pass precomputed prompt_embeds."
        )
    return language_model


def _wake_offloaded(text_encoder: nn.Module) -> None:
    """Runs accelerate's model-offload hook (``enable_model_cpu_offload``), which only fires on the top-level
    forward, because we call the inner language model directly."""
    hook = getattr(text_encoder, "_hf_hook", None)
    for h in getattr(hook, "hooks", (hook,)):
        if isinstance(h, CpuOffload):
            h.pre_forward(text_encoder)


def _execution_device(module: nn.Module) -> torch.device:
    device = next(module.parameters()).device
    if device.type == "meta":  # sequential offload: weights arrive per layer on the hook's device
        hook = getattr(getattr(module, "embed_tokens", module), "_hf_hook", None)
        return torch.device(getattr(hook, "execution_device", None) or "cpu")
    return device


@torch.no_grad()
def text_encoder_hidden_states(
    language_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """All hidden states of the base language model, stacked: ``[B, T, D, L + 1]`` (embedding output first)."""
    device = _execution_device(language_model)
    out = language_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                         output_hidden_states=True, use_cache=False, return_dict=True)
    return torch.stack(out.hidden_states, dim=-1)  # [B, T, D, L + 1]


@torch.no_grad()
def packed_text_features(
    text_encoder: nn.Module, tokenizer: Any, prompts: Sequence[str], max_sequence_length: int  # noqa: ANN401
) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' ``prompt_embeds`` and ``prompt_attention_mask`` for ``prompts``: the text encoder's hidden states
    packed hidden-major, layer-minor ``[B, T, D·(L+1)]`` and the ``[B, T]`` token mask (what the connectors take)."""
    language_model = base_language_model(text_encoder)
    input_ids, attention_mask = tokenize_prompts(tokenizer, prompts, max_sequence_length)
    _wake_offloaded(text_encoder)
    hidden_states = text_encoder_hidden_states(language_model, input_ids, attention_mask)  # [B, T, D, L + 1]
    return hidden_states.flatten(2), attention_mask.to(hidden_states.device)  # [B, T, D·(L+1)], [B, T]


# ----------------------------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------------------------

_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NEXT_IDENTITY = itertools.count()


def object_identity(obj: object) -> int | tuple[str, int]:
    """A number that identifies ``obj`` for as long as it lives (never reused, unlike ``id``)."""
    try:
        if obj not in _IDENTITIES:
            _IDENTITIES[obj] = next(_NEXT_IDENTITY)
        return _IDENTITIES[obj]
    except TypeError:  # not weak-referenceable
        return ("id", id(obj))


class PromptEmbeddingCache:
    """Least-recently-used store of one prompt's ``(video [T, Dv], audio [T, Da], mask [T])`` embeddings.

    Keys are ``(prompt, max_sequence_length, text encoder, tokenizer, connectors)`` identities. Changing weights in
    place (e.g. fusing a LoRA into the connectors) does not change an identity: call :meth:`clear` afterwards.

    Args:
        max_entries: prompts kept (0 disables caching).
    """

    def __init__(self, max_entries: int = 32) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}.")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: tuple) -> tuple[torch.Tensor, ...] | None:
        value = self._store.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._store.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple[torch.Tensor, ...]) -> None:
        if self.max_entries == 0:
            return
        self._store[key] = tuple(v.detach() for v in value)
        self._store.move_to_end(key)
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)

    def clear(self) -> None:
        self._store.clear()


# ----------------------------------------------------------------------------------------------------------------
# Prompt encoder
# ----------------------------------------------------------------------------------------------------------------


def check_text_embeddings(
    embeds: LTX2TextEmbeddings | Sequence[torch.Tensor], widths: tuple[int, int], name: str
) -> LTX2TextEmbeddings:
    """User-supplied embeddings -> :class:`LTX2TextEmbeddings`, or a ``ValueError`` saying what to pass.

    ``widths`` are the connectors' ``(video, audio)`` embedding widths (:attr:`LTX2TextConnectors.embedding_dims`).
    """
    video_width, audio_width = widths
    hint = (f"{name} must be the LTX2TextEmbeddings(video_embeds [B, T, {video_width}], audio_embeds [B, T, "
            f"{audio_width}], attention_mask [B, T]) returned by encode_prompt with these connectors")
    if not isinstance(embeds, (tuple, list)) or len(embeds) != 3 or not all(
            isinstance(t, torch.Tensor) for t in embeds):
        raise ValueError(f"{hint}; got {type(embeds).__name__}.")
    video, audio, mask = embeds
    if video.ndim != 3 or video.shape[-1] != video_width or audio.shape != (*video.shape[:2], audio_width) or \
            mask.shape != video.shape[:2]:
        raise ValueError(f"{hint}; got shapes {tuple(video.shape)}, {tuple(audio.shape)}, {tuple(mask.shape)}.")
    if not (video.is_floating_point() and audio.is_floating_point()) or not bool(
            torch.isfinite(video).all() & torch.isfinite(audio).all()):
        raise ValueError(f"{hint}; its video_embeds/audio_embeds must be finite floating-point tensors.")
    return LTX2TextEmbeddings(video, audio, mask)


class LTX2PromptEncoder:
    r"""Encodes prompts with a Gemma-3 text encoder and the LTX-2 text connectors, with a prompt-embedding cache.

    Args:
        text_encoder: a transformers Gemma-3 model (``Gemma3ForConditionalGeneration`` as published, or its
            ``Gemma3ForCausalLM`` / ``Gemma3Model`` / ``Gemma3TextModel`` parts). ``None`` allows cache hits and
            precomputed embeddings only.
        tokenizer: its tokenizer (``GemmaTokenizer``); not modified.
        connectors: :class:`LTX2TextConnectors`; the text encoder's hidden size and depth must match it.
        max_sequence_length: default text length (1024); a multiple of the connectors' register count.
        cache_size: prompts kept in the cache (0 disables it).
    """

    def __init__(
        self,
        text_encoder: nn.Module | None,
        tokenizer: Any,  # noqa: ANN401
        connectors: LTX2TextConnectors,
        max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
        cache_size: int = 32,
    ) -> None:
        if not isinstance(connectors, LTX2TextConnectors):
            raise ValueError(f"connectors must be an LTX2TextConnectors, got {type(connectors).__name__}.")
        self.connectors = connectors
        self.max_sequence_length = check_max_sequence_length(max_sequence_length, connectors.register_multiple)
        self.cache = PromptEmbeddingCache(cache_size)
        self.disk_cache = None  # a prompt_cache.DiskPromptCache: consulted after `cache`, written after encoding
        self.text_encoder = self._language_model = self.tokenizer = None
        self._encoder_identity = self._tokenizer_identity = None
        self.set_text_encoder(text_encoder, tokenizer)

    # ------------------------------------------------------------------------------------------------------------
    # Text-encoder lifetime
    # ------------------------------------------------------------------------------------------------------------

    def set_text_encoder(self, text_encoder: nn.Module | None, tokenizer: Any = None) -> None:  # noqa: ANN401
        """Attaches a (new) text encoder and, optionally, tokenizer; checks it against the connectors."""
        if text_encoder is not None:
            self._language_model = check_text_encoder(text_encoder, self.connectors)
            self._encoder_identity = object_identity(text_encoder)
        self.text_encoder = text_encoder
        if tokenizer is not None:
            self.tokenizer = tokenizer
            self._tokenizer_identity = object_identity(tokenizer)

    def offload_text_encoder(self, device: torch.device | str = "cpu") -> None:
        """Moves the text encoder to ``device`` (CPU by default) and frees the accelerator's cached memory."""
        if self.text_encoder is not None:
            self.text_encoder.to(device)
        _free_accelerator_memory()

    def release_text_encoder(self) -> None:
        """Drops this encoder's reference to the text encoder. Cached prompts and ``prompt_embeds`` keep working;
        a new prompt then raises until :meth:`set_text_encoder` is called. The memory is returned once no other
        object (e.g. a pipeline component) references the model."""
        self.text_encoder = self._language_model = None
        gc.collect()
        _free_accelerator_memory()

    def clear_cache(self) -> None:
        self.cache.clear()

    # ------------------------------------------------------------------------------------------------------------
    # Encoding
    # ------------------------------------------------------------------------------------------------------------

    def _key(self, prompt: str, max_sequence_length: int) -> tuple:
        return (prompt, max_sequence_length, self._encoder_identity, self._tokenizer_identity,
                object_identity(self.connectors))

    @torch.no_grad()
    def _run(self, prompts: list[str], max_sequence_length: int) -> LTX2TextEmbeddings:
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("No text encoder/tokenizer is attached (it was released or never given) and the prompt "
                             "is not cached: call set_text_encoder(...) or pass prompt_embeds.")
        input_ids, attention_mask = tokenize_prompts(self.tokenizer, prompts, max_sequence_length)
        _wake_offloaded(self.text_encoder)
        hidden_states = text_encoder_hidden_states(self._language_model, input_ids, attention_mask)
        hidden_states = hidden_states.to(self.connectors.device)
        return self.connectors(hidden_states, attention_mask.to(hidden_states.device))

    @torch.no_grad()
    def encode(
        self,
        prompt: str | Sequence[str],
        max_sequence_length: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> LTX2TextEmbeddings:
        """Embeddings of one prompt or a list of prompts; cached prompts do not run the text encoder.

        Args:
            prompt: a string or a non-empty list of strings.
            max_sequence_length: text length ``T`` (default: the encoder's, 1024).
            device / dtype: of the returned tensors (default: where and how the connectors computed them).

        Returns:
            :class:`LTX2TextEmbeddings` with ``[B, T, Dv]`` video and ``[B, T, Da]`` audio embeddings (the
            connectors' :attr:`~LTX2TextConnectors.embedding_dims`) and a ``[B, T]`` mask.
        """
        prompts = check_prompts(prompt)
        length = check_max_sequence_length(
            self.max_sequence_length if max_sequence_length is None else max_sequence_length,
            self.connectors.register_multiple,
        )
        keys = [self._key(p, length) for p in prompts]
        found = {key: self.cache.get(key) for key in dict.fromkeys(keys)}
        missing = [key for key, value in found.items() if value is None]
        if missing and self.disk_cache is not None:
            stored = {key: self.disk_cache.load(key[0], length, self.connectors.embedding_dims) for key in missing}
            for key, value in stored.items():
                if value is not None:
                    found[key] = tuple(t.to(self.connectors.device) for t in value)
                    self.cache.put(key, found[key])
            missing = [key for key in missing if stored[key] is None]
        if missing:
            fresh = self._run([key[0] for key in missing], length)
            for i, key in enumerate(missing):
                found[key] = tuple(t[i] for t in fresh)
                self.cache.put(key, found[key])
                if self.disk_cache is not None:
                    self.disk_cache.save(key[0], length, found[key])
        video, audio, mask = (torch.stack([found[key][j] for key in keys]) for j in range(3))
        video, audio = (t.to(device=device, dtype=dtype) for t in (video, audio))
        return LTX2TextEmbeddings(video, audio, mask.to(device=device))

    def encode_prompt(
        self,
        prompt: str | Sequence[str] | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: LTX2TextEmbeddings | None = None,
        negative_prompt_embeds: LTX2TextEmbeddings | None = None,
        max_sequence_length: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]:
        r"""Positive and (with guidance) negative per-stream embeddings, each ``B · num_videos_per_prompt`` rows.

        Args:
            prompt: string or list of strings; or pass ``prompt_embeds`` instead.
            negative_prompt: string (used for every prompt) or list of the prompts' length; default ``""``.
            do_classifier_free_guidance: also return negative embeddings (else ``None``).
            num_videos_per_prompt: each embedding row is repeated this many times (consecutively).
            prompt_embeds / negative_prompt_embeds: :class:`LTX2TextEmbeddings` from an earlier call; they skip
                encoding entirely.
            max_sequence_length / device / dtype: as in :meth:`encode`.

        Returns:
            ``(prompt_embeds, negative_prompt_embeds)``; pass them back as ``prompt_embeds=`` /
            ``negative_prompt_embeds=`` to reuse them.
        """
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or \
                num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}.")
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Pass exactly one of prompt and prompt_embeds.")
        widths = self.connectors.embedding_dims
        # 1. Check every input before any compute
        prompts = None
        if prompt_embeds is None:
            prompts = check_prompts(prompt)
            batch = len(prompts)
        else:
            prompt_embeds = check_text_embeddings(prompt_embeds, widths, "prompt_embeds")
            batch = prompt_embeds.video_embeds.shape[0]
        negatives = None
        if do_classifier_free_guidance:
            if negative_prompt_embeds is not None:
                negative_prompt_embeds = check_text_embeddings(negative_prompt_embeds, widths,
                                                               "negative_prompt_embeds")
            else:
                negatives = negatives_per_prompt(
                    check_prompts("" if negative_prompt is None else negative_prompt, "negative_prompt"), batch)

        # 2. Encode what is not given, positive and negative prompts in one text-encoder batch
        given = prompt_embeds if prompt_embeds is not None else negative_prompt_embeds
        if max_sequence_length is None and given is not None:  # encode the rest to the given embeddings' length
            max_sequence_length = given.video_embeds.shape[1]
        kwargs = dict(max_sequence_length=max_sequence_length, device=device, dtype=dtype)
        texts = (prompts or []) + (negatives or [])
        encoded = self.encode(texts, **kwargs) if texts else None
        split = len(prompts or [])
        positive = _rows(encoded, 0, split) if prompts else _to(prompt_embeds, device, dtype)
        negative = None
        if do_classifier_free_guidance:
            negative = _rows(encoded, split, None) if negatives else _to(negative_prompt_embeds, device, dtype)
            for field in ("video_embeds", "audio_embeds"):
                got, want = getattr(negative, field).shape, getattr(positive, field).shape
                if got != want:
                    raise ValueError(f"negative_prompt_embeds.{field} has shape {tuple(got)} but prompt_embeds."
                                     f"{field} has {tuple(want)}; they must match.")

        def repeat(e: LTX2TextEmbeddings) -> LTX2TextEmbeddings:
            return LTX2TextEmbeddings(*(t.repeat_interleave(num_videos_per_prompt, dim=0) for t in e))

        return repeat(positive), None if negative is None else repeat(negative)


def _rows(embeds: LTX2TextEmbeddings, start: int, stop: int | None) -> LTX2TextEmbeddings:
    return LTX2TextEmbeddings(*(t[start:stop] for t in embeds))


def _to(embeds: LTX2TextEmbeddings, device: torch.device | str | None, dtype: torch.dtype | None
        ) -> LTX2TextEmbeddings:
    video, audio = (t.to(device=device, dtype=dtype) for t in embeds[:2])
    return LTX2TextEmbeddings(video, audio, embeds.attention_mask.to(device=device))


def _free_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def encode_prompt(
    prompt: str | Sequence[str],
    text_encoder: nn.Module,
    tokenizer: Any,  # noqa: ANN401
    connectors: LTX2TextConnectors,
    negative_prompt: str | Sequence[str] | None = None,
    do_classifier_free_guidance: bool = True,
    num_videos_per_prompt: int = 1,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[LTX2TextEmbeddings, LTX2TextEmbeddings | None]:
    """One-shot :meth:`LTX2PromptEncoder.encode_prompt` without a cache (keep an :class:`LTX2PromptEncoder` to
    cache prompts across calls)."""
    encoder = LTX2PromptEncoder(text_encoder, tokenizer, connectors, max_sequence_length, cache_size=0)
    return encoder.encode_prompt(prompt, negative_prompt, do_classifier_free_guidance, num_videos_per_prompt,
                                 device=device, dtype=dtype)
