"""Topology and config validation: valid shapes build, impossible ones fail with one clear line."""

import pytest

from neuromas.config import NetworkConfig
from neuromas.configfile import apply_override, parse_config
from neuromas.errors import NeuromasError
from neuromas.network import Network
from neuromas.topology import Topology


def build(**network) -> Topology:
    return Topology.from_config(NetworkConfig.model_validate(network))


def test_dense_layers_read_the_whole_previous_layer():
    topo = build(layers=[2, 2, 1])
    assert topo.widths == [2, 2, 1]
    assert topo.node("L2N1").reads == ("L1N1", "L1N2")
    assert topo.node("L1N2").readers == ("L2N1", "L2N2")
    assert topo.node("L3N1").reads == ("L2N1", "L2N2") and topo.node("L3N1").is_readout
    assert topo.readout == "L3N1"
    assert all(n.sees_input for n in topo.nodes)  # the paper's setting: every layer sees the input


def test_single_node_network_is_one_readout_reading_only_the_input():
    topo = build(layers=[1])
    (node,) = topo.nodes
    assert node.id == "L1N1" and node.is_readout and node.reads == () and node.readers == ()


def test_sparse_round_robin_covers_the_previous_layer():
    topo = build(layers=[4, {"width": 2, "connect": "sparse", "fan_in": 2}, 1])
    assert topo.node("L2N1").reads == ("L1N1", "L1N2")
    assert topo.node("L2N2").reads == ("L1N3", "L1N4")
    wider = build(layers=[2, {"width": 4, "connect": "sparse", "fan_in": 1}, 1])
    assert [wider.node(f"L2N{i}").reads for i in range(1, 5)] == [("L1N1",), ("L1N2",), ("L1N1",), ("L1N2",)]


def test_explicit_edges_skip_edges_and_input_visibility():
    topo = build(
        layers=[2, 1, {"width": 1, "sees_input": True}],
        edges=["L1N1->L2N1", "L1N2->L2N1", "L2N1->L3N1"],
        skip=["L1N2 -> L3N1"],
        input_to_all=False,
    )
    assert topo.node("L3N1").reads == ("L1N2", "L2N1")
    assert not topo.node("L2N1").sees_input and topo.node("L3N1").sees_input
    dense_skip = build(layers=[2, 1, 1], skip="all")
    assert dense_skip.node("L3N1").reads == ("L1N1", "L1N2", "L2N1")


def test_input_to_all_question_gives_later_layers_the_question_only():
    topo = build(layers=[2, 1, {"width": 1, "sees_input": True}], input_to_all="question")
    assert [topo.node(n).question_only for n in ("L1N1", "L2N1", "L3N1")] == [False, True, False]
    assert all(n.sees_input for n in topo.nodes)
    per_layer = build(layers=[2, {"width": 1, "sees_input": "question"}], input_to_all=False)
    assert per_layer.node("L2N1").question_only and per_layer.node("L2N1").sees_input


def test_with_slices_a_wide_question_layer_reads_the_question_of_its_part():
    tree = build(layers=[4, 2, 1], input_slices=True, input_to_all="question")
    assert [tree.node(n).input_part for n in ("L1N4", "L2N1", "L2N2", "L3N1")] == [3, 0, 1, None]
    assert "L2N2 <- L1N1, L1N2, L1N3, L1N4 +question part 2" in str(tree)
    whole = build(layers=[4, 2, 1], input_to_all="question")  # no slices: no node is cut
    assert {n.input_part for n in whole.nodes} == {None}


def test_per_layer_generation_overrides():
    topo = build(layers=[{"width": 2, "max_new_tokens": 16, "temperature": 0.7}, 1], generation={"max_new_tokens": 40})
    assert topo.node("L1N1").generation.max_new_tokens == 16
    assert topo.node("L1N1").generation.temperature == 0.7
    assert topo.node("L2N1").generation.max_new_tokens == 40


@pytest.mark.parametrize(
    "network, message",
    [
        ({"layers": [2, 1], "edges": ["L1N1->L2N1", "L2N1->L1N1", "L1N2->L2N1"]}, "cycle"),
        ({"layers": [2, 1], "edges": ["L1N1->L2N1", "L1N2->L1N1"]}, "does not go forward"),
        ({"layers": [2, 1], "edges": ["L1N1->L2N1", "L1N2->L5N1"]}, "L5N1 is not in this network"),
        ({"layers": [2, 1], "edges": ["L1N1->L2N1", "L1N2=>L2N1"]}, "SOURCE->TARGET"),
        ({"layers": [2, 1], "edges": ["L1N1->L2N1"]}, "L1N2 is read by no node"),
        ({"layers": [2, 2]}, "readout is ambiguous"),
        ({"layers": [3, {"width": 1, "connect": "sparse", "fan_in": 4}]}, "fan_in"),
        ({"layers": [2, {"width": 1, "sees_input": False}], "edges": ["L1N1->L2N1"]}, "L1N2 is read by no node"),
    ],
)
def test_impossible_topologies_fail_with_one_line(network, message):
    with pytest.raises(NeuromasError, match=message) as info:
        build(**network)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"network": {"layers": [0, 1]}, "task": {"name": "arith"}}, "network.layers.0.width"),
        ({"network": {"layers": []}, "task": {"name": "arith"}}, "at least one layer"),
        ({"network": {"layers": [1], "widht": 3}, "task": {"name": "arith"}}, "network.widht: unknown key"),
        ({"network": {"layers": [2, 1], "input_to_all": "questions"}, "task": {"name": "arith"}}, "network.input_to_all"),
        ({"network": {"layers": [{"width": 2, "connect": "sparse"}, 1]}, "task": {"name": "arith"}}, "fan_in"),
        ({"network": {"layers": [1]}}, "task: Field required"),
        ({"network": {"layers": [1]}, "task": {"name": "arith"}, "seeed": 1}, "seeed: unknown key"),
    ],
)
def test_bad_configs_name_the_field(data, message):
    with pytest.raises(NeuromasError, match=message) as info:
        parse_config(data)
    assert "\n" not in str(info.value)


def test_python_api_validates_too():
    with pytest.raises(NeuromasError, match=r"layers.1.width \(layer 2\): Input should be greater than or equal to 1"):
        Network([2, 0, 1])
    assert Network([1, 1, 1]).calls_per_pass == 3


def test_overrides_parse_yaml_values():
    data = {"network": {"layers": [2, 1]}}
    apply_override(data, "network.layers=[1, 1, 1]")
    apply_override(data, "task.name=navigate")
    assert data == {"network": {"layers": [1, 1, 1]}, "task": {"name": "navigate"}}
    with pytest.raises(NeuromasError, match="key.path=value"):
        apply_override(data, "network.layers")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"seed: 0\x00\nnetwork: {layers: [1]}\n", "not valid YAML \\(unacceptable character #x0000"),
        (b"network: {layers: [1]\n", "not valid YAML \\(.* at line 2\\)"),
        (b"\xff\xfe\x00binary", "not a UTF-8 text file \\(byte 0\\)"),
    ],
)
def test_unreadable_config_files_fail_with_one_line(tmp_path, content, message):
    from neuromas.configfile import load_config

    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(NeuromasError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)
