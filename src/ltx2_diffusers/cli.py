"""``ltx2-diffusers`` command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import __version__


def _demo(args: argparse.Namespace) -> int:
    """Generates a clip with a tiny random-weight LTX-2 pipeline (no downloads) and writes it as an mp4."""
    from .utils.export import check_output_path, export_to_mp4
    from .utils.tiny import tiny_pipeline

    check_output_path(Path(args.output))  # a bad --output fails before the clip is generated
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    pipe = tiny_pipeline(seed=args.seed)
    pipe.set_progress_bar_config(disable=True)
    sizes = {name: sum(p.numel() for p in module.parameters())
             for name, module in pipe.components.items() if isinstance(module, torch.nn.Module)}
    calls = []
    hook = pipe.transformer.register_forward_hook(lambda *_: calls.append(1))
    generate = time.perf_counter()
    # a short negative prompt: the tiny tokenizer spells text letter by letter (the default one is 1078 characters)
    out = pipe(args.prompt, negative_prompt="blurry, distorted, muffled audio", num_frames=args.frames,
               height=args.height, width=args.width, frame_rate=args.fps, num_inference_steps=args.steps,
               max_sequence_length=64, output_type="np", generator=torch.Generator().manual_seed(args.seed))
    seconds = time.perf_counter() - generate
    hook.remove()
    path = export_to_mp4(out.frames[0], Path(args.output), args.fps, out.audio[0], out.sample_rate)

    print(f"ltx2_diffusers {__version__} demo: the full LTX-2 pipeline with tiny random weights (no downloads)")
    print("  components: " + ", ".join(f"{name} {count:,}" for name, count in sizes.items()) + " parameters")
    print(f"  prompt: {args.prompt!r}")
    print(f"  {args.frames} frames {args.height}x{args.width} @ {args.fps:g} fps, {args.steps} steps with the "
          f"reference guidance (CFG + modality + STG on both streams): {len(calls)} transformer calls "
          f"({len(calls) // args.steps} per step) in {seconds:.2f} s")
    print(f"  video {tuple(out.frames.shape)}, audio {tuple(out.audio.shape)} at {out.sample_rate} Hz "
          f"({out.audio.shape[-1] / out.sample_rate:.2f} s)")
    print(f"  wrote {path} (H.264 + stereo AAC); total {time.perf_counter() - start:.1f} s")
    print("  The weights are random, so the clip is noise-like: load real LTX-2 weights with "
          "LTX2AudioVideoPipeline.from_pretrained for real videos.")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Times this package against diffusers 0.42.1 on identical weights and prints a markdown table."""
    import platform

    import diffusers
    import transformers

    from .benchmarks import markdown_table, run_benchmarks

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.suite == "gpu":
        from .bench_suite import run_suite

        if args.json is None:
            raise ValueError("--suite gpu writes its results to a JSON file: pass --json PATH.")
        skip = tuple(name for name in (args.skip or "").split(",") if name)
        run_suite(args.json, tiny=args.tiny, steps=args.steps, runs=args.runs, skip=skip,
                  say=lambda line: print(line, flush=True))
        print(f"results: {args.json}", flush=True)
        return 0
    for library in (diffusers.utils.logging, transformers.utils.logging):  # the table, not load/save chatter
        library.set_verbosity_error()
        library.disable_progress_bar()
    full = True if args.full else None
    start = time.perf_counter()
    rows = run_benchmarks(runs=args.runs, full=full)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "CPU"
    print(f"ltx2_diffusers {__version__} vs diffusers {diffusers.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {device}")
    print(markdown_table(rows))
    print(f"ratio < 1: ours is faster. Medians of {args.runs} interleaved runs after a warm-up; "
          f"{time.perf_counter() - start:.0f} s in all.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltx2-diffusers", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a clip with a tiny embedded model, offline, and write an mp4")
    demo.add_argument("--prompt", default="A jazz trio plays in a small club; the crowd claps along.")
    demo.add_argument("--frames", type=int, default=25, help="8k+1")
    demo.add_argument("--height", type=int, default=96, help="multiple of 32")
    demo.add_argument("--width", type=int, default=160, help="multiple of 32")
    demo.add_argument("--fps", type=float, default=24.0)
    demo.add_argument("--steps", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default="ltx2_demo.mp4")
    demo.set_defaults(func=_demo)
    from .cli_generate import add_generate_arguments, run_generate

    generate = sub.add_parser("generate", help="generate a clip with a real model (every mode: text/image to video "
                              "+ audio, audio-to-video, video-to-audio, retake, multi-scale) and write an mp4",
                              description="Generates video with audio with LTX2AudioVideoPipeline and writes an mp4.")
    add_generate_arguments(generate)
    generate.set_defaults(func=run_generate)
    from .conversion.__main__ import add_convert_arguments, run_convert

    convert = sub.add_parser("convert", help="original LTX-2 single-file checkpoint -> diffusers pipeline folder")
    add_convert_arguments(convert)
    convert.set_defaults(func=run_convert)
    bench = sub.add_parser("bench", help="time ours against diffusers 0.42.1 on identical weights (CPU configs; the "
                           "19B transformer too when CUDA is available)")
    bench.add_argument("--runs", type=int, default=3, help="timed runs per comparison (median reported)")
    bench.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    bench.add_argument("--full", action="store_true", help="also time the 19B transformer (needs CUDA and ~80 GB)")
    bench.add_argument("--suite", choices=("compare", "gpu"), default="compare",
                       help="compare: the markdown table (default); gpu: full-size forward (bf16, compiled, fp8) and "
                       "a two-stage 121-frame 1536x1024 generation under the low-memory profile, phase by phase")
    bench.add_argument("--json", default=None, metavar="PATH", help="--suite gpu: results file, rewritten after "
                       "each phase")
    bench.add_argument("--tiny", action="store_true", help="--suite gpu: tiny configs on the CPU (dry run)")
    bench.add_argument("--steps", type=int, default=4, help="--suite gpu: stage-1 steps of the generation")
    bench.add_argument("--skip", default=None, metavar="PHASE[,PHASE]", help="--suite gpu: phases to skip "
                       "(forward, forward_compiled, forward_fp8, low_memory_generation, text_encoding_cpu)")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:  # invalid arguments: one clear line, no traceback (unless --debug)
        if getattr(args, "debug", False):
            raise
        from .cli_errors import one_line

        parser.exit(2, f"ltx2-diffusers: error: {one_line(error)}\n")


if __name__ == "__main__":
    raise SystemExit(main())
