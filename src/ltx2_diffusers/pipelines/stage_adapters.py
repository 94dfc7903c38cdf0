"""LoRA adapters that act in one stage only (e.g. the distilled LoRA of the refinement stage).

The adapters stay loaded and active with the strengths the user set; while muted, every LoRA layer's scaling for
them is 0, and it is restored afterwards (also when the stage raises). Fused adapters cannot be muted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch


def check_stage_adapters(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """``names`` as a list; ``ValueError`` unless each is a loaded, active and unfused adapter of ``model``."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        return names
    loaded = list(getattr(model, "peft_config", {}) or {})
    missing = [n for n in names if n not in loaded]
    if missing:
        raise ValueError(f"stage_2_adapters names adapters that are not loaded: {missing}; loaded: {loaded}. Load "
                         f"them with pipe.load_lora_weights(path, adapter_name=...).")
    active = set(model.active_adapters())
    inactive = [n for n in names if n not in active]
    if inactive:
        raise ValueError(f"stage_2_adapters {inactive} are not active; include them in pipe.set_adapters([...]).")
    for module in _lora_layers(model):
        fused = [n for n in names if n in getattr(module, "merged_adapters", ())]
        if fused:
            raise ValueError(f"adapters {fused} are fused into the weights and cannot be limited to stage 2; call "
                             f"pipe.unfuse_lora() first.")
    return names


def _lora_layers(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    for module in model.modules():
        if isinstance(getattr(module, "scaling", None), dict) and hasattr(module, "lora_A"):
            yield module


@contextmanager
def muted_adapters(model: torch.nn.Module, names: Sequence[str]) -> Iterator[None]:
    """Within the block, the LoRA ``names`` contribute nothing to ``model``."""
    saved = []
    try:
        for module in _lora_layers(model):
            for name in names:
                if name in module.scaling:
                    saved.append((module, name, module.scaling[name]))
                    module.scaling[name] = 0.0
        yield
    finally:
        for module, name, value in saved:
            module.scaling[name] = value
