"""Growth plans: what widening or deepening does to a network's graph, as pure functions of its config.

A plan says which nodes the grown network has, which node of the parent each old node was
(`old_ids`; a deepening renames the nodes after the inserted layer), and which trained node a
new node's adapter is cloned from (`sources`). Planning needs no model: a run's growth schedule
is planned when its config loads (`configfile.py`), so a bad schedule fails before any work,
and `grow.py` applies a plan to a trained network.

Layers are numbered from 1 here as everywhere a user sees them (node ids, prompts, `--widen`,
`train.growth`, errors): `plan_widen(config, layer=1, ...)` widens the layer of `L1N1`.
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

    @property
    def renamed(self) -> dict[str, str]:
        """Parent id -> grown id of every old node whose id changed (a deepening moves the
        layers after the new one down: `L2N1` -> `L3N1`), so per-node metrics stay traceable."""
        return {old: new for new, old in self.old_ids.items() if new != old}

    def record(self, parent: NetworkConfig, init: str = "clone") -> dict:
        """What the growth did, as `growth.jsonl` logs it (rl/metrics.py): the widths before and
        after, the renamed ids, and each new node with the node its adapter was cloned from
        (None: fresh)."""
        new = [node.id for node in Topology.from_config(self.config).nodes if node.id not in self.old_ids]
        return {"widths": [[layer.width for layer in parent.layers], [layer.width for layer in self.config.layers]],
                "renamed": self.renamed, "new": {id: self.sources[id] if init == "clone" else None for id in new}}


def plan_widen(config: NetworkConfig, layer: int, width: int) -> Plan:
    """Layer `layer` (counted from 1, as in node ids) widened to `width`; new nodes come after
    the old ones."""
    l = _check_layer(config, layer, "widen")
    if l == len(config.layers) - 1:
        raise NeuromasError(f"cannot widen layer {layer}, the last: it holds the readout, which must be one node; "
                            "deepen instead")
    old = config.layers[l].width
    if width <= old:
        raise NeuromasError(f"widen: layer {layer} already has {old} nodes; give width > {old}")
    layers = [lc.model_copy(update={"width": width}) if k == l else lc for k, lc in enumerate(config.layers)]
    grown = config.model_copy(update={"layers": layers})
    old_ids = {node.id: node.id for node in Topology.from_config(config).nodes}
    sources = {node_id(l, i): node_id(l, i % old) for i in range(old, width)}
    return Plan(grown, old_ids, sources)


def plan_deepen(config: NetworkConfig, after_layer: int, width: int = 1, fan_in: int | None = None,
                keep_edges: bool = False) -> Plan:
    """A layer of `width` nodes inserted after layer `after_layer` (counted from 1), dense or, with
    `fan_in`, each node reading `fan_in` nodes of that layer (`connect: sparse`); the nodes after
    it move one layer down and are renamed (`L2N1` -> `L3N1`, `Plan.renamed`). With `keep_edges`
    the nodes that read layer `after_layer` keep reading it, by skip edges (`network.skip`), beside
    the new layer: the trained readout still gets the messages it learned to combine."""
    l = _check_layer(config, after_layer, "deepen")
    depth = len(config.layers)
    if l == depth - 1:
        raise NeuromasError(f"deepen: cannot add a layer after layer {after_layer}, the readout's; give after_layer "
                            f"from 1 to {depth - 1}")
    if width < 1:
        raise NeuromasError("deepen: width must be >= 1")
    below = config.layers[l].width
    if fan_in is not None and fan_in > below:
        raise NeuromasError(f"deepen: fan_in {fan_in} is more than the {below} nodes of layer {after_layer}; "
                            f"give 1 to {below}")
    inserted = LayerConfig(width=width) if fan_in is None else LayerConfig(width=width, connect="sparse", fan_in=fan_in)
    layers = [*config.layers[: l + 1], inserted, *config.layers[l + 1 :]]
    parent = Topology.from_config(config)
    shift = {node.id: node_id(node.layer + (node.layer > l), node.index) for node in parent.nodes}
    skip = [_rename_edge(edge, shift) for edge in config.skip] if isinstance(config.skip, list) else config.skip
    if keep_edges and skip != "all":  # "all" already has every such edge
        kept = [f"{shift[node.id]}->{shift[reader]}" for node in parent.nodes if node.layer == l
                for reader in node.readers if parent.node(reader).layer == l + 1]
        skip = [*skip, *kept]
    grown = config.model_copy(update={"layers": layers, "skip": skip})
    sources = {node_id(l + 1, i): node_id(l, i % below) for i in range(width)}
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
    steps += [(f"deepen[{k}]", plan_deepen, (op.after_layer, op.width, op.fan_in, op.keep_edges))
              for k, op in enumerate(stage.deepen)]
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


def _check_layer(config: NetworkConfig, layer: int, operator: str) -> int:
    """The 0-based index of layer `layer` (counted from 1), checked."""
    if config.edges is not None:
        raise NeuromasError(f"{operator}: the network lists explicit network.edges, so new nodes would have "
                            "none; grow networks whose layers use connect rules")
    if not 1 <= layer <= len(config.layers):
        raise NeuromasError(f"{operator}: layer {layer} does not exist; layers are 1 to {len(config.layers)}")
    return layer - 1


def _rename_edge(edge: str, rename: dict[str, str]) -> str:
    source, target = (part.strip() for part in edge.split("->"))
    return f"{rename.get(source, source)}->{rename.get(target, target)}"
