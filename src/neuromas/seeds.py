"""Every seed a run uses, derived in one place from (run seed, purpose, keys).

A seed must name what it is for and the step it belongs to, never a counter that other work
advances: a counter of forward passes shifted every training sample whenever an evaluation
(`train.eval_every`, `eval.limit`, its batch size) made one more or one fewer call. Hashing the
whole key also keeps purposes apart: the rollout of step 3 and the shuffle of epoch 3 share no
seed, as they would with `seed * K + i` arithmetic.

    derive_seed(config.seed, "rollout", step)      # the trainer's sampled passes of a step
    derive_seed(config.seed, "adapter", "L1N2")    # a node's initial LoRA A matrices
"""

from __future__ import annotations

import hashlib


def derive_seed(run_seed: int, purpose: str, *keys: object) -> int:
    """A 63-bit seed that depends only on its arguments (their `str`), stable across processes,
    Python versions and platforms (unlike `hash()`, which is salted per process)."""
    text = "\x1f".join(str(part) for part in (run_seed, purpose, *keys))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1
