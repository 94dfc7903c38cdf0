"""``ltx2-diffusers bench --suite gpu --json PATH``: the one-command GPU benchmark, phase by phase.

Phases, cheapest and most important first; each runs in its own ``try``, prints one progress line and is written to
the JSON file as soon as it ends (a timeout keeps the finished ones):

1. ``forward``: the full-size transformer forward (19B, 121 frames at 704x1280), ours vs diffusers' on the same bf16
   weights: median seconds, max abs difference, peak memory;
2. ``forward_compiled``: the same with ``torch.compile`` of the repeated blocks (both models), first-call seconds
   included;
3. ``forward_fp8``: ours with fp8 weight storage (layerwise casting, computed in bf16): seconds, weight bytes, max abs
   difference against bf16;
4. ``low_memory_generation``: a whole two-stage generation, 121 frames to 1536x1024, under
   ``pipe.enable_low_memory()`` with random weights and the released configs (prompt embeddings given): seconds and
   peak memory per phase (stage 1, upsampling, stage 2, decode);
5. ``text_encoding_cpu``: Gemma-3-12B (random weights) and the connectors on the CPU, as the profile runs them.

``--tiny`` runs the same code with tiny configurations on the CPU (a dry run; compile uses the ``eager`` backend).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .benchmarks import (
    FULL_AUDIO_TOKENS,
    FULL_GRID,
    FULL_TEXT_TOKENS,
    _diffusers_call,
    _transformer_inputs,
    shared_transformers,
)
from .pipelines.low_memory import storage_bytes
from .utils.measure import default_dtype, max_abs, synchronize, timed

# the dry run's transformer (the tiny pipeline's widths) and forward sizes
TINY_TRANSFORMER = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
                        audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16,
                        caption_channels=32, in_channels=8, out_channels=8, audio_in_channels=32,
                        audio_out_channels=32, rope_type="split")
TINY_GRID, TINY_AUDIO_TOKENS, TINY_TEXT_TOKENS = (2, 4, 6), 10, 16
PHASE_NAMES = ("forward", "forward_compiled", "forward_fp8", "low_memory_generation", "text_encoding_cpu")
GIB = 2**30


class Settings:
    """Sizes of one suite run: the real ones on CUDA, tiny ones for the CPU dry run."""

    def __init__(self, tiny: bool, steps: int, runs: int) -> None:
        self.tiny = tiny
        self.device = torch.device("cpu" if tiny else "cuda")
        self.dtype = torch.float32 if tiny else torch.bfloat16
        self.transformer = TINY_TRANSFORMER if tiny else dict(rope_type="split")
        self.grid, self.audio_tokens, self.text_tokens = ((TINY_GRID, TINY_AUDIO_TOKENS, TINY_TEXT_TOKENS) if tiny
                                                          else (FULL_GRID, FULL_AUDIO_TOKENS, FULL_TEXT_TOKENS))
        self.backend = "eager" if tiny else "inductor"
        self.frames, self.height, self.width = (9, 128, 192) if tiny else (121, 1024, 1536)
        self.max_sequence_length = 32 if tiny else 1024
        self.steps, self.runs = steps, runs


# ----------------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------------


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def median_seconds(fn: Callable[[], Any], runs: int, device: torch.device) -> tuple[Any, float, float]:  # noqa: ANN401
    """``(output, first-call seconds, median seconds of runs after it)``."""
    with torch.inference_mode():
        out, first = timed(fn, device)
        times = [timed(fn, device)[1] for _ in range(runs)]
    return out, first, statistics.median(times)


class PhaseMemory:
    """Seconds and peak memory of each phase of a pipeline call, from hooks that mark where a phase starts."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.phases: dict[str, dict[str, float | None]] = {}
        self.current: str | None = None
        self.start = 0.0

    def mark(self, name: str) -> None:
        if name == self.current:
            return
        synchronize(self.device)
        now = time.perf_counter()
        if self.current is not None:
            self.phases[self.current] = {"seconds": now - self.start, "peak_gib": peak_gib(self.device)}
        reset_peak(self.device)
        self.current, self.start = name, now

    def finish(self) -> dict[str, dict[str, float | None]]:
        self.mark("")
        self.phases.pop("", None)
        return self.phases


# ----------------------------------------------------------------------------------------------------------------
# Phases
# ----------------------------------------------------------------------------------------------------------------


def _forward_fns(ours: torch.nn.Module, theirs: torch.nn.Module, s: Settings) -> tuple[Callable, Callable]:
    video, audio = _transformer_inputs(ours, s.grid, s.audio_tokens, s.text_tokens, s.device, s.dtype)
    t = torch.full((1,), 700.0, device=s.device)

    def ours_forward() -> tuple[torch.Tensor, ...]:
        return ours(video.latents, audio.latents, video.context, audio.context, timestep=t, audio_timestep=t,
                    sigma=t, audio_sigma=t, video_coords=video.coords, audio_coords=audio.coords, fps=24.0,
                    use_cross_timestep=True, return_dict=False)

    def theirs_forward() -> tuple[torch.Tensor, ...]:
        return _diffusers_call(theirs, video, audio, s.grid, 0.7)

    return ours_forward, theirs_forward


def phase_forward(s: Settings, state: dict[str, Any], compiled: bool = False) -> dict[str, Any]:
    ours, theirs = shared_transformers(s.transformer, s.device, s.dtype)
    result: dict[str, Any] = {"parameters": sum(p.numel() for p in ours.parameters())}
    if compiled:
        for model in (ours, theirs):
            model.compile_repeated_blocks(backend=s.backend)
        result["backend"] = s.backend
    ours_fn, theirs_fn = _forward_fns(ours, theirs, s)
    reset_peak(s.device)
    a, result["ours_first_s"], result["ours_s"] = median_seconds(ours_fn, s.runs, s.device)
    result["ours_peak_gib"] = peak_gib(s.device)
    b, result["diffusers_first_s"], result["diffusers_s"] = median_seconds(theirs_fn, s.runs, s.device)
    result["ratio"] = result["ours_s"] / result["diffusers_s"]
    result["max_abs_diff"] = max_abs(a, b)
    if not compiled:
        state["bf16_output"] = tuple(x.detach() for x in a)
    return result


def phase_forward_fp8(s: Settings, state: dict[str, Any]) -> dict[str, Any]:
    ours, _ = shared_transformers(s.transformer, s.device, s.dtype)
    before = storage_bytes(ours)
    ours_fn, _ = _forward_fns(ours, ours, s)
    reference = state.get("bf16_output")
    if reference is None:
        with torch.inference_mode():
            reference = ours_fn()
    ours.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=s.dtype)
    reset_peak(s.device)
    out, first, seconds = median_seconds(ours_fn, s.runs, s.device)
    return {"weights_gib": storage_bytes(ours) / GIB, "bf16_weights_gib": before / GIB, "first_s": first,
            "seconds": seconds, "peak_gib": peak_gib(s.device), "max_abs_diff_vs_bf16": max_abs(out, reference),
            "reference_max_abs": max(float(r.abs().max()) for r in reference)}


def generation_components(s: Settings) -> dict[str, Any]:
    """The pipeline's components: tiny seeded ones (dry run), or the released configs with seeded random weights,
    built on the accelerator in bf16 (fast) and left there (``enable_low_memory`` places them)."""
    from .utils.tiny import tiny_components

    if s.tiny:
        parts = tiny_components(0)
        parts.update(text_encoder=None, tokenizer=None)
        return parts
    from .models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from .models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from .models.latent_upsampler_ltx2 import LTX2LatentUpsampler
    from .models.text_connectors_ltx2 import LTX2TextConnectors
    from .models.transformer_ltx2 import LTX2AudioVideoTransformer
    from .models.vocoder_ltx2 import LTX2Vocoder
    from .schedulers.scheduling_ltx2 import LTX2Scheduler

    torch.manual_seed(0)
    classes = dict(transformer=(LTX2AudioVideoTransformer, s.transformer), vae=(LTX2VideoAutoencoder, {}),
                   audio_vae=(LTX2AudioAutoencoder, {}), connectors=(LTX2TextConnectors, {}),
                   vocoder=(LTX2Vocoder, {}), latent_upsampler=(LTX2LatentUpsampler, {}))
    parts: dict[str, Any] = {}
    with torch.device(s.device), default_dtype(s.dtype):
        for name, (cls, config) in classes.items():
            parts[name] = cls(**config).eval()
    parts.update(scheduler=LTX2Scheduler(), text_encoder=None, tokenizer=None)
    return parts


def phase_low_memory_generation(s: Settings, state: dict[str, Any]) -> dict[str, Any]:
    from .models.text_connectors_ltx2 import LTX2TextEmbeddings
    from .pipelines.pipeline_ltx2_audio_video import LTX2AudioVideoPipeline

    started = time.perf_counter()
    pipe = LTX2AudioVideoPipeline(**generation_components(s))
    pipe.set_progress_bar_config(disable=True)
    # on CUDA the transformer is group-offloaded to pinned CPU memory; the dry run applies the same hooks CPU to CPU
    profile = pipe.enable_low_memory(s.device, offload_hooks=True)
    built = time.perf_counter() - started
    widths = pipe.connectors.embedding_dims
    g = torch.Generator().manual_seed(1)

    def embeds() -> LTX2TextEmbeddings:
        t = s.max_sequence_length
        return LTX2TextEmbeddings(torch.randn(1, t, widths[0], generator=g).to(s.device, s.dtype),
                                  torch.randn(1, t, widths[1], generator=g).to(s.device, s.dtype),
                                  torch.ones(1, t, dtype=torch.long, device=s.device))

    memory = PhaseMemory(s.device)
    hooks = [pipe.transformer.register_forward_pre_hook(lambda *_: memory.mark(f"stage {pipe.stage}")),
             pipe.latent_upsampler.register_forward_pre_hook(lambda *_: memory.mark("upsampling")),
             pipe.vae.decoder.register_forward_pre_hook(lambda *_: memory.mark("decode"))]
    memory.mark("prepare")
    try:
        out = pipe(prompt_embeds=embeds(), negative_prompt_embeds=embeds(), upsample=True, num_frames=s.frames,
                   height=s.height, width=s.width, num_inference_steps=s.steps, output_type="pt",
                   generator=torch.Generator().manual_seed(0))
    finally:
        for hook in hooks:
            hook.remove()
    phases = memory.finish()
    frames = out.frames
    return {"profile": {k: str(v) for k, v in vars(profile).items()}, "build_s": built, "phases": phases,
            "peak_gib": max((p["peak_gib"] or 0.0 for p in phases.values()), default=None) if not s.tiny else None,
            "frames_shape": list(frames.shape), "finite": bool(torch.isfinite(frames).all()),
            "transformer_storage_gib": storage_bytes(pipe.transformer) / GIB, "steps": s.steps}


def phase_text_encoding_cpu(s: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """Gemma-3 (12B config, random weights; tiny for the dry run) and the connectors run on the CPU."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from .models.text_connectors_ltx2 import LTX2TextConnectors
    from .pipelines.text_encoding import LTX2PromptEncoder
    from .utils.tiny_gemma import tiny_connectors_config, tiny_gemma3, tiny_gemma_tokenizer

    torch.manual_seed(0)
    if s.tiny:
        gemma, connectors = tiny_gemma3(32, num_layers=2, seed=0), LTX2TextConnectors(**tiny_connectors_config(32))
    else:
        config = Gemma3TextConfig(hidden_size=3840, num_hidden_layers=48, intermediate_size=15360,
                                  num_attention_heads=16, num_key_value_heads=8, head_dim=256, vocab_size=262208)
        with torch.device(s.device), default_dtype(s.dtype):  # random init on the GPU is fast; then to the CPU
            gemma, connectors = Gemma3TextModel(config).eval(), LTX2TextConnectors().eval()
        gemma, connectors = gemma.to("cpu"), connectors.to("cpu")
    reset_peak(s.device)
    encoder = LTX2PromptEncoder(gemma, tiny_gemma_tokenizer(), connectors, s.max_sequence_length, cache_size=0)
    start = time.perf_counter()
    positive, negative = encoder.encode_prompt("a violinist plays at dusk", "blurry", device=s.device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "threads": torch.get_num_threads(), "peak_gib": peak_gib(s.device),
            "text_encoder_parameters": sum(p.numel() for p in gemma.parameters()),
            "embeds_shape": list(positive.video_embeds.shape), "finite": bool(
                torch.isfinite(positive.video_embeds).all() & torch.isfinite(negative.video_embeds).all())}


PHASES: dict[str, Callable[[Settings, dict[str, Any]], dict[str, Any]]] = {
    "forward": phase_forward,
    "forward_compiled": lambda s, state: phase_forward(s, state, compiled=True),
    "forward_fp8": phase_forward_fp8,
    "low_memory_generation": phase_low_memory_generation,
    "text_encoding_cpu": phase_text_encoding_cpu,
}


# ----------------------------------------------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------------------------------------------


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Atomic rewrite of the report (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(report, indent=2, default=str))
    os.replace(temporary, path)


def run_suite(json_path: str | os.PathLike, tiny: bool = False, steps: int = 4, runs: int = 3,
              skip: tuple[str, ...] = (), say: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the phases in order, each in its own ``try``; the report is rewritten after each phase."""
    unknown = sorted(set(skip) - set(PHASE_NAMES))
    if unknown:
        raise ValueError(f"--skip names unknown phases {unknown}; the phases are {list(PHASE_NAMES)}.")
    if not tiny and not torch.cuda.is_available():
        raise ValueError("The GPU suite needs CUDA; pass --tiny for the CPU dry run with tiny configs.")
    s = Settings(tiny, steps, runs)
    path = Path(json_path)
    import diffusers

    report: dict[str, Any] = {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if s.device.type == "cuda" else platform.processor() or "CPU",
        "tiny": tiny, "steps": steps, "runs": runs, "phases": []}
    write_json(path, report)
    state: dict[str, Any] = {}
    for index, name in enumerate(PHASE_NAMES, 1):
        if name in skip:
            report["phases"].append({"name": name, "status": "skipped"})
            write_json(path, report)
            say(f"[{index}/{len(PHASE_NAMES)}] {name}: skipped")
            continue
        start = time.perf_counter()
        entry: dict[str, Any] = {"name": name}
        try:
            entry.update(status="ok", result=PHASES[name](s, state))
        except Exception as error:  # noqa: BLE001 - recorded, the next phase runs
            entry.update(status="error", error=f"{type(error).__name__}: {error}",
                         traceback=traceback.format_exc(limit=6))
        entry["seconds"] = time.perf_counter() - start
        report["phases"].append(entry)
        write_json(path, report)
        gc.collect()
        if s.device.type == "cuda":
            torch.cuda.empty_cache()
        say(f"[{index}/{len(PHASE_NAMES)}] {name}: {entry['status']} in {entry['seconds']:.1f} s"
            + (f" ({entry['error']})" if entry["status"] == "error" else ""))
    return report
