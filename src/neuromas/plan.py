"""Growth plans: what widening or deepening does to a network's graph, as pure functions of its config.

A plan says which nodes the grown network has, which node of the parent each old node was
(`old_ids`; a deepening renames the nodes after the inserted layer), and which trained node a
new node's adapter is cloned from (`sources`). Planning needs no model: a run's growth schedule
is planned when its config loads (`configfile.py`), so a bad schedule fails before any work,
and `grow.py` applies a plan to a trained network.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuromas.config import GrowthStage, LayerConfig, NetworkConfig
from neuromas.errors import NeuromasError
from neuromas.topology import Topology, node_id


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


def _check_layer(config: NetworkConfig, layer: int, operator: str) -> None:
    if config.edges is not None:
        raise NeuromasError(f"{operator}: the network lists explicit network.edges, so new nodes would have "
                            "none; grow networks whose layers use connect rules")
    if not 0 <= layer < len(config.layers):
        raise NeuromasError(f"{operator}: layer {layer} does not exist; layers are 0 to {len(config.layers) - 1}")


def _rename_edge(edge: str, rename: dict[str, str]) -> str:
    source, target = (part.strip() for part in edge.split("->"))
    return f"{rename.get(source, source)}->{rename.get(target, target)}"
