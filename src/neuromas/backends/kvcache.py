"""A KV cache that is written in place instead of grown by concatenation, for the sampling loop.

transformers' `DynamicCache` appends each decoding step's keys and values with `torch.cat`, which
copies the whole cache of every layer at every step: at 64 rows x 400 positions on SmolLM2-135M
(30 layers, 3 KV heads of 64) that is ~0.6 GB of memory traffic per generated token in bf16,
about as long as the step's matmuls take on a CPU. Here each layer's keys and values live in
one buffer allocated for the whole generation (prompt width + token budget), a step writes its
new column into it, and attention reads a view of the filled columns.

Why not transformers' `StaticCache`: it attends over the whole preallocated length at every
step (the empty columns masked), which costs attention FLOPs on a CPU and changes the shape of
the attention, so results could differ from the dynamic cache in the last bits. A view of the
filled columns has exactly the values and shapes the dynamic cache has, so generation is
bit-identical (tests/test_backend_hf.py checks it). Used only where no gradient flows (the
sampling loop runs under `inference_mode`); the update keeps the dynamic cache, whose tensors
autograd tracks.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class InPlaceLayer(DynamicLayer):
    """One layer's keys and values in a buffer of `capacity` positions (doubled if outgrown)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0
        self._keys: torch.Tensor | None = None  # (batch, kv heads, capacity, head dim)
        self._values: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys = key_states.new_empty((*key_states.shape[:2], self.capacity, key_states.shape[-1]))
        self._values = value_states.new_empty((*value_states.shape[:2], self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # outgrown: copy once into a buffer twice as long
            self._keys, self._values = (_extended(t, max(end, 2 * t.shape[-2])) for t in (self._keys, self._values))
        self._keys[:, :, self.length : end].copy_(key_states)
        self._values[:, :, self.length : end].copy_(value_states)
        self.length = end
        self._expose()
        return self.keys, self.values

    def _expose(self) -> None:
        """`keys`/`values`: views of the filled columns (what the attention and the mask see)."""
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (finished rows leave the batch; a shared prefix is copied to its rows)."""
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("InPlaceLayer serves the sampling loop, which never crops")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("InPlaceLayer serves the sampling loop, which never repeats rows")

    def reset(self) -> None:
        super().reset()
        self.length, self._keys, self._values = 0, None, None


def _extended(buffer: torch.Tensor, capacity: int) -> torch.Tensor:
    bigger = buffer.new_empty((*buffer.shape[:2], capacity, buffer.shape[-1]))
    bigger[:, :, : buffer.shape[-2]].copy_(buffer)
    return bigger


class InPlaceCache(DynamicCache):
    """`DynamicCache` whose full-attention layers are `InPlaceLayer`s of `capacity` positions.

    Layers of another kind (sliding-window ones, in models that have them) stay as transformers
    made them, so their semantics never change.
    """

    def __init__(self, config, capacity: int):
        super().__init__(config=config)
        self.layers = [InPlaceLayer(capacity) if type(layer) is DynamicLayer else layer for layer in self.layers]
