"""Forward-pass benchmark: ``LTX2AudioVideoTransformer`` vs diffusers' ``LTX2VideoTransformer3DModel``.

Both models run in one process on identical weights: ours is built (random init) on the target device and dtype,
diffusers' is built on the meta device and receives ours' state dict with ``load_state_dict(strict=True,
assign=True)``, so the two share the same parameter storage (no second copy of the weights). Before timing, the two
outputs are compared (max abs diff), then warm-up and timed runs interleave ours / diffusers.

    python bench/bench_transformer.py --threads 2              # medium config, fp32, CPU
    python bench/bench_transformer.py --config medium-2.3      # the same widths with the LTX-2.3 switches
    python bench/bench_transformer.py --config full            # real 19B config, bf16, CUDA, 121 x 704 x 1280
    python bench/bench_transformer.py --config full-2.3        # real LTX-2.3 (22B) transformer config, bf16, CUDA
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any

import diffusers
import torch

from ltx2_diffusers import LTX2AudioVideoTransformer
from ltx2_diffusers.utils.measure import PeakMemory, default_dtype, max_abs, timed

MEDIUM: dict[str, Any] = dict(
    num_layers=4, num_attention_heads=8, attention_head_dim=64, cross_attention_dim=512,
    audio_num_attention_heads=8, audio_attention_head_dim=32, audio_cross_attention_dim=256,
    caption_channels=256, in_channels=128, audio_in_channels=128, rope_type="split", perturbed_attn=False,
)
FULL: dict[str, Any] = dict(rope_type="split", perturbed_attn=False)  # every other value: the real 19B defaults
# diffusers' LTX-2.3 switches (its converter's 2.3 config); the text then arrives at each stream's width
LTX23: dict[str, Any] = dict(gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
                             use_prompt_embeddings=False, perturbed_attn=True)
CONFIGS: dict[str, dict[str, Any]] = {"medium": MEDIUM, "medium-2.3": {**MEDIUM, **LTX23}, "full": FULL,
                                      "full-2.3": {**FULL, **LTX23}}
# latent grid (frames, height, width), audio tokens, text tokens
SHAPES = {"medium": (4, 8, 12, 26, 128), "full": (16, 22, 40, 126, 1024)}  # full: 121 frames at 704 x 1280


def build_models(cfg: dict[str, Any], device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, ...]:
    """Ours with random weights on ``device``; diffusers' on meta, then pointed at ours' tensors."""
    with torch.device(device), default_dtype(dtype):
        ours = LTX2AudioVideoTransformer(**cfg)
    full_cfg = {k: v for k, v in ours.config.items() if not k.startswith("_")}
    with torch.device("meta"):
        theirs = diffusers.LTX2VideoTransformer3DModel(**full_cfg)
    theirs.load_state_dict(ours.state_dict(), strict=True, assign=True)
    leftover = [n for n, t in [*theirs.named_parameters(), *theirs.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"diffusers tensors left on meta after loading: {leftover[:5]}")
    return ours.eval(), theirs.eval()


def make_inputs(cfg: dict[str, Any], shape: tuple[int, ...], batch: int, device: torch.device,
                dtype: torch.dtype, per_token: bool = False) -> dict[str, Any]:
    frames, height, width, audio_tokens, text_tokens = shape
    gen = torch.Generator().manual_seed(batch)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=gen).to(device=device, dtype=dtype)

    sigma = torch.linspace(0.7, 0.4, batch, device=device)  # distinct per sample and per stream
    video_timestep, levels, index = sigma, None, None
    if per_token:  # image conditioning: the first latent frame is clean (σ = 0), the rest at the sample's σ
        video_timestep = sigma[:, None].repeat(1, frames * height * width)
        video_timestep[:, : height * width] = 0.0
        # what our pipeline passes: the distinct values [0, σ_0, σ_1, ...] and each token's index into them
        levels = torch.cat([sigma.new_zeros(1), sigma])
        index = torch.arange(1, batch + 1, device=device)[:, None].repeat(1, frames * height * width)
        index[:, : height * width] = 0
    text_widths = ((cfg["caption_channels"],) * 2 if cfg["use_prompt_embeddings"]
                   else (cfg["cross_attention_dim"], cfg["audio_cross_attention_dim"]))
    return dict(
        video=randn(batch, frames * height * width, cfg["in_channels"]),
        audio=randn(batch, audio_tokens, cfg["audio_in_channels"]),
        text=randn(batch, text_tokens, text_widths[0]),
        audio_text=randn(batch, text_tokens, text_widths[1]),
        sigma=sigma,
        video_timestep=video_timestep,
        timestep_levels=levels,
        timestep_index=index,
        audio_sigma=torch.linspace(0.55, 0.25, batch, device=device),
        grid=(frames, height, width),
    )


def run_ours(model: torch.nn.Module, x: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' arguments; per-token timesteps as their distinct values and an index (as our pipeline passes
    them), so the AdaLN runs once per distinct σ."""
    frames, height, width = x["grid"]
    sigma, audio_sigma = x["sigma"] * 1000, x["audio_sigma"] * 1000
    indexed = x["timestep_index"] is not None
    return model(
        x["video"], x["audio"], x["text"], x["audio_text"],
        timestep=(x["timestep_levels"] if indexed else x["video_timestep"]) * 1000, audio_timestep=audio_sigma,
        sigma=sigma, audio_sigma=audio_sigma, num_frames=frames, height=height, width=width, fps=24.0,
        use_cross_timestep=True, return_dict=False, timestep_index=x["timestep_index"],
    )


def run_theirs(model: torch.nn.Module, x: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    frames, height, width = x["grid"]
    sigma, audio_sigma = x["sigma"] * 1000, x["audio_sigma"] * 1000
    return model(
        hidden_states=x["video"], audio_hidden_states=x["audio"], encoder_hidden_states=x["text"],
        audio_encoder_hidden_states=x["audio_text"], timestep=x["video_timestep"] * 1000,
        audio_timestep=audio_sigma, sigma=sigma,
        audio_sigma=audio_sigma, num_frames=frames, height=height, width=width, fps=24.0,
        audio_num_frames=x["audio"].shape[1], use_cross_timestep=True, return_dict=False,
    )


def bench(ours: torch.nn.Module, theirs: torch.nn.Module, x: dict[str, Any], warmup: int, runs: int,
          device: torch.device) -> dict[str, Any]:
    calls = {"ours": lambda: run_ours(ours, x), "diffusers": lambda: run_theirs(theirs, x)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    peaks: dict[str, list[float]] = {name: [] for name in calls}
    outputs: dict[str, Any] = {}
    for i in range(max(warmup, 1) + runs):
        # interleave, alternating which model goes first
        for name in (("ours", "diffusers") if i % 2 == 0 else ("diffusers", "ours")):
            with PeakMemory(device) as peak:  # on CUDA the weights count too
                out, seconds = timed(calls[name], device)
            if i == 0:
                outputs[name] = out
            if peak.mib is not None and i > 0:  # the first call also pays for growing the heap
                peaks[name].append(peak.mib)
            if i >= max(warmup, 1):
                times[name].append(seconds)
    result: dict[str, Any] = {name: max_abs(ours_out, theirs_out) for name, ours_out, theirs_out in zip(
        ("max_abs_diff_video", "max_abs_diff_audio"), outputs["ours"], outputs["diffusers"])}
    for name in calls:
        result[f"{name}_median_s"] = statistics.median(times[name])
        result[f"{name}_times_s"] = times[name]
        result[f"{name}_peak_mib"] = statistics.median(peaks[name]) if peaks[name] else None
    result["ratio_ours_over_diffusers"] = result["ours_median_s"] / result["diffusers_median_s"]
    return result


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=tuple(CONFIGS), default="medium",
                   help="medium: small fp32 model on CPU; full: real 19B config in bf16 on CUDA; -2.3: with the "
                        "LTX-2.3 switches (full-2.3: the real 22B transformer)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2])
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per model (at least 1: the parity run)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per model")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--per-token", action="store_true",
                   help="per-token video σ with a clean first latent frame (image conditioning)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = args.config.split("-")[0]
    if size == "full":
        if not torch.cuda.is_available():
            sys.exit(f"--config {args.config} needs a CUDA GPU (~45 GB: bf16 weights shared by both models); none "
                     "found.")
        device, dtype = torch.device("cuda"), torch.bfloat16
    else:
        device, dtype = torch.device("cpu"), torch.float32
    ours, theirs = build_models(CONFIGS[args.config], device, dtype)
    params = sum(p.numel() for p in ours.parameters())
    cfg = {k: v for k, v in ours.config.items() if not k.startswith("_")}
    shape = SHAPES[size]
    rows = []
    with torch.inference_mode():
        for batch in args.batch:
            x = make_inputs(cfg, shape, batch, device, dtype, args.per_token)
            rows.append({"batch": batch, **bench(ours, theirs, x, args.warmup, args.runs, device)})

    frames, height, width, audio_tokens, text_tokens = shape
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    meta = {
        "config": args.config, "per_token_timesteps": args.per_token,
        "params": params, "dtype": str(dtype).removeprefix("torch."), "device": dev_name,
        "torch": torch.__version__, "diffusers": diffusers.__version__, "warmup": args.warmup, "runs": args.runs,
        "video_tokens": frames * height * width, "latent_grid": [frames, height, width],
        "audio_tokens": audio_tokens, "text_tokens": text_tokens, "model_config": cfg,
    }
    scale, unit = (1.0, "s") if size == "full" else (1e3, "ms")
    mem = "max_memory_allocated (MiB)" if device.type == "cuda" else "peak RSS delta (MiB, approx.)"
    print(f"\n{args.config}: {params / 1e6:.1f}M params, {meta['dtype']}, {dev_name}, torch {torch.__version__}, "
          f"diffusers {diffusers.__version__}; {meta['video_tokens']} video / {audio_tokens} audio / "
          f"{text_tokens} text tokens; median of {args.runs} runs after {args.warmup} warm-up\n")
    print(f"| config | batch | ours ({unit}) | diffusers ({unit}) | ours / diffusers | max abs diff (video / audio) "
          f"| {mem}: ours / diffusers |")
    print("|---|---|---|---|---|---|---|")
    label = args.config + (", per-token σ" if args.per_token else "")
    for r in rows:
        peaks = " / ".join("n/a" if r[f"{n}_peak_mib"] is None else f"{r[f'{n}_peak_mib']:.0f}"
                           for n in ("ours", "diffusers"))
        print(f"| {label} | {r['batch']} | {r['ours_median_s'] * scale:.3g} | "
              f"{r['diffusers_median_s'] * scale:.3g} | {r['ratio_ours_over_diffusers']:.3f} | "
              f"{r['max_abs_diff_video']:.2e} / {r['max_abs_diff_audio']:.2e} | {peaks} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
