"""The fade-in of a grown network: its parent form, and how far the grown form has come in.

`grow.py` makes a bigger network from a trained smaller one; until the new nodes have learnt
something, each sampled pass runs the grown network with probability `alpha` and otherwise
exactly the parent (grow.py explains why). `Growth` is that state: the parent's config, which
grown node was which parent node, and the ramp. The network reads it on every forward pass, the
trainer moves it along, checkpoints save it; it lives here, below all three.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from neuromas.config import NetworkConfig
from neuromas.topology import Topology


@dataclass
class Growth:
    """A grown network's parent form and how far the fade-in has gone."""

    parent: NetworkConfig  # the network before growth
    old_ids: dict[str, str]  # id in the grown network -> id in the parent, for every old node
    ramp_steps: int
    done_steps: int = 0

    def __post_init__(self):
        self.parent_topology = Topology.from_config(self.parent)
        self.new_ids = {old: new for new, old in self.old_ids.items()}

    @property
    def alpha(self) -> float:
        """Probability that a training pass runs the grown network rather than the parent."""
        return 1.0 if self.ramp_steps == 0 else min(1.0, self.done_steps / self.ramp_steps)

    def draw(self, passes: int, seed: int, training: bool) -> list[bool]:
        """Per pass: True runs the grown network, False the parent (seeded, reproducible)."""
        if not training:
            return [self.alpha >= 0.5] * passes
        rng = random.Random(seed)
        return [rng.random() < self.alpha for _ in range(passes)]

    def to_dict(self) -> dict:
        return {"parent": self.parent.model_dump(mode="json"), "old_ids": self.old_ids,
                "ramp_steps": self.ramp_steps, "done_steps": self.done_steps}

    @classmethod
    def from_dict(cls, data: dict) -> Growth:
        return cls(NetworkConfig.model_validate(data["parent"]), dict(data["old_ids"]),
                   int(data["ramp_steps"]), int(data["done_steps"]))
