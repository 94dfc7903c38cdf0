from .text_encoding import LTX2PromptEncoder, PromptEmbeddingCache, encode_prompt

__all__ = ["LTX2PromptEncoder", "PromptEmbeddingCache", "encode_prompt"]
