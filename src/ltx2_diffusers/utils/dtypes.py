"""The weight dtypes the command line accepts, under their torch and their short names (one table for
``ltx2-diffusers generate`` and ``ltx2-diffusers convert``)."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}
