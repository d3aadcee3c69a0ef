"""What a backend does for a network: turn a batch of chat requests into messages.

The network hands a backend one whole layer at a time (every node x every input x every
sample), so a backend is free to batch them however it runs fastest. Each request says which
node's adapter to use; a backend without adapters ignores it. A backend that can run adapters
(`AdapterBackend`) owns them: the network only names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from neuromas.config import AdapterConfig


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]  # chat messages: system + user
    adapter: str | None  # node id whose adapter generates this message; None = the base model
    max_new_tokens: int
    temperature: float  # 0 = greedy
    top_p: float = 1.0


@dataclass
class Generation:
    text: str  # what readers see: the message without its stop token
    # Generated tokens, the stop token included when the message finished: stopping is an action
    # the policy takes, so training must see its log-prob (a node learns to write less or more).
    token_ids: list[int]
    logprobs: list[float]  # log-prob of each generated token under the sampling policy (see hf.py)
    prompt_ids: list[int] = field(default_factory=list)
    finished: bool = True  # True: the last token of token_ids is the stop token; False: the budget ran out
    # Token counts from a server that returns text, not token ids (the `openai` backend's usage).
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


class Backend(Protocol):
    def generate(self, requests: list[GenerationRequest], seed: int) -> list[Generation]:
        """One Generation per request, in request order; seeded and reproducible."""
        ...


class AdapterBackend(Backend, Protocol):
    """A backend that runs node adapters by name: the hf backend (PEFT adapters it owns and a
    trainer can train), or a server that holds them (`server.adapters_as_models`)."""

    def with_adapters(self, names: list[str], config: AdapterConfig, seed: int) -> Backend:
        """A backend whose requests may name adapters `names` (fresh ones equal the base model)."""
        ...
