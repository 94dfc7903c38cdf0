"""Model card (README.md with Hub metadata) for a converted LTX-2 folder, and publishing it on the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffusers.utils import logging

logger = logging.get_logger(__name__)

LICENSE_NAME = "ltx-2-community-license"
LICENSE_LINK = "https://github.com/Lightricks/LTX-2/blob/main/LICENSE"


def model_card(source: str, distilled: bool, components: list[str], has_text_encoder: bool) -> str:
    """README.md text for a converted folder: YAML front matter for the Hub, then usage that writes mp4 with audio."""
    call = ('    sigmas=DISTILLED_SIGMAS, guidance_scale=1.0, audio_guidance_scale=1.0,\n'
            '    stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0,\n'
            if distilled else "    num_inference_steps=40,\n")
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
- text-to-video
- text-to-audio
- image-to-video
- audio-video
- diffusers
---

# LTX-2 ({'distilled' if distilled else 'dev'}) for `ltx2_diffusers`

Lightricks' LTX-2 joint audio+video model converted from `{source}` with `ltx2-diffusers convert`, in the diffusers
folder format. Components: {', '.join(components)}. The weights are unchanged (renamed, optionally cast);
they remain under the [LTX-2 Community License]({LICENSE_LINK}).
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
# video and its audio track in one file (H.264 + stereo AAC at the vocoder's rate)
export_to_mp4(out.frames[0], "clip.mp4", fps=24.0, audio=out.audio[0], sample_rate=out.sample_rate)
```
"""


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    api: Any = None,  # noqa: ANN401
) -> str:
    """Uploads a converted folder (with its model card) to the Hub; returns the repository URL.

    ``api`` is a ``huggingface_hub.HfApi`` (created with ``token`` when not given).
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"{folder} is not a converted pipeline folder (no model_index.json).")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                      commit_message="Upload LTX-2 converted with ltx2_diffusers")
    logger.info("uploaded %s to %s", folder, repo_id)
    return str(url)
