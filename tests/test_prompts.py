"""Nodes are role-free and structure-aware: prompts differ only in structural lines."""

import difflib
import re

import pytest

from neuromas.config import NetworkConfig
from neuromas.prompts import STRUCTURAL_PREFIXES, SYSTEM_PROMPT, node_prompt
from neuromas.topology import Topology

ROLE_WORDS = [
    "assistant", "planner", "plan", "critic", "critique", "solver", "verifier", "verify", "checker",
    "refiner", "refine", "judge", "aggregator", "aggregate", "summarizer", "summarize", "reviewer",
    "expert", "manager", "leader", "debater", "proposer", "teacher", "student", "role",
]
TOPOLOGY = Topology.from_config(NetworkConfig(layers=[3, 2, 1]))
TASK = "What is 3+5+2+7?"
FORMAT = "End your message with 'Answer: <integer>'."


def prompt(node_id: str, incoming: dict[str, str] | None = None) -> list[dict[str, str]]:
    node = TOPOLOGY.node(node_id)
    incoming = incoming or {source: f"message of {source}" for source in node.reads}
    return node_prompt(node, TOPOLOGY, TASK, incoming, FORMAT)


def differing_lines(a: str, b: str) -> list[str]:
    return [
        line[2:]
        for line in difflib.ndiff(a.splitlines(), b.splitlines())
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_same_layer_nodes_differ_only_in_structural_lines():
    a, b = prompt("L1N1"), prompt("L1N3")
    assert a[1] == b[1], "the user turn holds only the task and messages"
    assert a[0]["content"].startswith(SYSTEM_PROMPT) and b[0]["content"].startswith(SYSTEM_PROMPT)
    changed = differing_lines(a[0]["content"], b[0]["content"])
    assert changed, "two nodes must be told apart by their position"
    assert all(line.startswith(STRUCTURAL_PREFIXES) for line in changed), changed


def test_nodes_reading_the_same_messages_differ_only_structurally():
    first = prompt("L2N1", {"L1N1": "x", "L1N2": "y", "L1N3": "z"})
    second = prompt("L2N2", {"L1N1": "x", "L1N2": "y", "L1N3": "z"})
    assert first[1] == second[1]
    changed = differing_lines(first[0]["content"], second[0]["content"])
    assert changed and all(line.startswith(STRUCTURAL_PREFIXES) for line in changed), changed


def test_prompt_holds_input_messages_and_position():
    system, user = (m["content"] for m in prompt("L2N2"))
    assert user.startswith(TASK)
    assert "layer 2 of 3, node 2 of 2 (L2N2)" in system
    assert "[L1N1] message of L1N1" in user and "[L1N3] message of L1N3" in user
    assert "Read by: L3N1." in system
    assert FORMAT not in user  # only the readout sees the answer format
    system, user = (m["content"] for m in prompt("L3N1"))
    assert user.endswith(FORMAT) and "final answer" in system


def test_no_role_vocabulary_anywhere():
    for node in TOPOLOGY.nodes:
        for message in prompt(node.id):
            words = set(re.findall(r"[a-z]+", message["content"].lower()))
            assert not words & set(ROLE_WORDS), (node.id, words & set(ROLE_WORDS))


def test_node_without_input_does_not_see_it():
    topo = Topology.from_config(NetworkConfig(layers=[1, 1], input_to_all=False))
    text = node_prompt(topo.node("L2N1"), topo, TASK, {"L1N1": "hello"}, FORMAT)[1]["content"]
    assert TASK not in text and "[L1N1] hello" in text


def test_sliced_first_layer_is_told_which_part_it_sees():
    topo = Topology.from_config(NetworkConfig(layers=[2, 1], input_slices=True))
    first = node_prompt(topo.node("L1N2"), topo, "What is 2+7?", {}, FORMAT)
    assert "Reads: part 2 of 2 of the task only." in first[0]["content"]
    assert first[1]["content"] == "What is 2+7?"
    readout = node_prompt(topo.node("L2N1"), topo, TASK, {"L1N1": "8", "L1N2": "9"}, FORMAT)
    assert "Reads: the task and L1N1, L1N2." in readout[0]["content"], "only the first layer is sliced"
    assert topo.node("L2N1").input_part is None and topo.node("L1N1").input_part == 0


@pytest.mark.parametrize("answer_format, told", [("readout", ["L2N1"]), ("all", ["L1N1", "L1N2", "L2N1"])])
def test_the_answer_format_goes_to_the_readout_or_to_every_node(answer_format, told):
    topo = Topology.from_config(NetworkConfig(layers=[2, 1], input_slices=True, answer_format=answer_format))
    users = {n.id: node_prompt(n, topo, "What is 2 - 1?", {s: "1" for s in n.reads}, FORMAT)[1]["content"]
             for n in topo.nodes}
    assert [id for id, user in users.items() if user.endswith("\n\n" + FORMAT)] == told
    assert all(FORMAT not in user for id, user in users.items() if id not in told)


def test_roles_replace_the_structural_prompt_for_the_role_ablation():
    from neuromas.config import NetworkConfig
    from neuromas.errors import NeuromasError

    malt = Topology.from_config(NetworkConfig(layers=[1, 1, 1], roles="malt"))
    system, user = node_prompt(malt.node("L2N1"), malt, TASK, {"L1N1": "8"}, FORMAT)
    assert system["content"].startswith("You are the verifier") and "Position:" not in system["content"]
    free = Topology.from_config(NetworkConfig(layers=[1, 1, 1]))
    assert user == node_prompt(free.node("L2N1"), free, TASK, {"L1N1": "8"}, FORMAT)[1]  # same user turn as role-free
    flow = Topology.from_config(NetworkConfig(layers=[2, 1], roles="workflow"))
    assert [n.role.split(".")[0] for n in flow.nodes] == ["You are a solver", "You are a solver", "You are the judge"]
    custom = Topology.from_config(NetworkConfig(layers=[2, 1], roles={"L1N2": "You check."}))
    assert custom.node("L1N2").role == "You check." and custom.node("L1N1").role is None
    with pytest.raises(NeuromasError, match="malt is a generator"):
        Topology.from_config(NetworkConfig(layers=[2, 1], roles="malt"))
    with pytest.raises(NeuromasError, match="L3N1 is not a node"):
        Topology.from_config(NetworkConfig(layers=[2, 1], roles={"L3N1": "x"}))


def test_the_short_header_tells_the_same_facts_in_under_half_the_text():
    for node in TOPOLOGY.nodes:
        incoming = {source: f"message of {source}" for source in node.reads}
        full = node_prompt(node, TOPOLOGY, TASK, incoming, FORMAT)
        short = node_prompt(node, TOPOLOGY, TASK, incoming, FORMAT, header="short")
        assert short[1] == full[1], "only the system turn changes"
        system = short[0]["content"]
        assert "\n" not in system and len(system) < len(full[0]["content"]) / 2
        words = set(re.findall(r"[a-z]+", system.lower()))
        assert not words & set(ROLE_WORDS)
        assert f"Node {node.id} of a [3, 2, 1] network" in system and f"layer {node.layer + 1} of 3" in system
    assert short_system("L2N2").endswith("Reads: the task and L1N1, L1N2, L1N3. Read by: L3N1.")
    assert short_system("L1N1").endswith("Reads: the task. Read by: L2N1, L2N2.")
    assert short_system("L3N1").endswith("Your message is the final answer.")


def short_system(node_id: str) -> str:
    node = TOPOLOGY.node(node_id)
    return node_prompt(node, TOPOLOGY, TASK, {s: "x" for s in node.reads}, FORMAT, header="short")[0]["content"]


def test_the_header_is_a_validated_network_setting():
    assert NetworkConfig(layers=[1]).header == "full" and NetworkConfig(layers=[1], header="short").header == "short"
    with pytest.raises(ValueError):
        NetworkConfig(layers=[1], header="tiny")
