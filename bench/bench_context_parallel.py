"""Context parallelism of the transformer: the cost table at real size, and a CPU correctness timing.

    python bench/bench_context_parallel.py --table           # bytes per rank, Ulysses / ring, 2 and 8 ranks
    python bench/bench_context_parallel.py --time --runs 5   # 2 gloo ranks vs 1 process, tiny model, CPU
    python bench/bench_context_parallel.py --kernels cuda     # the ring kernel (attention + log-sum-exp) vs SDPA
    python bench/bench_context_parallel.py --overhead cuda    # the parallel path on 1 rank vs the plain forward

The table is computed from the real LTX-2.0 19B config (the class defaults) by
:func:`ltx2_diffusers.models.context_parallel_cost.context_parallel_cost`, 121 frames at 24 fps, bf16. The timing is a
correctness run on 2 CPU cores (gloo over loopback), not a speed claim: multi-GPU scaling was not measured here.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.models.audio_processing import audio_latent_length
from ltx2_diffusers.models.context_parallel_cost import context_parallel_cost, video_tokens_for
from ltx2_diffusers.utils.measure import default_dtype

SIZES = {"720p (704x1280)": (704, 1280), "1080p (1088x1920)": (1088, 1920)}
FRAMES, FPS = 121, 24.0
TINY = dict(num_layers=4, num_attention_heads=8, attention_head_dim=32, cross_attention_dim=256,
            audio_num_attention_heads=4, audio_attention_head_dim=32, audio_cross_attention_dim=128,
            caption_channels=128, in_channels=64, out_channels=64, audio_in_channels=64, audio_out_channels=64)
GRID, AUDIO_TOKENS, TEXT_TOKENS = (5, 9, 13), 26, 64  # 585 video tokens: not a multiple of 2


def real_config() -> dict:
    params = inspect.signature(LTX2AudioVideoTransformer.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def table() -> str:
    config = real_config()
    layers, audio = config["num_layers"], audio_latent_length(FRAMES, FPS)
    with torch.device("meta"):  # shapes only
        weights = sum(p.numel() for p in LTX2AudioVideoTransformer(**config).parameters())
    lines = [f"Real LTX-2.0 transformer ({weights / 1e9:.2f} B parameters, {weights * 2 / 2**30:.1f} GiB in bf16 on "
             f"every rank), {FRAMES} frames, {audio} audio tokens, bf16, one sample. Bytes each rank sends "
             f"(MiB); the default guidance runs 4 samples per step (cond + uncond batched, STG, isolated).", "",
             "| size | video tokens | mode | ranks | tokens / rank | self-attn / layer | V->A / layer | per forward "
             "(48 layers) | per step (x4) | hidden / rank | FFN / rank | attn buffers / rank |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size, (height, width) in SIZES.items():
        tokens = video_tokens_for(config, FRAMES, height, width)
        for mode in ("ulysses", "ring"):
            for world in (2, 8):
                c = context_parallel_cost(config, tokens, audio, world, mode)
                forward = c.forward_bytes(layers)
                lines.append(
                    f"| {size} | {tokens:,} | {mode} | {world} | {c.tokens_per_rank:,} "
                    f"| {mib(c.self_attention_bytes)} | {mib(c.video_to_audio_bytes)} | {mib(forward)} "
                    f"| {mib(4 * forward)} | {mib(c.hidden_bytes)} "
                    f"| {mib(c.feed_forward_bytes)} | {mib(c.attention_buffer_bytes)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# CPU timing: 2 gloo ranks vs 1 process
# ----------------------------------------------------------------------------------------------------------------


def _model() -> LTX2AudioVideoTransformer:
    torch.manual_seed(0)
    return LTX2AudioVideoTransformer(**TINY).eval()


def _inputs() -> dict:
    g = torch.Generator().manual_seed(1)
    tokens = GRID[0] * GRID[1] * GRID[2]
    return dict(hidden_states=torch.randn(2, tokens, 64, generator=g),
                audio_hidden_states=torch.randn(2, AUDIO_TOKENS, 64, generator=g),
                encoder_hidden_states=torch.randn(2, TEXT_TOKENS, 128, generator=g),
                audio_encoder_hidden_states=torch.randn(2, TEXT_TOKENS, 128, generator=g),
                timestep=torch.tensor([600.0, 600.0]), num_frames=GRID[0], height=GRID[1], width=GRID[2],
                use_cross_timestep=True, return_dict=False)


def _time(model: LTX2AudioVideoTransformer, runs: int, barrier: bool) -> tuple[float, torch.Tensor]:
    kwargs, seconds = _inputs(), []
    with torch.no_grad():
        out = model(**kwargs)[0]
        for _ in range(runs):
            if barrier:
                dist.barrier()
            start = time.perf_counter()
            model(**kwargs)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def _rank(rank: int, world: int, port: int, mode: str, runs: int, out_dir: str) -> None:
    from diffusers import ContextParallelConfig

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = _model()
    model.enable_parallelism(config=ContextParallelConfig(**{f"{mode}_degree": world}))
    seconds, out = _time(model, runs, barrier=True)
    if rank == 0:
        torch.save({"seconds": seconds, "out": out}, Path(out_dir) / f"{mode}.pt")
    dist.destroy_process_group()


def timing(runs: int) -> str:
    import socket
    import tempfile

    torch.set_num_threads(1)
    single, reference = _time(_model(), runs, barrier=False)
    lines = [f"Tiny transformer ({TINY['num_layers']} blocks, 8 x 32 video / 4 x 32 audio heads), batch 2, "
             f"{GRID[0] * GRID[1] * GRID[2]} video + {AUDIO_TOKENS} audio tokens, fp32, 1 thread per process, median "
             f"of {runs}.", "", "| run | seconds / forward | vs 1 process | max abs diff vs 1 process |",
             "|---|---:|---:|---:|", f"| 1 process | {single * 1e3:.1f} ms | 1.00 | - |"]
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("ulysses", "ring"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.spawn(_rank, args=(2, port, mode, runs, folder), nprocs=2)
            result = torch.load(Path(folder) / f"{mode}.pt", weights_only=True)
            diff = (result["out"] - reference).abs().max().item()
            lines.append(f"| 2 gloo ranks, {mode} | {result['seconds'] * 1e3:.1f} ms | "
                         f"{result['seconds'] / single:.2f} | {diff:.1e} |")
    return "\n".join(lines)


def kernels(device: str) -> str:
    """``attention_with_lse`` (the ring / video->audio kernel) against torch's SDPA on ``device``: max abs error of
    the output and of the log-sum-exp, per dtype, with and without a mask, at lengths off the kernels' tiles."""
    from ltx2_diffusers.models.context_parallel_attention import attention_with_lse

    g = torch.Generator().manual_seed(0)
    lines = ["| dtype | mask | output max abs err | lse max abs err |", "|---|---|---:|---:|"]
    for dtype in (torch.float32, torch.bfloat16):
        for masked in (False, True):
            q, k, v = (torch.randn(2, n, 4, 64, generator=g) for n in (37, 45, 45))
            mask = torch.randn(2, 1, 37, 45, generator=g) if masked else None
            qkv = [t.to(device, dtype) for t in (q, k, v)]
            out, lse = attention_with_lse(*qkv, None if mask is None else mask.to(device, dtype))
            ref = torch.nn.functional.scaled_dot_product_attention(
                *(t.transpose(1, 2).double() for t in (q, k, v)), attn_mask=None if mask is None else mask.double())
            scores = (q.transpose(1, 2).double() @ k.permute(0, 2, 3, 1).double()) / 8 + (
                0 if mask is None else mask.double())
            err = (out.double().cpu() - ref.transpose(1, 2)).abs().max().item()
            lse_err = (lse.double().cpu() - scores.logsumexp(-1)).abs().max().item()
            lines.append(f"| {str(dtype).removeprefix('torch.')} | {masked} | {err:.1e} | {lse_err:.1e} |")
    return "\n".join(lines)


def _one_rank_config(mode: str) -> object:  # noqa: ANN401
    """diffusers' ``ContextParallelConfig`` of degree 1 (which its constructor refuses: made at 2, then set to 1)."""
    from diffusers import ContextParallelConfig

    config = ContextParallelConfig(**{f"{mode}_degree": 2})
    setattr(config, f"{mode}_degree", 1)
    return config


def overhead(device_name: str, runs: int) -> str:
    """The cost of the parallel code path itself: a forward through it on a group of one rank (NCCL on CUDA, gloo
    otherwise) against the plain forward, same weights and inputs. On CUDA the real 19B config in bf16 at 121 frames
    704x1280 (14,080 video tokens); elsewhere the tiny config."""
    import socket

    device = torch.device(device_name)
    full = device.type == "cuda"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if full else "gloo", rank=0, world_size=1)
    dtype = torch.bfloat16 if full else torch.float32
    grid, audio, text = ((16, 22, 40), 126, 1024) if full else (GRID, AUDIO_TOKENS, TEXT_TOKENS)

    def build() -> LTX2AudioVideoTransformer:
        torch.manual_seed(0)
        with torch.device(device), default_dtype(dtype):
            model = LTX2AudioVideoTransformer(**({} if full else TINY))
        return model.eval()

    def inputs(model: LTX2AudioVideoTransformer) -> dict:
        c, g = model.config, torch.Generator().manual_seed(1)
        widths = model.text_widths

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g).to(device, dtype)

        return dict(hidden_states=randn(1, grid[0] * grid[1] * grid[2], c.in_channels),
                    audio_hidden_states=randn(1, audio, c.audio_in_channels),
                    encoder_hidden_states=randn(1, text, widths[0]),
                    audio_encoder_hidden_states=randn(1, text, widths[1]),
                    timestep=torch.tensor([600.0], device=device), num_frames=grid[0], height=grid[1],
                    width=grid[2], use_cross_timestep=True, return_dict=False)

    def timed_forwards(model: LTX2AudioVideoTransformer, kwargs: dict) -> tuple[float, torch.Tensor]:
        seconds = []
        with torch.inference_mode():
            out = model(**kwargs)[0]
            for _ in range(runs):
                if full:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(**kwargs)
                if full:
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
        return statistics.median(seconds), out

    model = build()
    kwargs = inputs(model)
    plain, reference = timed_forwards(model, kwargs)
    del model
    lines = [f"{'19B, bf16, 14,080 video tokens' if full else 'tiny, fp32'} on {device_name}, one rank, median of "
             f"{runs}", "", "| path | seconds / forward | vs plain | max abs diff vs plain |", "|---|---:|---:|---:|",
             f"| plain forward | {plain:.4f} | 1.00 | - |"]
    for mode in ("ulysses", "ring"):
        model = build()
        model.enable_parallelism(config=_one_rank_config(mode))
        seconds, out = timed_forwards(model, kwargs)
        diff = (out.float() - reference.float()).abs().max().item()
        lines.append(f"| {mode}, 1 rank | {seconds:.4f} | {seconds / plain:.3f} | {diff:.1e} |")
        del model
    dist.destroy_process_group()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kernels", metavar="DEVICE", help="check the log-sum-exp attention kernel on DEVICE")
    parser.add_argument("--overhead", metavar="DEVICE", help="the parallel path on one rank vs the plain forward")
    args = parser.parse_args(argv)
    if args.overhead:
        print(overhead(args.overhead, args.runs))  # noqa: T201
    elif args.kernels:
        print(kernels(args.kernels))  # noqa: T201
    elif args.table or not args.time:
        print(table())  # noqa: T201
    if args.time:
        print(timing(args.runs))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
