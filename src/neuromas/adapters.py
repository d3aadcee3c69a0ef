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
from neuromas.topology import Node, Topology


def adapter_name(node: Node, sharing: str) -> str:
    if sharing == "node":
        return node.id
    if sharing == "layer":
        return f"L{node.layer + 1}"
    return "all"


def adapter_names(topology: Topology, sharing: str) -> list[str]:
    return list(dict.fromkeys(adapter_name(node, sharing) for node in topology.nodes))


def attach_adapters(model, topology: Topology, config: AdapterConfig):
    """A PEFT model over a copy of `model` with one fresh LoRA adapter per name, all trainable.

    LoRA's B matrices start at zero, so the network with fresh adapters is exactly the base.
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
    peft_model = get_peft_model(copy.deepcopy(model), lora, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, lora)
    for param_name, param in peft_model.named_parameters():
        param.requires_grad_("lora_" in param_name)  # PEFT marks only the active adapter trainable
    peft_model.eval()
    return peft_model


def adapter_parameters(peft_model, name: str) -> list[torch.nn.Parameter]:
    """The parameters of one adapter (matched by PEFT's `.<name>.` key segment)."""
    key = f".{name}."
    return [p for n, p in peft_model.named_parameters() if "lora_" in n and key in n]
