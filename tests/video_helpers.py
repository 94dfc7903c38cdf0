"""Helpers for the video VAE / upsampler tests that need no oracle: tiny configs, seeded weights, smooth videos."""

from __future__ import annotations

import math

import torch

LATENT = 8  # latent channels; the encoder's widths start here and double: 8, 16, 32, 64, 128

# our VAE with the real LTX-2.0 block structure and tiny widths (diffusers config keys)
TINY_VAE = dict(
    latent_channels=LATENT, block_out_channels=(16, 32, 64, 128), layers_per_block=(1, 1, 1, 1, 1),
    decoder_block_out_channels=(16, 32, 64), decoder_layers_per_block=(1, 1, 1, 1),
)


def random_init_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded weights of a realistic scale; latent statistics with non-trivial means and stds."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("timestep_scale_multiplier"):
                p.fill_(1000.0)
            elif "scale_shift_table" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(math.prod(p.shape[1:])))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def statistics(channels: int = LATENT, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(channels, generator=g), 0.5 + torch.rand(channels, generator=g)


def smooth_video(batch: int = 1, frames: int = 17, height: int = 64, width: int = 96, seed: int = 3) -> torch.Tensor:
    """Low-frequency pixels in [-1, 1]: a few random sinusoids over (t, y, x)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames)[:, None, None]
    y = torch.linspace(0, 1, height)[None, :, None]
    x = torch.linspace(0, 1, width)[None, None, :]
    video = torch.zeros(batch, 3, frames, height, width)
    for b in range(batch):
        for c in range(3):
            a, fy, fx, ft, phase = torch.rand(5, generator=g).tolist()
            video[b, c] = 0.6 * a * torch.sin(2 * math.pi * (fy * y + 1.5 * fx * x + ft * t) + 6 * phase)
    return video
