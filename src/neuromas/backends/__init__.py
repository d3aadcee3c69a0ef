"""Backends generate node messages: `hf` (transformers + PEFT, default; CPU or GPU), `openai`
(any OpenAI-compatible server) and `vllm` (in-process vLLM with one LoRA per node; GPU only).

Each is imported only when chosen, so a user without vLLM or the openai client never needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuromas.backends.base import Backend, Generation, GenerationRequest

if TYPE_CHECKING:
    from neuromas.config import ModelConfig

__all__ = ["Backend", "Generation", "GenerationRequest", "from_config"]


def from_config(config: ModelConfig) -> Backend:
    """The backend `model.backend` names, built from the model config."""
    if config.backend == "openai":
        from neuromas.backends.openai import OpenAIBackend

        return OpenAIBackend.from_config(config)
    if config.backend == "vllm":
        from neuromas.backends.vllm import VLLMBackend

        return VLLMBackend.from_config(config)
    from neuromas.backends.hf import HFBackend

    return HFBackend.from_config(config)
