"""LTX-2.3 vocoder benchmark: ``LTX2VocoderWithBWE`` vs diffusers' ``LTX2VocoderWithBWE`` on identical weights.

Ours is built with seeded random weights (and DFT / mel bases, which checkpoints supply) and its state dict is loaded
into diffusers' model with ``strict=True``; both run the same log-mel in float32 (the vocoders are float32-only). The
first stage's final clamp is set in both (diffusers' converter omits it; ltx-core has it). Before timing, the outputs
are compared (max abs diff); warm-up and timed runs then interleave ours / diffusers and the median is reported, plus
ours with chunked decoding (``enable_tiling``) at a tile a quarter of the clip.

    python bench/bench_vocoder.py --threads 2                      # medium config (1/4 widths), 2 s of audio, CPU
    python bench/bench_vocoder.py --config full --frames 501       # the real 2.3 widths, 5 s of audio
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import torch
from diffusers.pipelines.ltx2 import LTX2VocoderWithBWE as DiffusersVocoderWithBWE

from ltx2_diffusers import LTX2VocoderWithBWE
from ltx2_diffusers.utils.measure import max_abs, timed

# the real LTX-2.3 structure (6 + 5 stages, 3 AMP blocks each) at a quarter of the widths
CONFIGS: dict[str, dict[str, Any]] = {
    "medium": dict(hidden_channels=384, bwe_hidden_channels=128, final_act_fn="clamp"),
    "full": dict(final_act_fn="clamp"),
}


def build_models(config: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    gen = torch.Generator().manual_seed(0)
    ours = LTX2VocoderWithBWE(**config)
    with torch.no_grad():
        for name, p in ours.named_parameters():  # fan-in scaled noise; quiet residual branches and outputs
            scale = 0.2 if ".convs2." in name else 0.1 if ".conv_out." in name else 1.0
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(scale * (noise / p[0].numel() ** 0.5 if p.ndim > 1 else 0.1 * noise))
        n_fft = ours.config.filter_length
        k, t = torch.arange(n_fft // 2 + 1)[:, None], torch.arange(n_fft)[None, :]
        angle, window = 2 * torch.pi * k * t / n_fft, torch.hann_window(n_fft)
        ours.mel_stft.stft_fn.forward_basis.copy_(
            torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None])
        ours.mel_stft.mel_basis.copy_(torch.rand(ours.mel_stft.mel_basis.shape, generator=gen) * 0.05)
    theirs = DiffusersVocoderWithBWE(**{k: v for k, v in ours.config.items() if not k.startswith("_")})
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.to(device).eval(), theirs.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="medium")
    parser.add_argument("--frames", type=int, default=201, help="mel frames (100 per second of audio)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the raw numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ours, theirs = build_models(CONFIGS[args.config], device)
    mel = (-4.0 + 1.5 * torch.randn(args.batch, 2, args.frames, 64, generator=torch.Generator().manual_seed(1)))
    mel = mel.to(device)

    def run_tiled() -> torch.Tensor:
        ours.enable_tiling(tile_mel_frames=max(args.frames // 4, 1))
        try:
            return ours(mel)
        finally:
            ours.disable_tiling()

    cases = {"ours": lambda: ours(mel), "diffusers": lambda: theirs(mel), "ours, chunked": run_tiled}
    times: dict[str, list[float]] = {name: [] for name in cases}
    with torch.no_grad():
        outputs = {name: fn() for name, fn in cases.items()}  # warm-up
        diff = max_abs(outputs["ours"], outputs["diffusers"])
        chunk_diff = max_abs(outputs["ours, chunked"], outputs["ours"])
        for _ in range(args.repeats):
            for name, fn in cases.items():
                times[name].append(timed(fn, device)[1])
    median = {name: statistics.median(t) for name, t in times.items()}
    params = sum(p.numel() for p in ours.parameters())
    print(f"LTX2VocoderWithBWE {args.config} ({params:,} params), {args.batch} x {args.frames} mel frames -> "
          f"{tuple(outputs['ours'].shape)} at {ours.config.output_sampling_rate} Hz, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"max |ours - diffusers| = {diff:.2e}; max |chunked - whole| = {chunk_diff:.2e}")
    for name, seconds in median.items():
        print(f"  {name:14s} {seconds:8.3f} s (median of {args.repeats})")
    print(f"diffusers / ours = {median['diffusers'] / median['ours']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config, "frames": args.frames, "batch": args.batch, "params": params,
                       "max_abs_diff": diff, "chunk_diff": chunk_diff, "times": times, "median": median}, f, indent=1)


if __name__ == "__main__":
    main()
