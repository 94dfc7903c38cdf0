"""A low-memory profile for :class:`~ltx2_diffusers.LTX2AudioVideoPipeline`, one switch: ``pipe.enable_low_memory()``.

What it combines (each piece is an existing diffusers or package feature; the profile only chooses them):

* the text stack (Gemma-3 and the connectors) away from the accelerator: Gemma on the CPU (``text_encoder="cpu"``),
  or with int8 weight-only quantized linear layers (``text_encoder="int8"``, needs ``torchao``) brought onto the
  accelerator only while it encodes and sent back to the CPU before denoising; ``release_text_encoder=True`` drops
  it altogether once the prompts are encoded (cached prompts keep working);
* the transformer's weights stored in fp8 (``enable_layerwise_casting``; computed in the pipeline's dtype) and
  group-offloaded block by block, with CUDA streams prefetching the next block (``enable_group_offload``);
* calls that do not choose their own tiling get a tiled refinement (:class:`TokenTiling` with
  ``refine_tile_tokens``) and a tiled, streamed VAE decode.

On a machine without an accelerator the offload is skipped (a log line says so) and the rest applies unchanged.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils import logging
from torch import nn

from .text_encoding import _free_accelerator_memory
from .token_tiling import TokenTiling

logger = logging.get_logger(__name__)

TEXT_ENCODER_MODES = ("cpu", "int8")
DEFAULT_REFINE_TILE_TOKENS = 8192
FP8_STORAGE = torch.float8_e4m3fn


@dataclass(frozen=True)
class LowMemoryProfile:
    """What :meth:`LTX2LowMemoryMixin.enable_low_memory` set up (``pipe.low_memory``)."""

    device: torch.device
    text_encoder: str
    fp8_weights: bool
    refine_tile_tokens: int
    release_text_encoder: bool
    group_offload: bool


def check_text_encoder_mode(mode: str) -> str:
    if mode not in TEXT_ENCODER_MODES:
        raise ValueError(f"text_encoder={mode!r}: pass 'cpu' (Gemma runs on the CPU in its own dtype) or 'int8' "
                         f"(int8 weight-only linear layers, run on the accelerator then sent back; needs torchao).")
    return mode


def quantize_int8_weights_(module: nn.Module) -> nn.Module:
    """Int8 weight-only quantization (per output channel) of every ``nn.Linear`` of ``module``, in place, with torchao.
    Activations stay in the module's dtype. Raises a ``ValueError`` naming the install when torchao is missing."""
    if not any(isinstance(m, nn.Linear) for m in module.modules()):
        raise ValueError(f"{type(module).__name__} has no nn.Linear layers to quantize.")
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as error:
        raise ValueError("text_encoder='int8' needs torchao: `pip install ltx2_diffusers[lowmem]` (or `pip install "
                         "torchao`), or pass text_encoder='cpu'.") from error
    quantize_(module, Int8WeightOnlyConfig())
    module._ltx2_int8_weights = True
    return module


def is_int8_quantized(module: nn.Module | None) -> bool:
    return bool(getattr(module, "_ltx2_int8_weights", False))


def storage_bytes(module: nn.Module | None) -> int:
    """Bytes of ``module``'s parameters and buffers as stored (fp8 weights count one byte per value; a quantized
    weight counts its int8 data and scales)."""
    if module is None:
        return 0
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        inner = [getattr(tensor, name) for name in getattr(tensor, "tensor_data_names", ())
                 if isinstance(getattr(tensor, name, None), torch.Tensor)]
        parts = inner or [tensor]
        total += sum(t.numel() * t.element_size() for t in parts)
    return total


def _is_accelerator(device: torch.device) -> bool:
    return device.type not in ("cpu", "meta")


class LTX2LowMemoryMixin:
    """``enable_low_memory`` for the pipeline (uses its components and diffusers' offload machinery)."""

    low_memory: LowMemoryProfile | None = None

    def enable_low_memory(
        self,
        device: torch.device | str | None = None,
        *,
        text_encoder: str = "cpu",
        fp8_weights: bool = True,
        refine_tile_tokens: int = DEFAULT_REFINE_TILE_TOKENS,
        release_text_encoder: bool = False,
        offload_hooks: bool | None = None,
    ) -> LowMemoryProfile:
        r"""Runs the pipeline in about 16 GB of accelerator memory (LTX-2 at 121 frames, 1536x1024, two stages; see
        ``BENCHMARKS.md``). Call it instead of ``pipe.to(device)`` / ``enable_model_cpu_offload``.

        Args:
            device: the accelerator (default: CUDA when available, else the CPU, where offload is skipped).
            text_encoder: ``"cpu"``: Gemma-3 stays on the CPU; ``"int8"``: its linear layers are quantized to int8
                (torchao) and it visits ``device`` only while it encodes.
            fp8_weights: store the transformer's weights in ``float8_e4m3fn`` (computed in its current dtype).
            refine_tile_tokens: video tokens per transformer call of a tiled refinement (calls that pass their own
                ``refine_tiling`` keep it).
            release_text_encoder: drop the text encoder once prompts are encoded (a new prompt then needs
                ``pipe.text_encoder = ...`` again, or a cached prompt / ``prompt_embeds``).
            offload_hooks: apply the group-offload hooks (``None``: only with an accelerator; ``True`` on a CPU
                runs them CPU-to-CPU, which only tests them).

        Returns:
            The :class:`LowMemoryProfile` (also ``pipe.low_memory``).
        """
        if self.low_memory is not None:
            raise ValueError("enable_low_memory was already called on this pipeline; build a new pipeline to change "
                             "its settings.")
        text_encoder = check_text_encoder_mode(text_encoder)
        if isinstance(refine_tile_tokens, bool) or not isinstance(refine_tile_tokens, int) or refine_tile_tokens < 1:
            raise ValueError(f"refine_tile_tokens must be a positive integer, got {refine_tile_tokens!r}.")
        for name, flag in (("fp8_weights", fp8_weights), ("release_text_encoder", release_text_encoder)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}.")
        if offload_hooks is not None and not isinstance(offload_hooks, bool):
            raise ValueError(f"offload_hooks must be None, True or False, got {offload_hooks!r}.")
        if any(hasattr(m, "_hf_hook") for m in self.components.values() if isinstance(m, nn.Module)):
            raise ValueError("enable_low_memory places the components itself: call it instead of "
                             "enable_model_cpu_offload / enable_sequential_cpu_offload, on a fresh pipeline.")
        device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        accelerator = _is_accelerator(device)
        group_offload = accelerator if offload_hooks is None else bool(offload_hooks)
        if text_encoder == "int8" and self.text_encoder is not None and not is_int8_quantized(self.text_encoder):
            quantize_int8_weights_(self.text_encoder)

        # 1. The text stack away from the accelerator
        for name in ("text_encoder", "connectors"):
            module = getattr(self, name)
            if module is not None:
                module.to("cpu")
        if text_encoder == "int8" and self.text_encoder is not None:
            from accelerate import cpu_offload_with_hook

            _, self._text_encoder_hook = cpu_offload_with_hook(self.text_encoder, execution_device=device)
        # 2. The transformer: fp8 storage, offloaded block by block
        transformer = self.transformer
        if fp8_weights:
            transformer.enable_layerwise_casting(storage_dtype=FP8_STORAGE, compute_dtype=transformer.dtype)
        if group_offload:
            transformer.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                             offload_type="block_level", num_blocks_per_group=1,
                                             use_stream=device.type == "cuda")
        else:
            transformer.to(device)
            reason = "offload_hooks=False" if accelerator else f"no accelerator (device {device})"
            logger.info("enable_low_memory: %s: group offload skipped, the transformer stays on the %s; fp8 storage, "
                        "the text-encoder placement and tiling still apply.", reason, device)
        # 3. The small components stay on the device
        for name in ("vae", "audio_vae", "vocoder", "latent_upsampler"):
            module = getattr(self, name)
            if module is not None:
                module.to(device)
        self.low_memory = LowMemoryProfile(device, text_encoder, bool(fp8_weights), refine_tile_tokens,
                                           bool(release_text_encoder), group_offload)
        _free_accelerator_memory()
        return self.low_memory

    # ------------------------------------------------------------------------------------------------------------
    # What the pipeline calls
    # ------------------------------------------------------------------------------------------------------------

    def _memory_call_defaults(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments with the profile's tiling where the call left it to the default."""
        profile = self.low_memory
        if profile is None:
            return arguments
        arguments = dict(arguments)
        if arguments.get("refine_tiling") is None:
            arguments["refine_tiling"] = TokenTiling(max_tokens=profile.refine_tile_tokens)
        if arguments.get("decode_tiling") is None:
            arguments["decode_tiling"] = True
        return arguments

    def _prompts_from_cache(self) -> bool:
        """Without a text encoder, prompts are still accepted when they may be cached: the profile released the
        encoder after caching prompts, or a disk prompt cache is enabled (a cached prompt encodes; another raises the
        prompt encoder's ``ValueError``, before any denoising)."""
        encoder = self._prompt_encoder
        released = self.low_memory is not None and self.low_memory.release_text_encoder and encoder is not None \
            and len(encoder.cache) > 0
        return released or getattr(self, "_disk_cache_settings", None) is not None

    def _after_text_encoding(self) -> None:
        """Frees the accelerator of the text encoder before denoising (or drops it: ``release_text_encoder``)."""
        profile = self.low_memory
        if profile is None:
            return
        hook = getattr(self, "_text_encoder_hook", None)
        if hook is not None:
            hook.offload()
        if profile.release_text_encoder and self.text_encoder is not None:
            if self._prompt_encoder is not None:
                self._prompt_encoder.release_text_encoder()
            self._text_encoder_hook = None
            self.register_modules(text_encoder=None)
            gc.collect()
        _free_accelerator_memory()
