"""Model card (README.md with Hub metadata) for a converted LTX-2 folder, and publishing it on the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffusers.utils import logging

logger = logging.get_logger(__name__)

LICENSE_NAME = "ltx-2-community-license"
LICENSE_LINK = "https://github.com/Lightricks/LTX-2/blob/main/LICENSE"


def model_card(source: str, distilled: bool, components: list[str], has_text_encoder: bool,
               version: str = "2.0") -> str:
    """README.md text for a converted folder of LTX-``version`` ("2.0" or "2.3"): YAML front matter for the Hub,
    then usage that writes mp4 with audio."""
    from ..pipelines.defaults import LTX_2_0, LTX_2_3

    defaults = LTX_2_3 if version == "2.3" else LTX_2_0
    call = ('    sigmas=DISTILLED_SIGMAS, guidance_scale=1.0, audio_guidance_scale=1.0,\n'
            '    stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0,\n'
            if distilled else f"    num_inference_steps={defaults.num_inference_steps},  # LTX-{version}'s default\n")
    audio = "48 kHz" if version == "2.3" else "24 kHz"
    encoder_note = "" if has_text_encoder else (
        "\nThis folder has no text encoder: pass `text_encoder=` and `tokenizer=` (Gemma-3-12B, "
        "`google/gemma-3-12b-it-qat-q4_0-unquantized`, a gated model: accept its license on the Hub first) to "
        "`from_pretrained`, or pass `prompt_embeds=`.\n")
    return f"""---
library_name: ltx2_diffusers
pipeline_tag: text-to-video
base_model: Lightricks/LTX-2
license: other
license_name: {LICENSE_NAME}
license_link: {LICENSE_LINK}
tags:
- ltx-2
- ltx-{version}
- text-to-video
- text-to-audio
- image-to-video
- audio-video
- diffusers
---

# LTX-{version} ({'distilled' if distilled else 'dev'}) for `ltx2_diffusers`

Lightricks' LTX-{version} joint audio+video model converted from `{source}` with `ltx2-diffusers convert`, in
diffusers' own LTX-2 folder format: it loads with `ltx2_diffusers` (below) and with diffusers'
`LTX2Pipeline.from_pretrained`. Components: {', '.join(components)}. The weights are unchanged (renamed, optionally
cast); they remain under the [LTX-2 Community License]({LICENSE_LINK}).
{encoder_note}
## Usage

```python
import torch
from ltx2_diffusers import DISTILLED_SIGMAS, LTX2AudioVideoPipeline
from ltx2_diffusers.utils.export import export_to_mp4

pipe = LTX2AudioVideoPipeline.from_pretrained("path/or/repo-id", torch_dtype=torch.bfloat16)
pipe.enable_model_cpu_offload()
out = pipe(
    "A street musician plays the violin at dusk; passers-by applaud.",
    num_frames=121, height=512, width=768, frame_rate=24.0,
{call}    generator=torch.Generator().manual_seed(10),
)
# video and its audio track in one file (H.264 + stereo AAC at the vocoder's rate, {audio})
export_to_mp4(out.frames[0], "clip.mp4", fps=24.0, audio=out.audio[0], sample_rate=out.sample_rate)
```
"""


class PushError(RuntimeError):
    """Uploading to the Hub failed (offline, no network, not logged in, no write access); the message says why."""


def _hub_failure(error: BaseException, repo_id: str) -> str:
    """Why an upload to ``repo_id`` failed, in one sentence, from the ``huggingface_hub`` / network error."""
    from huggingface_hub import errors

    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, errors.OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE is set); unset it to upload"
    if isinstance(error, errors.LocalTokenNotFoundError) or status == 401:
        return "not logged in: log in with `hf auth login` or set HF_TOKEN"
    if status == 403:
        return f"your token may not write to {repo_id}: use a token with write access to that namespace"
    if isinstance(error, (ConnectionError, TimeoutError)) or "connect" in type(error).__name__.lower():
        return "the Hub could not be reached (no network connection?)"
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def check_hub_reachable(repo_id: str) -> None:
    """A ``ValueError`` for a malformed ``repo_id``, a ``PushError`` when an upload cannot work for a reason known
    without the network (offline mode); called before converting, so that hours of work do not end in a refused
    upload."""
    from huggingface_hub import constants
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as error:
        raise ValueError(f"--push-to-hub {repo_id!r} is not a Hub repository name: pass 'namespace/name' "
                         f"({_first_line(error)}).") from error
    if constants.is_offline_mode():
        raise PushError(f"cannot upload to {repo_id}: offline mode is on (HF_HUB_OFFLINE is set); unset it, or "
                        f"convert without --push-to-hub and upload the folder later with `hf upload`.")


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    api: Any = None,  # noqa: ANN401
) -> str:
    """Uploads a converted folder (with its model card) to the Hub; returns the repository URL.

    ``api`` is a ``huggingface_hub.HfApi`` (created with ``token`` when not given). A failed upload raises a
    :class:`PushError` that says why and that the folder is kept.
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"{folder} is not a converted pipeline folder (no model_index.json).")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                          commit_message="Upload LTX-2 converted with ltx2_diffusers")
    except Exception as error:
        raise PushError(f"could not upload {folder} to {repo_id}: {_hub_failure(error, repo_id)}. The converted "
                        f"folder is kept; upload it later with `hf upload {repo_id} {folder}`.") from error
    logger.info("uploaded %s to %s", folder, repo_id)
    return str(url)
