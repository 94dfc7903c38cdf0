"""``ltx2-diffusers`` command line."""

from __future__ import annotations

import argparse
import time

import torch

from . import LTX2AudioVideoTransformer, __version__

# Real block structure and RoPE settings of the 19B model at toy widths.
DEMO_CONFIG = dict(
    num_layers=2, num_attention_heads=4, attention_head_dim=16, cross_attention_dim=64,
    audio_num_attention_heads=4, audio_attention_head_dim=8, audio_cross_attention_dim=32, caption_channels=64,
)


def _demo(args: argparse.Namespace) -> int:
    """Runs one denoising forward of a tiny random-weight LTX-2 transformer and reports what it did."""
    torch.manual_seed(args.seed)
    model = LTX2AudioVideoTransformer(**DEMO_CONFIG).eval()
    frames, height, width, fps = args.frames, args.height, args.width, args.fps
    if (frames - 1) % 8 or height % 32 or width % 32:
        raise SystemExit("--frames must be 8k+1 and --height/--width multiples of 32, e.g. 25 x 96 x 160.")
    grid = ((frames - 1) // 8 + 1, height // 32, width // 32)
    audio_tokens = round(frames / fps * 25)
    video_tokens = grid[0] * grid[1] * grid[2]
    g = torch.Generator().manual_seed(args.seed)
    video = torch.randn(1, video_tokens, 128, generator=g)
    audio = torch.randn(1, audio_tokens, 128, generator=g)
    text = torch.randn(1, 32, DEMO_CONFIG["caption_channels"], generator=g)
    sigma = torch.tensor([0.8])

    print(f"ltx2_diffusers {__version__} demo: tiny random-weight LTX-2 transformer (no downloads)")
    print(f"  model: {sum(p.numel() for p in model.parameters()):,} parameters, {model.config.num_layers} "
          f"dual-stream blocks, RoPE {model.config.rope_type}; the real model has 18,876,174,592")
    print(f"  clip: {frames} frames {height}x{width} @ {fps:g} fps -> latent grid {grid} = {video_tokens} video "
          f"tokens, {audio_tokens} audio tokens (25/s), {text.shape[1]} text tokens")
    passes = {
        "joint pass": {},
        "modality-isolated pass": {"isolate_modalities": True},
        "STG pass (block 1)": {"spatio_temporal_guidance_blocks": [1]},
    }
    outputs = {}
    with torch.inference_mode():
        for name, kwargs in passes.items():
            start = time.perf_counter()
            out = model(video, audio, text, text, timestep=sigma, num_frames=grid[0], height=grid[1],
                        width=grid[2], fps=fps, **kwargs)
            ms = (time.perf_counter() - start) * 1000
            outputs[name] = out
            print(f"  {name:<24} video v {tuple(out.sample.shape)}, audio v {tuple(out.audio_sample.shape)} "
                  f"in {ms:.1f} ms")
        x0 = video - sigma * outputs["joint pass"].sample  # x0 = x - σ v
        delta = (outputs["joint pass"].sample - outputs["modality-isolated pass"].sample).abs().mean()
    print(f"  x0 = x - σ·v at σ=0.8: mean {x0.mean():+.4f}, std {x0.std():.4f}")
    print(f"  mean |v_joint - v_isolated| = {delta:.4f}  (what audio contributes to video through A<->V attention)")
    print("The full text-to-audio+video pipeline arrives with LTX2AudioVideoPipeline; see README.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltx2-diffusers", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a tiny embedded model offline and report what it did")
    demo.add_argument("--frames", type=int, default=25)
    demo.add_argument("--height", type=int, default=96)
    demo.add_argument("--width", type=int, default=160)
    demo.add_argument("--fps", type=float, default=24.0)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
