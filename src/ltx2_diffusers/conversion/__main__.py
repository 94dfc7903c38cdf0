"""``python -m ltx2_diffusers.conversion``: original LTX-2 single file -> diffusers pipeline folder."""

from __future__ import annotations

import argparse
import sys

import torch

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def add_convert_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the conversion flags to ``parser`` (shared by ``python -m ltx2_diffusers.conversion`` and the CLI)."""
    parser.add_argument("--checkpoint", required=True, help="original single .safetensors file (ltx-2-19b-*)")
    parser.add_argument("--upsampler", default=None, help="optional x2 latent upsampler .safetensors file")
    parser.add_argument("--text-encoder", default=None, help="optional local Gemma-3 folder (copied into the output)")
    parser.add_argument("--output", required=True, help="pipeline folder to create (must not exist)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="dtype of the saved weights (default: as stored; fp8 becomes bf16)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None,
                        help="upload the converted folder (with its model card) to this Hub repository")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repository")
    return parser


def run_convert(args: argparse.Namespace) -> int:
    """Runs a conversion from parsed arguments and prints its summary."""
    from .checkpoint import convert_checkpoint, format_summary
    from .model_card import push_to_hub

    try:
        folder = convert_checkpoint(args.checkpoint, args.output, upsampler=args.upsampler,
                                    text_encoder=args.text_encoder,
                                    dtype=DTYPES[args.dtype] if args.dtype else None,
                                    max_shard_size=args.max_shard_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    print(format_summary(folder))  # noqa: T201
    if args.push_to_hub:
        url = push_to_hub(folder, args.push_to_hub, private=args.private)
        print(f"uploaded to {url}")  # noqa: T201
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltx2_diffusers.conversion", description=__doc__)
    return run_convert(add_convert_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
