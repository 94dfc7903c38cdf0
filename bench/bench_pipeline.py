"""End-to-end benchmark: ``LTX2AudioVideoPipeline`` vs diffusers' ``LTX2Pipeline`` on identical weights.

Every component is built once with our classes (seeded random weights, the real block structure at "tiny but not
trivial" widths so the transformer dominates), saved with ``save_pretrained`` and loaded into diffusers' classes
with ``from_pretrained``; the Gemma-3 text encoder and the tokenizer are shared objects. Both pipelines then get the
same prompts, the same explicit σ schedule (8 steps; diffusers' scheduler has dynamic shifting off so it uses them
verbatim), the same starting latents and the same guidance, and run the whole call (text encoding, denoising, VAE +
audio VAE decode, vocoder) in fp32 on the CPU.

Measured per guidance configuration: the wall time of the call (median of ``--runs`` after ``--warmup`` untimed
runs, interleaving ours and diffusers', alternating which goes first), transformer calls and samples per step
(forward hooks), the time spent in the transformer / text encoder + connectors / decoders and outside them, and the
max abs difference of the final (denormalised) video and audio latents and of the decoded outputs.

On a shared machine other processes distort CPU timings badly (two OpenMP threads on two busy cores can run 10x
slower), so each timed call also measures the CPU share that other processes took meanwhile (``/proc/stat``); a call
above ``--max-other-load`` is repeated (up to ``--retries`` per configuration) and the table shows the worst share
kept. Our pipeline's prompt-embedding cache is cleared before every call, so both pipelines encode the prompts each
time.

    python bench/bench_pipeline.py --threads 2
    python bench/bench_pipeline.py --threads 2 --runs 5 --json /tmp/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import diffusers
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline
from diffusers.pipelines.ltx2 import LTX2TextConnectors as DiffusersConnectors
from diffusers.pipelines.ltx2 import LTX2Vocoder as DiffusersVocoder

from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors
from ltx2_diffusers.models.transformer_ltx2 import LTX2AudioVideoTransformer
from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import LTX2AudioVideoPipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler, ltx2_sigmas
from ltx2_diffusers.utils.measure import max_abs
from ltx2_diffusers.utils.tiny import _seeded_
from ltx2_diffusers.utils.tiny_gemma import tiny_connectors_config, tiny_gemma3, tiny_gemma_tokenizer

# Model sizes: real block structure, small widths.
VIDEO_LATENT_CHANNELS = 32
AUDIO_LATENT_CHANNELS, MEL_BINS = 4, 64
AUDIO_TOKEN_WIDTH = AUDIO_LATENT_CHANNELS * MEL_BINS // 4  # packed audio token = channels x (mel bins / 4)
TEXT_WIDTH, TEXT_LAYERS = 64, 2
TRANSFORMER: dict[str, Any] = dict(
    num_layers=4, num_attention_heads=8, attention_head_dim=32, cross_attention_dim=256,
    audio_num_attention_heads=8, audio_attention_head_dim=16, audio_cross_attention_dim=128,
    caption_channels=TEXT_WIDTH, in_channels=VIDEO_LATENT_CHANNELS, out_channels=VIDEO_LATENT_CHANNELS,
    audio_in_channels=AUDIO_TOKEN_WIDTH, audio_out_channels=AUDIO_TOKEN_WIDTH,
    # diffusers' transformer only honours STG blocks with perturbed_attn=True; ours ignores the flag.
    perturbed_attn=True,
)
CLIP = dict(num_frames=25, height=256, width=384, frame_rate=24.0, max_sequence_length=128)
PROMPT = "A street musician plays a violin at dusk while a small crowd applauds."
NEGATIVE_PROMPT = "blurry, low quality, distorted audio"
STEPS = 8

# Guidance per configuration: (cfg, stg, modality, rescale) for video and audio. "defaults" are the reference's.
GUIDANCE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "defaults (CFG+STG+modality)": dict(video=(3.0, 1.0, 3.0, 0.7), audio=(7.0, 1.0, 3.0, 0.7)),
    "CFG only": dict(video=(3.0, 0.0, 1.0, 0.7), audio=(7.0, 0.0, 1.0, 0.7)),
    "guidance off": dict(video=(1.0, 0.0, 1.0, 0.0), audio=(1.0, 0.0, 1.0, 0.0)),
}
# Timed regions of a call; "other" is the rest: input checks, tokenizer, latents and coordinates, guidance math,
# scheduler, device/dtype look-ups, post-processing.
PARTS = ("transformer", "text_encoder", "connectors", "video_vae", "audio_vae", "vocoder")
KNOBS = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")


# ------------------------------------------------------------------------------------------------------------------
# Components
# ------------------------------------------------------------------------------------------------------------------


def our_components(seed: int) -> dict[str, Any]:
    """Every component of our pipeline, seeded; sizes from the constants above."""
    models = dict(
        transformer=LTX2AudioVideoTransformer(**TRANSFORMER),
        vae=LTX2VideoAutoencoder(
            latent_channels=VIDEO_LATENT_CHANNELS, block_out_channels=(16, 32, 64, 128),
            layers_per_block=(1, 1, 1, 1, 1), decoder_block_out_channels=(16, 32, 64),
            decoder_layers_per_block=(1, 1, 1, 1)),
        audio_vae=LTX2AudioAutoencoder(base_channels=AUDIO_TOKEN_WIDTH, ch_mult=(1, 2, 4), num_res_blocks=1,
                                       latent_channels=AUDIO_LATENT_CHANNELS, mel_bins=MEL_BINS),
        vocoder=LTX2Vocoder(hidden_channels=32),
        connectors=LTX2TextConnectors(**tiny_connectors_config(TEXT_WIDTH, num_layers=TEXT_LAYERS)),
    )
    components = {name: _seeded_(model, seed + i) for i, (name, model) in enumerate(models.items())}
    components.update(scheduler=LTX2Scheduler(),
                      text_encoder=tiny_gemma3(TEXT_WIDTH, num_layers=TEXT_LAYERS, seed=seed),
                      tokenizer=tiny_gemma_tokenizer())
    return components


def diffusers_components(ours: dict[str, Any], folder: str) -> dict[str, Any]:
    """diffusers' classes loaded from ``save_pretrained`` copies of ours; text encoder and tokenizer shared."""
    classes = dict(transformer=diffusers.LTX2VideoTransformer3DModel, vae=diffusers.AutoencoderKLLTX2Video,
                   audio_vae=diffusers.AutoencoderKLLTX2Audio, vocoder=DiffusersVocoder,
                   connectors=DiffusersConnectors)
    loaded = {}
    for name, cls in classes.items():
        path = os.path.join(folder, name)
        ours[name].save_pretrained(path)
        model, info = cls.from_pretrained(path, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        if problems:
            raise RuntimeError(f"diffusers' {cls.__name__} did not load our {name} cleanly: {problems}")
        loaded[name] = model.eval()
    # Dynamic shifting and the terminal stretch off: the σ passed to the call are used verbatim.
    loaded.update(scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift_terminal=None),
                  text_encoder=ours["text_encoder"], tokenizer=ours["tokenizer"])
    return loaded


# ------------------------------------------------------------------------------------------------------------------
# Probes: time per component, transformer calls, decoder inputs
# ------------------------------------------------------------------------------------------------------------------


class Probe:
    """Times chosen modules / methods of one pipeline, counts transformer calls and their batch sizes, and records
    the latents the decoders receive (on a ``capture`` run). Nested regions of one group count once (outermost).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.transformer_batches: list[int] = []
        self.decoder_inputs: dict[str, torch.Tensor] = {}
        self.capture = False
        self._depth: dict[str, int] = defaultdict(int)
        self._start: dict[str, float] = {}

    def reset(self, capture: bool = False) -> None:
        self.seconds.clear()
        self.transformer_batches.clear()
        self.decoder_inputs.clear()
        self.capture = capture

    def enter(self, group: str) -> None:
        if self._depth[group] == 0:
            self._start[group] = time.perf_counter()
        self._depth[group] += 1

    def leave(self, group: str) -> None:
        self._depth[group] -= 1
        if self._depth[group] == 0:
            self.seconds[group] += time.perf_counter() - self._start.pop(group)

    def time_module(self, group: str, module: torch.nn.Module) -> None:
        def pre(mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            if group == "transformer":
                hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
                self.transformer_batches.append(hidden.shape[0])
            self.enter(group)

        def post(mod: torch.nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            self.leave(group)

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)

    def time_method(self, group: str, obj: object, name: str, capture_as: str | None = None) -> None:
        method = getattr(obj, name)

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.capture and capture_as is not None:
                self.decoder_inputs[capture_as] = args[0].detach().clone()
            self.enter(group)
            try:
                return method(*args, **kwargs)
            finally:
                self.leave(group)

        setattr(obj, name, wrapper)  # an instance attribute: shadows the bound method of this object only


def install_probe(pipe: Any) -> Probe:
    probe = Probe()
    probe.time_module("transformer", pipe.transformer)
    # diffusers calls the whole Gemma-3 model (LM head included), ours its decoder stack only: time both levels.
    # The text encoder is shared, so both probes see every call; each probe is reset before its own pipeline runs.
    probe.time_module("text_encoder", pipe.text_encoder)
    probe.time_module("text_encoder", pipe.text_encoder.model.language_model)
    probe.time_module("connectors", pipe.connectors)
    probe.time_method("video_vae", pipe.vae, "decode", capture_as="video")
    probe.time_method("audio_vae", pipe.audio_vae, "decode", capture_as="audio")
    probe.time_module("vocoder", pipe.vocoder)
    return probe


# ------------------------------------------------------------------------------------------------------------------
# Calls
# ------------------------------------------------------------------------------------------------------------------


def guidance_kwargs(config: dict[str, tuple[float, ...]], stg_block: int, for_diffusers: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for knob, video, audio in zip(KNOBS, config["video"], config["audio"]):
        if for_diffusers and not audio and audio != video:
            # diffusers reads `audio_x or x`: a zero audio value silently becomes the video value.
            raise ValueError(f"diffusers cannot express audio_{knob}={audio} with {knob}={video}.")
        kwargs[knob], kwargs[f"audio_{knob}"] = video, audio
    if for_diffusers:
        kwargs.update(spatio_temporal_guidance_blocks=[stg_block], use_cross_timestep=True)
    else:
        kwargs.update(stg_blocks=[stg_block], audio_stg_blocks=[stg_block])
    return kwargs


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (``/proc/stat``), or ``None`` off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float | None]:
    """``(output, wall seconds, load from other processes)``; the load is their busy CPU time over the call as a
    fraction of the machine's cores (0 = quiet; on a shared machine timings with a high value are unreliable)."""
    busy, own = _busy_cpu_seconds(), os.times()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    busy_after, own_after = _busy_cpu_seconds(), os.times()
    if busy is None or busy_after is None:
        return out, seconds, None
    own_cpu = (own_after.user - own.user) + (own_after.system - own.system)
    others = max(busy_after - busy - own_cpu, 0.0) / (seconds * (os.cpu_count() or 1))
    return out, seconds, others


@contextlib.contextmanager
def quiet_diffusers() -> Iterator[None]:
    """diffusers warns about packed latents on every call; keep the output to the table."""
    level = diffusers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers.utils.logging.set_verbosity(level)


def bench_config(pipes: dict[str, Any], probes: dict[str, Probe], call_kwargs: dict[str, dict[str, Any]],
                 warmup: int, runs: int, max_other_load: float, retries: int) -> dict[str, Any]:
    """Warm-up, then ``runs`` timed calls per pipeline, interleaved (alternating which goes first).

    A timed call during which other processes kept more than ``max_other_load`` of the CPU busy is thrown away and
    repeated, at most ``retries`` times per configuration (then it is kept and shows in the contention column).
    """
    times: dict[str, list[float]] = {name: [] for name in pipes}
    others_load: list[float] = []
    parts: dict[str, list[dict[str, float]]] = {name: [] for name in pipes}
    outputs: dict[str, Any] = {}
    captured: dict[str, dict[str, torch.Tensor]] = {}
    batches: dict[str, list[int]] = {}
    discarded = 0
    for i in range(max(warmup, 1) + runs):
        for name in (("ours", "diffusers") if i % 2 == 0 else ("diffusers", "ours")):
            pipe, probe = pipes[name], probes[name]
            while True:
                if name == "ours":  # no head start from our prompt-embedding cache: every call encodes the prompts
                    pipe.prompt_encoder.clear_cache()
                probe.reset(capture=i == 0)
                out, seconds, others = timed(lambda: pipe(**call_kwargs[name]))  # noqa: B023
                contended = others is not None and others > max_other_load
                if i < max(warmup, 1) or not contended or discarded >= retries:
                    break
                discarded += 1
            if i == 0:
                outputs[name] = out
                captured[name] = dict(probe.decoder_inputs)
                batches[name] = list(probe.transformer_batches)
            if i >= max(warmup, 1):
                times[name].append(seconds)
                parts[name].append(dict(probe.seconds, total=seconds))
                if others is not None:
                    others_load.append(others)
    result: dict[str, Any] = {"other_processes_cpu_share_max": max(others_load) if others_load else None,
                              "discarded_contended_runs": discarded}
    for name in pipes:
        result[f"{name}_median_s"] = statistics.median(times[name])
        result[f"{name}_times_s"] = times[name]
        for p in parts[name]:
            p["other"] = p["total"] - sum(p.get(part, 0.0) for part in PARTS)
        result[f"{name}_min_s"] = min(times[name])
        result[f"{name}_parts_s"] = {part: statistics.median(p.get(part, 0.0) for p in parts[name])
                                     for part in ("total", *PARTS, "other")}
        result[f"{name}_transformer_ms_per_call"] = 1e3 * result[f"{name}_parts_s"]["transformer"] / max(
            len(batches[name]), 1)
        result[f"{name}_transformer_calls_per_step"] = len(batches[name]) / STEPS
        result[f"{name}_transformer_samples_per_step"] = sum(batches[name]) / STEPS
    result["ratio_ours_over_diffusers"] = result["ours_median_s"] / result["diffusers_median_s"]
    result["ratio_min_ours_over_diffusers"] = result["ours_min_s"] / result["diffusers_min_s"]

    # Final latents: what each pipeline hands its decoders (denormalised; diffusers' audio is [B, C, L, M]).
    ours_video, theirs_video = captured["ours"]["video"], captured["diffusers"]["video"]
    ours_audio, theirs_audio = captured["ours"]["audio"], captured["diffusers"]["audio"]
    if ours_audio.ndim == 3:  # packed [B, L, C·M] -> [B, C, L, M]
        ours_audio = ours_audio.unflatten(2, (theirs_audio.shape[1], -1)).transpose(1, 2)
    result["max_abs_diff_video_latents"] = max_abs(ours_video, theirs_video)
    result["max_abs_diff_audio_latents"] = max_abs(ours_audio, theirs_audio)
    result["video_latents_abs_max"] = theirs_video.abs().max().item()
    result["audio_latents_abs_max"] = theirs_audio.abs().max().item()
    result["max_abs_diff_frames"] = max_abs(outputs["ours"].frames, outputs["diffusers"].frames)
    result["max_abs_diff_waveform"] = max_abs(outputs["ours"].audio, outputs["diffusers"].audio)
    return result


# ------------------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per pipeline and config (at least 1)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per pipeline and config")
    p.add_argument("--max-other-load", type=float, default=0.2,
                   help="repeat a timed call if other processes used more than this share of the CPU meanwhile")
    p.add_argument("--retries", type=int, default=6, help="repeated calls allowed per configuration")
    p.add_argument("--configs", nargs="+", choices=list(GUIDANCE), default=list(GUIDANCE))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    build_start = time.perf_counter()
    ours_components = our_components(args.seed)
    with tempfile.TemporaryDirectory() as folder, quiet_diffusers():
        theirs_components = diffusers_components(ours_components, folder)
    pipes = {"ours": LTX2AudioVideoPipeline(**ours_components), "diffusers": LTX2Pipeline(**theirs_components)}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    probes = {name: install_probe(pipe) for name, pipe in pipes.items()}
    build_s = time.perf_counter() - build_start

    # The same starting point: packed, normalised noise. diffusers normalises given audio latents itself, so it
    # receives them denormalised (one rounding step of difference).
    ours = pipes["ours"]
    num_frames, height, width = CLIP["num_frames"], CLIP["height"], CLIP["width"]
    latent_frames = (num_frames - 1) // ours.temporal_compression + 1
    video_tokens = latent_frames * (height // ours.spatial_compression) * (width // ours.spatial_compression)
    audio_tokens = round(num_frames / CLIP["frame_rate"] * 16000 / 160 / 4)
    gen = torch.Generator().manual_seed(args.seed)
    video_noise = torch.randn(1, video_tokens, VIDEO_LATENT_CHANNELS, generator=gen)
    audio_noise = torch.randn(1, audio_tokens, AUDIO_TOKEN_WIDTH, generator=gen)
    audio_vae = pipes["diffusers"].audio_vae
    audio_noise_denormalised = audio_noise * audio_vae.latents_std + audio_vae.latents_mean
    sigmas = ltx2_sigmas(STEPS)[:-1].tolist()  # the LTX-2 8-step schedule (shift 2.05, terminal 0.1), without 0
    stg_block = 29 * TRANSFORMER["num_layers"] // 48  # block 29 of 48, at the same relative depth
    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT, sigmas=sigmas, num_inference_steps=STEPS,
                  output_type="pt", **CLIP)

    load_before = os.getloadavg()[0]
    results = []
    with torch.inference_mode(), quiet_diffusers():
        for label in args.configs:
            call_kwargs = {
                "ours": dict(common, latents=video_noise, audio_latents=audio_noise,
                             **guidance_kwargs(GUIDANCE[label], stg_block, for_diffusers=False)),
                "diffusers": dict(common, latents=video_noise, audio_latents=audio_noise_denormalised,
                                  **guidance_kwargs(GUIDANCE[label], stg_block, for_diffusers=True)),
            }
            results.append({"config": label, **GUIDANCE[label],
                            **bench_config(pipes, probes, call_kwargs, args.warmup, args.runs,
                                           args.max_other_load, args.retries)})

    load_after = os.getloadavg()[0]
    params = {name: sum(p.numel() for p in model.parameters())
              for name, model in ours_components.items() if isinstance(model, torch.nn.Module)}
    meta = {
        "device": f"CPU, {args.threads} threads", "dtype": "float32", "torch": torch.__version__,
        "diffusers": diffusers.__version__, "warmup": args.warmup, "runs": args.runs, "steps": STEPS,
        "sigmas": sigmas, "stg_block": stg_block, "clip": CLIP, "video_tokens": video_tokens,
        "audio_tokens": audio_tokens, "params": params, "transformer_config": TRANSFORMER, "build_s": build_s,
        "prompt": PROMPT, "negative_prompt": NEGATIVE_PROMPT, "load_average_1min": [load_before, load_after],
        "max_other_load": args.max_other_load,
    }
    print(f"\nLTX-2 pipeline, fp32, CPU {args.threads} threads, torch {torch.__version__}, diffusers "
          f"{diffusers.__version__}; transformer {params['transformer'] / 1e6:.2f}M params "
          f"({TRANSFORMER['num_layers']} layers, video {TRANSFORMER['num_attention_heads']}x"
          f"{TRANSFORMER['attention_head_dim']}, audio {TRANSFORMER['audio_num_attention_heads']}x"
          f"{TRANSFORMER['audio_attention_head_dim']}); {num_frames} frames {height}x{width} -> {video_tokens} "
          f"video / {audio_tokens} audio / {CLIP['max_sequence_length']} text tokens; {STEPS} steps, STG block "
          f"{stg_block}; median of {args.runs} runs after {args.warmup} warm-up, interleaved; build "
          f"{build_s:.1f} s; load average "
          f"{load_before:.2f} before, {load_after:.2f} after\n")
    print("| config | ours (s) | diffusers (s) | ours / diffusers | best of runs: ours / diffusers (s) | "
          "transformer calls/step (samples) ours vs diffusers | max abs diff final latents video / audio | "
          "max abs diff frames / waveform | CPU taken by other processes (max over runs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        share = r["other_processes_cpu_share_max"]
        contention = "n/a" if share is None else f"{100 * share:.0f} % ({r['discarded_contended_runs']} repeated)"
        print(f"| {r['config']} | {r['ours_median_s']:.3f} | {r['diffusers_median_s']:.3f} | "
              f"{r['ratio_ours_over_diffusers']:.3f} | {r['ours_min_s']:.3f} / {r['diffusers_min_s']:.3f} | "
              f"{r['ours_transformer_calls_per_step']:g} ({r['ours_transformer_samples_per_step']:g}) vs "
              f"{r['diffusers_transformer_calls_per_step']:g} ({r['diffusers_transformer_samples_per_step']:g}) | "
              f"{r['max_abs_diff_video_latents']:.2e} / {r['max_abs_diff_audio_latents']:.2e} | "
              f"{r['max_abs_diff_frames']:.2e} / {r['max_abs_diff_waveform']:.2e} | {contention} |")
    print("\nWhere the time goes (median seconds per call; other = total minus the timed parts):\n")
    print("| config | pipeline | total | " + " | ".join(PARTS) + " | other | transformer ms/call |")
    print("|---|---|" + "---|" * (len(PARTS) + 3))
    for r in results:
        for name in pipes:
            p = r[f"{name}_parts_s"]
            print(f"| {r['config']} | {name} | {p['total']:.3f} | "
                  + " | ".join(f"{p[part]:.3f}" for part in PARTS)
                  + f" | {p['other']:.3f} | {r[f'{name}_transformer_ms_per_call']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
