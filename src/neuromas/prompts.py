"""The one prompt template every node uses: role-free, structure-aware.

A node is told only where it sits (layer i of D, node j of w, which nodes it reads, which read
it), the task input, the messages on its incoming edges, and — for the readout alone — the
answer format. It is never told what to be ("critic", "planner"): what each node does is left
to training. Two nodes' prompts differ only in the lines built from `Node` fields
(`STRUCTURAL_PREFIXES`), which the tests check.

Where the parts go was measured, not guessed (SmolLM2-135M, arith train split, 8 samples of 8
two-number sums at temperature 0.7): with the structure in the user turn above the task, the
small model answered the structure ("Nested: 2 layers of 2 ...", node ids echoed), and a single
node's sampled reward was 14%, a [2, 1] network's 9%; with the structure in the system turn
(then as one sentence) and a user turn holding only the task, the messages and the answer
format, 33% and 19%. So the system turn says where the node sits and the user turn reads like
an ordinary request. Greedy on four-number sums, the untrained [1, 1, 1] network scored 0% with
the old layout (48-token messages, benchmarks/untrained.py) and 9% with this one (24 tokens,
benchmarks/train_compare.py's `untrained-neuromas3`).

The system turn is always ours: SmolLM2's chat template otherwise injects a persona ("You are a
helpful AI assistant named SmolLM ..."), which would make the nodes not role-free.

`header: short` (`network.header`) says the same facts in one line (`short_structure_line`):
prompt tokens are most of a step's work (the quickstart's [2, 1] reads 385 prompt tokens per
question and writes 35), and the full header is about half of a first-layer node's prompt.
Whether the shorter wording costs accuracy is measured, not assumed (benchmarks/fewer_flops.py).
"""

from __future__ import annotations

from neuromas.topology import Node, Topology

SYSTEM_PROMPT = "You are a node in a network of language models that solve a task together, layer by layer."

# Lines of the system turn that depend on the node's position; everything else is shared.
STRUCTURAL_PREFIXES = ("Position:", "Reads:", "Read by:", "Write your message", "Your message is")


def _names(ids: tuple[str, ...]) -> str:
    return ", ".join(ids)


def _task_view(node: Node, width: int) -> str:
    if node.question_only:
        return "the task's question" if node.input_part is None else \
            f"the question of part {node.input_part + 1} of {width} of the task"
    return "the task" if node.input_part is None else f"part {node.input_part + 1} of {width} of the task"


def structure_lines(node: Node, topology: Topology) -> list[str]:
    """Where the node sits: the network's shape, its position, its inputs and its readers."""
    depth, width = len(topology.layers), len(topology.layers[node.layer])
    widths = ", ".join(str(w) for w in topology.widths)
    reads = _names(node.reads) if node.reads else "no other node"
    if node.sees_input:
        task = _task_view(node, width)
        reads = f"{task} and {reads}" if node.reads else f"{task} only"
    lines = [
        f"Network: {depth} layer{'s' if depth > 1 else ''} of widths {widths}.",
        f"Position: layer {node.layer + 1} of {depth}, node {node.index + 1} of {width} ({node.id}).",
        f"Reads: {reads}.",
    ]
    if node.is_readout:
        lines += ["Read by: no node.", "Your message is the network's final answer."]
    else:
        # Naming the readers in this instruction made untrained nodes echo node ids
        # ("L2N1.1.1.3..."); the "Read by:" line already says who they are.
        lines += [f"Read by: {_names(node.readers)}.", "Write your message for the nodes that read it."]
    return lines


def short_structure_line(node: Node, topology: Topology) -> str:
    """The facts of `structure_lines` in one line: "Node L1N2 of a [2, 1] network of language
    models, layer 1 of 2. Reads: the task. Read by: L2N1." (the readout: "... Your message is the
    final answer.")."""
    depth = len(topology.layers)
    reads = _names(node.reads)
    if node.sees_input:
        width = len(topology.layers[node.layer])
        task = _task_view(node, width)
        reads = f"{task} and {reads}" if node.reads else task
    end = "Your message is the final answer." if node.is_readout else f"Read by: {_names(node.readers)}."
    return (f"Node {node.id} of a {list(topology.widths)} network of language models, layer {node.layer + 1} of "
            f"{depth}. Reads: {reads}. {end}")


def node_prompt(
    node: Node,
    topology: Topology,
    task_input: str,
    incoming: dict[str, str],
    answer_format: str,
    header: str = "full",
) -> list[dict[str, str]]:
    """Chat messages for one node on one input, given the messages of the nodes it reads.

    `task_input` is what this node sees of the task: the whole input, or its part of it when
    the network has `input_slices` (the caller splits it, since only the task knows how).
    `header`: the system turn's structural description, `full` (the default) or `short`.
    """
    # A role (network.roles, the role ablation) replaces the structural description entirely.
    if node.role:
        system = node.role
    elif header == "short":
        system = short_structure_line(node, topology)
    else:
        system = "\n".join([SYSTEM_PROMPT, *structure_lines(node, topology)])
    user: list[str] = [task_input.strip()] if node.sees_input else []
    if node.reads:
        user += ["", "Messages:"] if user else ["Messages:"]
        user += [f"[{source}] {incoming[source].strip() or '(empty)'}" for source in node.reads]
    if node.told_format:
        user += ["", answer_format]
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(user)}]


def prompt_text(chat: list[dict[str, str]]) -> str:
    """A chat as one readable string (what traces store and reports show)."""
    return "\n\n".join(message["content"] for message in chat)
