"""Model FLOPs utilisation (MFU): the useful FLOPs of a rollout or an update over time x peak.

Why a share of peak: a speed-up against a slower reference says nothing about how much is left;
the FLOPs a step must do, divided by what the machine's matmul units do in that time, does.

What counts as useful (for a llama-style decoder: attention with grouped KV heads, a gated MLP):

- every token a sequence runs through the model costs 2 x (the decoder's linear weights + the
  active LoRA adapter's) multiply-adds-as-two-FLOPs; attention costs 4 x heads x head_dim per
  (query, key) pair it scores (QK^T and AV), and the LM head 2 x hidden x vocab at each
  position whose logits are used (a sampled token, a completion token of the loss);
- a token is counted once per adapter however many rows share it: rows of one adapter that
  share a prompt prefix need that prefix only once (`unique_tokens` counts the nodes of the
  trie of the rows' token sequences), so sharing is not counted as work, and padding, repeated
  prefills and rows that ride along after they finished are waste, not work;
- the update (forward + backward, no gradient for the frozen base weights) costs 2x the forward
  in the linear layers and the LM head (the backward computes the input gradient only: the
  issue's 4 x params x tokens), 3x in attention (the backward multiplies the scores' gradient
  with both operands and the output gradient with both), and 3x in the adapters (they also get
  weight gradients).

The peak (`matmul_peak`) is measured, not looked up: the best of a few large square GEMMs in the
dtype the step computes in, on the same machine in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# One sequence to count: (adapter it runs through, e.g. "L1N1" or None; prompt ids; completion ids)
Counted = tuple[str | None, Sequence[int], Sequence[int]]


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs of a decoder-only transformer (names as in transformers' configs)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """From a transformers config (LlamaConfig, Qwen2/3Config, MistralConfig, ...)."""
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        return cls(text.num_hidden_layers, text.hidden_size, text.intermediate_size, heads,
                   getattr(text, "num_key_value_heads", None) or heads, head_dim, text.vocab_size)

    def module_sizes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of one decoder layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        """Weights of every decoder layer's linear modules (not the embedding, not the LM head)."""
        return self.layers * sum(a * b for a, b in self.module_sizes().values())

    def lora_params(self, rank: int, target_modules: Iterable[str]) -> int:
        """Parameters of one LoRA adapter of `rank` on `target_modules` in every layer."""
        sizes = self.module_sizes()
        return self.layers * sum(rank * (sizes[m][0] + sizes[m][1]) for m in target_modules)

    @property
    def attention_pair_flops(self) -> int:
        """Forward FLOPs of one (query, key) pair over all layers and heads: QK^T and AV."""
        return 4 * self.layers * self.heads * self.head_dim

    @property
    def head_flops(self) -> int:
        """Forward FLOPs of the LM head at one position."""
        return 2 * self.hidden * self.vocab


def unique_tokens(sequences: Iterable[tuple[str | None, Sequence[int]]]) -> tuple[int, int]:
    """(tokens, attended keys) of the trie of the sequences, one trie per adapter.

    A token shared by several sequences of one adapter (the same prefix) is counted once. The
    second figure sums, over those tokens, how many keys each attends to (its position, counted
    from 1: itself and every token before it), which is what attention costs.
    """
    tokens = keys = 0
    previous: tuple[str | None, Sequence[int]] | None = None
    for adapter, ids in sorted(((a or "", list(s)) for a, s in sequences)):
        shared = _common_prefix(previous[1], ids) if previous is not None and previous[0] == adapter else 0
        new = len(ids) - shared
        tokens += new
        keys += (shared + 1 + len(ids)) * new // 2  # positions shared+1 .. len(ids)
        previous = (adapter, ids)
    return tokens, keys


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


@dataclass(frozen=True)
class ForwardFlops:
    """Forward FLOPs of some sequences, by where they go."""

    linear: float  # the decoder's linear weights
    adapter: float  # the LoRA adapters
    attention: float  # scores and weighted values
    head: float  # the LM head at the positions whose logits are used

    @property
    def total(self) -> float:
        return self.linear + self.adapter + self.attention + self.head


def forward_flops(shape: ModelShape, sequences: Iterable[Counted], lora: int = 0) -> ForwardFlops:
    """Forward FLOPs of running each sequence's prompt and completion, its last completion token
    excepted (nothing reads it), with logits at every completion position. `lora`: parameters of
    the adapter that a row with an adapter runs through."""
    sequences = list(sequences)
    fed = [(a, [*p, *c[:-1]]) for a, p, c in sequences if c]
    tokens, keys = unique_tokens(fed)
    adapter_tokens, _ = unique_tokens((a, s) for a, s in fed if a is not None)
    logits = sum(len(c) for _, _, c in sequences)
    return ForwardFlops(2.0 * shape.linear_params * tokens, 2.0 * lora * adapter_tokens,
                        float(shape.attention_pair_flops * keys), float(shape.head_flops * logits))


def rollout_flops(shape: ModelShape, messages: Iterable[Counted], lora: int = 0) -> float:
    """Useful FLOPs of generating `messages` (each distinct message once)."""
    return forward_flops(shape, messages, lora).total


def update_flops(shape: ModelShape, rows: Iterable[Counted], lora: int = 0, epochs: int = 1,
                 extra_forwards: int = 0) -> float:
    """Useful FLOPs of the update's forward + backward over `rows`, `epochs` times, plus
    `extra_forwards` gradient-free forwards (the old policy's log-probs, the KL reference)."""
    f = forward_flops(shape, rows, lora)
    backward = 2 * f.linear + 3 * f.adapter + 3 * f.attention + 2 * f.head
    return epochs * backward + extra_forwards * f.total


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Share of peak: flops / (seconds x peak FLOP/s)."""
    return flops / (seconds * peak) if seconds > 0 and peak > 0 else 0.0


def matmul_peak(dtype: str = "bfloat16", device: str = "cpu", size: int | None = None, repeats: int = 3) -> float:
    """The machine's matmul throughput in FLOP/s: the best of `repeats` (size x size) GEMMs in
    `dtype` after one warm-up. Size: 2048 on a CPU (a few seconds even without native bf16),
    8192 on a GPU."""
    import torch

    size = size or (8192 if device.startswith("cuda") else 2048)
    torch_dtype = getattr(torch, dtype)
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)
    best = float("inf")
    for attempt in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if attempt:  # the first is a warm-up (allocations, kernel choice)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best
