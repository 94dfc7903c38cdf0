"""Video VAE decode benchmark: ``LTX2VideoAutoencoder`` vs diffusers' ``AutoencoderKLLTX2Video`` on the same weights.

Both decoders get identical weights (ours is built with seeded random weights and its state dict is loaded into
diffusers' model with ``strict=True``) and identical un-normalised latents. Every case runs in a fresh subprocess so
that peak-memory figures do not inherit the allocator state of earlier cases: the child builds the model, runs a
small warm-up decode, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``; on CUDA
``torch.cuda.reset_peak_memory_stats``), then times one decode and reports the peak RSS above the RSS before the call
(on CUDA: ``max_memory_allocated``, weights included).

Cases, at two frame counts:

* ``untiled``: one decoder pass over the whole latent;
* ``tiled``: ours ``decode(z, tiling=...)`` (space and time, full tensor returned) vs diffusers with
  ``enable_tiling`` + ``use_framewise_decoding`` at the same tile and overlap sizes;
* ``tiled, streamed`` (ours only): ``decode_chunks`` with each chunk converted to uint8 and dropped, as a video
  writer would, so the full float video is never held.

    python bench/bench_video_vae.py --threads 2              # medium config, fp32, CPU (2-3 minutes)
    python bench/bench_video_vae.py --device cuda --frames 121 241 --height 512 --width 768
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import torch

from ltx2_diffusers.utils.measure import PeakMemory, timed

# real LTX-2.0 block structure (4 encoder stages, 3 decoder up-blocks, 32x32x8), medium widths
MEDIUM: dict[str, Any] = dict(
    latent_channels=32, block_out_channels=(32, 64, 128, 256), layers_per_block=(1, 1, 1, 1, 1),
    decoder_block_out_channels=(32, 64, 128), decoder_layers_per_block=(2, 2, 2, 2),
)


def build(impl: str, weights: str, device: torch.device) -> torch.nn.Module:
    from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder

    state = torch.load(weights, map_location=device)
    if impl == "ours":
        model = LTX2VideoAutoencoder(**MEDIUM)
    else:
        import diffusers

        model = diffusers.AutoencoderKLLTX2Video(**MEDIUM, decoder_causal=False, spatial_compression_ratio=32,
                                                 temporal_compression_ratio=8)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def child(args: argparse.Namespace) -> None:
    """One case: prints a JSON line with seconds and peak MiB (and a checksum of the output for parity)."""
    from ltx2_diffusers.models.tiling import VideoTiling

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build(args.impl, args.weights, device)
    latent_frames = (args.frames[0] - 1) // 8 + 1
    z = torch.randn(1, MEDIUM["latent_channels"], latent_frames, args.height // 32, args.width // 32,
                    generator=torch.Generator().manual_seed(0)).to(device)
    tiling = VideoTiling(args.tile, args.overlap, args.tile_frames, args.overlap_frames)
    if args.impl == "diffusers" and args.mode == "tiled":
        model.enable_tiling(tile_sample_min_height=args.tile, tile_sample_min_width=args.tile,
                            tile_sample_stride_height=args.tile - args.overlap,
                            tile_sample_stride_width=args.tile - args.overlap,
                            tile_sample_min_num_frames=args.tile_frames,
                            tile_sample_stride_num_frames=args.tile_frames - args.overlap_frames)
        model.use_framewise_decoding = True

    def run() -> torch.Tensor:
        if args.mode == "untiled":
            return model.decode(z).sample if args.impl == "diffusers" else model.decode(z, tiling=None).sample
        if args.mode == "tiled":
            return model.decode(z).sample if args.impl == "diffusers" else model.decode(z, tiling=tiling).sample
        frames_done = 0
        for chunk in model.decode_chunks(z, tiling=tiling):  # "write" each chunk as uint8 frames, then drop it
            frames = ((chunk.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).cpu()
            frames_done += frames.shape[2]
            del chunk, frames
        return torch.tensor(frames_done)

    seconds, peaks = [], []
    with torch.inference_mode():
        model.decode(z[:, :, :2, :2, :2])  # warm-up: kernels, thread pools
        for _ in range(args.repeats):
            with PeakMemory(device) as peak:
                out, elapsed = timed(run, device)
            seconds.append(elapsed)
            peaks.append(peak.mib)
            if args.mode == "untiled":  # a sparse subsample of the output, to compare the two implementations
                sample = out[0, :, :: max(1, out.shape[2] // 4), ::16, ::16].double().cpu().flatten().tolist()
            del out
    # fastest run (the machine may be shared), largest peak
    result = {"seconds": min(seconds), "all_seconds": seconds, "peak_mib": max(peaks)}
    if args.mode == "untiled":
        result["sample"] = sample
    print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[65, 129], help="pixel frame counts (8k+1)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--tile", type=int, default=128, help="spatial tile (px)")
    p.add_argument("--overlap", type=int, default=64, help="spatial overlap (px)")
    p.add_argument("--tile-frames", type=int, default=32)
    p.add_argument("--overlap-frames", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=2, help="timed decodes per case (the fastest is reported)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--impl", choices=("ours", "diffusers"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("untiled", "tiled", "streamed"), help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.impl:
        child(args)
        return
    from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder

    torch.manual_seed(0)
    model = LTX2VideoAutoencoder(**MEDIUM)
    params = sum(p.numel() for p in model.decoder.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "vae.pt")
        torch.save(model.state_dict(), weights)
        del model
        # Large blocks straight from mmap and back on free: RSS then follows live memory instead of glibc's heap
        # high-water mark, for both implementations alike.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
        rows = []
        for frames in args.frames:
            for mode in ("untiled", "tiled", "streamed"):
                row: dict[str, Any] = {"frames": frames, "mode": mode}
                for impl in ("ours", "diffusers"):
                    if impl == "diffusers" and mode == "streamed":
                        continue
                    cmd = [sys.executable, __file__, "--impl", impl, "--mode", mode, "--weights", weights,
                           "--frames", str(frames), "--height", str(args.height), "--width", str(args.width),
                           "--tile", str(args.tile), "--overlap", str(args.overlap),
                           "--tile-frames", str(args.tile_frames), "--overlap-frames", str(args.overlap_frames),
                           "--device", args.device, "--threads", str(args.threads),
                           "--repeats", str(args.repeats)]
                    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if done.returncode:
                        row[impl] = {"error": done.stderr.strip().splitlines()[-1]}
                    else:
                        row[impl] = json.loads(done.stdout.strip().splitlines()[-1])
                if mode == "untiled" and "sample" in row["ours"] and "sample" in row.get("diffusers", {}):
                    a, b = torch.tensor(row["ours"].pop("sample")), torch.tensor(row["diffusers"].pop("sample"))
                    row["max_abs_diff_subsample"] = (a - b).abs().max().item()
                rows.append(row)
                print(json.dumps(row), flush=True)

    unit = "max allocated MiB" if args.device.startswith("cuda") else "peak RSS +MiB"
    print(f"\ndecoder params {params:,}; {args.height}x{args.width}; tiles {args.tile}/{args.overlap} px, "
          f"{args.tile_frames}/{args.overlap_frames} frames; {args.device}, {args.threads} threads")
    print(f"| frames | mode | ours s | ours {unit} | diffusers s | diffusers {unit} |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        cells = []
        for impl in ("ours", "diffusers"):
            r = row.get(impl)
            if r is None:
                cells += ["-", "-"]
            elif "error" in r:
                cells += ["error", r["error"][:60]]
            else:
                cells += [f"{r['seconds']:.2f}", f"{r['peak_mib']:.0f}"]
        print(f"| {row['frames']} | {row['mode']} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
