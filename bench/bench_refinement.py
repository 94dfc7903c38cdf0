"""Tiled vs untiled refinement: time and peak memory of the stage-2 loop at a size where tiling engages.

The refinement of ``upsample=True`` (re-noised latents, 3 distilled σ, no guidance: one transformer call per step) is
run twice on the same inputs, each variant in a fresh process so that memory freed by one cannot hide the other's
peak: once on the whole latent grid (``predict_x0``) and once tile by tile (``predict_x0_tiled`` with the plan of
:func:`plan_token_tiles`). Reported: the median wall time of the loop, the peak memory increase of the first run
(CUDA: ``max_memory_allocated``; CPU: resident set size sampled every 1 ms, above the RSS after building the model and
inputs), the tile count and the max abs difference between the two results (tiles see less context, so they differ).

    python bench/bench_refinement.py --threads 2                        # medium config, 4x24x32 grid, fp32, CPU
    python bench/bench_refinement.py --config full --grid 16 32 48 --max-tokens 20480   # 19B, bf16, CUDA
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable

import torch
from safetensors.torch import load_file, save_file

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.pipelines.denoising import StreamInputs, denoise_step, predict_x0
from ltx2_diffusers.pipelines.token_tiling import TokenTiling, plan_token_tiles, predict_x0_tiled, tile_layouts
from ltx2_diffusers.schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS
from ltx2_diffusers.utils.measure import PeakMemory, timed

MEDIUM = dict(num_layers=4, num_attention_heads=8, attention_head_dim=64, cross_attention_dim=512,
              audio_num_attention_heads=8, audio_attention_head_dim=32, audio_cross_attention_dim=256,
              caption_channels=256, in_channels=128, audio_in_channels=128, rope_type="split")
FULL = dict(rope_type="split")


def refine(predict: Callable, video: StreamInputs, audio: StreamInputs) -> tuple[torch.Tensor, torch.Tensor]:
    sigmas = torch.tensor([*STAGE_2_DISTILLED_SIGMAS, 0.0])
    for sigma, following in zip(sigmas[:-1], sigmas[1:]):
        video, audio = denoise_step(predict, video, audio, sigma, following)
    return video.latents, audio.latents


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("medium", "full"), default="medium")
    parser.add_argument("--grid", type=int, nargs=3, default=(4, 24, 32), metavar=("F", "H", "W"))
    parser.add_argument("--max-tokens", type=int, default=1024, help="tile budget (video tokens per call)")
    parser.add_argument("--overlap", type=int, default=2, help="spatial overlap in latent cells")
    parser.add_argument("--audio-tokens", type=int, default=26)
    parser.add_argument("--text-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", choices=("untiled", "tiled"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def child(args: argparse.Namespace) -> None:
    """One variant in this process: a memory-measured first run, then ``runs`` timed ones."""
    if args.threads:
        torch.set_num_threads(args.threads)
    full = args.config == "full"
    device = torch.device("cuda" if full else "cpu")
    dtype = torch.bfloat16 if full else torch.float32
    torch.manual_seed(0)  # the same weights in both processes
    with torch.device(device):
        transformer = LTX2AudioVideoTransformer(**(FULL if full else MEDIUM)).eval()
    if dtype != torch.float32:
        transformer = transformer.to(dtype)
    c = transformer.config
    g = torch.Generator().manual_seed(0)
    grid = tuple(args.grid)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    video = StreamInputs(randn(1, math.prod(grid), c.in_channels),
                         transformer.video_coordinates(*grid, fps=24.0, dtype=dtype, device=device),
                         randn(1, args.text_tokens, c.caption_channels))
    audio = StreamInputs(randn(1, args.audio_tokens, c.audio_in_channels),
                         transformer.audio_coordinates(args.audio_tokens, device=device),
                         randn(1, args.text_tokens, c.caption_channels))
    tiles = plan_token_tiles(grid, TokenTiling(max_tokens=args.max_tokens, spatial_overlap=args.overlap,
                                               temporal_overlap=1))
    layouts = tile_layouts(tiles, grid, math.prod(grid), device)
    if args.variant == "tiled":
        def predict(v: StreamInputs, a: StreamInputs, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return predict_x0_tiled(transformer, v, a, s, 24.0, layouts)
    else:
        def predict(v: StreamInputs, a: StreamInputs, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return predict_x0(transformer, v, a, s, 24.0)
    times = []
    with torch.inference_mode():
        with PeakMemory(device) as peak:
            result = refine(predict, video, audio)
        for _ in range(args.runs):
            times.append(timed(lambda: refine(predict, video, audio), device)[1])
    save_file({"video": result[0].float().cpu().contiguous()}, args.out)
    print(json.dumps({"seconds": statistics.median(times), "peak_mib": peak.mib,
                      "tiles": [list(t.shape) for t in tiles]}))


def main() -> None:
    args = parse_args()
    if args.variant:
        child(args)
        return
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in ("untiled", "tiled"):
            out = f"{folder}/{variant}.safetensors"
            command = [sys.executable, __file__, "--variant", variant, "--out", out]
            for name in ("config", "max_tokens", "overlap", "audio_tokens", "text_tokens", "runs", "threads"):
                value = getattr(args, name)
                if value is not None:
                    command += [f"--{name.replace('_', '-')}", str(value)]
            command += ["--grid", *map(str, args.grid)]
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[variant] = dict(json.loads(line), video=load_file(out)["video"])
    tiles = results["tiled"]["tiles"]
    difference = (results["untiled"]["video"] - results["tiled"]["video"]).abs().max().item()
    print(f"grid {tuple(args.grid)} = {math.prod(args.grid)} video tokens, budget {args.max_tokens}, tiles {tiles}; "
          f"{args.config} config")
    print("| variant | refinement, 3 steps (s) | peak memory increase (MiB) |")
    print("|---|---|---|")
    for variant, label in (("untiled", "untiled"), ("tiled", f"tiled ({len(tiles)} tiles)")):
        print(f"| {label} | {results[variant]['seconds']:.3f} | {results[variant]['peak_mib']:.0f} |")
    print(f"max abs difference of the refined video latents (tiled vs untiled): {difference:.3g}")


if __name__ == "__main__":
    main()
