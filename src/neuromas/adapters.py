"""Node parameters: one named LoRA adapter per node (or per layer, or one for all), by name.

The adapter of node `L2N1` is named `L2N1` (sharing `node`), `L2` (sharing `layer`) or `all`.
These names are what a network, its checkpoints, its trainer and a server holding the adapters
(`server.adapters_as_models`, vLLM's LoRA modules) call them. The weights themselves belong to
the backend that runs them (`Backend.with_adapters`; for hf, PEFT adapters on the one shared
base model: backends/lora.py).
"""

from __future__ import annotations

from neuromas.seeds import derive_seed
from neuromas.topology import Node, Topology


def adapter_name(node: Node, sharing: str) -> str:
    if sharing == "node":
        return node.id
    if sharing == "layer":
        return f"L{node.layer + 1}"
    return "all"


def adapter_names(topology: Topology, sharing: str) -> list[str]:
    return list(dict.fromkeys(adapter_name(node, sharing) for node in topology.nodes))


def adapter_seed(seed: int, name: str) -> int:
    """The seed of an adapter's initial A matrices: the run's seed and the adapter's own name.

    PEFT draws A from torch's global generator, whose state depends on whatever ran before
    (model loading, an evaluation), so without this two runs of one config start from different
    adapters and part after their first update. Keyed by name, a node's initial adapter is also
    the same whatever other nodes the network has.
    """
    return derive_seed(seed, "adapter", name)
