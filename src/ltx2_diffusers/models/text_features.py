"""The text path's feature extractors as pure functions: Gemma hidden states ``[B, T, D, L]`` -> ``[B, T, D·L]``.

Gemma-3-12B returns ``L = 49`` hidden states per token (embedding output + 48 layers) of width ``D = 3840``. Both
LTX-2 versions normalise each hidden state, zero the padded tokens and flatten hidden-major / layer-minor (feature
index ``d · L + l``); they differ in the normalisation:

* LTX-2.0 (V1): per sample and hidden state, over the valid tokens and all channels, ``8 (x − μ) / (max − min)``;
* LTX-2.3 (V2): per token and hidden state, over the channels, ``x / RMS(x)``; each stream then rescales the result
  by ``√(out_width / D)`` before its own projection (:func:`rescale_for_width`).
"""

from __future__ import annotations

import math

import torch


def normalize_text_hidden_states(
    hidden_states: torch.Tensor, valid: torch.Tensor, scale: float = 8.0, eps: float = 1e-6
) -> torch.Tensor:
    """LTX-2.0 feature normalisation: per sample and hidden state, ``scale (x − μ) / (range + eps)`` over valid tokens.

    Args:
        hidden_states: ``[B, T, D, L]`` stacked text-encoder hidden states.
        valid: ``[B, T]`` bool, True for real (non-padding) tokens.

    Returns:
        ``[B, T, D * L]`` features, hidden-major / layer-minor (index ``d * L + l``), zero at padded tokens; float32
        for half-precision inputs (the count promotes the mean), which the caller casts back, as the reference does.
    """
    batch, tokens, width, layers = hidden_states.shape
    keep = valid[:, :, None, None]  # [B, T, 1, 1]
    count = valid.sum(dim=1) * width  # [B] int64: values per hidden state
    total = hidden_states.masked_fill(~keep, 0.0).sum(dim=(1, 2), keepdim=True)  # [B, 1, 1, L]
    # eps in this denominator too, and a float32 (or wider) mean for half-precision inputs: as the reference
    mean = total / (count.view(batch, 1, 1, 1) + eps)
    low = hidden_states.masked_fill(~keep, float("inf")).amin(dim=(1, 2), keepdim=True)  # [B, 1, 1, L]
    high = hidden_states.masked_fill(~keep, float("-inf")).amax(dim=(1, 2), keepdim=True)
    normalized = scale * (hidden_states - mean) / (high - low + eps)
    return normalized.flatten(2).masked_fill(~valid[:, :, None], 0.0)  # [B, T, D * L]


def per_token_rms_features(hidden_states: torch.Tensor, valid: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LTX-2.3 feature normalisation: every token's hidden state ``l`` divided by its RMS over the ``D`` channels.

    Args:
        hidden_states: ``[B, T, D, L]`` stacked text-encoder hidden states.
        valid: ``[B, T]`` bool, True for real (non-padding) tokens.

    Returns:
        ``[B, T, D * L]`` features in the input dtype, hidden-major / layer-minor, exactly zero at padded tokens
        (whatever they held, even inf/NaN).
    """
    mean_square = torch.mean(hidden_states**2, dim=2, keepdim=True)  # [B, T, 1, L]
    normalized = (hidden_states * torch.rsqrt(mean_square + eps)).flatten(2)  # [B, T, D * L]
    return torch.where(valid[:, :, None], normalized, torch.zeros_like(normalized))


def rescale_for_width(features: torch.Tensor, out_width: int, in_width: int) -> torch.Tensor:
    """LTX-2.3's per-stream rescale before a projection to ``out_width``: ``features · √(out_width / in_width)``."""
    return features * math.sqrt(out_width / in_width)
