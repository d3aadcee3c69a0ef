"""Growth keeps what was trained, makes a valid bigger network, and starts out equal to the parent."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import neuromas as nm
from neuromas.config import TrainConfig
from neuromas.errors import NeuromasError
from neuromas.fadein import Growth
from neuromas.network import Network
from neuromas.rl.trainer import Trainer
from neuromas.tasks.base import Example, Task

INPUTS = ["What is 3+5+2+7?", "What is 9+1+4+4?", "What is 6+6+0+8?"]


class LetterTask(Task):
    """Reward: how often the readout writes the letter e (dense and varied, so groups rarely tie)."""

    name = "letters"
    answer_format = "Write one sentence."

    def examples(self, split):
        return [Example(f"{split}{i}", f"Say something about the number {i}.", "e") for i in range(6)]

    def extract(self, completion, example=None):
        return completion

    def reward(self, completions, examples):
        return [min(c.count("e") / 10, 1.0) for c in completions]


def trained_net(backend, layers=(1, 1, 1), tokens=10, seed=0):
    """A network whose adapters are non-zero and differ per node, as training would leave them."""
    config = {"layers": list(layers), "generation": {"max_new_tokens": tokens, "temperature": 1.0},
              "adapters": {"rank": 2}}
    net = Network(config, backend=backend, seed=3).attach_adapters()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.02 if "lora_B" in name else 0.2))
    return net


def adapter_state(net, node):
    key = f".{net.adapters[node]}."
    return {n.replace(key, "."): p.detach().clone() for n, p in net.named_parameters() if key in n}


def assert_same_adapter(a, a_node, b, b_node):
    left, right = adapter_state(a, a_node), adapter_state(b, b_node)
    assert left.keys() == right.keys() and left
    assert all(torch.equal(left[k], right[k]) for k in left), (a_node, b_node)


def tokens(traces):
    return [{k: m.token_ids for k, m in t.messages.items()} for t in traces]


# ---- operators: bad requests (no model needed) ------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda net: nm.grow.widen(net, 3, 2), "cannot widen layer 3, the last"),
    (lambda net: nm.grow.widen(net, 1, 1), "layer 1 already has 1 nodes; give width > 1"),
    (lambda net: nm.grow.widen(net, 5, 2), "layer 5 does not exist; layers are 1 to 3"),
    (lambda net: nm.grow.widen(net, 0, 2), "layer 0 does not exist; layers are 1 to 3"),
    (lambda net: nm.grow.deepen(net, 3, 2), "after layer 3, the readout's; give after_layer from 1 to 2"),
    (lambda net: nm.grow.deepen(net, 1, 0), "width must be >= 1"),
    (lambda net: nm.grow.widen(net, 1, 2), "grow a trained network"),
])
def test_bad_growth_requests_name_the_problem(call, message):
    with pytest.raises(NeuromasError, match=message):
        call(Network([1, 1, 1]))


def test_explicit_edges_cannot_grow():
    net = Network({"layers": [2, 1], "edges": ["L1N1->L2N1", "L1N2->L2N1"]})
    with pytest.raises(NeuromasError, match="explicit network.edges"):
        nm.grow.widen(net, 1, 3)


def test_fade_in_draws_the_grown_form_with_probability_alpha():
    growth = Growth(nm.config.NetworkConfig(layers=[1, 1]), {"L1N1": "L1N1", "L2N1": "L2N1"}, ramp_steps=4)
    assert growth.alpha == 0 and not any(growth.draw(100, seed=1, training=True))
    growth.done_steps = 2
    draws = growth.draw(2000, seed=1, training=True)
    assert 0.45 < sum(draws) / len(draws) < 0.55 and draws == growth.draw(2000, seed=1, training=True)
    assert growth.draw(3, seed=1, training=False) == [True] * 3  # greedy runs the form most passes use
    growth.done_steps = 9
    assert growth.alpha == 1.0 and all(growth.draw(50, seed=2, training=True))
    assert Growth.from_dict(growth.to_dict()).to_dict() == growth.to_dict()


# ---- operators on the real model --------------------------------------------------------------
@pytest.mark.slow
def test_widen_keeps_trained_adapters_and_clones_a_sibling(backend32):
    net = trained_net(backend32)
    grown = nm.grow.widen(net, layer=2, width=3)
    assert grown.topology.widths == [1, 3, 1]
    assert grown.topology.node("L3N1").reads == ("L2N1", "L2N2", "L2N3")
    for node in ("L1N1", "L2N1", "L3N1"):
        assert_same_adapter(net, node, grown, node)
    assert_same_adapter(net, "L2N1", grown, "L2N2")
    assert_same_adapter(net, "L2N1", grown, "L2N3")
    fresh = nm.grow.widen(net, layer=1, width=2, init="fresh")
    assert all(not p.any() for n, p in adapter_state(fresh, "L1N2").items() if "lora_B" in n)
    assert_same_adapter(net, "L1N1", fresh, "L1N1")
    assert net(INPUTS[:1])[0].messages.keys() == {"L1N1", "L2N1", "L3N1"}, "the parent is left usable"


@pytest.mark.slow
def test_deepen_renames_the_layers_after_the_insert(backend32):
    net = trained_net(backend32, layers=(2, 2, 1))
    grown = nm.grow.deepen(net, after_layer=2, width=2)
    assert grown.topology.widths == [2, 2, 2, 1] and grown.topology.readout == "L4N1"
    assert grown.topology.node("L3N2").reads == ("L2N1", "L2N2")
    assert grown.topology.node("L4N1").reads == ("L3N1", "L3N2")
    for old, new in {"L1N1": "L1N1", "L2N2": "L2N2", "L3N1": "L4N1"}.items():
        assert_same_adapter(net, old, grown, new)
    assert_same_adapter(net, "L2N1", grown, "L3N1")
    assert_same_adapter(net, "L2N2", grown, "L3N2")
    assert grown.growth.old_ids["L4N1"] == "L3N1"


@pytest.mark.slow
@pytest.mark.parametrize("grow, same_layers", [
    (lambda net: nm.grow.widen(net, layer=1, width=2), True),
    (lambda net: nm.grow.deepen(net, after_layer=1, width=2), False),
], ids=["widen", "deepen"])
def test_grown_network_starts_equal_to_its_parent(backend32, grow, same_layers):
    net = trained_net(backend32)
    grown = grow(net)
    parent, child = net.eval()(INPUTS), grown.eval()(INPUTS)
    assert [t.answer for t in child] == [t.answer for t in parent]
    for p, c in zip(parent, child):
        renamed = {grown.growth.new_ids[k]: v for k, v in tokens([p])[0].items()}
        assert tokens([c])[0] == renamed, "old nodes write exactly what they wrote before growth"
    # sampled passes too: at alpha = 0 every pass is the parent's, token for token (when no layer
    # was inserted: a layer's sampling seed follows its index)
    if same_layers:
        sampled_parent = net.train()(INPUTS, num_samples=2, seed=7)
        sampled_child = grown.train()(INPUTS, num_samples=2, seed=7)
        assert tokens(sampled_child) == tokens(sampled_parent)
    assert nm.grow.widen(net, 1, 2, ramp_steps=0).growth is None, \
        "switched on at once, a grown network keeps no parent form"
    # switched on, the grown form runs every node, new ones included
    grown.growth.done_steps = grown.growth.ramp_steps
    assert grown.eval()(INPUTS[:1])[0].messages.keys() == {n.id for n in grown.topology.nodes}


@pytest.mark.slow
def test_training_moves_the_fade_in_and_saves_it(backend32, tmp_path):
    grown = nm.grow.widen(trained_net(backend32, tokens=6), layer=1, width=2, ramp_steps=2)
    grown.growth.done_steps = 1  # half faded in: both forms appear among the passes
    trainer = Trainer(grown, LetterTask(), TrainConfig(steps=1, batch_size=2, group_size=4, lr=1e-2), progress=False)
    grown.save(tmp_path / "mid")
    saved = grown.growth.to_dict()
    metrics = trainer.train_step()
    assert metrics["growth/alpha"] == 0.5 and grown.growth is None, "faded in after ramp_steps steps"
    assert "node/L1N2/tokens" in metrics
    loaded = Network.load(tmp_path / "mid", backend=backend32)
    assert loaded.growth.to_dict() == saved and loaded.growth.alpha == 0.5
    assert_same_adapter(loaded, "L1N2", trained_net(backend32, tokens=6), "L1N1"), "saved before the step"


# ---- plans and schedules (no model) -----------------------------------------------------------
def test_a_stage_is_planned_as_one_growth_from_the_original():
    from neuromas.config import GrowthStage, NetworkConfig
    from neuromas.plan import plan_stage

    stage = GrowthStage(at_step=1, widen=[{"layer": 1, "width": 2}], deepen=[{"after_layer": 1, "width": 2}])
    plan = plan_stage(NetworkConfig(layers=[1, 1]), stage)
    assert [layer.width for layer in plan.config.layers] == [2, 2, 1]
    assert plan.old_ids == {"L1N1": "L1N1", "L3N1": "L2N1"}, "old ids point at the network before the stage"
    assert plan.sources == {"L1N2": "L1N1", "L2N1": "L1N1", "L2N2": "L1N1"}, "clones come from trained nodes"
    assert plan.record(NetworkConfig(layers=[1, 1])) == {
        "widths": [[1, 1], [2, 2, 1]], "renamed": {"L2N1": "L3N1"},
        "new": {"L1N2": "L1N1", "L2N1": "L1N1", "L2N2": "L1N1"}}


def test_a_one_to_one_deepening_gives_each_new_node_one_message_to_relay():
    from neuromas.config import GrowthStage, NetworkConfig
    from neuromas.plan import plan_stage
    from neuromas.topology import Topology

    parent = NetworkConfig(layers=[2, 1])
    plan = plan_stage(parent, GrowthStage(at_step=1, deepen=[{"after_layer": 1, "width": 2, "fan_in": 1}]))
    grown = Topology.from_config(plan.config)
    assert grown.widths == [2, 2, 1] and grown.node("L3N1").reads == ("L2N1", "L2N2")
    assert grown.node("L2N1").reads == ("L1N1",) and grown.node("L2N2").reads == ("L1N2",)
    assert plan.sources == {"L2N1": "L1N1", "L2N2": "L1N2"}, "each relay is a clone of the node it reads"
    again = plan_stage(plan.config, GrowthStage(at_step=2, deepen=[{"after_layer": 1, "width": 2, "fan_in": 1}]))
    chain = Topology.from_config(again.config)  # the earlier relays move down and still read one node each
    assert chain.node("L2N2").reads == ("L1N2",) and chain.node("L3N2").reads == ("L2N2",)
    assert Topology.from_config(plan_stage(parent, GrowthStage(at_step=1, deepen=[{"after_layer": 1, "width": 2}])).config
                                ).node("L2N1").reads == ("L1N1", "L1N2"), "without fan_in the new layer is dense"
    with pytest.raises(NeuromasError, match="fan_in 3 is more than the 2 nodes of layer 1; give 1 to 2"):
        plan_stage(parent, GrowthStage(at_step=1, deepen=[{"after_layer": 1, "width": 2, "fan_in": 3}]))


def test_a_deepening_that_keeps_edges_leaves_the_old_reads_as_skip_edges():
    from neuromas.config import GrowthStage, NetworkConfig
    from neuromas.plan import plan_stage
    from neuromas.topology import Topology

    keep = {"after_layer": 1, "width": 2, "fan_in": 1, "keep_edges": True}
    plan = plan_stage(NetworkConfig(layers=[2, 1]), GrowthStage(at_step=1, deepen=[keep]))
    grown = Topology.from_config(plan.config)
    assert plan.config.skip == ["L1N1->L3N1", "L1N2->L3N1"]
    assert grown.node("L3N1").reads == ("L1N1", "L1N2", "L2N1", "L2N2"), "the readout reads its old inputs and the relays"
    again = plan_stage(plan.config, GrowthStage(at_step=2, deepen=[keep]))
    chain = Topology.from_config(again.config)  # old skips renamed; the old relays keep their one message too
    assert again.config.skip == ["L1N1->L4N1", "L1N2->L4N1", "L1N1->L3N1", "L1N2->L3N2"]
    assert chain.node("L4N1").reads == ("L1N1", "L1N2", "L3N1", "L3N2")
    assert chain.node("L3N2").reads == ("L1N2", "L2N2")
    everything = NetworkConfig(layers=[2, 1], skip="all")  # every earlier node is read already: nothing to add
    assert plan_stage(everything, GrowthStage(at_step=1, deepen=[keep])).config.skip == "all"


def test_layers_count_from_1_in_growth_ops_and_layer_errors():
    from neuromas.configfile import parse_config

    with pytest.raises(NeuromasError, match="train.growth.0.widen.0.layer: Input should be greater than or equal to 1"):
        parse_config({"network": {"layers": [1, 1]}, "task": {"name": "arith"},
                      "train": {"steps": 4, "growth": [{"at_step": 2, "widen": [{"layer": 0, "width": 2}]}]}})
    with pytest.raises(NeuromasError, match=r"layers.1 \(layer 2\): connect: sparse needs fan_in"):
        Network([2, {"width": 1, "connect": "sparse"}])
    with pytest.raises(NeuromasError, match="layer 2 has fan_in 3, more than the 2 nodes of layer 1"):
        Network([2, {"width": 1, "connect": "sparse", "fan_in": 3}])


@pytest.mark.parametrize("growth, message", [
    ([{"at_step": 4, "widen": [{"layer": 1, "width": 2}]}, {"at_step": 2, "deepen": [{"after_layer": 1}]}],
     "at_step values \\[4, 2\\] must increase"),
    ([{"at_step": 2, "widen": [{"layer": 1, "width": 2}], "ramp_steps": 5}, {"at_step": 4, "deepen": [{"after_layer": 1}]}],
     "growth\\[0\\]: its fade-in \\(ramp_steps 5\\) must end before growth\\[1\\] at step 4"),
    ([{"at_step": 2, "widen": [{"layer": 1, "width": 2}], "ramp_steps": 1},
      {"at_step": 4, "widen": [{"layer": 3, "width": 2}]}], "growth\\[1\\].widen\\[0\\]: cannot widen layer 3, the last"),
    ([{"at_step": 9, "widen": [{"layer": 1, "width": 2}]}], "at_step 9 must be below train.steps \\(8\\)"),
])
def test_a_bad_growth_schedule_fails_when_the_config_loads(growth, message):
    from neuromas.configfile import parse_config

    data = {"network": {"layers": [1, 1, 1]}, "task": {"name": "arith"}, "train": {"steps": 8, "growth": growth}}
    with pytest.raises(NeuromasError, match=message):
        parse_config(data)


BRANCHED = {"steps": 8, "group_size": 4, "branching": [2, 2]}


@pytest.mark.parametrize("stage, message", [
    ({}, "growth\\[0\\]: with train.branching every growth stage gives the grown network's branching"),
    ({"branching": [2, 1, 4]}, "whose product is group_size \\(4\\)"),
    ({"branching": [2, 2]}, "growth\\[0\\].branching \\[2, 2\\] needs one factor per layer of the grown "
                                             "network \\(3 layers\\)"),
])
def test_growth_of_a_branched_run_needs_each_grown_shapes_tree(stage, message):
    from neuromas.configfile import parse_config

    growth = [{"at_step": 2, "deepen": [{"after_layer": 1, "width": 2}], **stage}]
    with pytest.raises(NeuromasError, match=message):
        parse_config({"network": {"layers": [1, 1]}, "task": {"name": "arith"}, "train": {**BRANCHED, "growth": growth}})
    with pytest.raises(NeuromasError, match="and without it none does"):
        parse_config({"network": {"layers": [1, 1]}, "task": {"name": "arith"},
                      "train": {"steps": 8, "group_size": 4, "growth": [{**growth[0], "branching": [2, 1, 2]}]}})


def shares_as_a_tree(traces):
    """One input's 4 passes of [1, 2, 1] as branching [2, 1, 2]: 2 samples of L1N1 and of each L2 node
    (factor 1: one per sample above), 2 readouts of each."""
    first = traces[:4]
    for node in ("L1N1", "L2N1", "L2N2"):
        if not (first[0].messages[node] is first[1].messages[node] and first[2].messages[node] is first[3].messages[node]
                and first[1].messages[node] is not first[2].messages[node]):
            return False
    return len({id(t.messages["L3N1"]) for t in first}) == 4


def subtrees_run_one_form(traces):
    """[1, 1] deepened to [1, 2, 1], fading in, as branching [2, 1, 2]: each first-layer sample is read by
    2 passes of one form (the grown one writes L2N1 and L2N2, the parent's passes skip them); per subtree
    True when grown."""
    forms = []
    for a, b in zip(traces[::2], traces[1::2]):
        grown = {"L2N1", "L2N2"} <= a.messages.keys()
        if a.messages["L1N1"] is not b.messages["L1N1"] or grown != ({"L2N1", "L2N2"} <= b.messages.keys()):
            return None
        if grown and a.messages["L2N1"] is not b.messages["L2N1"]:
            return None
        forms.append(grown)
    return forms


@pytest.mark.slow
def test_a_branched_run_grows_into_the_tree_of_its_new_shape(backend32):
    """[1, 1] sampled as a 2 x 2 tree, deepened to [1, 2, 1]: while it fades in, the grown shape's tree
    runs the grown or the parent form per first-layer sample, then the grown form everywhere."""
    from neuromas.config import GrowthStage

    net = trained_net(backend32, layers=(1, 1), tokens=6)
    stage = GrowthStage(at_step=1, deepen=[{"after_layer": 1, "width": 2}], ramp_steps=2, branching=[2, 1, 2])
    config = TrainConfig(steps=4, batch_size=2, group_size=4, lr=1e-2, branching=[2, 2], growth=[stage])
    trainer = Trainer(net, LetterTask(), config, progress=False)
    assert trainer.branching == [2, 2]
    trainer.train_step()
    assert trainer.grow_if_due() and trainer.net.growth is not None and trainer.branching == [2, 1, 2]
    assert subtrees_run_one_form(trainer.rollout(trainer.step)) == [False] * 4  # alpha 0: the parent
    metrics = trainer.train_step()
    assert metrics["growth/alpha"] == 0 and "node/L2N1/tokens" not in metrics
    forms = [f for step in range(2, 6) for f in subtrees_run_one_form(trainer.rollout(step))]  # alpha 0.5
    assert len(forms) == 16 and 0 < sum(forms) < 16
    assert trainer.train_step()["growth/alpha"] == 0.5 and trainer.net.growth is None
    assert shares_as_a_tree(trainer.rollout(trainer.step))
    metrics = trainer.train_step()
    assert "growth/alpha" not in metrics and "node/L2N2/tokens" in metrics


# ---- the schedule and `neuromas grow` in real runs ----------------------------------------
FIXTURES = Path(__file__).parent / "fixtures"
RUN = {
    "seed": 3,
    "network": {"layers": [1, 1], "generation": {"max_new_tokens": 4}, "adapters": {"rank": 2}},
    "task": {"name": "jsonl", "path": str(FIXTURES / "custom.jsonl"), "reward": "custom_rewards:length_score",
             "train_size": 6, "test_size": 4},
    "eval": {"limit": 2},
    "train": {"steps": 5, "batch_size": 2, "group_size": 2, "lr": 1e-2, "checkpoint_every": 1, "keep_checkpoints": 10,
              "growth": [{"at_step": 2, "widen": [{"layer": 1, "width": 2}], "ramp_steps": 2}]},
}


def run_config(tmp_path, name, data=RUN):
    from neuromas.configfile import parse_config

    return parse_config({**data, "out_dir": str(tmp_path / name)})


def lora_weights(path):
    from safetensors.torch import load_file

    return {f"{a.name}/{k}": v for a in sorted((path / "adapters").iterdir()) if a.is_dir() for k, v in
            load_file(str(a / "adapter_model.safetensors")).items()}


@pytest.mark.slow
def test_growth_schedule_grows_in_one_run_and_resumes_across_the_growth(tmp_path, monkeypatch):
    from neuromas.runner import make_run_dir, run_train

    monkeypatch.syspath_prepend(str(FIXTURES))  # the custom reward module
    config = run_config(tmp_path, "whole")
    run_train(config, make_run_dir(config, None), progress=False)
    whole = tmp_path / "whole"
    steps = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("growth/alpha") for m in steps] == [None, None, 0.0, 0.5, None]
    assert steps[2]["growth/calls_per_pass"] == 3.0 and "node/L1N2/tokens" not in steps[1]
    growths = [json.loads(line) for line in (whole / "growth.jsonl").read_text().splitlines()]
    assert growths == [{"step": 3, "widths": [[1, 1], [2, 1]], "renamed": {}, "new": {"L1N2": "L1N1"}, "init": "clone",
                        "ramp_steps": 2}]
    assert Network.load(whole).topology.widths == [2, 1]
    table = (whole / "results.md").read_text()
    assert "| [1, 1] | before |" in table and "| [2, 1] | after |" in table

    # a copy of the run that stopped after step 3 (grown, half faded in) continues to the same end
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut, ignore=shutil.ignore_patterns("final", "step-000004", "step-000005"))
    config = run_config(tmp_path, "cut")
    run_train(config, cut, resume=True, progress=False)
    assert [json.loads(line)["step"] for line in (cut / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert (cut / "growth.jsonl").read_text() == (whole / "growth.jsonl").read_text(), "the growth is logged once"
    expected, got = lora_weights(whole / "final"), lora_weights(cut / "final")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


@pytest.mark.slow
def test_grow_command_writes_a_run_that_starts_where_the_old_one_ended(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from neuromas.cli import app

    monkeypatch.syspath_prepend(str(FIXTURES))  # the custom reward module
    monkeypatch.chdir(tmp_path)
    data = {**RUN, "train": {**RUN["train"], "steps": 2, "growth": []}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    cli = CliRunner()  # in this process: the model is loaded once for both runs
    first = cli.invoke(app, ["run", "c.yaml", "--out", "small", "-q"])
    assert first.exit_code == 0, first.output
    bad = cli.invoke(app, ["grow", str(tmp_path / "small"), "--out", str(tmp_path / "g"), "--deepen", "one:2"])
    assert bad.exit_code == 2 and "write LAYER:WIDTH" in bad.output
    bad = cli.invoke(app, ["grow", str(tmp_path / "small"), "--out", str(tmp_path / "g"), "--deepen", "1:2:x"])
    assert bad.exit_code == 2 and "write LAYER:WIDTH or LAYER:WIDTH:FAN_IN" in bad.output
    grown = cli.invoke(app, ["grow", str(tmp_path / "small"), "--out", str(tmp_path / "g"), "--deepen", "1:2:1",
                             "--keep-edges"])
    assert grown.exit_code == 0, grown.output
    assert "nodes renamed: L2N1 -> L3N1" in grown.output
    record = json.loads((tmp_path / "g" / "growth.jsonl").read_text())
    assert record["renamed"] == {"L2N1": "L3N1"} and record["new"] == {"L2N1": "L1N1", "L2N2": "L1N1"}
    config = yaml.safe_load((tmp_path / "g" / "config.yaml").read_text())
    assert [layer["width"] for layer in config["network"]["layers"]] == [1, 2, 1]
    assert (config["network"]["layers"][1]["connect"], config["network"]["layers"][1]["fan_in"]) == ("sparse", 1)
    assert config["network"]["skip"] == ["L1N1->L3N1"], "--keep-edges: the readout still reads L1N1"
    assert config["init_from"] == str(tmp_path / "g" / "grown") and config["train"]["growth"] == []
    second = cli.invoke(app, ["run", "g/config.yaml", "-q"])
    assert second.exit_code == 0, second.output
    old, new = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("small", "g"))
    assert new["before"]["acc"] == old["after"]["acc"], "right after growth the network is its parent"
    old_answers = [json.loads(line)["answer"] for line in (tmp_path / "small" / "traces_after.jsonl").open()]
    new_answers = [json.loads(line)["answer"] for line in (tmp_path / "g" / "traces_before.jsonl").open()]
    assert new_answers == old_answers
    assert Network.load(tmp_path / "g").topology.widths == [1, 2, 1]

    # a checkpoint grows too (the network as it was at that step), and a plain folder does not
    checkpoint = tmp_path / "small" / "checkpoints" / "step-000001"
    early = cli.invoke(app, ["grow", str(checkpoint), "--out", str(tmp_path / "early"), "--widen", "1:2"])
    assert early.exit_code == 0, early.output
    assert Network.load(tmp_path / "early" / "grown").topology.widths == [2, 1]
    saved, grown_weights = lora_weights(checkpoint), lora_weights(tmp_path / "early" / "grown")
    assert saved and all(torch.equal(saved[k], grown_weights[k]) for k in saved)  # the step-1 nodes, bit for bit
    nowhere = cli.invoke(app, ["grow", str(tmp_path), "--out", str(tmp_path / "x"), "--widen", "1:2"])
    assert nowhere.exit_code == 2 and "not a run directory or a run's checkpoint" in nowhere.output


def test_show_prints_the_shapes_a_schedule_grows_to():
    from typer.testing import CliRunner

    from neuromas.cli import app

    config = Path(__file__).resolve().parents[1] / "configs" / "paper" / "navigate-grown-3-5-7.yaml"
    fixture_data = ["--set", f"task.data_dir={FIXTURES / 'data'}", "--set", "task.test_size=4", "--set", "task.train_size=null"]
    result = CliRunner().invoke(app, ["show", str(config), *fixture_data])  # the shape, not the data, is tested
    assert result.exit_code == 0, result.output
    assert "grows after step 100 to widths [2, 2, 1]" in result.output
    assert "grows after step 200 to widths [2, 2, 2, 1]" in result.output
