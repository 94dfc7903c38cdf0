"""Building blocks shared by the LTX-2 transformer and the text connectors.

Module and parameter names follow the diffusers LTX-2 file format (``to_q``, ``norm_q``, ``to_out.0``,
``ff.net.0.proj``, ``emb.timestep_embedder.linear_1`` ...): they are what the published weights are called.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn

from .rope import RotaryTable, apply_rotary

# ----------------------------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dimension."""
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


def gate_heads(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-head output gate ``2 sigmoid(logits)`` (1 at zero logits) on ``x [B, T, H * d]``; ``logits [B, T, H]``."""
    gates = 2.0 * torch.sigmoid(logits)  # [B, T, H]
    return (x.unflatten(-1, (logits.shape[-1], -1)) * gates[..., None]).flatten(-2)  # [B, T, H * d]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation ``x (1 + scale) + shift``."""
    return x * (1 + scale) + shift


def sinusoidal_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """``[N] -> [N, dim]`` float32 ``[cos, sin]`` embedding with frequencies ``exp(-ln(max_period) k / (dim/2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]  # [N, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


# ----------------------------------------------------------------------------------------------------------------
# Timestep conditioning
# ----------------------------------------------------------------------------------------------------------------


class TwoLayerMLP(nn.Module):
    """Linear -> activation -> Linear, stored as ``linear_1`` / ``linear_2``."""

    def __init__(self, in_features: int, dim: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.activation(self.linear_1(x)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class TimestepEmbedding(nn.Module):
    """Scaled timestep -> sinusoid -> MLP (the ``emb`` of an AdaLN-single)."""

    def __init__(self, dim: int, sinusoid_dim: int = 256) -> None:
        super().__init__()
        self.sinusoid_dim = sinusoid_dim
        self.timestep_embedder = TwoLayerMLP(sinusoid_dim, dim, F.silu)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.timestep_embedder(sinusoidal_embedding(t, self.sinusoid_dim).to(dtype))


class AdaLayerNormSingle(nn.Module):
    """PixArt-α AdaLN-single: one timestep embedding shared by all blocks, expanded to ``rows`` vectors of width D.

    Returns ``(modulation [N, rows, D], embedded_timestep [N, D])``.
    """

    def __init__(self, dim: int, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.emb = TimestepEmbedding(dim)
        self.linear = nn.Linear(dim, rows * dim)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb(t, dtype)  # [N, D]
        return self.linear(F.silu(embedded)).unflatten(-1, (self.rows, -1)), embedded


def text_projection(in_features: int, dim: int) -> TwoLayerMLP:
    """Text features -> stream width: Linear -> GELU(tanh) -> Linear."""
    return TwoLayerMLP(in_features, dim, gelu_tanh)


# ----------------------------------------------------------------------------------------------------------------
# Feed-forward
# ----------------------------------------------------------------------------------------------------------------


class _GeluTanhProjection(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(self.proj(x))


class FeedForward(nn.Module):
    """``D -> mult·D -> D`` with GELU(tanh); stored as ``net.0.proj`` and ``net.2``."""

    def __init__(self, dim: int, mult: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _GeluTanhProjection(dim, mult * dim, bias), nn.Identity(), nn.Linear(mult * dim, dim, bias=bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ----------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------


class LTX2AttnProcessor:
    """Computes LTX-2 attention through diffusers' attention dispatcher.

    ``model.set_attention_backend("flash")`` and the ``attention_backend`` context manager select the kernel.
    Spatio-temporal guidance (STG): ``value_only`` replaces the attention by its value path (and skips the rest); a
    ``perturbation_mask`` blends the two per sample as diffusers' ``LTX2PerturbedAttnProcessor`` does.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: LTX2Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTable | None = None,
        key_rotary: RotaryTable | None = None,
        value_only: bool = False,
        perturbation_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        value = attn.to_v(context)  # [B, S, inner]
        if value_only:  # STG on every sample: the attention map is replaced by identity
            return attn.to_out(attn.gate(value, hidden_states))

        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(context))
        if rotary is not None:
            query = apply_rotary(query, rotary)
            key = apply_rotary(key, rotary if key_rotary is None else key_rotary)

        heads = attn.heads
        out = self.attend(
            query.unflatten(-1, (heads, -1)),  # [B, T, H, d]
            key.unflatten(-1, (heads, -1)),
            value.unflatten(-1, (heads, -1)),
            attention_mask,
        ).flatten(2)  # [B, T, inner]

        if perturbation_mask is not None:  # [B, 1, 1]: 0 = value path (perturbed), 1 = attention
            out = torch.lerp(value, out, perturbation_mask.to(out.dtype))
        return attn.to_out(attn.gate(out, hidden_states))

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Scaled dot-product attention of ``[B, T, H, d]`` queries on ``[B, S, H, d]`` keys/values -> ``[B, T, H, d]``
        (context-parallel processors override this step alone)."""
        return dispatch_attention_fn(query, key, value, attn_mask=attention_mask, backend=self._attention_backend,
                                     parallel_config=self._parallel_config)


class LTX2Attention(nn.Module, AttentionModuleMixin):
    """Multi-head attention with RMSNorm over the whole q/k width, RoPE after the norms, and biases.

    Query width ``query_dim`` and key/value width ``context_dim`` may differ from the ``heads * dim_head`` inner
    width (the audio<->video attentions run at the audio width). With ``apply_gated_attention`` (LTX-2.3) each
    head's output is scaled by ``2 sigmoid(to_gate_logits(x))``, ``x`` the query input, before ``to_out``.
    """

    _default_processor_cls = LTX2AttnProcessor
    _available_processors = [LTX2AttnProcessor]

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        bias: bool = True,
        out_bias: bool = True,
        eps: float = 1e-6,
        apply_gated_attention: bool = False,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.norm_q = nn.RMSNorm(inner, eps=eps)
        self.norm_k = nn.RMSNorm(inner, eps=eps)
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim, inner, bias=bias)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim, bias=out_bias))
        self.to_gate_logits = nn.Linear(query_dim, heads, bias=True) if apply_gated_attention else None
        self.set_processor(self._default_processor_cls())

    def gate(self, out: torch.Tensor, query_input: torch.Tensor) -> torch.Tensor:
        """``out [B, T, inner]`` scaled per head by the output gate (unchanged without one)."""
        if self.to_gate_logits is None:
            return out
        return gate_heads(out, self.to_gate_logits(query_input))

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTable | None = None,
        key_rotary: RotaryTable | None = None,
        value_only: bool = False,
        perturbation_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attends ``hidden_states [B, T, query_dim]`` to ``encoder_hidden_states [B, S, context_dim]``.

        Args:
            attention_mask: additive bias broadcastable to ``[B, H, T, S]``, or ``None`` for full attention.
            rotary / key_rotary: RoPE tables for queries and keys (``key_rotary`` defaults to ``rotary``).
            value_only: spatio-temporal guidance on every sample: the value path alone, without computing the
                attention.
            perturbation_mask: ``[B, 1, 1]`` spatio-temporal guidance per sample: 0 replaces the attention by its
                value path, 1 keeps it, values between blend the two (``torch.lerp``).
        """
        return self.processor(
            self, hidden_states, encoder_hidden_states, attention_mask, rotary, key_rotary, value_only,
            perturbation_mask,
        )
