"""Context parallelism of the LTX-2 dual-stream transformer on any ``torch.distributed`` process group.

``model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=N))`` (or ``ring_degree=N``) installs it;
diffusers' config class and entry point, our own plan, which covers both streams exactly:

* video tokens are split over the ranks (padded at the end of the sequence to a multiple of the group size; the
  padding never enters a softmax). Their RoPE coordinates, per-token timesteps and self-attention mask are sliced the
  same way; the forward computes the global ones first (the stream's σ, the audio defaults) and then shards.
* video self-attention runs by Ulysses (all-to-all between sequence and heads) or ring attention (keys/values passed
  round, log-sum-exp merge); video text cross-attention and audio->video attention need nothing (their keys are on
  every rank).
* the audio stream (a few hundred tokens) and the text are replicated: every rank runs them in full. The one
  attention whose keys are sharded, video->audio, merges every rank's partial result by log-sum-exp.
* the video output is gathered (padding dropped) and the audio output broadcast from the group's first rank: every
  rank returns the single-process result, so a pipeline runs unchanged on every rank.

Inference only (the collectives carry no gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig
from diffusers.utils import logging

from .context_parallel_attention import SequenceLayout, ring_attention, sharded_key_attention, ulysses_attention
from .layers import LTX2AttnProcessor
from .transformer_inputs import StreamTimestep

logger = logging.get_logger(__name__)

MODES = ("ulysses", "ring")


@dataclass(frozen=True)
class ContextParallelPlan:
    """The resolved setup: ``mode`` (``"ulysses"`` or ``"ring"``) over ``group`` of ``world`` ranks."""

    mode: str
    group: dist.ProcessGroup
    world: int
    rank: int


class ContextParallelRuntime:
    """Per-model state shared with the parallel attention processors: the plan and the current call's layout."""

    def __init__(self, plan: ContextParallelPlan) -> None:
        self.plan = plan
        self.layout: SequenceLayout | None = None

    def begin(self, video_tokens: int) -> SequenceLayout:
        """Lays out this call's ``video_tokens`` over the group (read by the processors)."""
        self.layout = SequenceLayout(video_tokens, self.plan.world, self.plan.rank)
        return self.layout

    def shard_video(
        self, hidden_states: torch.Tensor, timestep: StreamTimestep, coords: torch.Tensor,
        self_bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, StreamTimestep, torch.Tensor, torch.Tensor | None]:
        """This rank's video tokens ``[B, n, C]``, their timestep, coordinates ``[B, 3, n, 2]`` and the self-attention
        bias in the layout its attention reads (Ulysses: every padded row; ring: this rank's rows; keys: the real
        ones)."""
        layout = self.layout
        if timestep.index is not None:
            timestep = StreamTimestep(timestep.values, layout.shard(timestep.index, 1))
        elif not timestep.per_sample:
            timestep = StreamTimestep(layout.shard(timestep.values, 1))
        if self_bias is not None:
            if self.plan.mode == "ring":
                self_bias = layout.shard(self_bias, 2)  # [B, 1, n, T]
            else:
                pad = self_bias.new_zeros(*self_bias.shape[:2], layout.padded - layout.tokens, self_bias.shape[3])
                self_bias = torch.cat([self_bias, pad], dim=2)  # [B, 1, padded, T]
        return layout.shard(hidden_states, 1), timestep, layout.shard(coords, 2), self_bias

    def gather_video(self, sample: torch.Tensor) -> torch.Tensor:
        """Every rank's ``[B, n, C]`` output -> the global ``[B, T, C]`` on every rank."""
        parts = [torch.empty_like(sample) for _ in range(self.plan.world)]
        dist.all_gather(parts, sample.contiguous(), group=self.plan.group)
        return torch.cat(parts, dim=1)[:, :self.layout.tokens]

    def share_audio(self, sample: torch.Tensor) -> torch.Tensor:
        """The group's first rank's audio output on every rank (they computed the same; this makes it bit-equal)."""
        sample = sample.contiguous()
        dist.broadcast(sample, dist.get_global_rank(self.plan.group, 0), group=self.plan.group)
        return sample


# ----------------------------------------------------------------------------------------------------------------
# Attention processors
# ----------------------------------------------------------------------------------------------------------------


class LTX2ContextParallelSelfAttnProcessor(LTX2AttnProcessor):
    """Video self-attention over the sharded sequence (Ulysses or ring, as the plan says)."""

    def __init__(self, runtime: ContextParallelRuntime, backend: object = None) -> None:
        self.runtime = runtime
        self._attention_backend = backend

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
        plan, layout = self.runtime.plan, self.runtime.layout
        if plan.mode == "ring":
            return ring_attention(query, key, value, attention_mask, layout, plan.group)
        return ulysses_attention(query, key, value, attention_mask, layout, plan.group, super().attend)


class LTX2ShardedKeyAttnProcessor(LTX2AttnProcessor):
    """Video->audio attention: replicated audio queries, sharded video keys (log-sum-exp merge over the ranks)."""

    def __init__(self, runtime: ContextParallelRuntime, backend: object = None) -> None:
        self.runtime = runtime
        self._attention_backend = backend

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("the video->audio attention takes no mask under context parallelism.")
        return sharded_key_attention(query, key, value, self.runtime.layout, self.runtime.plan.group)


# ----------------------------------------------------------------------------------------------------------------
# Setup
# ----------------------------------------------------------------------------------------------------------------


def resolve_plan(config: object, num_heads: int, process_group: dist.ProcessGroup | None = None
                 ) -> ContextParallelPlan:
    """Checks diffusers' ``ContextParallelConfig`` (or a ``ParallelConfig`` holding one) against the process group
    and the video head count; ``ValueError`` saying what to pass instead."""
    if isinstance(config, ParallelConfig):
        if config.tensor_parallel_config is not None:
            raise ValueError("tensor parallelism is not implemented for this transformer; pass "
                             "config=ContextParallelConfig(ulysses_degree=N) or ContextParallelConfig(ring_degree=N).")
        config = config.context_parallel_config
    if not isinstance(config, ContextParallelConfig):
        raise ValueError(f"config must be a diffusers ContextParallelConfig, e.g. ContextParallelConfig("
                         f"ulysses_degree=N) or ContextParallelConfig(ring_degree=N); got {type(config).__name__}.")
    if config.ulysses_degree > 1 and config.ring_degree > 1:
        raise ValueError(f"ulysses_degree={config.ulysses_degree} with ring_degree={config.ring_degree} (hybrid) is "
                         f"not implemented; pass one of them, set to the group size, and leave the other at 1.")
    mode = "ulysses" if config.ulysses_degree > 1 else "ring"
    degree = max(config.ulysses_degree, config.ring_degree)
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("context parallelism needs torch.distributed: launch with torchrun (or call "
                         "torch.distributed.init_process_group, NCCL or gloo) before enable_parallelism.")
    if process_group is not None:
        group = process_group
    elif config.mesh is not None:
        group = config.mesh[mode].get_group()
    else:
        group = dist.group.WORLD
    world = dist.get_world_size(group)
    if degree != world:
        raise ValueError(f"{mode}_degree={degree} but the process group has {world} ranks; pass {mode}_degree={world} "
                         f"(or a process_group / mesh of {degree} ranks).")
    if mode == "ulysses" and num_heads % world:
        raise ValueError(f"Ulysses splits the {num_heads} video attention heads over {world} ranks, which does not "
                         f"divide; pass ContextParallelConfig(ring_degree={world}) (ring attention), or a group "
                         f"size that divides {num_heads}.")
    return ContextParallelPlan(mode, group, world, dist.get_rank(group))


def install(model: torch.nn.Module, plan: ContextParallelPlan) -> ContextParallelRuntime:
    """Puts the parallel processors on every block's video self-attention and video->audio attention."""
    runtime = ContextParallelRuntime(plan)
    for block in model.transformer_blocks:
        for name, cls in (("attn1", LTX2ContextParallelSelfAttnProcessor),
                          ("video_to_audio_attn", LTX2ShardedKeyAttnProcessor)):
            attention = getattr(block, name)
            backend = getattr(attention.processor, "_attention_backend", None)
            attention.set_processor(cls(runtime, backend))
    logger.info("context parallelism: %s over %d ranks (this is rank %d)", plan.mode, plan.world, plan.rank)
    return runtime
