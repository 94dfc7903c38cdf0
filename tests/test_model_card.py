"""Model card of converted folders and Hub publishing (the Hub API is faked: tests never touch the network)."""

import pytest
import yaml

from ltx2_diffusers.conversion.__main__ import main
from ltx2_diffusers.conversion.model_card import model_card, push_to_hub

from .oracles_checkpoint import tiny_original, write_original


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_metadata_and_usage_with_audio():
    card = model_card("ltx-2-19b-dev.safetensors", distilled=False, components=["transformer", "vae"],
                      has_text_encoder=False)
    meta = _front_matter(card)
    assert meta["library_name"] == "ltx2_diffusers" and meta["pipeline_tag"] == "text-to-video"
    assert meta["base_model"] == "Lightricks/LTX-2" and meta["license"] == "other"
    assert "text-to-audio" in meta["tags"]
    assert "export_to_mp4(out.frames[0]" in card and "audio=out.audio[0], sample_rate=out.sample_rate" in card
    assert "num_inference_steps=40" in card and "gated model" in card
    distilled = model_card("ltx-2-19b-distilled.safetensors", distilled=True, components=["transformer"],
                           has_text_encoder=True)
    assert "sigmas=DISTILLED_SIGMAS, guidance_scale=1.0" in distilled and "gated model" not in distilled


class FakeHub:
    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))


def test_converter_writes_the_card_and_pushes(tmp_path, monkeypatch):
    tiny = tiny_original()
    source = write_original(tmp_path / "ltx-2-tiny-dev.safetensors", tiny.tensors, tiny.header)
    hub = FakeHub()
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: hub)
    assert main(["--checkpoint", str(source), "--output", str(tmp_path / "out"), "--push-to-hub", "me/ltx2",
                 "--private"]) == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert _front_matter(card)["base_model"] == "Lightricks/LTX-2" and "ltx-2-tiny-dev.safetensors" in card
    (name, create), (upload_name, upload) = hub.calls
    assert (name, upload_name) == ("create_repo", "upload_folder")
    assert create == {"repo_id": "me/ltx2", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "me/ltx2" and upload["folder_path"] == str(tmp_path / "out")


def test_push_refuses_a_folder_that_is_not_converted(tmp_path):
    with pytest.raises(ValueError, match="model_index.json"):
        push_to_hub(tmp_path, "me/ltx2", api=FakeHub())
