"""Expected peak accelerator memory of each phase of a generation, from the components' configs (no weights).

``python bench/vram_phases.py`` prints the table of ``BENCHMARKS.md``: LTX-2 (19B) at real size, 121 frames,
two stages to 1536x1024, bf16, under the default placement (``pipe.to("cuda")``) and the low-memory profile
(``pipe.enable_low_memory()``). :func:`phase_vram` is the formula; the sizes come from the default (released) configs
of this package's classes and Gemma-3-12B's config, built on the meta device.

The phase's peak = resident weights + that phase's working set. Working sets reuse the pipeline's own estimates
(``pipelines.memory``: ``denoise_bytes`` for a transformer call with its latents, ``decode_bytes`` for the VAE
decode); text encoding holds the stacked hidden states three times (all layers' outputs, their stack, the
connectors' input); the upsampler holds four tensors of its width at the doubled size.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from ltx2_diffusers.pipelines.memory import decode_bytes, denoise_bytes

PHASES = ("text encoding", "stage 1", "upsampling", "stage 2", "decode")
GIB = 2**30


@dataclass(frozen=True)
class ModelSizes:
    """Parameter counts and widths, from the configs.

    ``params``: per component (``text_encoder``, ``connectors``, ``transformer``, ``vae``, ``audio_vae``,
    ``vocoder``, ``latent_upsampler``); ``transformer_block``: one block; ``transformer_fp8``: the transformer's
    parameters that fp8 layerwise casting stores in one byte (all but norms and the skipped patterns);
    ``text_linear``: the text encoder's linear-layer parameters (int8 under ``text_encoder="int8"``).
    """

    params: dict
    transformer_block: int
    transformer_fp8: int
    text_linear: int
    text_hidden: int
    text_layers: int
    video_width: int
    audio_width: int
    latent_channels: int
    audio_channels: int
    decoder_width: float
    upsampler_width: int


@dataclass(frozen=True)
class CallShape:
    """One generation: video tokens per stage, tokens per transformer call (tiles), guidance passes batched per
    call, audio tokens, prompts x text tokens, output pixels and the decode's tile (``None``: one piece)."""

    stage_tokens: tuple
    stage_call_tokens: tuple
    stage_passes: tuple
    stage_grid: tuple  # latent (frames, height, width) of stage 1
    audio_tokens: int
    prompts: int
    text_tokens: int
    pixels: tuple  # (frames, height, width)
    decode_tile: tuple | None


def phase_vram(sizes: ModelSizes, shape: CallShape, profile: str = "default", text_encoder: str = "cpu",
               dtype_bytes: int = 2) -> dict:
    """``{phase: {"weights": bytes, "work": bytes, "total": bytes}}`` for ``profile`` ``"default"`` (every component
    resident in ``dtype_bytes``) or ``"low"`` (``enable_low_memory``: the text stack on the CPU, or Gemma with int8
    linear layers on the device while encoding; the transformer in fp8, two blocks resident at a time plus one block
    cast up; the VAEs, vocoder and upsampler resident)."""
    if profile not in ("default", "low") or text_encoder not in ("cpu", "int8"):
        raise ValueError(f"profile must be 'default' or 'low' and text_encoder 'cpu' or 'int8', got {profile!r}, "
                         f"{text_encoder!r}.")
    p = sizes.params
    b = dtype_bytes
    features = shape.prompts * shape.text_tokens * sizes.text_hidden * (sizes.text_layers + 1) * b
    text_work = 3 * features
    frames, height, width = shape.stage_grid
    upsample_work = 4 * sizes.upsampler_width * frames * (2 * height) * (2 * width) * b
    stage_work = [denoise_bytes(tokens, shape.audio_tokens, sizes.video_width, sizes.audio_width,
                                sizes.latent_channels, sizes.audio_channels, 1, passes, b, call)
                  for tokens, call, passes in zip(shape.stage_tokens, shape.stage_call_tokens, shape.stage_passes)]
    decode_work = decode_bytes(*shape.pixels, 1, sizes.decoder_width, b, shape.decode_tile)
    if profile == "default":
        resident = b * sum(p.values())
        weights = dict.fromkeys(PHASES, resident)
    else:
        small = b * (p["vae"] + p["audio_vae"] + p["vocoder"] + p["latent_upsampler"])
        fp8, block = sizes.transformer_fp8, sizes.transformer_block
        blocks = p["transformer"] // block if block else 0
        outside_blocks = p["transformer"] - blocks * block
        streamed = outside_blocks * b + 2 * block + block * b  # non-block weights, 2 fp8 blocks, one cast up
        streamed = min(streamed, fp8 + (p["transformer"] - fp8) * b)
        text = 0
        if text_encoder == "int8":
            text = sizes.text_linear + (p["text_encoder"] - sizes.text_linear) * b
        else:
            text_work = 0  # runs on the CPU
        weights = {"text encoding": small + text, "stage 1": small + streamed, "upsampling": small,
                   "stage 2": small + streamed, "decode": small}
    work = {"text encoding": text_work, "stage 1": stage_work[0], "upsampling": upsample_work,
            "stage 2": stage_work[-1], "decode": decode_work}
    return {phase: {"weights": weights[phase], "work": work[phase], "total": weights[phase] + work[phase]}
            for phase in PHASES}


# ----------------------------------------------------------------------------------------------------------------
# Real-size sizes and shape (the script)
# ----------------------------------------------------------------------------------------------------------------


def gemma_12b_config() -> dict:
    """Gemma-3-12B's text configuration (the LTX-2 text encoder)."""
    return dict(hidden_size=3840, num_hidden_layers=48, intermediate_size=15360, num_attention_heads=16,
                num_key_value_heads=8, head_dim=256, vocab_size=262208)


def model_sizes(text_config: dict | None = None, **overrides: dict) -> ModelSizes:
    """Sizes of this package's components built on the meta device from their default (released) configs, or
    ``overrides`` per component (``transformer={...}``), and a Gemma-3 text model from ``text_config``."""
    import torch
    from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS as SUPPORTED_PYTORCH_LAYERS
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from ltx2_diffusers.models.autoencoder_ltx2_audio import LTX2AudioAutoencoder
    from ltx2_diffusers.models.autoencoder_ltx2_video import LTX2VideoAutoencoder
    from ltx2_diffusers.models.latent_upsampler_ltx2 import LTX2LatentUpsampler
    from ltx2_diffusers.models.text_connectors_ltx2 import LTX2TextConnectors
    from ltx2_diffusers.models.transformer_ltx2 import LTX2AudioVideoTransformer
    from ltx2_diffusers.models.vocoder_ltx2 import LTX2Vocoder

    classes = dict(transformer=LTX2AudioVideoTransformer, vae=LTX2VideoAutoencoder, audio_vae=LTX2AudioAutoencoder,
                   connectors=LTX2TextConnectors, vocoder=LTX2Vocoder, latent_upsampler=LTX2LatentUpsampler)
    with torch.device("meta"):
        models = {name: cls(**overrides.get(name, {})) for name, cls in classes.items()}
        text = Gemma3TextModel(Gemma3TextConfig(**(text_config or gemma_12b_config())))
    count = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    count["text_encoder"] = sum(p.numel() for p in text.parameters())
    transformer = models["transformer"]
    # what diffusers' layerwise casting stores in fp8: its layer types, minus its and the model's skip patterns
    skip = DEFAULT_SKIP_MODULES_PATTERN + tuple(transformer._skip_layerwise_casting_patterns or ())
    fp8 = sum(p.numel() for n, m in transformer.named_modules() if isinstance(m, SUPPORTED_PYTORCH_LAYERS)
              and not any(re.search(pattern, n) for pattern in skip) for p in m.parameters(recurse=False))
    linear = sum(m.weight.numel() for m in text.modules() if isinstance(m, torch.nn.Linear))
    c, vc = transformer.config, models["vae"].config
    return ModelSizes(
        params=count, transformer_block=sum(p.numel() for p in transformer.transformer_blocks[0].parameters()),
        transformer_fp8=fp8, text_linear=linear, text_hidden=text.config.hidden_size,
        text_layers=text.config.num_hidden_layers, video_width=c.num_attention_heads * c.attention_head_dim,
        audio_width=c.audio_num_attention_heads * c.audio_attention_head_dim, latent_channels=c.in_channels,
        audio_channels=c.audio_in_channels,
        decoder_width=min(vc.decoder_block_out_channels) / (vc.patch_size ** 2 * vc.patch_size_t),
        upsampler_width=models["latent_upsampler"].config.mid_channels)


def two_stage_shape(frames: int = 121, height: int = 1024, width: int = 1536, refine_tokens: int = 20480,
                    decode_tile: tuple | None = (65, 512, 512), spatial: int = 32, temporal: int = 8,
                    audio_tokens: int = 126, text_tokens: int = 1024) -> CallShape:
    """The two-stage call: stage 1 at half size with CFG batched (2 passes), stage 2 unguided and tiled to
    ``refine_tokens`` per call; two prompts (positive and negative)."""
    f = (frames - 1) // temporal + 1
    half = (f, height // 2 // spatial, width // 2 // spatial)
    full = f * (height // spatial) * (width // spatial)
    first = half[0] * half[1] * half[2]
    return CallShape(stage_tokens=(first, full), stage_call_tokens=(first, min(full, refine_tokens)),
                     stage_passes=(2, 1), stage_grid=half, audio_tokens=audio_tokens, prompts=2,
                     text_tokens=text_tokens, pixels=(frames, height, width), decode_tile=decode_tile)


def markdown(sizes: ModelSizes) -> str:
    columns = [("default", "default", two_stage_shape()),
               ("low-memory (Gemma on CPU)", "low", two_stage_shape(refine_tokens=8192)),
               ("low-memory (Gemma int8)", "low", two_stage_shape(refine_tokens=8192))]
    tables = [phase_vram(sizes, shape, profile, "int8" if "int8" in name else "cpu") for name, profile, shape in
              columns]
    lines = ["| phase | " + " | ".join(f"{name}: weights + work = total (GiB)" for name, _, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for phase in PHASES:
        cells = [f"{t[phase]['weights'] / GIB:.1f} + {t[phase]['work'] / GIB:.1f} = **{t[phase]['total'] / GIB:.1f}**"
                 for t in tables]
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    lines.append("| **peak** | " + " | ".join(f"**{max(v['total'] for v in t.values()) / GIB:.1f}**" for t in tables)
                 + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    sizes = model_sizes()
    print("parameters: " + ", ".join(f"{k} {v / 1e9:.2f}B" for k, v in sizes.params.items()))
    print(f"transformer block {sizes.transformer_block / 1e6:.0f}M, fp8-stored {sizes.transformer_fp8 / 1e9:.2f}B; "
          f"text-encoder linear layers {sizes.text_linear / 1e9:.2f}B")
    print(markdown(sizes))


if __name__ == "__main__":
    main()
