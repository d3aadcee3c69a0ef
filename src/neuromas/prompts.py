"""The one prompt template every node uses: role-free, structure-aware.

A node is told only where it sits (layer i of D, node j of w, which nodes it reads, which read
it), the task input, the messages on its incoming edges, and — for the readout alone — the
answer format. It is never told what to be ("critic", "planner"): what each node does is left
to training. Two nodes' prompts differ only in the lines built from `Node` fields
(`STRUCTURAL_PREFIXES`), which the tests check.

The system message is always sent: SmolLM2's chat template otherwise injects a persona
("You are a helpful AI assistant named SmolLM ..."), which would make the nodes not role-free.
"""

from __future__ import annotations

from neuromas.topology import Node, Topology

SYSTEM_PROMPT = "You are a node in a network of language models that solve a task together, layer by layer."

# Lines of the user message that depend on the node's position; everything else is shared.
STRUCTURAL_PREFIXES = ("Position:", "Reads:", "Read by:", "Write your message", "Your message is")


def _names(ids: tuple[str, ...]) -> str:
    return ", ".join(ids)


def node_prompt(
    node: Node,
    topology: Topology,
    task_input: str,
    incoming: dict[str, str],
    answer_format: str,
) -> list[dict[str, str]]:
    """Chat messages for one node on one input, given the messages of the nodes it reads."""
    depth, width = len(topology.layers), len(topology.layers[node.layer])
    widths = ", ".join(str(w) for w in topology.widths)
    reads = _names(node.reads) if node.reads else "no other node"
    if node.sees_input:
        reads = f"the task and {reads}" if node.reads else "the task only"
    lines = [
        f"Network: {depth} layer{'s' if depth > 1 else ''} of widths {widths}.",
        f"Position: layer {node.layer + 1} of {depth}, node {node.index + 1} of {width} ({node.id}).",
        f"Reads: {reads}.",
        f"Read by: {_names(node.readers) if node.readers else 'no node; your message is the output'}.",
    ]
    if node.sees_input:
        lines += ["", "Task:", task_input.strip()]
    if node.reads:
        lines += ["", "Messages:"]
        lines += [f"[{source}] {incoming[source].strip() or '(empty)'}" for source in node.reads]
    lines.append("")
    if node.is_readout:
        lines.append(f"Your message is the network's final answer. {answer_format}")
    else:
        lines.append(f"Write your message for {_names(node.readers)}.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]
