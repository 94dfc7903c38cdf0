"""A tiny original-format LTX-2.3 single file and x2 1.1 upsampler file (written from ltx-core modules) through the
command line: ``ltx2-diffusers convert`` then ``ltx2-diffusers generate`` (one and two stages) write mp4 files with
48 kHz stereo audio, with the LTX-2.3 defaults taken from the folder."""

import json

import pytest
import torch

from ltx2_diffusers import cli
from ltx2_diffusers.pipelines.model_facts import PipelineFacts
from ltx2_diffusers.pipelines.pipeline_ltx2_audio_video import call_arguments
from ltx2_diffusers.pipelines.plan import plan_generation
from ltx2_diffusers.utils.tiny_gemma import tiny_gemma3, tiny_gemma_tokenizer

from .oracles_int23 import tiny_original_23, tiny_upsampler_23_file, write_single_file
from .oracles_text import HIDDEN, LAYERS

av = pytest.importorskip("av")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # narrow convolutions on a shared machine


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli23")
    tiny = tiny_original_23()
    source = write_single_file(root / "ltx-2.3-tiny-dev.safetensors", tiny.tensors, tiny.header, tiny.metadata)
    _, upsampler = tiny_upsampler_23_file(root / "ltx-2.3-spatial-upscaler-x2-1.1.safetensors")
    gemma = root / "gemma"
    tiny_gemma3(hidden_size=HIDDEN, num_layers=LAYERS).save_pretrained(gemma)
    tiny_gemma_tokenizer().save_pretrained(gemma)
    output = root / "LTX-2.3-tiny"
    assert cli.main(["convert", "--checkpoint", str(source), "--upsampler", str(upsampler), "--text-encoder",
                     str(gemma), "--output", str(output)]) == 0
    return output


def _generate(folder, output, *extra):
    argv = ["generate", "--model", str(folder), "--prompt", "a dog barks at a train", "--negative-prompt", "blurry",
            "--max-sequence-length", "128", "--steps", "2", "--frames", "9", "--seed", "1", "--output", str(output),
            *extra]
    assert cli.main(argv) == 0
    return output


def _streams(path):
    """(frames, height, width, fps), (audio rate, channels, seconds) of an mp4."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        info = (frames, video.height, video.width, float(video.average_rate))
        container.seek(0)
        samples = sum(f.samples for f in container.decode(audio=0))
        return info, (audio.rate, audio.layout.nb_channels, samples / audio.rate)


def test_convert_then_generate_writes_48khz_stereo_with_the_23_defaults(folder, tmp_path, capsys):
    record = json.loads((folder / "ltx2_conversion.json").read_text())
    assert record["version"] == "2.3" and record["components"]["vocoder"]["tensors"] == 1227
    facts = PipelineFacts.from_folder(folder)  # the defaults the command uses without --steps / --stg-blocks
    plan = plan_generation(facts, call_arguments(prompt="a", max_sequence_length=128))
    assert facts.defaults.version == "2.3" and plan.stages[0].num_steps == 30 and plan.video.stg_blocks == (1,)
    path = _generate(folder, tmp_path / "t2av.mp4", "--height", "64", "--width", "96")
    video, audio = _streams(path)
    assert video == (9, 64, 96, 24.0)
    assert audio[:2] == (48000, 2) and abs(audio[2] - 9 / 24) < 2048 / 48000  # AAC frames (+ priming)
    captured = capsys.readouterr()
    assert "LTX-2.3 model: stage 1 2 steps, STG blocks [1] (video) / [1] (audio), audio at 48000 Hz" in captured.err
    assert "at 48000 Hz" in captured.out and "stage 1 (2 steps)" in captured.out


def test_generate_with_the_x2_upsampler_writes_full_size(folder, tmp_path, capsys):
    path = _generate(folder, tmp_path / "ms.mp4", "--height", "128", "--width", "192", "--upsample",
                     "--tile-tokens", "48", "--quiet")
    video, audio = _streams(path)
    assert video == (9, 128, 192, 24.0) and audio[:2] == (48000, 2)
    summary = capsys.readouterr().out
    assert "stage 1 (2 steps)" in summary and "stage 2 (3 steps)" in summary
