"""What context parallelism of the LTX-2 transformer costs per rank, from the transformer's config alone (pure).

For ``N`` ranks, ``T`` video tokens (padded to ``N·n``), video width ``D = heads · head_dim``, ``T_a`` audio tokens of
width ``D_a`` with ``H_a`` heads, ``e`` bytes per element, one sample, **bytes each rank sends**:

* Ulysses self-attention, per layer: q, k, v out and the output back, each keeping ``1/N`` local:
  ``4 · n · D · e · (N - 1) / N``;
* ring self-attention, per layer: its key/value chunk passed on ``N - 1`` times: ``2 · n · D · e · (N - 1)``;
* video->audio attention (both modes), per layer: its partial output and log-sum-exp, float32, to the ``N - 1`` others:
  ``(N - 1) · T_a · (D_a + H_a) · 4``;
* per forward: the video output gathered (``(N - 1) · n · C · e``) and the audio output broadcast from rank 0.

Memory per rank: the weights are replicated (context parallelism splits activations, not parameters); the video
activations shrink to ``n`` tokens; the self-attention buffers are Ulysses' exchanged q/k/v and output
(``4 · N·n · D/N · e``) or ring's two key/value chunks and the float32 running output (``4 · n · D · e + n · D · 4``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("ulysses", "ring")


@dataclass(frozen=True)
class ContextParallelCost:
    """Per-rank communication (bytes sent, one sample) and activation sizes of one configuration."""

    mode: str
    world: int
    video_tokens: int
    audio_tokens: int
    tokens_per_rank: int
    self_attention_bytes: int  # per layer
    video_to_audio_bytes: int  # per layer
    output_bytes: int  # per forward
    hidden_bytes: int  # one [n, D] video activation
    feed_forward_bytes: int  # the [n, 4D] feed-forward intermediate, the largest activation of a block
    attention_buffer_bytes: int  # the self-attention's communication buffers

    @property
    def layer_bytes(self) -> int:
        return self.self_attention_bytes + self.video_to_audio_bytes

    def forward_bytes(self, num_layers: int) -> int:
        """Bytes each rank sends in one forward of one sample through ``num_layers`` blocks."""
        return num_layers * self.layer_bytes + self.output_bytes


def video_tokens_for(config: Mapping[str, Any], num_frames: int, height: int, width: int) -> int:
    """Video tokens of a clip of ``num_frames`` frames at ``height × width`` pixels (the VAE's causal first frame)."""
    scale_t, scale_h, scale_w = config["vae_scale_factors"]
    if (num_frames - 1) % scale_t or height % scale_h or width % scale_w:
        raise ValueError(f"{num_frames} frames at {height}x{width} is off the latent grid; pass 8k+1 frames and "
                         f"sizes that are multiples of {scale_h} / {scale_w}.")
    return ((num_frames - 1) // scale_t + 1) * (height // scale_h) * (width // scale_w)


def context_parallel_cost(config: Mapping[str, Any], video_tokens: int, audio_tokens: int, world: int, mode: str,
                          element_bytes: int = 2) -> ContextParallelCost:
    """The cost of one sample's forward on ``world`` ranks (``mode`` ``"ulysses"`` or ``"ring"``), activations of
    ``element_bytes`` bytes (2: bf16). ``config``: the transformer's config (diffusers' keys)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if int(world) != world or world < 1:
        raise ValueError(f"world must be a positive integer, got {world!r}.")
    heads = config["num_attention_heads"]
    if mode == "ulysses" and heads % world:
        raise ValueError(f"Ulysses cannot split {heads} heads over {world} ranks; use mode='ring'.")
    e, n = element_bytes, -(-video_tokens // world)
    width = heads * config["attention_head_dim"]
    audio_width = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]
    out_channels = config.get("out_channels") or config["in_channels"]
    audio_out = config.get("audio_out_channels") or config["audio_in_channels"]
    if mode == "ulysses":
        self_attention = 4 * n * width * e * (world - 1) // world
        buffers = 4 * n * world * (width // world) * e
    else:
        self_attention = 2 * n * width * e * (world - 1)
        buffers = 4 * n * width * e + n * width * 4
    v2a = (world - 1) * audio_tokens * (audio_width + config["audio_num_attention_heads"]) * 4 if audio_tokens else 0
    output = (world - 1) * n * out_channels * e + (world - 1) * audio_tokens * audio_out * e
    return ContextParallelCost(
        mode=mode, world=world, video_tokens=video_tokens, audio_tokens=audio_tokens, tokens_per_rank=n,
        self_attention_bytes=self_attention, video_to_audio_bytes=v2a, output_bytes=output,
        hidden_bytes=n * width * e, feed_forward_bytes=4 * n * width * e, attention_buffer_bytes=buffers,
    )
