"""Context-parallel runs on CPU: spawns gloo process groups, runs the same forward/pipeline cases on every rank and
writes each rank's results to safetensors files, which the tests compare with one process.

The cases are built from seeds and the model's config only, so the spawning test and the ranks build identical ones.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from ltx2_diffusers import LTX2AudioVideoTransformer
from tests.oracles_tapi import DIFFUSERS_TINY, LTX23, random_init_

MODES = ("ulysses", "ring")
ODD_HEADS = dict(DIFFUSERS_TINY, num_attention_heads=3, attention_head_dim=8, cross_attention_dim=24,
                 audio_num_attention_heads=3, audio_attention_head_dim=8, audio_cross_attention_dim=24)
CONFIGS = {"2.0": DIFFUSERS_TINY, "2.3": dict(DIFFUSERS_TINY, **LTX23), "odd_heads": ODD_HEADS}


def tiny_transformer(name: str) -> LTX2AudioVideoTransformer:
    return random_init_(LTX2AudioVideoTransformer(**CONFIGS[name]), seed=3).eval()


# ----------------------------------------------------------------------------------------------------------------
# Transformer forward cases: every guidance pass, token counts that do not divide by 2
# ----------------------------------------------------------------------------------------------------------------


def forward_inputs(model: LTX2AudioVideoTransformer, case: str, batch: int = 2) -> dict:
    """The forward keywords of ``case`` for ``model`` (21 video tokens and 5 audio tokens unless the case says)."""
    c = model.config
    g = torch.Generator().manual_seed(sum(map(ord, case)))
    grid = {"one_token": (1, 1, 1)}.get(case, (7, 3, 1))
    tokens, audio_tokens = grid[0] * grid[1] * grid[2], 5
    if case == "audio_only":
        tokens = 0
    text_v, text_a = model.text_widths
    mask = torch.ones(batch, 6)
    mask[0, :2] = 0  # left padding in the first sample
    kw = dict(
        hidden_states=torch.randn(batch, tokens, c.in_channels, generator=g),
        audio_hidden_states=torch.randn(batch, audio_tokens, c.audio_in_channels, generator=g),
        encoder_hidden_states=torch.randn(batch, 6, text_v, generator=g),
        audio_encoder_hidden_states=torch.randn(batch, 6, text_a, generator=g),
        encoder_attention_mask=mask, audio_encoder_attention_mask=mask,
        timestep=torch.tensor([700.0, 300.0][:batch]), sigma=torch.tensor([700.0, 300.0][:batch]),
        num_frames=grid[0], height=grid[1], width=grid[2], fps=24.0, use_cross_timestep=True, return_dict=False,
    )
    if case == "per_token_index":  # conditioning tokens at σ = 0 through the distinct-values index
        kw.update(timestep=torch.tensor([0.0, 250.0, 800.0]), sigma=torch.tensor([800.0, 800.0]),
                  timestep_index=torch.randint(0, 3, (batch, tokens), generator=g),
                  audio_timestep=torch.rand(batch, audio_tokens, generator=g) * 1000)
    elif case == "per_token_own":  # per-token σ and each stream's own timestep on the A<->V terms
        kw.update(timestep=torch.rand(batch, tokens, generator=g) * 1000, sigma=None, use_cross_timestep=False,
                  audio_timestep=torch.rand(batch, audio_tokens, generator=g) * 1000)
    elif case == "stg_blend":
        kw.update(spatio_temporal_guidance_blocks=[1], audio_spatio_temporal_guidance_blocks=[0],
                  perturbation_mask=torch.tensor([0.0, 1.0][:batch]))
    elif case == "stg_all":
        kw.update(spatio_temporal_guidance_blocks=[0, 1])
    elif case == "isolate_mask":
        kw.update(isolate_modalities=torch.tensor([True, False][:batch]))
    elif case == "isolate_all":
        kw.update(isolate_modalities=True)
    elif case == "self_mask":
        kw.update(video_self_attention_mask=torch.rand(batch, tokens, tokens, generator=g))
    elif case == "keyframes":  # 4 keyframe tokens appended with their own coordinates and σ = 0
        coords = model.video_coordinates(*grid, 24.0, batch)
        extra = coords[:, :, :4].clone()
        extra[:, 0] += 0.5
        kw.update(hidden_states=torch.randn(batch, tokens + 4, c.in_channels, generator=g),
                  video_coords=torch.cat([coords, extra], dim=2), num_frames=None, height=None, width=None,
                  timestep=torch.cat([torch.full((batch, tokens), 600.0), torch.zeros(batch, 4)], dim=1),
                  sigma=torch.tensor([600.0, 600.0][:batch]))
    elif case == "video_only":
        kw.update(audio_hidden_states=None, audio_encoder_hidden_states=None)
    return kw


FORWARD_CASES = {
    "2.0": ("plain", "per_token_index", "per_token_own", "stg_blend", "stg_all", "isolate_mask", "isolate_all",
            "self_mask", "keyframes", "one_token", "video_only", "audio_only"),
    "2.3": ("plain", "per_token_index", "stg_blend", "isolate_mask"),
    "odd_heads": ("plain", "per_token_index"),
}


def forward_outputs(model: LTX2AudioVideoTransformer, case: str) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        video, audio = model(**forward_inputs(model, case))
    return {"video": video} if audio is None else {"video": video, "audio": audio}


# ----------------------------------------------------------------------------------------------------------------
# Pipeline cases
# ----------------------------------------------------------------------------------------------------------------

TEXT = dict(max_sequence_length=32, negative_prompt="blurry")
CLIP = dict(num_frames=17, height=96, width=96, num_inference_steps=2, **TEXT)  # 3 x 3 x 3 = 27 video tokens
OFF = dict(guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0, audio_guidance_scale=1.0, audio_stg_scale=0.0,
           audio_modality_scale=1.0)


def pipeline_call(pipe: object, case: str) -> dict[str, torch.Tensor]:
    """One call of ``case`` (same seeds everywhere) -> its output tensors."""
    from ltx2_diffusers.pipelines.token_tiling import TokenTiling

    g = torch.Generator().manual_seed(7)
    kw: dict = dict(CLIP, output_type="latent")
    if case == "image":
        image = torch.rand(96, 96, 3, generator=torch.Generator().manual_seed(3)).numpy()
        kw.update(image=image, image_crf=0)
    elif case == "a2v":
        kw.update(audio=0.3 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)),
                  audio_sample_rate=16000)
    elif case == "multiscale_tiled":
        kw.update(OFF, upsample=True, height=192, width=192,
                  refine_tiling=TokenTiling(max_tokens=30, spatial_overlap=1, temporal_overlap=0))
    elif case == "decoded":
        kw.update(output_type="pt")
    with torch.no_grad():
        out = pipe("a dog barks", generator=g, **kw)
    frames = out.frames if isinstance(out.frames, torch.Tensor) else torch.as_tensor(out.frames)
    audio = out.audio if isinstance(out.audio, torch.Tensor) else torch.as_tensor(out.audio)
    return {"frames": frames.float().contiguous(), "audio": audio.float().contiguous()}


PIPELINE_CASES = {"ulysses": ("default", "image", "a2v", "multiscale_tiled"), "ring": ("default", "image", "a2v",
                                                                                          "multiscale_tiled")}


def tiny_pipe() -> object:
    from ltx2_diffusers.utils.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------------------------------------------
# Spawning
# ----------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save(out_dir: Path, name: str, rank: int, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / f"{name}.rank{rank}.safetensors"))


CLI_MODE = "ulysses"
CLI_ARGS = ["--prompt", "a cat plays the piano", "--negative-prompt", "blurry", "--max-sequence-length", "32",
            "--steps", "2", "--frames", "17", "--height", "96", "--width", "96", "--seed", "3"]


def run_cli(argv: list[str], log: Path) -> int:
    """``ltx2-diffusers`` in this process with its stdout and stderr written to ``log``.{out,err}."""
    import contextlib

    from ltx2_diffusers import cli

    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        return cli.main(argv)


def _record_misuse(model: LTX2AudioVideoTransformer, config: object, path: Path) -> None:
    """The errors of a forward with gradients and of a second ``enable_parallelism``, one per line."""
    messages = []
    for attempt in (lambda: model(**forward_inputs(model, "plain")),
                    lambda: model.enable_parallelism(config=config)):
        try:
            attempt()
            messages.append("no error")
        except ValueError as error:
            messages.append(str(error))
    path.write_text("\n".join(messages))


def rank_worker(rank: int, world: int, port: int, out_dir: str, pipelines: bool, cli_model: str | None) -> None:
    """Every case on this rank, both modes: forward outputs, pipeline outputs, the Ulysses head-count error and
    (with ``cli_model``) ``generate --context-parallel`` writing to ``cli_rank<r>/``."""
    from diffusers import ContextParallelConfig

    torch.set_num_threads(1)
    out = Path(out_dir)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for mode in MODES:
            config = ContextParallelConfig(**{f"{mode}_degree": world})
            for name, cases in FORWARD_CASES.items():
                model = tiny_transformer(name)
                if mode == "ulysses" and model.config.num_attention_heads % world:
                    try:
                        model.enable_parallelism(config=config)
                    except ValueError as error:
                        (out / f"ulysses_error.rank{rank}.txt").write_text(str(error))
                    continue
                model.enable_parallelism(config=config)
                if mode == MODES[0] and name == "2.0":
                    _record_misuse(model, config, out / f"misuse.rank{rank}.txt")
                for case in cases:
                    _save(out, f"forward.{mode}.{name}.{case}", rank, forward_outputs(model, case))
            if pipelines:
                pipe = tiny_pipe()
                pipe.transformer.enable_parallelism(config=config)
                for case in PIPELINE_CASES[mode]:
                    _save(out, f"pipeline.{mode}.{case}", rank, pipeline_call(pipe, case))
        if cli_model is not None:
            folder = out / f"cli_rank{rank}"
            folder.mkdir()
            code = run_cli(["generate", "--model", cli_model, "--context-parallel", CLI_MODE, *CLI_ARGS,
                            "--output", str(folder / "clip.mp4")], folder / "log")
            (folder / "exit_code").write_text(str(code))
        (out / f"done.rank{rank}").write_text("ok")
    except Exception:  # noqa: BLE001 - the test reads the traceback
        (out / f"error.rank{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def spawn(world: int, out_dir: Path, pipelines: bool = True, cli_model: Path | None = None,
          while_running: Callable[[], object] | None = None) -> object:
    """Runs :func:`rank_worker` on ``world`` gloo ranks; ``while_running()`` runs here meanwhile (its result is
    returned). Raises with the ranks' tracebacks if one failed."""
    context = mp.get_context("spawn")
    port = free_port()
    model = None if cli_model is None else str(cli_model)
    procs = [context.Process(target=rank_worker, args=(r, world, port, str(out_dir), pipelines, model))
             for r in range(world)]
    for p in procs:
        p.start()
    try:
        result = while_running() if while_running is not None else None
    finally:
        for p in procs:
            p.join(timeout=300)
    errors = [f.read_text() for f in sorted(out_dir.glob("error.rank*.txt"))]
    if errors or any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a rank failed:\n" + "\n".join(errors))
    return result


def load_rank(out_dir: Path, name: str, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(out_dir / f"{name}.rank{rank}.safetensors"))
