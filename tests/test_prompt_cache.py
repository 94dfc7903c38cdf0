"""The prompt-embedding cache on disk: a second run never loads or calls Gemma and gets the same embeddings bit for
bit, damaged entries are ignored and rewritten, concurrent writers never leave a broken entry, and the text identity
follows the folder's files."""

import logging
import multiprocessing
import shutil

import pytest
import torch

from ltx2_diffusers import LTX2AudioVideoPipeline, cli
from ltx2_diffusers.pipelines import text_encoding
from ltx2_diffusers.pipelines.prompt_cache import DiskPromptCache, file_fingerprint, folder_text_identity
from ltx2_diffusers.utils.tiny import tiny_pipeline

T = 32
WIDTHS = (32, 32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_pipeline(0).save_pretrained(path)
    return path


def _count_text_encoder_calls(monkeypatch):
    calls = []
    original = text_encoding.text_encoder_hidden_states
    monkeypatch.setattr(text_encoding, "text_encoder_hidden_states",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_second_process_never_loads_or_calls_the_text_encoder(folder, tmp_path, monkeypatch):
    calls = _count_text_encoder_calls(monkeypatch)
    first = LTX2AudioVideoPipeline.from_pretrained(folder)
    first.enable_prompt_cache(tmp_path)
    positive, negative = first.encode_text_embeddings("a cat", "bad", max_sequence_length=T)
    assert len(calls) == 1 and len(list(tmp_path.rglob("*.safetensors"))) == 2
    assert not list(tmp_path.rglob("*.tmp"))

    # a fresh pipeline without Gemma (as `generate` loads it when every prompt is cached)
    second = LTX2AudioVideoPipeline.from_pretrained(folder, text_encoder=None, tokenizer=None)
    second.enable_prompt_cache(tmp_path)
    again, again_negative = second.encode_text_embeddings("a cat", "bad", max_sequence_length=T)
    assert second.text_encoder is None and len(calls) == 1
    for a, b in zip((*positive, *negative), (*again, *again_negative)):
        assert torch.equal(a, b)  # bit for bit
    # with Gemma loaded but a cold in-memory cache: the disk answers, Gemma is not called
    third = LTX2AudioVideoPipeline.from_pretrained(folder)
    third.enable_prompt_cache(tmp_path)
    third.encode_text_embeddings("a cat", "bad", max_sequence_length=T)
    assert len(calls) == 1
    # another length is another entry
    third.encode_text_embeddings("a cat", "bad", max_sequence_length=2 * T)
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_prompt", "nan"])
def test_damaged_entry_is_ignored_with_a_warning_and_rewritten(tmp_path, caplog, damage):
    cache = DiskPromptCache(tmp_path, "identity-a")
    g = torch.Generator().manual_seed(0)
    value = (torch.randn(T, 32, generator=g), torch.randn(T, 32, generator=g), torch.ones(T, dtype=torch.long))
    path = cache.save("a cat", T, value)
    assert all(torch.equal(a, b) for a, b in zip(cache.load("a cat", T, WIDTHS), value))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-17])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif damage == "other_prompt":
        shutil.copy(cache.save("a dog", T, value), path)
    else:
        cache.save("a cat", T, (value[0] * float("nan"), *value[1:]))
    with caplog.at_level(logging.WARNING):
        assert cache.load("a cat", T, WIDTHS) is None
    assert "Ignoring the prompt-cache entry" in caplog.text and cache.rejected == 1
    assert cache.load("a cat", T, (16, 32)) is None  # shapes that do not fit the connectors are refused too


def test_corrupt_entry_is_recomputed_by_the_pipeline(folder, tmp_path, monkeypatch):
    calls = _count_text_encoder_calls(monkeypatch)
    pipe = LTX2AudioVideoPipeline.from_pretrained(folder)
    pipe.enable_prompt_cache(tmp_path)
    want, _ = pipe.encode_text_embeddings("a cat", do_classifier_free_guidance=False, max_sequence_length=T)
    (entry,) = tmp_path.rglob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:50])
    fresh = LTX2AudioVideoPipeline.from_pretrained(folder)
    fresh.enable_prompt_cache(tmp_path)
    got, _ = fresh.encode_text_embeddings("a cat", do_classifier_free_guidance=False, max_sequence_length=T)
    assert len(calls) == 2 and torch.equal(want.video_embeds, got.video_embeds)
    assert DiskPromptCache(tmp_path, fresh._disk_prompt_cache().identity).load("a cat", T, WIDTHS) is not None


def _writer(directory, seed, rounds):
    cache = DiskPromptCache(directory, "shared")
    value = tuple(torch.full((T, 32), float(seed)) for _ in range(2)) + (torch.ones(T, dtype=torch.long),)
    for _ in range(rounds):
        cache.save("the same prompt", T, value)


def test_two_processes_writing_one_entry_never_corrupt_it(tmp_path):
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(tmp_path, seed, 60)) for seed in (1, 2)]
    for w in writers:
        w.start()
    reader = DiskPromptCache(tmp_path, "shared")
    seen = set()
    while any(w.is_alive() for w in writers):
        value = reader.load("the same prompt", T, WIDTHS)
        if value is not None:
            assert torch.equal(value[0], value[1]) and value[0].unique().numel() == 1
            seen.add(float(value[0][0, 0]))
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert reader.rejected == 0 and seen <= {1.0, 2.0}
    assert reader.load("the same prompt", T, WIDTHS) is not None
    assert not list(tmp_path.rglob("*.tmp"))


def test_text_identity_follows_the_files(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert folder_text_identity(copy) == folder_text_identity(folder)
    weights = next((copy / "connectors").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert folder_text_identity(copy) != folder_text_identity(folder)
    shutil.rmtree(copy / "tokenizer")
    with pytest.raises(ValueError, match="tokenizer/"):
        folder_text_identity(copy)
    blob = tmp_path / "blobs" / ("ab" * 32)
    blob.parent.mkdir()
    blob.write_bytes(b"x")
    assert file_fingerprint(blob) == "ab" * 32  # a Hub blob is named by its SHA-256


def test_generate_second_run_skips_gemma(folder, tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    calls = _count_text_encoder_calls(monkeypatch)
    base = ["generate", "--model", str(folder), "--prompt", "a cat", "--negative-prompt", "bad",
            "--max-sequence-length", str(T), "--steps", "1", "--frames", "9", "--height", "64", "--width", "96",
            "--prompt-cache", str(tmp_path / "cache"), "--low-vram"]
    assert cli.main(base + ["--output", str(tmp_path / "a.mp4")]) == 0
    assert len(calls) == 1
    loaded = []
    original = LTX2AudioVideoPipeline.from_pretrained.__func__
    monkeypatch.setattr(LTX2AudioVideoPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loaded.append(k) or original(cls, *a, **k)))
    assert cli.main(base + ["--output", str(tmp_path / "b.mp4")]) == 0
    assert len(calls) == 1 and loaded[0]["text_encoder"] is None and loaded[0]["tokenizer"] is None
    err = capsys.readouterr().err
    assert "text encoder not loaded" in err and "low-vram profile (no accelerator: offload skipped)" in err
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    for extra, message in ((["--prompt-cache", str(tmp_path / "a.mp4")], "is a file; pass a folder"),
                           (["--offload", "model"], "drop --offload model"),
                           (["--text-encoder", "int8"], "pass --low-vram too")):
        argv = base[:-3] + extra + (["--low-vram"] if "--offload" in extra else [])
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv + ["--output", str(tmp_path / "c.mp4")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_pipeline_without_text_encoder_takes_cached_prompts(folder, tmp_path):
    pipe = LTX2AudioVideoPipeline.from_pretrained(folder)
    pipe.enable_prompt_cache(tmp_path)
    call = dict(negative_prompt="bad", num_frames=9, height=64, width=96, num_inference_steps=1,
                max_sequence_length=T, output_type="latent")
    want = pipe("a cat", generator=torch.Generator().manual_seed(0), **call).frames
    bare = LTX2AudioVideoPipeline.from_pretrained(folder, text_encoder=None, tokenizer=None)
    with pytest.raises(ValueError, match="no text encoder"):
        bare.plan(prompt="a cat", **call)
    bare.enable_prompt_cache(tmp_path, folder_text_identity(folder))
    assert torch.equal(bare("a cat", generator=torch.Generator().manual_seed(0), **call).frames, want)
    with pytest.raises(ValueError, match="not cached"):
        bare("a new prompt", **call)
