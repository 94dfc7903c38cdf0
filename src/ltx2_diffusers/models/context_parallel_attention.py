"""Exact attention over a token sequence split across the ranks of a ``torch.distributed`` process group.

Every function takes diffusers' dispatcher layout, queries/keys/values ``[B, T, H, d]``, and the
:class:`SequenceLayout` that says how the global sequence of ``tokens`` is cut: padded at its end to a multiple of
the group size, rank ``r`` holding tokens ``[r·n, (r+1)·n)``. Padded keys never enter a softmax (they are sliced
off, the layout knows where they are), so no mask is needed for them and results equal single-process attention.

* :func:`ulysses_attention`: one all-to-all turns the sequence split into a head split; each rank attends its heads
  over the whole sequence, a second all-to-all turns the result back (DeepSpeed-Ulysses).
* :func:`ring_attention`: keys/values travel round the ring while each rank attends its queries to the chunk it holds;
  partial results merge by their log-sum-exp.
* :func:`sharded_key_attention`: queries every rank holds in full (the audio stream) attending sharded keys (the
  video stream): partial results of all ranks are gathered and merged by their log-sum-exp, identically everywhere.

Inference only: the collectives here do not carry gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

# (query, key, value, additive mask or None) -> output, all [B, T, H, d]: the processor's ordinary attention kernel
AttentionKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class SequenceLayout:
    """How a sequence of ``tokens`` tokens is split over ``world`` ranks (this one is ``rank``)."""

    tokens: int
    world: int
    rank: int

    @property
    def local(self) -> int:
        """Tokens per rank, padding included: ``ceil(tokens / world)``."""
        return -(-self.tokens // self.world)

    @property
    def padded(self) -> int:
        return self.local * self.world

    def valid(self, rank: int) -> int:
        """Real (unpadded) tokens that ``rank`` holds."""
        return max(0, min(self.local, self.tokens - rank * self.local))

    def shard(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's slice of the global ``x`` along ``dim``, zero-padded at the end of the sequence."""
        start = self.rank * self.local
        piece = x.narrow(dim, min(start, x.shape[dim]), max(0, min(self.local, x.shape[dim] - start)))
        missing = self.local - piece.shape[dim]
        if missing == 0:
            return piece
        shape = list(x.shape)
        shape[dim] = missing
        return torch.cat([piece, x.new_zeros(shape)], dim=dim)


# ----------------------------------------------------------------------------------------------------------------
# Pure math: attention with its log-sum-exp, and the merge of partial results
# ----------------------------------------------------------------------------------------------------------------


def attention_with_lse(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention ``[B, T, H, d]`` and the log-sum-exp of its scaled scores ``[B, H, T]`` (float32).

    ``mask`` is an additive bias broadcastable to ``[B, H, T, S]``. Uses torch's fused kernels where they return the
    log-sum-exp (CPU flash; CUDA flash without a mask in half precision, memory-efficient otherwise), else the math.
    """
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # [B, H, T, d]
    tokens = q.shape[2]
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, attn_mask=None if mask is None else mask.to(q.dtype))
    elif q.device.type == "cuda" and mask is None and q.dtype in (torch.float16, torch.bfloat16) \
            and q.shape[-1] <= 256:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[:2]
    elif q.device.type == "cuda":
        bias = None
        if mask is not None:  # materialised, its rows padded to 16 elements as the kernel's alignment asks
            keys = k.shape[2]
            bias = torch.zeros(*q.shape[:3], keys + (-keys % 16), dtype=q.dtype, device=q.device)[..., :keys]
            bias.copy_(mask.expand(*q.shape[:3], keys))
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, bias, True)[:2]
    else:
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, H, T, S]
        if mask is not None:
            scores = scores + mask.float()
        lse = scores.logsumexp(-1)
        out = (torch.softmax(scores, dim=-1) @ v.float()).to(q.dtype)
    return out.transpose(1, 2), lse[..., :tokens].float()


def merge_partials(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Merges attention results over disjoint key sets: ``[(out [B, T, H, d], lse [B, H, T])]`` -> the result over
    their union, in float32 (the same parts in the same order give bit-identical results)."""
    lse = torch.stack([p[1] for p in parts]).logsumexp(0)  # [B, H, T]
    out = sum(p[0].float() * (p[1] - lse).exp().transpose(1, 2).unsqueeze(-1) for p in parts)  # [B, T, H, d]
    return out, lse


# ----------------------------------------------------------------------------------------------------------------
# Distributed attention
# ----------------------------------------------------------------------------------------------------------------


def _all_to_all(x: torch.Tensor, group: dist.ProcessGroup) -> torch.Tensor:
    """Chunk ``i`` of dim 0 goes to rank ``i``; chunk ``i`` of the result came from rank ``i``."""
    x = x.contiguous()
    out = torch.empty_like(x)
    dist.all_to_all_single(out, x, group=group)
    return out


def ulysses_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                      layout: SequenceLayout, group: dist.ProcessGroup, kernel: AttentionKernel) -> torch.Tensor:
    """Self-attention of the sharded sequence by head exchange.

    ``query/key/value``: this rank's ``[B, n, H, d]`` tokens (``H`` divisible by the group size). ``mask``: additive
    bias ``[B, 1, padded, tokens]`` over the global sequence (rows of every rank, padded keys left out) or ``None``.
    Returns this rank's ``[B, n, H, d]`` output.
    """
    world = layout.world
    batch, local, heads, dim = query.shape
    qkv = torch.stack([query, key, value]).view(3, batch, local, world, heads // world, dim)
    qkv = _all_to_all(qkv.permute(3, 0, 1, 2, 4, 5), group)  # [N (source rank), 3, B, n, H/N, d]
    qkv = qkv.permute(1, 2, 0, 3, 4, 5).reshape(3, batch, layout.padded, heads // world, dim)  # global order
    q, k, v = qkv.unbind(0)
    out = kernel(q, k[:, :layout.tokens], v[:, :layout.tokens], mask)  # [B, padded, H/N, d]
    out = out.reshape(batch, world, local, heads // world, dim).transpose(0, 1)  # [N (token owner), B, n, ..]
    out = _all_to_all(out, group)  # [N (head group), B, n, H/N, d]
    return out.permute(1, 2, 0, 3, 4).reshape(batch, local, heads, dim)


def ring_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                   layout: SequenceLayout, group: dist.ProcessGroup) -> torch.Tensor:
    """Self-attention of the sharded sequence with keys/values passed round the ring.

    ``query/key/value``: this rank's ``[B, n, H, d]`` tokens. ``mask``: additive bias ``[B, 1, n, tokens]`` (this
    rank's rows, every real key) or ``None``. Step ``s`` attends to the chunk of rank ``rank - s`` while the next
    chunk is in flight. Returns this rank's ``[B, n, H, d]`` output.
    """
    world, rank = layout.world, layout.rank
    send_to = dist.get_global_rank(group, (rank + 1) % world)
    receive_from = dist.get_global_rank(group, (rank - 1) % world)
    chunk = torch.stack([key, value]).contiguous()  # [2, B, n, H, d]
    parts = []
    for step in range(world):
        pending = []
        if step < world - 1:
            incoming = torch.empty_like(chunk)
            pending = dist.batch_isend_irecv([dist.P2POp(dist.isend, chunk, send_to, group),  # one NCCL group
                                              dist.P2POp(dist.irecv, incoming, receive_from, group)])
        source = (rank - step) % world
        valid = layout.valid(source)
        if valid > 0:
            columns = None if mask is None else mask[..., source * layout.local: source * layout.local + valid]
            parts.append(attention_with_lse(query, chunk[0, :, :valid], chunk[1, :, :valid], columns))
        for work in pending:
            work.wait()
        if pending:
            chunk = incoming
    return merge_partials(parts)[0].to(query.dtype)


def sharded_key_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: SequenceLayout,
                          group: dist.ProcessGroup) -> torch.Tensor:
    """Attention of full queries ``[B, T, H, d]`` (the same on every rank) to this rank's shard of the keys/values
    ``[B, n, H, d]`` of a sequence laid out by ``layout``. Returns ``[B, T, H, d]``, identical on every rank."""
    valid = layout.valid(layout.rank)
    if valid > 0:
        out, lse = attention_with_lse(query, key[:, :valid], value[:, :valid])
    else:  # this rank holds padding only; its part is left out of the merge below
        out = query.new_zeros(query.shape, dtype=torch.float32)
        lse = query.new_zeros(query.shape[0], query.shape[2], query.shape[1], dtype=torch.float32)
    outs = [torch.empty_like(out, dtype=torch.float32) for _ in range(layout.world)]
    lses = [torch.empty_like(lse) for _ in range(layout.world)]
    dist.all_gather(outs, out.float().contiguous(), group=group)
    dist.all_gather(lses, lse.contiguous(), group=group)
    parts = [(o, s) for r, (o, s) in enumerate(zip(outs, lses)) if layout.valid(r) > 0]
    return merge_partials(parts)[0].to(query.dtype)
