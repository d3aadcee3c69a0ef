"""Growth: a bigger network made from a trained smaller one, starting where the smaller one is.

The paper finds that big networks trained from scratch train badly, and that the same shapes
grown from a trained smaller network train well (DESIGN.md section 1, Growth). Two operators,
torch-style functions that return a new network and leave the old one usable:

    bigger = nm.grow.widen(net, layer=0, width=2)            # [1, 1, 1] -> [2, 1, 1]
    bigger = nm.grow.deepen(net5, after_layer=1, width=2)     # [2, 2, 1] -> [2, 2, 2, 1]

Both plan the new graph first (`plan_widen`, `plan_deepen`: pure functions of the config, also
used to check a run's growth schedule when its config loads) and then `apply` the plan.

Trained nodes keep their adapters bit for bit (renamed when a layer is inserted before them:
`L2N1` becomes `L3N1`). A new node's adapter starts as a copy of a trained node's (`init:
"clone"`, default: a sibling in its layer for `widen`, the node at the same index of the layer
below for `deepen`) or fresh, i.e. the base model (`"fresh"`).

**How the new parts start with no effect: a fade-in.** A text message cannot be scaled by a
weight that starts at 0, and a message hidden from its readers never changes the reward, so it
would get no learning signal. So the grown network keeps its parent as a second form: each
sampled pass runs the grown network with probability `alpha` and otherwise exactly the parent
(its nodes, prompts and node names, with the trained adapters). `alpha` rises linearly from 0 to
1 over `ramp_steps` training steps (like the fade-in of progressively grown GANs). At alpha = 0
the grown network *is* the parent; while alpha rises, the G passes of one input mix both forms,
so the group baseline credits the new nodes with whatever they add over the parent. Greedy
evaluation runs the form most training passes use (the grown one once alpha >= 0.5). When the
ramp is done the parent is dropped. `ramp_steps: 0` switches the grown network on at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from neuromas.config import GrowthStage, LayerConfig, NetworkConfig
from neuromas.errors import NeuromasError
from neuromas.topology import Topology, node_id

if TYPE_CHECKING:
    from neuromas.network import Network

Init = Literal["clone", "fresh"]


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


@dataclass(frozen=True)
class Plan:
    """What a growth does to a network's graph, before any adapter is touched."""

    config: NetworkConfig  # the grown network
    old_ids: dict[str, str]  # grown id -> parent id, for every node that existed before
    sources: dict[str, str]  # grown id -> parent id whose adapter a new node clones


def plan_widen(config: NetworkConfig, layer: int, width: int) -> Plan:
    """Layer `layer` (0-based) widened to `width`; new nodes come after the old ones."""
    _check_layer(config, layer, "widen")
    if layer == len(config.layers) - 1:
        raise NeuromasError("cannot widen the last layer: it holds the readout, which must be one node; "
                            "deepen instead")
    old = config.layers[layer].width
    if width <= old:
        raise NeuromasError(f"widen: layer {layer} already has {old} nodes; give width > {old}")
    layers = [lc.model_copy(update={"width": width}) if l == layer else lc for l, lc in enumerate(config.layers)]
    grown = config.model_copy(update={"layers": layers})
    old_ids = {node.id: node.id for node in Topology.from_config(config).nodes}
    sources = {node_id(layer, i): node_id(layer, i % old) for i in range(old, width)}
    return Plan(grown, old_ids, sources)


def plan_deepen(config: NetworkConfig, after_layer: int, width: int = 1) -> Plan:
    """A dense layer of `width` nodes inserted after layer `after_layer` (0-based); the nodes
    after it move one layer down and are renamed (`L2N1` -> `L3N1`)."""
    _check_layer(config, after_layer, "deepen")
    if after_layer == len(config.layers) - 1:
        raise NeuromasError(f"deepen: cannot add a layer after the readout's; give after_layer < {len(config.layers) - 1}")
    if width < 1:
        raise NeuromasError("deepen: width must be >= 1")
    layers = [*config.layers[: after_layer + 1], LayerConfig(width=width), *config.layers[after_layer + 1 :]]
    shift = {node.id: node_id(node.layer + (node.layer > after_layer), node.index)
             for node in Topology.from_config(config).nodes}
    skip = [_rename_edge(edge, shift) for edge in config.skip] if isinstance(config.skip, list) else config.skip
    grown = config.model_copy(update={"layers": layers, "skip": skip})
    below = config.layers[after_layer].width
    sources = {node_id(after_layer + 1, i): node_id(after_layer, i % below) for i in range(width)}
    return Plan(grown, {new: old for old, new in shift.items()}, sources)


def then(first: Plan, second: Plan) -> Plan:
    """Two growths as one, so that the fade-in's parent is the network before both."""
    old_ids = {g: first.old_ids[m] for g, m in second.old_ids.items() if m in first.old_ids}
    sources = {g: first.sources[m] for g, m in second.old_ids.items() if m in first.sources}
    sources.update({g: first.old_ids.get(m) or first.sources[m] for g, m in second.sources.items()})
    return Plan(second.config, old_ids, sources)


def plan_stage(config: NetworkConfig, stage: GrowthStage) -> Plan:
    """A schedule stage's widenings, then its deepenings, as one plan."""
    steps = [(f"widen[{k}]", plan_widen, (op.layer, op.width)) for k, op in enumerate(stage.widen)]
    steps += [(f"deepen[{k}]", plan_deepen, (op.after_layer, op.width)) for k, op in enumerate(stage.deepen)]
    plan = None
    for name, planner, args in steps:
        try:
            step = planner(plan.config if plan else config, *args)
        except NeuromasError as error:
            raise NeuromasError(f"{name}: {error}") from None
        plan = step if plan is None else then(plan, step)
    return plan


def plan_schedule(config: NetworkConfig, stages: list[GrowthStage]) -> list[Plan]:
    """Every stage of a schedule planned on the shape the stages before it leave; errors name
    the stage, so a bad schedule fails when the config loads, not hours into a run."""
    plans = []
    for k, stage in enumerate(stages):
        try:
            plans.append(plan_stage(plans[-1].config if plans else config, stage))
        except NeuromasError as error:
            raise NeuromasError(f"growth[{k}].{error}") from None
    return plans


def widen(net: Network, layer: int, width: int, init: Init = "clone", ramp_steps: int = 10) -> Network:
    """`net` with layer `layer` (0-based) widened to `width` nodes, appended after the old ones."""
    return apply(net, plan_widen(net.config, layer, width), init, ramp_steps)


def deepen(net: Network, after_layer: int, width: int = 1, init: Init = "clone", ramp_steps: int = 10) -> Network:
    """`net` with a new dense layer of `width` nodes inserted after layer `after_layer` (0-based)."""
    return apply(net, plan_deepen(net.config, after_layer, width), init, ramp_steps)


def _check_layer(config: NetworkConfig, layer: int, operator: str) -> None:
    if config.edges is not None:
        raise NeuromasError(f"{operator}: the network lists explicit network.edges, so new nodes would have "
                            "none; grow networks whose layers use connect rules")
    if not 0 <= layer < len(config.layers):
        raise NeuromasError(f"{operator}: layer {layer} does not exist; layers are 0 to {len(config.layers) - 1}")


def _rename_edge(edge: str, rename: dict[str, str]) -> str:
    source, target = (part.strip() for part in edge.split("->"))
    return f"{rename.get(source, source)}->{rename.get(target, target)}"


def apply(net: Network, plan: Plan, init: Init = "clone", ramp_steps: int = 10) -> Network:
    """The grown network of `plan`, each node with its adapter: kept, renamed, cloned or fresh."""
    from neuromas.network import Network

    if init not in ("clone", "fresh"):
        raise NeuromasError(f"init={init!r}: use 'clone' or 'fresh'")
    if ramp_steps < 0:
        raise NeuromasError(f"ramp_steps={ramp_steps} must be >= 0")
    if not net.adapters:
        raise NeuromasError("grow a trained network: this one has no adapters (train it or load a run first)")
    if net.growth is not None:
        raise NeuromasError("this network is still fading in its last growth; train it ramp_steps more steps first")
    grown = Network(plan.config, model=net.model_config, backend=net.base_backend, seed=net.seed)
    grown.attach_adapters()
    copies: dict[str, str] = {}  # grown adapter name -> parent adapter name whose weights it takes
    for node in grown.topology.nodes:
        source = plan.old_ids.get(node.id) or (plan.sources[node.id] if init == "clone" else None)
        if source is not None:
            copies.setdefault(grown.adapters[node.id], net.adapters[source])
    _copy_adapters(net, grown, copies)
    grown.growth = Growth(net.config, dict(plan.old_ids), ramp_steps)
    return grown


def _copy_adapters(source: Network, target: Network, copies: dict[str, str]) -> None:
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    for target_name, source_name in copies.items():
        state = get_peft_model_state_dict(source.backend.model, adapter_name=source_name)
        set_peft_model_state_dict(target.backend.model, state, adapter_name=target_name)
