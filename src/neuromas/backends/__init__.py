"""Backends generate node messages: `hf` (transformers + PEFT, default; CPU or GPU)."""

from neuromas.backends.base import Backend, Generation, GenerationRequest
from neuromas.backends.hf import HFBackend

__all__ = ["Backend", "Generation", "GenerationRequest", "HFBackend"]
