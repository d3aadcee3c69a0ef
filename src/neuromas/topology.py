"""The network as a graph: nodes in layers, edges between them, checked before anything runs.

A node id such as `L2N1` (layer 2, node 1, both counted from 1 as people count) is the node's
one name everywhere: prompt label, adapter name, log key prefix and trace key. Edges always go
from an earlier layer to a later one, so evaluating layers in order is a topological order and
a whole layer can be generated in one batch.
"""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass

from neuromas.config import GenerationConfig, LayerConfig, NetworkConfig
from neuromas.errors import NeuromasError

_NODE_ID = re.compile(r"^L(\d+)N(\d+)$")


def node_id(layer: int, index: int) -> str:
    """The id of node `index` of layer `layer`, both 0-based here and 1-based in the id."""
    return f"L{layer + 1}N{index + 1}"


@dataclass(frozen=True)
class Node:
    """A node's structural position: everything its prompt may know about it."""

    id: str
    layer: int  # 0-based
    index: int  # 0-based within its layer
    reads: tuple[str, ...]  # ids of the nodes whose messages it reads, in layer/index order
    readers: tuple[str, ...]  # ids of the nodes that read its message
    sees_input: bool
    is_readout: bool
    generation: GenerationConfig  # this layer's sampling settings, overrides applied
    input_part: int | None = None  # with input_slices: which part of the input (or question) it sees (0-based)
    role: str | None = None  # network.roles: the role sentence that replaces its structural prompt
    question_only: bool = False  # input_to_all / sees_input "question": it sees the task's question, not its data
    told_format: bool = False  # its prompt ends with the task's answer format (the readout; every node with
    #                            network.answer_format: all)


@dataclass(frozen=True)
class Topology:
    """Layers of nodes and the edges between them, validated."""

    layers: tuple[tuple[Node, ...], ...]
    readout: str

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(node for layer in self.layers for node in layer)

    @property
    def widths(self) -> list[int]:
        return [len(layer) for layer in self.layers]

    def node(self, id: str) -> Node:
        for node in self.nodes:
            if node.id == id:
                return node
        raise KeyError(id)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(source, node.id) for node in self.nodes for source in node.reads]

    @classmethod
    def from_config(cls, config: NetworkConfig) -> Topology:
        widths = [layer.width for layer in config.layers]
        ids = {node_id(l, i): (l, i) for l, w in enumerate(widths) for i in range(w)}
        if config.edges is not None:
            edges = [_parse_edge(e, ids, "network.edges") for e in config.edges]
        else:
            edges = _rule_edges(config.layers)
        edges += _skip_edges(config.skip, widths, ids)
        edges = list(dict.fromkeys(edges))  # drop duplicates, keep order
        _check_acyclic(edges)
        for source, target in edges:
            if ids[source][0] >= ids[target][0]:
                raise NeuromasError(
                    f"edge {source}->{target} does not go forward: layers run in order, so an edge "
                    f"must go from an earlier layer to a later one"
                )
        readout = _readout(config, widths, ids)
        return cls._build(config, widths, edges, readout)

    @classmethod
    def _build(cls, config: NetworkConfig, widths: list[int], edges: list[tuple[str, str]], readout: str) -> Topology:
        reads: dict[str, list[str]] = {}
        readers: dict[str, list[str]] = {}
        for source, target in edges:
            reads.setdefault(target, []).append(source)
            readers.setdefault(source, []).append(target)
        order = {node_id(l, i): (l, i) for l, w in enumerate(widths) for i in range(w)}
        roles = resolve_roles(config.roles, widths)
        layers = []
        for l, layer_config in enumerate(config.layers):
            view = True if l == 0 else (
                layer_config.sees_input if layer_config.sees_input is not None else config.input_to_all
            )
            sees_input, question_only = view is not False, view == "question"
            generation = config.generation.model_copy(
                update={
                    k: getattr(layer_config, k)
                    for k in ("max_new_tokens", "temperature", "top_p")
                    if getattr(layer_config, k) is not None
                }
            )
            nodes = []
            for i in range(layer_config.width):
                id = node_id(l, i)
                node_reads = tuple(sorted(reads.get(id, []), key=order.__getitem__))
                node_readers = tuple(sorted(readers.get(id, []), key=order.__getitem__))
                if id != readout and not node_readers:
                    raise NeuromasError(
                        f"node {id} is read by no node and is not the readout, so its message is never "
                        f"used: add an edge from it or narrow layer {l + 1}"
                    )
                if not sees_input and not node_reads:
                    raise NeuromasError(
                        f"node {id} reads no node and does not see the input: give it an incoming edge "
                        f"or set sees_input: true on layer {l + 1}"
                    )
                # with slices, a question layer as wide as a cut reads the question of its own part
                part = i if config.input_slices and (l == 0 or question_only and layer_config.width > 1) else None
                nodes.append(Node(id, l, i, node_reads, node_readers, sees_input, id == readout, generation, part,
                                  roles.get(id), question_only, id == readout or config.answer_format == "all"))
            layers.append(tuple(nodes))
        return cls(tuple(layers), readout)

    def __str__(self) -> str:
        lines = [f"Topology(widths={self.widths}, readout={self.readout})"]
        for l, layer in enumerate(self.layers):
            lines.append(f"  layer {l + 1}:")
            for node in layer:
                source = ", ".join(node.reads) if node.reads else "-"
                part = "" if node.input_part is None else f" part {node.input_part + 1}"
                extra = f" +question{part}" if node.question_only else f" +input{part}" if node.sees_input else ""
                lines.append(f"    {node.id} <- {source}{extra}")
        return "\n".join(lines)


MALT_ROLES = {
    "L1N1": "You are the generator. Solve the problem step by step.",
    "L2N1": "You are the verifier. Check the generator's solution step by step and point out any mistake.",
    "L3N1": "You are the refiner. Using the solution and the verification, write the corrected solution.",
}
SOLVER = "You are a solver. Solve the problem step by step."
CRITIC = "You are a critic. Check the solutions you are given, point out mistakes and write an improved solution."
JUDGE = "You are the judge. Read the solutions you are given and decide the final answer."


def resolve_roles(roles: str | dict[str, str] | None, widths: list[int]) -> dict[str, str]:
    """Node id -> role sentence for `network.roles` (empty: role-free, the paper's method)."""
    if roles is None:
        return {}
    ids = [node_id(l, i) for l, w in enumerate(widths) for i in range(w)]
    if roles == "malt":
        if widths != [1, 1, 1]:
            raise NeuromasError(f"network.roles: malt is a generator -> verifier -> refiner chain: set layers: [1, 1, 1] "
                                f"(not {widths})")
        return dict(MALT_ROLES)
    if roles == "workflow":
        last = len(widths) - 1
        return {id: JUDGE if l == last else SOLVER if l == 0 else CRITIC
                for id, l in ((node_id(l, i), l) for l, w in enumerate(widths) for i in range(w))}
    unknown = [k for k in roles if k not in ids]
    if unknown:
        raise NeuromasError(f"network.roles: {unknown[0]} is not a node of this network ({', '.join(ids)})")
    return dict(roles)


def _rule_edges(layers: list[LayerConfig]) -> list[tuple[str, str]]:
    """Edges from each layer's `connect` rule to the layer before it."""
    edges = []
    for l in range(1, len(layers)):
        previous, layer = layers[l - 1].width, layers[l]
        for i in range(layer.width):
            if layer.connect == "dense":
                sources = range(previous)
            else:
                if layer.fan_in > previous:
                    raise NeuromasError(
                        f"network.layers: layer {l + 1} has fan_in {layer.fan_in}, more than the {previous} nodes "
                        f"of layer {l}; lower it or use connect: dense"
                    )
                # Round-robin: node i reads fan_in consecutive nodes starting at i*fan_in, so a layer
                # with width*fan_in >= previous width covers every node before it.
                sources = sorted({(i * layer.fan_in + t) % previous for t in range(layer.fan_in)})
            edges += [(node_id(l - 1, j), node_id(l, i)) for j in sources]
    return edges


def _skip_edges(skip: list[str] | str, widths: list[int], ids: dict) -> list[tuple[str, str]]:
    if skip == "all":  # DenseNet-style: every node reads every node of every earlier layer
        return [
            (node_id(src_l, j), node_id(l, i))
            for l, w in enumerate(widths)
            for i in range(w)
            for src_l in range(l - 1)
            for j in range(widths[src_l])
        ]
    return [_parse_edge(e, ids, "network.skip") for e in skip]


def _parse_edge(text: str, ids: dict, field: str) -> tuple[str, str]:
    source, sep, target = text.replace(" ", "").partition("->")
    if not sep:
        raise NeuromasError(f"{field}: edge {text!r} must be written SOURCE->TARGET, e.g. L1N1->L2N1")
    for end in (source, target):
        if end not in ids:
            what = "is not a node id (LxNy)" if not _NODE_ID.match(end) else "is not in this network"
            raise NeuromasError(f"{field}: edge {text!r}: {end} {what}; nodes are {', '.join(ids)}")
    return source, target


def _check_acyclic(edges: list[tuple[str, str]]) -> None:
    sorter = graphlib.TopologicalSorter()
    for source, target in edges:
        sorter.add(target, source)
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(reversed(error.args[1]))
        raise NeuromasError(f"network edges form a cycle ({cycle}); a network must be a DAG") from None


def _readout(config: NetworkConfig, widths: list[int], ids: dict) -> str:
    if widths[-1] != 1:
        raise NeuromasError(
            f"the last layer has {widths[-1]} nodes, so the readout is ambiguous: end the network with a "
            f"layer of width 1 (e.g. layers: {widths + [1]})"
        )
    return node_id(len(widths) - 1, 0)
