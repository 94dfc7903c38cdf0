"""``ltx2-diffusers generate``: every mode of :class:`LTX2AudioVideoPipeline` from the command line.

Argument definitions and checks, phase timing, and the run itself (load, text encoding, denoising per stage, decode,
export, optional previews); failures become messages in :mod:`ltx2_diffusers.cli_errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .cli_arguments import (
    block_list,
    crf,
    existing_file,
    image_spec,
    model_source,
    non_negative_float,
    positive_float,
    positive_int,
    sigma_list,
)
from .cli_errors import GenerateError, failure, load_error_message, one_line_parser_errors, text_encoder_message
from .cli_parallel import MODES as PARALLEL_MODES
from .cli_parallel import ParallelRun, start_parallel_run
from .cli_prompt_cache import cached_embeddings, connector_widths, local_folder, open_prompt_cache, prompt_cache_dir
from .pipelines import DISTILLED_SIGMAS, LTX2AudioVideoPipeline
from .pipelines.conditioning import read_image
from .pipelines.model_facts import PipelineFacts
from .pipelines.pipeline_ltx2_audio_video import call_arguments
from .pipelines.plan import plan_generation
from .pipelines.prompt_cache import folder_text_identity
from .pipelines.token_tiling import TokenTiling
from .utils.dtypes import DTYPES
from .utils.export import check_output_path
from .utils.measure import process_peak_bytes, synchronize

EXAMPLES = """examples:
  ltx2-diffusers generate --model LTX-2-diffusers --prompt "A violinist plays at dusk" --output clip.mp4
  ltx2-diffusers generate --model LTX-2-diffusers --prompt "..." --image first.png --image last.png@-1@0.8
  ltx2-diffusers generate --model LTX-2-diffusers --prompt "A drummer on stage" --audio drums.wav     # A2V
  ltx2-diffusers generate --model LTX-2-diffusers --prompt "Rain and thunder" --video storm.mp4     # V2A
  ltx2-diffusers generate --model LTX-2-diffusers --prompt "..." --upsample --height 1024 --width 1536
exit codes: 0 done, 2 invalid arguments, 1 failed work (the model or a file could not be loaded or written, out of
memory); every error is one line on stderr (--debug: the traceback)."""




def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``generate`` subcommand's flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    one_line_parser_errors(parser)
    what = parser.add_argument_group("model and prompt")
    what.add_argument("--model", required=True, type=model_source,
                      help="pipeline folder (e.g. from `ltx2-diffusers convert`) or Hub id")
    what.add_argument("--prompt", required=True)
    what.add_argument("--negative-prompt", default=None, help="default: the reference's negative prompt")
    what.add_argument("--max-sequence-length", type=positive_int, default=1024, metavar="N",
                      help="text tokens (a multiple of the connectors' register count; default 1024)")

    size = parser.add_argument_group("size and schedule")
    size.add_argument("--height", type=positive_int, metavar="PX",
                      help="multiple of 32 (64 with --upsample); default 512 or the --video's")
    size.add_argument("--width", type=positive_int, metavar="PX",
                      help="multiple of 32 (64 with --upsample); default 768 or the --video's")
    size.add_argument("--frames", type=positive_int, metavar="N", help="8k+1; default 121 or the --video's")
    size.add_argument("--fps", type=positive_float, help="default 24 or the --video's")
    steps = size.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=positive_int, metavar="N",
                       help="denoising steps of the LTX-2 schedule (default: the model's, 40 for LTX-2.0 and 30 for "
                       "LTX-2.3, read from the folder)")
    steps.add_argument("--sigmas", type=sigma_list, metavar="S1,S2,...",
                       help="the steps' noise levels, comma-separated, without the final 0 (used exactly as given)")
    steps.add_argument("--distilled", action="store_true", help="the distilled model's 8 fixed noise levels; "
                       "guidance off unless a scale is given")

    guidance = parser.add_argument_group("guidance (default: the reference's; a stream held whole: off)")
    for flag, text in (("guidance-scale", "video text CFG (1 = off; default 3)"),
                       ("audio-guidance-scale", "audio text CFG (default 7)"),
                       ("modality-scale", "video audio<->video modality guidance (1 = off; default 3)"),
                       ("audio-modality-scale", "audio modality guidance (default 3)"),
                       ("stg-scale", "video spatio-temporal guidance (0 = off; default 1)"),
                       ("audio-stg-scale", "audio STG (default 1)"),
                       ("guidance-rescale", "video rescale in [0, 1] (0 = off; default 0.7)"),
                       ("audio-guidance-rescale", "audio rescale (default 0.7)")):
        guidance.add_argument(f"--{flag}", type=non_negative_float, metavar="S", help=text)
    guidance.add_argument("--stg-blocks", type=block_list, metavar="I[,J...]",
                          help="transformer blocks STG perturbs (default: the model's, block 29 of 48 for LTX-2.0 "
                          "and 28 for LTX-2.3)")
    guidance.add_argument("--audio-stg-blocks", type=block_list, metavar="I[,J...]", help="default: --stg-blocks")

    inputs = parser.add_argument_group("conditioning (image, audio-to-video, video-to-audio, retake)")
    inputs.add_argument("--image", type=image_spec, action="append", default=[], metavar="PATH[@FRAME[@STRENGTH]]",
                        help="condition image (repeatable); frame 0 and strength 1 by default, negative frames "
                        "count from the end")
    inputs.add_argument("--image-crf", type=crf, default=33, metavar="0..51",
                        help="H.264 CRF applied to condition images (0 = none; default 33)")
    inputs.add_argument("--audio", type=existing_file, metavar="PATH", help="audio to hold (audio-to-video)")
    inputs.add_argument("--video", type=existing_file, metavar="PATH", help="video to hold (video-to-audio)")
    inputs.add_argument("--retake", type=non_negative_float, nargs=2, metavar=("START", "END"),
                        help="regenerate only these seconds of --video / --audio")
    inputs.add_argument("--retake-modalities", nargs="+", choices=("video", "audio"), default=None,
                        help="streams the retake window applies to (default both)")

    stages = parser.add_argument_group("multi-scale and memory")
    stages.add_argument("--upsample", action="store_true",
                        help="half-size generation, x2 latent upsampler, refinement at full size")
    tiling = stages.add_mutually_exclusive_group()
    tiling.add_argument("--tile-tokens", type=positive_int, metavar="N",
                        help="tile the refinement (or a one-stage run) into transformer calls of at most N video "
                        "tokens")
    tiling.add_argument("--no-tiling", action="store_true", help="never tile the refinement")
    stages.add_argument("--decode-tiling", action=argparse.BooleanOptionalAction, default=None,
                        help="VAE decode in tiles (default: automatic above 121 frames at 720p)")
    stages.add_argument("--offload", choices=("none", "model", "sequential"), default="none",
                        help="diffusers CPU offload: whole components or layer by layer (needs an accelerator)")
    stages.add_argument("--fp8", action="store_true",
                        help="store the transformer's weights in fp8 (layerwise casting), computing in --dtype")
    stages.add_argument("--low-vram", action="store_true",
                        help="the ~16 GB profile (pipe.enable_low_memory): Gemma off the GPU and released after "
                        "encoding, fp8 transformer weights offloaded block by block, tiled refinement and decode")
    stages.add_argument("--text-encoder", choices=("cpu", "int8"), default=None,
                        help="with --low-vram: Gemma on the CPU (default), or int8 weights on the GPU while it "
                        "encodes (needs torchao)")
    stages.add_argument("--prompt-cache", nargs="?", const="default", default=None, metavar="DIR",
                        help="keep prompt embeddings on disk (default folder: under the Hugging Face cache); a run "
                        "whose prompts are all cached does not load the text encoder")
    stages.add_argument("--dtype", choices=tuple(DTYPES), help="default: bfloat16 on CUDA, float32 otherwise")
    stages.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    stages.add_argument("--context-parallel", choices=PARALLEL_MODES, default=None,
                        help="under torchrun: split the video tokens over the processes (Ulysses all-to-all or ring "
                        "attention); the first rank writes and prints")

    out = parser.add_argument_group("output")
    out.add_argument("--seed", type=int, default=0)
    out.add_argument("--num-videos", type=positive_int, default=1, metavar="N",
                     help="videos for the prompt (one file each)")
    out.add_argument("--output", type=Path, default=Path("ltx2_output.mp4"), metavar="PATH",
                     help="mp4 path; several videos get _1, _2, ... (default ltx2_output.mp4)")
    out.add_argument("--preview", action="store_true",
                     help="also write <stem>_frames.png (contact sheet) and <stem>_audio.png (waveform, spectrogram)")
    out.add_argument("--quiet", action="store_true", help="no progress bars or phase lines; only the summary line")
    out.add_argument("--debug", action="store_true", help="show the traceback of a failure")


def check_generate_args(args: argparse.Namespace) -> None:
    """Combinations of flags that only the command line has; raises ``ValueError`` (one line, exit code 2). Everything
    the pipeline checks (sizes, modes, guidance, ...) is checked by its plan, before the weights load."""
    if args.retake_modalities and args.retake is None:
        raise ValueError("--retake-modalities only applies with --retake START END.")
    if args.no_tiling and not args.upsample:
        raise ValueError("--no-tiling switches off the tiled refinement of --upsample; pass --upsample or drop it.")
    device = resolve_device(args.device)
    if getattr(args, "low_vram", False) and args.offload != "none":
        raise ValueError(f"--low-vram places the components itself (block-level offload of the transformer); drop "
                         f"--offload {args.offload}.")
    if getattr(args, "text_encoder", None) is not None and not getattr(args, "low_vram", False):
        raise ValueError("--text-encoder chooses where --low-vram runs Gemma; pass --low-vram too.")
    prompt_cache_dir(getattr(args, "prompt_cache", None))  # a file given as the folder fails now
    if args.offload != "none" and device.type == "cpu":
        raise ValueError(f"--offload {args.offload} moves components between the CPU and an accelerator; with "
                         f"--device cpu use --offload none.")


def resolve_device(name: str | None) -> torch.device:
    """``None`` -> cuda when available, else cpu; a named device must exist."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a torch device ({error}).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available (a CPU build of torch, or no GPU).")
    return device


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    if name is not None:
        return DTYPES[name]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


# ----------------------------------------------------------------------------------------------------------------
# Timing and output
# ----------------------------------------------------------------------------------------------------------------


class PhaseTimer:
    """Wall-clock seconds per named phase, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())


class StageClock:
    """Times a pipeline call's phases from the first transformer call (end of preparation) and from
    ``callback_on_step_end`` (``pipe.stage`` after each step); everything after the last step is the decode.
    On CUDA each timestamp first waits for the queued work (one synchronisation per step)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.first_forward: float | None = None
        self.last_step: dict[int, float] = {}
        self.steps: dict[int, int] = {}

    def on_forward(self, module: torch.nn.Module, inputs: Any) -> None:  # noqa: ANN401
        if self.first_forward is None:
            synchronize(self.device)
            self.first_forward = time.perf_counter()

    def on_step_end(self, pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:  # noqa: ANN401
        synchronize(self.device)
        self.last_step[pipe.stage] = time.perf_counter()
        self.steps[pipe.stage] = self.steps.get(pipe.stage, 0) + 1
        return {}

    def phases(self, start: float, end: float) -> dict[str, float]:
        """``{"prepare": s, "stage 1 (N steps)": s, ..., "decode": s}`` of a call run from ``start`` to ``end``."""
        if self.first_forward is None:
            return {"generate": end - start}
        phases = {"prepare": self.first_forward - start}
        previous = self.first_forward
        for stage in sorted(self.last_step):
            steps = self.steps[stage]
            phases[f"stage {stage} ({steps} step{'s' if steps != 1 else ''})"] = self.last_step[stage] - previous
            previous = self.last_step[stage]
        phases["decode"] = end - previous
        return phases


def peak_memory(device: torch.device) -> str:
    """``"peak CUDA memory 12.30 GiB"`` on CUDA, else the process's peak resident set size."""
    if device.type == "cuda":
        return f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    rss = process_peak_bytes()
    return "peak memory n/a" if rss is None else f"peak RSS {rss / 2**30:.2f} GiB"


def output_paths(output: Path, count: int) -> list[Path]:
    """``clip.mp4`` for one video; ``clip_1.mp4``, ``clip_2.mp4``, ... for several."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(1, count + 1)]


def _say(message: str, quiet: bool = False, stream: Any = None) -> None:  # noqa: ANN401
    """The command's own output (stderr for progress, stdout for the summary)."""
    if not quiet:
        print(message, file=stream or sys.stderr, flush=True)  # noqa: T201


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Switches the diffusers / transformers / Hub download progress bars off for the block when not ``enabled``."""
    if enabled:
        yield
        return
    import huggingface_hub.utils as hub_utils
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    states = (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled(),
              hub_utils.are_progress_bars_disabled())
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if states[0]:
            diffusers_logging.enable_progress_bar()
        if states[1]:
            transformers_logging.enable_progress_bar()
        if not states[2]:
            hub_utils.enable_progress_bars()


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def load_pipeline(model: str, dtype: torch.dtype, text_encoder: bool = True) -> LTX2AudioVideoPipeline:
    """``from_pretrained`` with load failures turned into :class:`GenerateError` messages (``text_encoder=False``:
    without Gemma-3 and its tokenizer, for prompts that come from the prompt cache)."""
    skip = {} if text_encoder else dict(text_encoder=None, tokenizer=None)
    try:
        pipe = LTX2AudioVideoPipeline.from_pretrained(model, dtype=dtype, **skip)
    except (OSError, ValueError) as error:  # hub errors are OSErrors; a damaged folder is a FolderLoadError
        message = load_error_message(error, model)
        if message is None:
            raise
        raise GenerateError(message) from error
    if text_encoder and (pipe.text_encoder is None or pipe.tokenizer is None):
        raise GenerateError(text_encoder_message(model))
    return pipe


def place_pipeline(pipe: LTX2AudioVideoPipeline, device: torch.device, offload: str, fp8: bool,
                   dtype: torch.dtype, low_vram: bool = False, text_encoder: str | None = None) -> None:
    if low_vram:  # one run per process: Gemma is released once the prompts are encoded
        pipe.enable_low_memory(device, text_encoder=text_encoder or "cpu", release_text_encoder=True)
        return
    if fp8:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def pipeline_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline call's arguments from the flags (prompt embeddings and callbacks are added by the run)."""
    images = [(read_image(spec.path), spec.frame, spec.strength) for spec in args.image]  # 16-bit files scaled
    guidance = {name: getattr(args, name) for name in (
        "guidance_scale", "audio_guidance_scale", "modality_scale", "audio_modality_scale", "stg_scale",
        "audio_stg_scale", "guidance_rescale", "audio_guidance_rescale", "audio_stg_blocks")}
    guidance["spatio_temporal_guidance_blocks"] = args.stg_blocks
    if args.distilled:  # distilled weights run without guidance (every knob neutral unless given)
        neutral = dict(guidance_scale=1.0, audio_guidance_scale=1.0, modality_scale=1.0, audio_modality_scale=1.0,
                       stg_scale=0.0, audio_stg_scale=0.0, guidance_rescale=0.0, audio_guidance_rescale=0.0)
        guidance.update({k: v for k, v in neutral.items() if guidance[k] is None})
    refine_tiling = False if args.no_tiling else TokenTiling(max_tokens=args.tile_tokens) if args.tile_tokens else None
    kwargs = dict(
        conditions=images or None, audio=None if args.audio is None else str(args.audio),
        video=None if args.video is None else str(args.video),
        retake_window=None if args.retake is None else tuple(args.retake),
        height=args.height, width=args.width, num_frames=args.frames, frame_rate=args.fps,
        num_inference_steps=args.steps, sigmas=list(DISTILLED_SIGMAS) if args.distilled else args.sigmas,
        upsample=args.upsample, refine_tiling=refine_tiling, decode_tiling=args.decode_tiling,
        num_videos_per_prompt=args.num_videos, max_sequence_length=args.max_sequence_length,
        image_crf=args.image_crf, output_type="np", **guidance,
    )
    if args.retake_modalities:
        kwargs["retake_modalities"] = tuple(args.retake_modalities)
    return kwargs


def run_generate(args: argparse.Namespace) -> int:
    """``ltx2-diffusers generate``; returns the exit code. Invalid arguments raise their ``ValueError`` (the command
    line prints it as one line, exit code 2); once they are accepted, any failure is one line on stderr and exit
    code 1 (130 when interrupted), with the traceback only under ``--debug``."""
    parallel = None
    if getattr(args, "context_parallel", None):
        parallel = start_parallel_run(args.context_parallel, resolve_device(args.device))
        args.quiet = args.quiet or not parallel.leads
    try:
        try:
            prepared = _prepare(args, parallel)
        except ValueError:
            raise
        except (Exception, KeyboardInterrupt) as error:
            return _failed(args, error)
        try:
            return _execute(args, *prepared, parallel)
        except (Exception, KeyboardInterrupt) as error:
            return _failed(args, error)
    finally:
        if parallel is not None:
            parallel.close()


def _failed(args: argparse.Namespace, error: BaseException) -> int:
    if getattr(args, "debug", False):
        raise error
    status, message = failure(error)
    _say(f"ltx2-diffusers: error: {message}")
    return status


def model_facts(model: str, device: torch.device, dtype: torch.dtype) -> PipelineFacts:
    """The folder's (or Hub repository's) components described from their config files alone, so a call can be
    planned and checked before any weight is read; load failures become :class:`GenerateError` messages."""
    try:
        folder = model
        if not Path(model).is_dir():
            from huggingface_hub import snapshot_download

            folder = snapshot_download(model, allow_patterns=["model_index.json", "*/*.json"])
        return PipelineFacts.from_folder(folder, device, dtype)
    except (OSError, ValueError) as error:
        message = load_error_message(error, model) if isinstance(error, OSError) else f"{model}: {error}"
        if message is None:
            raise
        raise GenerateError(message) from error


def describe_plan(facts: PipelineFacts, plan: Any) -> str:  # noqa: ANN401
    """One line: the model's version and what the call will run (steps per stage, STG blocks, audio rate)."""
    stages = ", ".join(f"stage {s.index} {s.num_steps} step{'s' if s.num_steps != 1 else ''}" for s in plan.stages)
    return (f"LTX-{facts.defaults.version} model: {stages}, STG blocks {list(plan.video.stg_blocks)} (video) / "
            f"{list(plan.audio.stg_blocks)} (audio), audio at {facts.vocoder_rate} Hz")


def _prepare(args: argparse.Namespace, parallel: ParallelRun | None = None
             ) -> tuple[torch.device, torch.dtype, dict[str, Any], Any]:
    """Every check that needs no weights: the arguments, the output path, the folder's configs and the call's plan
    (``ValueError``: a bad argument)."""
    check_output_path(args.output)  # a bad --output fails now, not after the whole clip is generated
    check_generate_args(args)
    device = resolve_device(args.device)
    if parallel is not None:
        device = parallel.device(device)
    dtype = resolve_dtype(args.dtype, device)
    facts = model_facts(args.model, device, dtype)
    if not facts.has_text_encoder:
        raise GenerateError(text_encoder_message(args.model))
    kwargs = pipeline_kwargs(args)  # reads the images: bad files fail before the model loads
    plan = plan_generation(facts, call_arguments(prompt=args.prompt, negative_prompt=args.negative_prompt, **kwargs))
    _say(describe_plan(facts, plan), args.quiet)
    return device, dtype, kwargs, plan


def _execute(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, kwargs: dict[str, Any],
             plan: Any, parallel: ParallelRun | None = None) -> int:  # noqa: ANN401
    """Loads the model, generates, exports and prints the summary (under ``--context-parallel`` only the first
    rank decodes, exports and prints)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timer = PhaseTimer()
    with progress_bars(not args.quiet):
        low_vram, text_mode = getattr(args, "low_vram", False), getattr(args, "text_encoder", None)
        cache = open_prompt_cache(getattr(args, "prompt_cache", None), args.model, dtype,
                                  low_vram and text_mode == "int8", lambda line: _say(line, args.quiet))
        cached = None if cache is None else cached_embeddings(
            cache, connector_widths(local_folder(args.model)), args.prompt,
            plan.text.negative_prompts if plan.text.needs_negative else None, args.max_sequence_length)
        with timer.phase("load"):
            pipe = load_pipeline(args.model, dtype, text_encoder=cached is None)
            place_pipeline(pipe, device, args.offload, args.fp8, dtype, low_vram, text_mode)
            if parallel is not None:
                parallel.enable(pipe.transformer)
            synchronize(device)
        if cache is not None and cached is None:  # encode and store the prompts
            pipe.enable_prompt_cache(cache_dir := prompt_cache_dir(args.prompt_cache),
                                     folder_text_identity(local_folder(args.model)))
            _say(f"prompt cache: {cache_dir} (prompts not all cached yet)", args.quiet)
        pipe.set_progress_bar_config(disable=args.quiet)
        split = "" if parallel is None else f", context parallel {parallel.mode} x {parallel.world}"
        _say(f"loaded {args.model} in {timer.seconds['load']:.1f} s ({device}, {str(dtype).removeprefix('torch.')}"
             f"{', offload ' + args.offload if args.offload != 'none' else ''}{', fp8 weights' if args.fp8 else ''}"
             f"{', low-vram profile' if low_vram else ''}"
             f"{' (no accelerator: offload skipped)' if low_vram and not pipe.low_memory.group_offload else ''}"
             f"{', text encoder not loaded: every prompt is in the prompt cache' if cached is not None else ''}"
             f"{split})", args.quiet)
        if parallel is not None and not parallel.leads:
            kwargs = dict(kwargs, output_type="latent")  # the first rank decodes
        if pipe.scheduler.config.get("sigmas") is not None and not args.distilled:
            _say("note: this folder has a distilled model's fixed noise levels; pass --distilled to run it without "
                 "guidance, as it was trained", args.quiet)

        with timer.phase("text encoding"):
            positive_embeds, negative_embeds = cached if cached is not None else pipe.encode_text_embeddings(
                args.prompt, plan.text.negative_prompts, plan.text.needs_negative,
                max_sequence_length=args.max_sequence_length)
            synchronize(device)
        _say(f"encoded the prompt{'s' if negative_embeds is not None else ''} in "
             f"{timer.seconds['text encoding']:.2f} s", args.quiet)

        clock = StageClock(device)
        hook = pipe.transformer.register_forward_pre_hook(clock.on_forward)
        synchronize(device)
        start = time.perf_counter()
        try:
            out = pipe(prompt_embeds=positive_embeds, negative_prompt_embeds=negative_embeds,
                       generator=torch.Generator().manual_seed(args.seed),
                       callback_on_step_end=clock.on_step_end, **kwargs)
        finally:
            hook.remove()
        for name, seconds in clock.phases(start, time.perf_counter()).items():
            timer.add(name, seconds)
    if parallel is not None and not parallel.leads:
        return 0

    fps = out.frame_rate  # --fps, else the --video file's rate, else 24: as the pipeline resolved it
    written = []
    with timer.phase("export"):
        from .utils.export import export_to_mp4
        from .utils.preview import write_previews

        for i, path in enumerate(output_paths(args.output, len(out.frames))):
            written.append(export_to_mp4(out.frames[i], path, fps, out.audio[i], out.sample_rate))
            if args.preview:
                written += write_previews(out.frames[i], out.audio[i], out.sample_rate, path.with_suffix(""))
    frames = out.frames.shape
    _say(f"done: {frames[0]} x {frames[1]} frames {frames[2]}x{frames[3]} @ {fps:g} fps with "
         f"{out.audio.shape[-1] / out.sample_rate:.2f} s of audio at {out.sample_rate} Hz, seed {args.seed} | "
         f"{timer.summary()} | {peak_memory(device)} | wrote {', '.join(str(p) for p in written)}", stream=sys.stdout)
    return 0
