"""One stream's text connector (LTX-2.0 and LTX-2.3): register substitution, 1-D RoPE blocks, final RMSNorm.

The connector moves the valid tokens to the front (order kept) and fills every remaining position ``p`` with the
learnable register ``p mod R`` ("thinking tokens"), then runs N blocks of full self-attention (q/k RMSNorm, 1-D RoPE
over the token index, optionally a per-head output gate) and a GELU-tanh feed-forward, and a final RMSNorm. After the
substitution every token is valid, so the transformer gets an all-ones text mask.

Unlike the reference implementation, every step here is per sample, so a batch gives what one-sample runs give.

The file reads bottom-up: pure functions -> block -> connector.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FeedForward, LTX2Attention, rms_norm
from .rope import RotaryTable, rope_angles, rope_frequencies, rotary_table

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def substitute_registers(
    hidden_states: torch.Tensor, valid: torch.Tensor, registers: torch.Tensor
) -> torch.Tensor:
    """Valid tokens to the front (in order), register ``p mod R`` at every remaining position ``p``; per sample.

    Args:
        hidden_states: ``[B, T, D]`` token features.
        valid: ``[B, T]`` bool.
        registers: ``[R, D]`` learnable registers; ``T`` must be a multiple of ``R``.
    """
    batch, tokens, width = hidden_states.shape
    tiled = registers.to(hidden_states.dtype).repeat(tokens // registers.shape[0], 1)  # [T, D], row p = reg[p % R]
    # A stable sort on "is padding" lists each sample's valid positions first, in their original order.
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices  # [B, T]
    front = hidden_states.gather(1, order[..., None].expand(-1, -1, width))  # [B, T, D]
    filled = torch.arange(tokens, device=valid.device)[None] < valid.sum(dim=1, keepdim=True)  # [B, T]
    return torch.where(filled[..., None], front, tiled[None])


def connector_rotary(
    tokens: int,
    inner_dim: int,
    num_heads: int,
    max_position: float,
    theta: float,
    double_precision: bool,
    rope_type: str,
    dtype: torch.dtype,
    device: torch.device,
) -> RotaryTable:
    """1-D RoPE over the token index ``p = 0 … T−1`` (normalised ``2 p / max_position − 1``), shared by the batch.

    The connector uses the bare index, not the centre of a ``[p, p+1)`` interval as the video/audio streams do.
    """
    index = torch.arange(tokens, dtype=torch.float32, device=device)
    coords = torch.stack((index, index), dim=-1).view(1, 1, tokens, 2)  # [1, 1, T, 2] degenerate intervals
    freqs = rope_frequencies(1, inner_dim, theta, double_precision)
    angles = rope_angles(coords, (max_position,), freqs)  # [1, T, inner/2]
    return rotary_table(angles, inner_dim, num_heads, rope_type, dtype)


# ----------------------------------------------------------------------------------------------------------------
# Block and connector
# ----------------------------------------------------------------------------------------------------------------


class LTX2ConnectorBlock(nn.Module):
    """Pre-norm block: ``x += Attn(RMS(x))`` then ``x += FF(RMS(x))`` (parameter-free RMSNorms)."""

    def __init__(self, dim: int, heads: int, head_dim: int, gated_attention: bool = False, eps: float = 1e-6
                 ) -> None:
        super().__init__()
        self.eps = eps
        self.attn1 = LTX2Attention(dim, heads, head_dim, eps=eps, apply_gated_attention=gated_attention)
        self.ff = FeedForward(dim)

    def forward(
        self, hidden_states: torch.Tensor, rotary: RotaryTable, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = hidden_states + self.attn1(rms_norm(hidden_states, self.eps), attention_mask=attention_mask,
                                       rotary=rotary)
        return x + self.ff(rms_norm(x, self.eps))


class LTX2TextConnector(nn.Module):
    """One stream's connector: register substitution, ``num_layers`` blocks with 1-D RoPE, final RMSNorm.

    Its width is ``num_attention_heads * attention_head_dim`` (input and output). With
    ``num_learnable_registers=None`` no substitution happens: padded tokens are masked out as attention keys and
    zeroed in the output.
    """

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        num_layers: int,
        num_learnable_registers: int | None,
        rope_max_position: float,
        rope_theta: float,
        rope_double_precision: bool,
        rope_type: str,
        gated_attention: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.inner_dim = num_attention_heads * attention_head_dim
        self.num_attention_heads = num_attention_heads
        self.num_learnable_registers = num_learnable_registers
        self.rope_settings = (rope_max_position, rope_theta, rope_double_precision, rope_type)
        self.eps = eps
        if num_learnable_registers:
            self.learnable_registers = nn.Parameter(torch.rand(num_learnable_registers, self.inner_dim) * 2 - 1)
        else:
            self.learnable_registers = None
        self.transformer_blocks = nn.ModuleList(
            LTX2ConnectorBlock(self.inner_dim, num_attention_heads, attention_head_dim, gated_attention, eps)
            for _ in range(num_layers)
        )
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` features and ``[B, T]`` bool validity -> ``[B, T, D]`` embeddings and their validity."""
        batch, tokens, _ = hidden_states.shape
        attention_mask = None
        if self.learnable_registers is not None:
            hidden_states = substitute_registers(hidden_states, valid, self.learnable_registers)
            valid = torch.ones_like(valid)
        elif not bool(valid.all()):
            bias = (~valid).to(hidden_states.dtype) * torch.finfo(hidden_states.dtype).min
            attention_mask = bias.view(batch, 1, 1, tokens)  # [B, 1, 1, T] over keys

        max_position, theta, double_precision, rope_type = self.rope_settings
        rotary = connector_rotary(tokens, self.inner_dim, self.num_attention_heads, max_position, theta,
                                  double_precision, rope_type, hidden_states.dtype, hidden_states.device)
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, rotary, attention_mask)
            else:
                hidden_states = block(hidden_states, rotary, attention_mask)
        hidden_states = rms_norm(hidden_states, self.eps)
        if attention_mask is not None:
            hidden_states = hidden_states * valid[..., None].to(hidden_states.dtype)
        return hidden_states, valid
