"""LoRA adapters that act in one stage only (e.g. the distilled LoRA of the refinement stage).

The adapters stay loaded and active with the strengths the user set; while muted, every LoRA layer's scaling for
them is 0, and it is restored afterwards (also when the stage raises). Fused adapters cannot be muted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch


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
