"""``ltx2-diffusers bench``: this package vs diffusers 0.42.1 on identical weights, as a markdown table.

Four comparisons, each on one set of weights shared by both implementations (diffusers' models are built on the
meta device and given our tensors with ``load_state_dict(assign=True)``, or diffusers' ``LTX2Pipeline`` loads a
folder ours saved with its own ``from_pretrained``):

* transformer forward (both streams, per-stream σ);
* one guided step with the reference guidance (CFG + STG + modality): ours runs the batched cond/uncond pass, the
  STG pass and the modality-isolated pass exactly as its sampler does; diffusers' transformer gets the three calls
  its ``LTX2Pipeline`` makes per step;
* video VAE decode;
* the whole pipeline (text encoding, 4 guided steps, VAE + audio decode, vocoder) on tiny components.

Times are medians of interleaved runs after a warm-up. The CPU configuration runs in about a minute on 2 cores; with
CUDA the real 19B transformer config (bf16, random weights, 121 frames at 704x1280) is timed as well.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .models.autoencoder_ltx2_video import LTX2VideoAutoencoder
from .models.transformer_ltx2 import LTX2AudioVideoTransformer
from .pipelines.defaults import LTX_2_0
from .pipelines.denoising import StreamInputs, predict_x0
from .utils.measure import max_abs, timed

CPU_TRANSFORMER = dict(num_layers=4, num_attention_heads=8, attention_head_dim=32, cross_attention_dim=256,
                       audio_num_attention_heads=4, audio_attention_head_dim=32, audio_cross_attention_dim=128,
                       caption_channels=128, in_channels=64, out_channels=64, audio_in_channels=64,
                       audio_out_channels=64, rope_type="split")
CPU_GRID, CPU_AUDIO_TOKENS, CPU_TEXT_TOKENS = (3, 8, 12), 26, 64
FULL_GRID, FULL_AUDIO_TOKENS, FULL_TEXT_TOKENS = (16, 22, 40), 126, 1024  # 121 frames at 704x1280


@dataclass
class Row:
    """One comparison: median seconds of ours and diffusers', and the max abs difference of the outputs."""

    name: str
    ours: float
    diffusers: float
    max_diff: float

    @property
    def ratio(self) -> float:
        return self.ours / self.diffusers


def compare(name: str, ours: Callable[[], Any], theirs: Callable[[], Any], runs: int, device: torch.device,
            difference: Callable[[Any, Any], float]) -> Row:
    """Warm-up once each, then ``runs`` interleaved timed calls (alternating which goes first)."""
    with torch.inference_mode():
        first, second = ours(), theirs()
        times: dict[str, list[float]] = {"ours": [], "diffusers": []}
        for i in range(runs):
            order = (("ours", ours), ("diffusers", theirs))
            for key, fn in order if i % 2 == 0 else order[::-1]:
                times[key].append(timed(fn, device)[1])
    return Row(name, statistics.median(times["ours"]), statistics.median(times["diffusers"]),
               difference(first, second))


# ----------------------------------------------------------------------------------------------------------------
# Transformer: forward and one guided step
# ----------------------------------------------------------------------------------------------------------------


def shared_transformers(config: dict, device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, ...]:
    """Ours with seeded random weights, and diffusers' ``LTX2VideoTransformer3DModel`` on the same tensors."""
    import diffusers

    torch.manual_seed(0)
    with torch.device(device):
        ours = LTX2AudioVideoTransformer(**config)
    ours = ours.to(dtype).eval() if dtype != torch.float32 else ours.eval()
    with torch.device("meta"):
        theirs = diffusers.LTX2VideoTransformer3DModel(
            **{k: v for k, v in ours.config.items() if not k.startswith("_") and k != "perturbed_attn"},
            perturbed_attn=True)
    theirs.load_state_dict(ours.state_dict(), strict=True, assign=True)
    return ours, theirs.eval()


def _transformer_inputs(ours: torch.nn.Module, grid: tuple[int, int, int], audio_tokens: int, text_tokens: int,
                        device: torch.device, dtype: torch.dtype) -> tuple[StreamInputs, StreamInputs]:
    c = ours.config
    g = torch.Generator().manual_seed(1)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    tokens = grid[0] * grid[1] * grid[2]
    video = StreamInputs(randn(1, tokens, c.in_channels), ours.video_coordinates(*grid, 24.0, 1, dtype, device),
                         randn(1, text_tokens, c.caption_channels), randn(1, text_tokens, c.caption_channels),
                         guidance=LTX_2_0.video_guidance, stg_blocks=(c.num_layers // 2,))
    audio = StreamInputs(randn(1, audio_tokens, c.audio_in_channels), ours.audio_coordinates(audio_tokens, 1, device),
                         randn(1, text_tokens, c.caption_channels), randn(1, text_tokens, c.caption_channels),
                         guidance=LTX_2_0.audio_guidance, stg_blocks=(c.num_layers // 2,))
    return video, audio


def _diffusers_call(theirs: torch.nn.Module, video: StreamInputs, audio: StreamInputs, grid: tuple[int, ...],
                    sigma: float, negative: bool = False, **extra: Any) -> tuple[torch.Tensor, ...]:  # noqa: ANN401
    n = 2 if negative else 1
    contexts = [video.context] + ([video.negative_context] if negative else [])
    audio_contexts = [audio.context] + ([audio.negative_context] if negative else [])
    t = torch.full((n,), sigma * 1000.0, device=video.latents.device)
    return theirs(
        hidden_states=video.latents.repeat(n, 1, 1), audio_hidden_states=audio.latents.repeat(n, 1, 1),
        encoder_hidden_states=torch.cat(contexts), audio_encoder_hidden_states=torch.cat(audio_contexts),
        timestep=t, sigma=t, num_frames=grid[0], height=grid[1], width=grid[2], fps=24.0,
        audio_num_frames=audio.latents.shape[1], use_cross_timestep=True, return_dict=False, **extra)


def bench_transformer(config: dict, grid: tuple[int, int, int], audio_tokens: int, text_tokens: int, runs: int,
                      device: torch.device, dtype: torch.dtype, label: str) -> list[Row]:
    ours, theirs = shared_transformers(config, device, dtype)
    video, audio = _transformer_inputs(ours, grid, audio_tokens, text_tokens, device, dtype)
    sigma = 0.7
    t = torch.full((1,), sigma * 1000.0, device=device)  # diffusers' units: σ·1000

    def ours_forward() -> tuple[torch.Tensor, ...]:
        return ours(video.latents, audio.latents, video.context, audio.context, timestep=t, audio_timestep=t,
                    sigma=t, audio_sigma=t, video_coords=video.coords, audio_coords=audio.coords, fps=24.0,
                    use_cross_timestep=True, return_dict=False)

    def theirs_forward() -> tuple[torch.Tensor, ...]:
        return _diffusers_call(theirs, video, audio, grid, sigma)

    def ours_step() -> tuple[torch.Tensor, ...]:
        return predict_x0(ours, video, audio, torch.tensor(sigma, device=device), 24.0)

    def theirs_step() -> tuple[torch.Tensor, ...]:  # the three transformer calls of one diffusers guided step
        both = _diffusers_call(theirs, video, audio, grid, sigma, negative=True)
        perturbed = _diffusers_call(theirs, video, audio, grid, sigma,
                                    spatio_temporal_guidance_blocks=list(video.stg_blocks))
        isolated = _diffusers_call(theirs, video, audio, grid, sigma, isolate_modalities=True)
        return both, perturbed, isolated

    rows = [compare(f"transformer forward ({label})", ours_forward, theirs_forward, runs, device, max_abs)]
    if device.type == "cpu":  # full size: the forward row is the point; a step is ~3 forwards
        rows.append(compare(f"guided step, CFG+STG+modality ({label})", ours_step, theirs_step, runs, device,
                            lambda a, b: float("nan")))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Video decode and the whole pipeline
# ----------------------------------------------------------------------------------------------------------------


def bench_video_decode(runs: int) -> Row:
    import diffusers

    torch.manual_seed(0)
    ours = LTX2VideoAutoencoder(latent_channels=16, block_out_channels=(32, 64, 128, 256),
                                layers_per_block=(1, 1, 1, 1, 1), decoder_block_out_channels=(32, 64, 128),
                                decoder_layers_per_block=(1, 1, 1, 1)).eval()
    # every key passed explicitly: from_config would replace the values ours left at their defaults by diffusers'
    # own defaults (``_use_default_values``), and diffusers' decoder defaults to causal padding
    with torch.device("meta"):
        theirs = diffusers.AutoencoderKLLTX2Video(**{k: v for k, v in ours.config.items() if not k.startswith("_")})
    theirs.load_state_dict(ours.state_dict(), strict=True, assign=True)
    theirs.eval()
    z = torch.randn(1, 16, 3, 4, 6, generator=torch.Generator().manual_seed(2))
    return compare("video VAE decode (17 frames 128x192)", lambda: ours.decode(z).sample,
                   lambda: theirs.decode(z).sample, runs, torch.device("cpu"), max_abs)


def diffusers_ltx2_pipeline(folder: str, text_encoder: Any = None, tokenizer: Any = None) -> Any:  # noqa: ANN401
    """diffusers' ``LTX2Pipeline.from_pretrained`` of a folder this package saved (it is in diffusers' format), with
    the settings the reference sampler needs: perturbed-attention processors (``perturbed_attn=True``; diffusers' STG
    is a silent no-op without them on an LTX-2.0 config), and a scheduler that uses a call's ``sigmas`` as given
    (no static shift, no terminal stretch), as ours does. ``text_encoder`` / ``tokenizer``: shared objects, or
    ``None`` to load the folder's own."""
    import diffusers

    shared = {k: v for k, v in dict(text_encoder=text_encoder, tokenizer=tokenizer).items() if v is not None}
    transformer = diffusers.LTX2VideoTransformer3DModel.from_pretrained(folder, subfolder="transformer",
                                                                        perturbed_attn=True)
    pipe = diffusers.LTX2Pipeline.from_pretrained(folder, transformer=transformer, **shared)
    pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=1.0,
                                                                           shift_terminal=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bench_pipeline(runs: int) -> Row:
    from .pipelines.pipeline_ltx2_audio_video import LTX2AudioVideoPipeline
    from .utils.tiny import tiny_pipeline

    with tempfile.TemporaryDirectory() as folder:
        tiny_pipeline(seed=0).save_pretrained(folder)
        ours = LTX2AudioVideoPipeline.from_pretrained(folder)
        theirs = diffusers_ltx2_pipeline(folder, ours.text_encoder, ours.tokenizer)
    ours.set_progress_bar_config(disable=True)
    sigmas = [1.0, 0.9, 0.6, 0.25]
    g = torch.Generator().manual_seed(3)
    video = torch.randn(1, 3 * 3 * 5, ours.transformer.config.in_channels, generator=g)
    audio = torch.randn(1, 18, ours.transformer.config.audio_in_channels, generator=g)
    common = dict(negative_prompt="blurry", num_frames=17, height=96, width=160, sigmas=sigmas,
                  num_inference_steps=len(sigmas), max_sequence_length=32, output_type="np",
                  guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, guidance_rescale=0.7,
                  audio_guidance_scale=7.0, audio_stg_scale=1.0, audio_modality_scale=3.0, audio_guidance_rescale=0.7)
    prompt = "a dog barks at a passing train"

    def ours_call() -> Any:  # noqa: ANN401
        ours.prompt_encoder.cache.clear()  # both pipelines encode the prompts every call
        return ours(prompt, latents=video, audio_latents=audio, spatio_temporal_guidance_blocks=[1], **common)

    def theirs_call() -> Any:  # noqa: ANN401
        return theirs(prompt, latents=video, audio_latents=ours.audio_vae.denormalize_latents(audio), noise_scale=0.0,
                      spatio_temporal_guidance_blocks=[1], use_cross_timestep=True,
                      generator=torch.Generator().manual_seed(0), **common)

    return compare("whole pipeline, 4 guided steps (tiny, 17 frames 96x160)", ours_call, theirs_call, runs,
                   torch.device("cpu"), lambda a, b: float(abs(a.frames - b.frames).max()))


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def run_benchmarks(runs: int = 3, full: bool | None = None) -> list[Row]:
    """All CPU comparisons, plus the 19B transformer forward on CUDA when ``full`` (default: CUDA available)."""
    cpu = torch.device("cpu")
    rows = bench_transformer(CPU_TRANSFORMER, CPU_GRID, CPU_AUDIO_TOKENS, CPU_TEXT_TOKENS, runs, cpu, torch.float32,
                             "CPU config, fp32")
    rows += [bench_video_decode(runs), bench_pipeline(runs)]
    if full if full is not None else torch.cuda.is_available():
        rows += bench_transformer(dict(rope_type="split"), FULL_GRID, FULL_AUDIO_TOKENS, FULL_TEXT_TOKENS, runs,
                                  torch.device("cuda"), torch.bfloat16, "19B, bf16, 121x704x1280")
    return rows


def markdown_table(rows: list[Row]) -> str:
    lines = ["| comparison | ours (s) | diffusers 0.42.1 (s) | ours / diffusers | max abs diff |",
             "|---|---|---|---|---|"]
    for r in rows:
        diff = "—" if r.max_diff != r.max_diff else f"{r.max_diff:.1e}"
        lines.append(f"| {r.name} | {r.ours:.4f} | {r.diffusers:.4f} | {r.ratio:.2f} | {diff} |")
    return "\n".join(lines)
