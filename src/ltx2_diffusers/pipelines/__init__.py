from ..schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS
from .conditioning import ImageCondition
from .low_memory import LowMemoryProfile
from .pipeline_ltx2_audio_video import LTX2AudioVideoPipeline
from .pipeline_output import LTX2PipelineOutput
from .prompt_cache import DiskPromptCache, folder_text_identity
from .text_encoding import LTX2PromptEncoder, PromptEmbeddingCache, encode_prompt
from .token_tiling import TokenTiling

__all__ = [
    "DISTILLED_SIGMAS",
    "DiskPromptCache",
    "STAGE_2_DISTILLED_SIGMAS",
    "ImageCondition",
    "LTX2AudioVideoPipeline",
    "LTX2PipelineOutput",
    "LTX2PromptEncoder",
    "LowMemoryProfile",
    "PromptEmbeddingCache",
    "TokenTiling",
    "encode_prompt",
    "folder_text_identity",
]
