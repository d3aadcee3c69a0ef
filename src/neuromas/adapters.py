"""Node parameters: one named LoRA adapter per node (or per layer, or one for all) via PEFT.

The adapter of node `L2N1` is named `L2N1` (sharing `node`), `L2` (sharing `layer`) or `all`.
Every adapter is trainable at once: a batch of rows from many nodes runs in one forward pass
with PEFT's `adapter_names` (one name per row), so each row's gradient reaches only its own
node's adapter. PEFT allows `adapter_names` only in eval mode; we keep the model in eval mode
throughout (LoRA dropout is not used) and gradients flow all the same.

Attaching adapters copies the base model first: the process-wide cached model stays clean for
any other network in the same process (a 135M model costs ~270 MB to copy in bf16).
"""

from __future__ import annotations

import copy

import torch

from neuromas.config import AdapterConfig
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


def attach_adapters(model, topology: Topology, config: AdapterConfig, seed: int = 0):
    """A PEFT model over a copy of `model` with one fresh LoRA adapter per name, all trainable.

    LoRA's B matrices start at zero, so the network with fresh adapters is exactly the base.
    Each adapter's A is drawn from its own seed (`adapter_seed`) without disturbing the global
    generator.
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha if config.alpha is not None else 2 * config.rank,
        target_modules=list(config.target_modules),
        lora_dropout=0.0,
        bias="none",
    )
    names = adapter_names(topology, config.sharing)
    peft_model = copy.deepcopy(model)
    for name in names:
        with torch.random.fork_rng(devices=_devices(model)):
            torch.manual_seed(adapter_seed(seed, name))
            if name == names[0]:
                peft_model = get_peft_model(peft_model, lora, adapter_name=name)
            else:
                peft_model.add_adapter(name, lora)
    for param_name, param in peft_model.named_parameters():
        param.requires_grad_("lora_" in param_name)  # PEFT marks only the active adapter trainable
    peft_model.eval()
    return peft_model


def _devices(model) -> list[int]:
    """The CUDA devices whose generators an adapter's initialisation may draw from."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def adapter_parameters(peft_model, name: str) -> list[torch.nn.Parameter]:
    """The parameters of one adapter (matched by PEFT's `.<name>.` key segment)."""
    key = f".{name}."
    return [p for n, p in peft_model.named_parameters() if "lora_" in n and key in n]
