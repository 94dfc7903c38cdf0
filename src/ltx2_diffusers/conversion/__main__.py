"""``python -m ltx2_diffusers.conversion``: original LTX-2 single file -> diffusers pipeline folder.

Every failure is one line on stderr, without a traceback unless ``--debug``: exit status 2 for bad arguments or input
files that cannot be converted (the message says what to pass instead), 1 for work that failed (a file that cannot
be read, an unwritable output, a full disk, an output that appeared meanwhile, an upload that failed).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from ..utils.dtypes import DTYPES

BAD_ARGUMENTS, FAILED = 2, 1


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(BAD_ARGUMENTS, f"{parser.prog}: error: {message} (see --help)\n")


def add_convert_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the conversion flags to ``parser`` (shared by ``python -m ltx2_diffusers.conversion`` and the CLI)."""
    parser.error = lambda message: _one_line_error(parser, message)  # one line, not usage + error
    parser.add_argument("--checkpoint", required=True,
                        help="original single .safetensors file (ltx-2-19b-*, ltx-2.3-22b-*)")
    parser.add_argument("--variant", choices=("dev", "distilled"), default=None,
                        help="dev or distilled (the files hold the same tensors); default: the file's metadata, else "
                        "its name (distilled when the name says so)")
    parser.add_argument("--upsampler", default=None, help="optional x2 latent upsampler .safetensors file")
    parser.add_argument("--text-encoder", default=None, help="optional local Gemma-3 folder (copied into the output)")
    parser.add_argument("--output", required=True, help="pipeline folder to create (must not exist)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="dtype of every saved weight (default: the checkpoint's main dtype; fp8 becomes bf16)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    parser.add_argument("--allow-non-finite", action="store_true",
                        help="write NaN/inf weights and fp8 scales instead of refusing them (only if intended)")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None,
                        help="upload the converted folder (with its model card) to this Hub repository")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repository")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return parser


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def error_line(error: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for a failed conversion or upload."""
    from .model_card import PushError
    from .tensors import CheckpointReadError

    if isinstance(error, (CheckpointReadError, PushError)):
        return FAILED, _one_line(error)
    if isinstance(error, ValueError):
        return BAD_ARGUMENTS, _one_line(error)
    if isinstance(error, OSError):
        detail = error.strerror or str(error)
        where = f": {error.filename}" if error.filename else ""
        return FAILED, _one_line(f"conversion failed, nothing was written: {detail}{where}")
    if isinstance(error, MemoryError):
        return FAILED, "out of memory while converting; nothing was written (close other programs or use a " \
                       "machine with more RAM)."
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted; nothing was written."
    return FAILED, _one_line(f"{type(error).__name__}: {error} (rerun with --debug for the traceback)")


def run_convert(args: argparse.Namespace) -> int:
    """Runs a conversion (and upload) from parsed arguments, prints its summary; returns the exit status."""
    from .checkpoint import convert_checkpoint, format_summary
    from .model_card import check_hub_reachable, push_to_hub

    try:
        if args.push_to_hub:
            check_hub_reachable(args.push_to_hub)  # before hours of work, not after
        folder = convert_checkpoint(args.checkpoint, args.output, upsampler=args.upsampler,
                                    text_encoder=args.text_encoder,
                                    dtype=DTYPES[args.dtype] if args.dtype else None,
                                    max_shard_size=args.max_shard_size, allow_non_finite=args.allow_non_finite,
                                    variant=args.variant)
        print(format_summary(folder))  # noqa: T201
        if args.push_to_hub:
            url = push_to_hub(folder, args.push_to_hub, private=args.private)
            print(f"uploaded to {url}")  # noqa: T201
    except (Exception, KeyboardInterrupt) as error:
        if getattr(args, "debug", False):
            raise
        status, message = error_line(error)
        print(f"error: {message}", file=sys.stderr)  # noqa: T201
        return status
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltx2_diffusers.conversion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return run_convert(add_convert_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
