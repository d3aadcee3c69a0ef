"""benchmarks/claims.py's statistics and division-of-labour measures, against hand-computed values
(no model). Run from the repository root (`python -m pytest`), where `benchmarks` is a package."""

import gzip
import itertools
import json
import shutil

import numpy as np
import pytest
import yaml
from benchmarks import claims

import neuromas.tasks as tasks


def test_bootstrap_of_a_constant_matrix_is_that_constant():
    assert claims.bootstrap_mean(np.full((3, 5), 0.25), n_boot=200) == pytest.approx((0.25, 0.25, 0.25))


def test_bootstrap_over_questions_alone_matches_the_exact_distribution():
    """One seed, questions [1, 0]: resampling two questions gives means 0, 1/2, 1 with
    probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% points are 0 and 1."""
    mean, low, high = claims.bootstrap_mean(np.array([[1.0, 0.0]]), n_boot=4000)
    assert (mean, low, high) == pytest.approx((0.5, 0.0, 1.0))
    # three questions [1, 1, 0]: P(mean = 0) = (1/3)^3 = 1/27 ≈ 3.7% > 2.5%, so the low end is 0
    mean, low, high = claims.bootstrap_mean(np.array([[1.0, 1.0, 0.0]]), n_boot=20000)
    assert (mean, low, high) == pytest.approx((2 / 3, 0.0, 1.0))


def test_bootstrap_resamples_seeds_too():
    """Two seeds that disagree on every question: the seed draw alone spreads the mean over 0..1."""
    mean, low, high = claims.bootstrap_mean(np.array([[1.0] * 50, [0.0] * 50]), n_boot=4000)
    assert (mean, low, high) == pytest.approx((0.5, 0.0, 1.0))
    # the same numbers as one seed with 100 questions: only the question draw, a narrow interval
    mean, low, high = claims.bootstrap_mean(np.array([[1.0] * 50 + [0.0] * 50]), n_boot=4000)
    assert mean == 0.5 and 0.35 < low < 0.45 and 0.55 < high < 0.65


def test_bootstrap_weights_equal_explicit_resampling():
    """A replicate's mean from multinomial weights, w_s @ M @ w_q, is the mean of the drawn cells."""
    rng = np.random.default_rng(1)
    matrix = rng.integers(0, 2, size=(3, 7)).astype(float)
    seeds, questions = [2, 2, 0], [6, 1, 1, 3, 0, 6, 6]
    w_s = np.bincount(seeds, minlength=3) / 3
    w_q = np.bincount(questions, minlength=7) / 7
    explicit = matrix[np.ix_(seeds, questions)].mean()
    assert w_s @ matrix @ w_q == pytest.approx(explicit)


def test_paired_difference_matches_questions_by_id_not_position():
    network = {0: {"a": 1.0, "b": 1.0, "c": 0.0}, 1: {"c": 1.0, "b": 0.0, "a": 1.0}}
    single = {0: {"c": 0.0, "a": 0.0, "b": 1.0}, 1: {"a": 1.0, "b": 0.0, "c": 0.0}, 2: {"a": 1.0, "b": 1.0, "c": 1.0}}
    seeds, ids, diff = claims.paired(network, single)
    assert seeds == [0, 1] and ids == ["a", "b", "c"]  # seed 2 has no network run to pair with
    assert diff.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    summary = claims.diff_summary(network, single)
    assert summary["mean"] == pytest.approx(1 / 3, abs=1e-4) and summary["per_seed"] == [0.3333, 0.3333]
    assert summary["n"] == 3 and summary["seeds"] == [0, 1]
    assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]


def test_arm_accuracy_lists_each_seed():
    acc = claims.arm_accuracy({0: {"a": 1.0, "b": 0.0}, 2: {"a": 1.0, "b": 1.0}, 1: {"a": 0.0, "b": 0.0}})
    assert acc["per_seed"] == [0.5, 0.0, 1.0] and acc["seeds"] == [0, 1, 2] and acc["acc"] == 0.5
    assert acc["n"] == 2 and 0.0 <= acc["ci_low"] <= 0.5 <= acc["ci_high"] <= 1.0


def test_every_replicate_is_a_possible_mean():
    """With 2 seeds x 2 questions every replicate mean is a multiple of 1/4 (what w_s M w_q gives)."""
    matrix = np.array([[1.0, 0.0], [1.0, 1.0]])
    means = {np.mean(matrix[np.ix_(s, q)]) for s in itertools.product(range(2), repeat=2)
             for q in itertools.product(range(2), repeat=2)}
    _, low, high = claims.bootstrap_mean(matrix, n_boot=2000)
    assert any(low == pytest.approx(m) for m in means) and any(high == pytest.approx(m) for m in means)


def trace(example_id, target, first, readout, reward, prediction=None):
    messages = {f"L1N{i + 1}": {"text": text} for i, text in enumerate(first)}
    messages["L2N1"] = {"text": readout}
    return {"example_id": example_id, "input": f"q {example_id}", "target": target, "messages": messages,
            "prediction": prediction, "reward": reward}


def test_division_of_labour_on_sliced_sums():
    task = tasks.load("arith", operands=4)
    examples = {ex.id: ex for ex in task.examples("test")[:4]}
    rows = []
    for k, (id, ex) in enumerate(examples.items()):
        left, right = task.part_targets(ex, 2)
        total = left + right
        if k == 0:    # both parts right, the readout adds them up: right
            rows.append(trace(id, total, [f"{left}", f"so {right}"], f"Answer: {total}", 1.0, str(total)))
        elif k == 1:  # both parts right, the readout copies the first part: wrong
            rows.append(trace(id, total, [f"{left}", f"{right}"], f"Answer: {left}", 0.0, str(left)))
        elif k == 2:  # one part wrong; the readout copies it
            rows.append(trace(id, total, [f"{left + 1}", f"{right}"], f"{left + 1}", 0.0, str(left + 1)))
        else:         # no numbers at all
            rows.append(trace(id, total, ["no idea", "none"], "?", 0.0, None))
    d = claims.division_of_labour(rows, task, claims.TASKS["arith-4x1"], slices=True, examples=examples)
    assert d["n"] == 4
    assert d["readout_copies"] == 0.5          # rows 1 and 2
    assert d["parts_right"] == 0.5             # rows 0 and 1
    assert d["right_given_parts"] == 0.5       # row 0 of those two
    assert d["parts_sum_right"] == 0.5         # rows 0 and 1
    assert d["readout_is_sum"] == 0.25         # row 0
    assert d["first_layer_agree"] == 0.0
    assert len(d["examples"]) == 3 and set(d["examples"][0]) == {"input", "target", "L1N1", "L1N2", "L2N1"}


def test_parts_stated_reads_the_number_after_the_equals_sign_where_the_parser_reads_the_last():
    """A part followed by prose ("= 8. It has 3 digits") is solved as stated, not as parsed."""
    task = tasks.load("arith", operands=4)
    examples = {ex.id: ex for ex in task.examples("test")[:3]}
    rows = []
    for k, (id, ex) in enumerate(examples.items()):
        left, right = task.part_targets(ex, 2)
        if k == 0:    # both stated right, the first followed by prose with another number
            first = [f"x = {left}. It has 3 digits", f"y = {right}"]
        elif k == 1:  # the second stated wrong, its last number right
            first = [f"{left}", f"y = {right + 1}, not {right}"]
        else:         # no "=": the parsed answer stands
            first = [f"{left}", f"{right}"]
        rows.append(trace(id, left + right, first, f"{left + right}", 1.0, str(left + right)))
    d = claims.division_of_labour(rows, task, claims.TASKS["arith-4x1"], slices=True, examples=examples)
    assert d["parts_right"] == pytest.approx(2 / 3, abs=1e-4)   # rows 1 and 2 by the last number
    assert d["parts_stated"] == pytest.approx(2 / 3, abs=1e-4)  # rows 0 and 2 by the first "= n"


def test_division_of_labour_follows_a_reduction_tree_past_the_first_layer():
    task = tasks.load("arith", operands=4)
    examples = {ex.id: ex for ex in task.examples("test")[:3]}
    from neuromas.configfile import load_config

    sets = claims.ARMS["net421-question-tree8"].overrides(80, 10, 8)  # L1N1,L1N2->L2N1 L1N3,L1N4->L2N2 L2N*->L3N1
    tree = claims.topology_of(load_config(claims.CONFIGS / "lookup4-8-mix.yaml", sets))
    rows = []
    for k, (id, ex) in enumerate(examples.items()):
        a, b, c, d = task.part_targets(ex, 4)
        first = [a + (k == 2), b, c, d]          # row 2: the first part one too many
        left = first[0] + first[1]               # L2N1 adds what it reads (wrong in row 2)
        right = c + d + (k == 1)                 # row 1: L2N2 adds wrongly
        readout = left if k == 2 else left + right  # row 2: the readout copies L2N1
        texts = [str(x) for x in first] + [f"{first[0]} + {first[1]} = {left}", f"= {right}", f"Answer: {readout}"]
        messages = {node.id: {"text": text} for node, text in zip(tree.nodes, texts)}
        rows.append({"example_id": id, "input": f"q {id}", "target": a + b + c + d, "messages": messages,
                     "prediction": str(readout), "reward": float(readout == a + b + c + d)})
    d = claims.division_of_labour(rows, task, claims.TASKS["arith-4x1"], slices=True, examples=examples,
                                  topology=tree)
    assert d["parts_right"] == pytest.approx(2 / 3, abs=1e-4)   # rows 0 and 1
    assert d["later_nodes"] == {"L2N1": {"right": pytest.approx(2 / 3, abs=1e-4), "adds": 1.0},
                                "L2N2": {"right": pytest.approx(2 / 3, abs=1e-4), "adds": pytest.approx(2 / 3, abs=1e-4)},
                                "L3N1": {"right": None, "adds": pytest.approx(2 / 3, abs=1e-4)}}
    assert d["right_given_inputs"] == 1.0   # only row 0 has both L2 sums right, and its readout is right
    flat = claims.topology_of(load_config(claims.CONFIGS / "arith-4x1-mix.yaml"))  # [2, 1]
    two_layers = claims.division_of_labour(rows[:1], task, claims.TASKS["arith-4x1"], slices=True,
                                           examples=examples, topology=flat)
    assert "later_nodes" not in two_layers


def test_division_of_labour_on_whole_inputs_counts_agreement_and_right_nodes():
    task = tasks.load("arith", operands=2, digits=2)
    rows = [trace("x", 30, ["12+18 = 30", "30"], "Answer: 30", 1.0, "30"),
            trace("y", 41, ["40", "42"], "Answer: 41", 1.0, "41"),
            trace("z", 50, ["the sum is 49", "Answer: 49"], "49", 0.0, "49")]
    d = claims.division_of_labour(rows, task, claims.TASKS["arith-2x2"], slices=False)
    assert d["first_layer_agree"] == pytest.approx(2 / 3, abs=1e-4)   # x and z
    assert d["readout_copies"] == pytest.approx(2 / 3, abs=1e-4)      # x and z
    assert d["node_right"] == {"L1N1": pytest.approx(1 / 3, abs=1e-4), "L1N2": pytest.approx(1 / 3, abs=1e-4)}
    assert "parts_right" not in d and "readout_is_sum" not in d


def test_a_single_node_has_no_division_of_labour():
    task = tasks.load("arith", operands=2, digits=2)
    only = {"example_id": "x", "input": "q", "target": 3, "messages": {"L1N1": {"text": "3"}}, "prediction": "3"}
    assert claims.division_of_labour([only], task, claims.TASKS["arith-2x2"], slices=False) == {}


def test_arms_overrides_and_which_tasks_get_slices():
    assert claims.ARMS["single-compute"].overrides(40, 10, 8) == [
        "network.layers=[1]", "network.adapters.rank=24", "train.steps=120", "train.eval_every=30", "train.group_size=8"]
    assert claims.ARMS["net21-msgs"].overrides(40, 10, 8)[-2:] == [
        "network.input_slices=true", "network.input_to_all=false"]
    # a tree arm: G/2 first-layer pairs x 4 readouts = 2G passes for the 3G calls of G plain passes
    assert claims.ARMS["net21-tree"].overrides(40, 10, 8)[-2:] == ["train.group_size=16", "train.branching=[4, 4]"]
    # the wide tree: 2 first-layer pairs x 8 readouts, the same 2G passes
    assert claims.ARMS["net21-msgs-tree8"].overrides(40, 10, 8)[2:6] == [
        "train.steps=40", "train.eval_every=10", "train.group_size=16", "train.branching=[2, 8]"]
    assert claims.task_arms("arith-2x2", list(claims.ARMS)) == [
        "net21", "net21-tree", "net21-grown", "net21-readout-lr", "neuromas3", "single", "single-compute"]
    # the readout's own learning rate, from the task's
    assert claims.ARMS["net21-readout-lr"].overrides(40, 10, 8, 5e-4)[-1] == "train.readout_lr=0.001"
    with pytest.raises(ValueError, match="learning rate"):
        claims.ARMS["net21-readout-lr"].overrides(40, 10, 8)
    assert "net21-readout-lr" in claims.LEVERS and "net21" not in claims.LEVERS
    assert claims.OTHER_ALGORITHMS == ("net21-msgs-collm",)
    assert "train.algorithm=collm-cc" in claims.ARMS["net21-msgs-collm"].overrides(40, 10, 8)
    assert not any(s.startswith("train.algorithm") for s in claims.ARMS["net21-msgs"].overrides(40, 10, 8))
    # grown: [1, 1] trained half the steps, then widened with a fade-in over a quarter of the rest
    grown = claims.ARMS["net21-grown"].overrides(40, 10, 8)
    assert grown[0] == "network.layers=[1, 1]"
    assert "train.growth=[{at_step: 20, widen: [{layer: 1, width: 2}], ramp_steps: 5}]" in grown
    assert "net21-msgs" in claims.task_arms("bbh-object_counting", list(claims.ARMS))
    # the readout told the question without its data: only where the task separates the two
    assert claims.ARMS["net21-question-tree8"].overrides(40, 10, 8)[-2:] == [
        "network.input_slices=true", "network.input_to_all=question"]
    assert "net21-question-tree8" in claims.task_arms("lookup2-16-mix", list(claims.ARMS))
    assert "net21-question-tree8" not in claims.task_arms("arith-4x1-mix", list(claims.ARMS))
    assert claims.ARMS["net21-question-answers-tree8"].overrides(40, 10, 8)[-3:] == [
        "network.input_slices=true", "network.input_to_all=question", "network.answer_format=all"]


def test_every_network_arm_has_the_single_agents_trainable_parameters():
    # a LoRA's parameters grow with its rank, so nodes x rank per node is the single agent's rank
    # (seven nodes cannot split 24: net421's rank 3 gives it 21, never more than the single agent)
    for name, arm in claims.ARMS.items():
        if name in claims.GROWTH_ARMS:  # claim (b): grown from net21-msgs-tree8's rank-8 nodes, against the same shapes
            assert arm.rank == claims.ARMS["net21-msgs-tree8"].rank, name
            continue
        total = sum(arm.layers) * arm.rank
        assert total == claims.ARMS["single"].rank or (name, total) == ("net421-question-tree8", 21), name
    assert claims.ARMS["net31-msgs-tree8"].overrides(80, 10, 8)[:2] == ["network.layers=[3, 1]", "network.adapters.rank=6"]


def test_a_deeper_tree_arm_keeps_the_readouts_group_and_its_edges():
    from neuromas.configfile import load_config
    from neuromas.topology import Topology

    # the middle layer samples once per first-layer sample; the readout keeps 8 over the same messages
    sets = claims.ARMS["net321-msgs-tree8"].overrides(80, 10, 8)
    assert "train.branching=[2, 1, 8]" in sets
    config = load_config(claims.CONFIGS / "arith-6x1-mix.yaml", sets)
    assert Topology.from_config(config.network).edges == [
        ("L1N1", "L2N1"), ("L1N2", "L2N1"), ("L1N3", "L2N2"), ("L2N1", "L3N1"), ("L2N2", "L3N1")]
    # four parts reduced pairwise, each middle node told its half's question
    sets = claims.ARMS["net421-question-tree8"].overrides(80, 10, 8)
    assert "train.branching=[2, 1, 8]" in sets and "network.input_to_all=question" in sets
    tree = Topology.from_config(load_config(claims.CONFIGS / "lookup4-8-mix.yaml", sets).network)
    assert [(n.id, n.reads, n.input_part) for n in tree.layers[1]] == [
        ("L2N1", ("L1N1", "L1N2"), 0), ("L2N2", ("L1N3", "L1N4"), 1)]


def test_claim_b_grows_3_5_7_nodes_keeping_a_tree_of_each_shape_and_compares_the_same_shapes_from_scratch():
    from neuromas.configfile import load_config
    from neuromas.plan import plan_schedule

    grown = load_config(claims.CONFIGS / "arith-4x1-mix.yaml", claims.ARMS["net2221-grown-tree8"].overrides(80, 10, 8))
    assert [layer.width for layer in grown.network.layers] == [2, 1] and grown.train.branching == [2, 8]
    assert grown.train.steps == 160 and grown.train.eval_every == 10
    stages = grown.train.growth
    assert [(s.at_step, s.ramp_steps, s.branching) for s in stages] == [(80, 10, [2, 1, 8]), (120, 10, [2, 1, 1, 8])]
    shapes = [[layer.width for layer in plan.config.layers] for plan in plan_schedule(grown.network, stages)]
    assert shapes == [[2, 2, 1], [2, 2, 2, 1]]
    for name, widths, steps, branching in [("net221-msgs-tree8", [2, 2, 1], 120, [2, 1, 8]),
                                           ("net2221-msgs-tree8", [2, 2, 2, 1], 160, [2, 1, 1, 8])]:
        scratch = load_config(claims.CONFIGS / "arith-4x1-mix.yaml", claims.ARMS[name].overrides(80, 10, 8))
        assert [layer.width for layer in scratch.network.layers] == widths and not scratch.train.growth
        assert (scratch.train.steps, scratch.train.eval_every, scratch.train.branching) == (steps, 10, branching)
        assert scratch.network.input_to_all is False and grown.network.input_to_all is False


def test_every_task_has_a_config_that_validates():
    from neuromas.configfile import load_config

    for task in claims.TASKS:
        config = load_config(claims.CONFIGS / f"{task}.yaml")
        assert config.eval.limit == 128 and config.train.steps >= 40


def test_pick_applies_the_criteria_to_measured_numbers():
    def cells(acc):
        return {"single": {"acc": acc}}

    ladder = {"arith-2x2": cells(0.19), "arith-3x2": cells(0.12), "arith-4x1": cells(0.08),
              "bbh-object_counting": cells(0.14), "bbh-boolean_expressions": cells(0.40), "gsm8k": cells(0.0)}
    picked, lines = claims.pick(ladder)
    assert picked == ["arith-2x2", "bbh-object_counting", "arith-3x2"]
    assert any("boolean_expressions" in line and "two possible answers" in line for line in lines)
    ladder["arith-2x2"]["single"]["best_constant"] = 0.35  # one answer scores 35%: collapsing to it wins
    picked, lines = claims.pick(ladder)
    assert "arith-2x2" not in picked and any("arith-2x2" in line and "35.0%" in line for line in lines)
    assert any("arith-4x1" in line and "outside" in line and line.endswith("not picked") for line in lines)


def test_pick_fills_up_with_tasks_whose_interval_reaches_the_window():
    ladder = {"arith-2x2": {"single": {"acc": 0.19, "ci_low": 0.13, "ci_high": 0.26}},
              "bbh-object_counting": {"single": {"acc": 0.11, "ci_low": 0.07, "ci_high": 0.17}},
              "arith-4x1": {"single": {"acc": 0.094, "ci_low": 0.054, "ci_high": 0.157}},
              "arith-3x2": {"single": {"acc": 0.039, "ci_low": 0.017, "ci_high": 0.088}}}
    picked, lines = claims.pick(ladder)
    assert picked == ["arith-2x2", "bbh-object_counting", "arith-4x1"]
    assert any("arith-4x1" in line and "CI reaches it" in line and line.endswith("**picked**") for line in lines)
    assert any("arith-3x2" in line and line.endswith("not picked") for line in lines)


def _finished_single_run(run_dir, rewards):
    """The files `read_run` reads from a finished single-agent run, written by hand."""
    run_dir.mkdir(parents=True)
    summary = {"acc": sum(rewards) / len(rewards), "n": len(rewards), "correct": sum(rewards), "calls_per_q": 1,
               "tokens_per_q": 10.0}
    (run_dir / "results.json").write_text(json.dumps({"before": summary, "after": summary, "train": {"steps": 2},
                                                      "model_dtype": "float32"}))
    traces = "".join(json.dumps({"example_id": f"q{i}", "reward": r, "messages": {"L1N1": {"text": "4"}}}) + "\n"
                     for i, r in enumerate(rewards))
    (run_dir / "traces_before.jsonl").write_text(traces)
    (run_dir / "traces_after.jsonl").write_text(traces)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "tokens/total": 100.0, "time/step_s": 1.0})
                                                   + "\n" for s in (1, 2)))


def test_a_finished_run_outlives_its_run_directory(tmp_path):
    """A fresh checkout has no run directories: the committed archive stands in for them."""
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    _finished_single_run(runs / "arith-2x2" / "single" / "seed0", [1.0, 0.0, 1.0])
    found = claims.finished_runs(runs, ["arith-2x2"], ["single", "net21"], archive)
    assert list(found) == ["arith-2x2"] and list(found["arith-2x2"]) == ["single"]
    steps = found["arith-2x2"]["single"][0]["steps"]
    assert claims.archived("arith-2x2", "single", 0, archive, steps)
    assert not claims.archived("arith-2x2", "single", 0, archive, steps + 1)  # asked for more: run again
    assert (archive / "arith-2x2" / "single" / "seed0.traces.jsonl.gz").is_file()

    shutil.rmtree(runs)
    again = claims.finished_runs(runs, ["arith-2x2"], ["single", "net21"], archive)
    assert again["arith-2x2"]["single"][0]["rewards_after"] == {"q0": 1.0, "q1": 0.0, "q2": 1.0}
    assert again["arith-2x2"]["single"][0]["curve"] == [list(p) for p in found["arith-2x2"]["single"][0]["curve"]]
    assert claims.summarize(again) == json.loads(json.dumps(claims.summarize(found)))


def test_an_archived_run_is_measured_again_from_its_kept_traces(tmp_path):
    """A run archived before `parts_stated` existed gets it from its gzipped traces and the config
    it ran under; one whose questions the task no longer asks under those ids keeps its old reading."""
    task, _ = claims.task_of(claims.load_config(claims.CONFIGS / "arith-4x1-mix.yaml"))
    rows = []
    for ex in task.examples("test")[:2]:
        left, right = task.part_targets(ex, 2)
        first = [f"x = {left}. It has 3 digits", f"y = {right}"]  # stated right; the first parsed as 3
        rows.append({**trace(ex.id, left + right, first, f"{left + right}", 1.0, str(left + right)), "input": ex.input})
    for arm, inputs in (("net21-msgs", [r["input"] for r in rows]), ("net21-slices", ["other", "other"])):
        path = tmp_path / "archive" / "arith-4x1-mix" / arm / "seed0.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"steps": 2, "division": {"n": 2, "parts_right": 0.5}}))
        with gzip.open(path.with_suffix(".traces.jsonl.gz"), "wt") as out:
            out.writelines(json.dumps({**row, "input": text}) + "\n" for row, text in zip(rows, inputs))
    found = claims.finished_runs(tmp_path / "runs", ["arith-4x1-mix"], ["net21-msgs", "net21-slices"], tmp_path / "archive")
    remeasured = found["arith-4x1-mix"]["net21-msgs"][0]
    assert remeasured["division"]["parts_stated"] == 1.0 and remeasured["division"]["parts_right"] == 0.0
    assert remeasured["division_version"] == claims.DIVISION_VERSION and remeasured["steps"] == 2
    on_disk = json.loads((tmp_path / "archive" / "arith-4x1-mix" / "net21-msgs" / "seed0.json").read_text())
    assert on_disk == remeasured  # measured once, kept
    assert found["arith-4x1-mix"]["net21-slices"][0]["division"] == {"n": 2, "parts_right": 0.5}


def test_accuracy_with_messages_blanked_is_archived_and_reported(tmp_path):
    """A run's ablation.json travels with it into the archive and the report's table, mean over seeds."""
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    for seed, (intact, blanked) in enumerate([(0.5, 0.25), (0.75, 0.0)]):
        run_dir = runs / "arith-2x2" / "single" / f"seed{seed}"
        _finished_single_run(run_dir, [1.0, 0.0])
        (run_dir / claims.ABLATION).write_text(json.dumps({"intact": intact, "L1N1": 0.5, "messages": blanked, "n": 2}))
    found = claims.finished_runs(runs, ["arith-2x2"], ["single"], archive)
    shutil.rmtree(runs)
    again = claims.summarize(claims.finished_runs(runs, ["arith-2x2"], ["single"], archive))
    assert again["arith-2x2"]["single"]["ablation"]["1"]["messages"] == 0.0
    assert again == json.loads(json.dumps(claims.summarize(found)))
    (row,) = [line for line in claims.ablation_markdown(again) if line.startswith("| arith-2x2")]
    assert row == "| arith-2x2 | single | 0, 1 | 62.5 | L1N1 50.0 | 12.5 |"


def test_combine_probe_hands_the_readout_the_correct_partial_sums():
    """benchmarks/claims_combine.py: each view holds what its docstring says, built from the task's
    own split, so the probe measures the readout and not a wrong message."""
    from benchmarks import claims_combine

    from neuromas.tasks import registry

    task = registry.load("arith", operands=4, digits=1)
    example = task.examples("test")[0]
    a, b, c, d = example.meta["operands"]
    topologies = claims_combine.view_topologies()
    user = {view: claims_combine.view_prompts(view, [example], task, topologies)[0][-1]["content"]
            for view in claims_combine.VIEWS}
    messages = f"[L1N1] {a}+{b} = {a + b}\n[L1N2] {c}+{d} = {d + c}"
    assert user["msgs"] == f"Messages:\n{messages}\n\n{task.answer_format}"
    assert user["msgs+task"] == f"Messages:\n{messages}\n\n{claims_combine.TASK_SENTENCE}\n{task.answer_format}"
    assert user["input+msgs"] == f"{example.input}\n\nMessages:\n{messages}\n\n{task.answer_format}"
    assert user["input"] == f"{example.input}\n\n{task.answer_format}"
    assert user["question"] == f"What is {a + b}+{c + d}?\n\n{task.answer_format}"
    assert a + b + c + d == example.target


def test_combine_probe_counts_sampled_rewards_and_tied_groups():
    """The sampled part of claims_combine: the readout's mean reward over G samples, the share of
    questions whose samples all tie, and the reward by count of numbers, on the training mix."""
    from benchmarks import claims_combine

    from neuromas.backends.base import Generation
    from neuromas.tasks import registry

    task = registry.load("arith", operands=4, digits=1, train_operands=[2, 4])
    examples = task.examples("train")[:6]
    first = examples[0]

    class FirstRightOnce:  # right on the first sample of the first question only
        def generate(self, requests, seed=0):
            assert all(r.temperature == 0.7 for r in requests) and len(requests) == 4 * len(examples)
            return [Generation(f"Answer: {first.target if i == 0 else -1}", [1], [0.0]) for i in range(len(requests))]

    result = claims_combine.sampled_rewards("msgs", examples, task, claims_combine.view_topologies(),
                                            FirstRightOnce(), group=4, temperature=0.7)
    assert result["reward"] == 1 / 24 and result["tied"] == 5 / 6
    counts = [len(e.meta["operands"]) for e in examples]
    assert result["by_count"][str(counts[0])] == 0.25 / counts.count(counts[0])
    assert set(result["by_count"]) == {str(c) for c in counts}


def test_the_single_agent_is_read_at_the_networks_budget():
    """A single agent trained past a network's steps is paired at the network's step (3x for the
    equal-compute one); where that step's answers were not kept its last step stands in, marked."""
    network = {0: {"steps": 40, "rewards_after": {"a": 1.0, "b": 1.0}},
               1: {"steps": 40, "rewards_after": {"a": 1.0, "b": 0.0}}}
    single = {0: {"steps": 80, "rewards_after": {"a": 0.0, "b": 0.0}, "rewards_by_step": {"40": {"a": 1.0, "b": 0.0}}},
              1: {"steps": 80, "rewards_after": {"a": 0.0, "b": 0.0}},
              2: {"steps": 40, "rewards_after": {"a": 1.0, "b": 1.0}}}
    d = claims.budget_diff(network, single, 1)
    assert d["seeds"] == [0, 1] and d["per_seed"] == [0.5, 0.5]  # seed 0 at step 40 (1 - 0.5), seed 1 at 80
    assert d["single_steps"] == [40, 80] and d["network_steps"] == [40, 40]
    assert claims._per_seed_diffs(d, 1) == "+50.0, +50.0 (40 vs 80 steps)"

    compute = {0: {"steps": 240, "rewards_after": {"a": 1.0, "b": 1.0}, "rewards_by_step": {"120": {"a": 0.0, "b": 0.0}}}}
    d = claims.budget_diff(network, compute, 3)
    assert d["per_seed"] == [1.0] and d["single_steps"] == [120]
    assert claims._per_seed_diffs(d, 3) == "+100.0"


def test_an_extended_run_keeps_the_answers_of_the_step_it_was_extended_from(tmp_path):
    run_dir = tmp_path / "seed0"
    _finished_single_run(run_dir, [1.0, 0.0, 1.0])
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"train": {"steps": 2}}))
    (run_dir / "checkpoints" / "step-000002").mkdir(parents=True)
    (run_dir / "checkpoints" / "step-000002" / "trainer.pt").write_bytes(b"")
    (run_dir / claims.ABLATION).write_text(json.dumps({"intact": 1.0, "messages": 0.0, "n": 3}))
    assert claims.extend_run(run_dir, 4)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["steps"] == 4
    assert not (run_dir / "results.json").exists()
    # the step-2 network's ablation is set aside, so the step-4 network gets its own
    assert not (run_dir / claims.ABLATION).exists() and (run_dir / "ablation_step-2.json").is_file()

    # the resumed run finishes at step 4 with other answers
    (run_dir / "results_step-2.json").rename(run_dir / "results.json")
    results = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**results, "train": {"steps": 4}}))
    (run_dir / "traces_after.jsonl").write_text("".join(
        json.dumps({"example_id": f"q{i}", "reward": 0.0, "messages": {"L1N1": {"text": "5"}}}) + "\n" for i in range(3)))
    run = claims.read_run(run_dir, claims.TASKS["arith-2x2"], slices=False)
    assert run["rewards_after"] == {"q0": 0.0, "q1": 0.0, "q2": 0.0}
    assert claims.rewards_at(run, 2) == {"q0": 1.0, "q1": 0.0, "q2": 1.0}
    assert claims.rewards_at(run, 4) == run["rewards_after"] and claims.rewards_at(run, 3) is None


def test_claim_b_reads_the_grown_run_at_each_stage_against_scratch_at_equal_steps_and_tokens():
    ids = [f"q{i}" for i in range(4)]

    def answers(right):
        return {q: float(i < right) for i, q in enumerate(ids)}

    def run(steps, tokens_per_step, right_at, evals):
        curve = [(0, 0.0, 0.0)] + [(s, float(tokens_per_step(s)), right_at(s) / 4) for s in evals]
        return {"steps": steps, "rewards_before": answers(0), "rewards_after": answers(right_at(steps)),
                "rewards_by_step": {str(s): answers(right_at(s)) for s in evals if s != steps}, "curve": curve}

    # grown: 3 nodes cost 10 tokens a step to step 80, 5 nodes 20 to 120, 7 nodes 30 to 160
    def grown_tokens(s):
        return 10 * min(s, 80) + 20 * max(0, min(s, 120) - 80) + 30 * max(0, s - 120)

    evals = list(range(10, 170, 10))
    by_arm = {"net2221-grown-tree8": {0: run(160, grown_tokens, lambda s: 4 if s >= 120 else 2, evals)},
              "net221-msgs-tree8": {0: run(120, lambda s: 20 * s, lambda s: 1 if s >= 60 else 0, evals[:12])},
              "net2221-msgs-tree8": {0: run(160, lambda s: 30 * s, lambda s: 3 if s >= 160 else 0, evals)}}
    five, seven = claims.growth_comparison(by_arm)
    assert (five["layers"], five["steps"], seven["layers"], seven["steps"]) == ([2, 2, 1], 120, [2, 2, 2, 1], 160)
    assert five["grown"]["acc"] == 1.0 and five["scratch_at_steps"]["acc"] == 0.25
    assert five["diff_at_steps"]["mean"] == 0.75
    # the grown run had used 1,600 tokens at step 120: the 5-node scratch run reaches that at step 80
    assert five["scratch_tokens_steps"] == [80] and five["scratch_at_tokens"]["acc"] == 0.25
    # at step 160, 2,800 tokens: the 7-node scratch run's step 90 (2,700), still at 0 right
    assert seven["scratch_tokens_steps"] == [90] and seven["diff_at_tokens"]["mean"] == 1.0
    assert seven["diff_at_steps"]["mean"] == 0.25
    # a grown run still before its 5-node stage's end is not compared yet
    early = {**by_arm, "net2221-grown-tree8": {0: run(100, grown_tokens, lambda s: 2, evals[:10])}}
    assert claims.growth_comparison(early) == []
    assert "Claim (b)" in "\n".join(claims.growth_markdown({"arith-4x1-mix": {"growth": [five, seven]}}))
    # the growth that keeps its edges is compared with its own shapes from scratch, row by row
    skip_design = dict(zip(claims.GROWTH_DESIGNS[1], by_arm.values()))
    rows = claims.growth_comparison({**by_arm, **skip_design})
    assert [(r["grown_arm"], r["scratch"]) for r in rows] == [
        ("net2221-grown-tree8", "net221-msgs-tree8"), ("net2221-grown-tree8", "net2221-msgs-tree8"),
        ("net2221-grownskip-tree8", "net221-skip-tree8"), ("net2221-grownskip-tree8", "net2221-skip-tree8")]
    assert rows[2]["diff_at_steps"] == five["diff_at_steps"]


def test_claim_b_shapes_from_scratch_have_the_graph_their_growth_leaves():
    from neuromas.config import GrowthStage, NetworkConfig
    from neuromas.plan import plan_schedule
    from neuromas.topology import Topology

    grown = claims.ARMS["net2221-grownskip-tree8"]
    stage = {"after_layer": 1, "width": 2, "fan_in": 1, "keep_edges": True}
    plans = plan_schedule(NetworkConfig(layers=[2, 1]), [GrowthStage(at_step=s, deepen=[stage]) for s in (1, 2)])
    for plan, arm in zip(plans, ("net221-skip-tree8", "net2221-skip-tree8")):
        scratch = claims.ARMS[arm]
        assert scratch.layers == tuple(layer.width for layer in plan.config.layers) and scratch.relay == grown.relay
        layers = [scratch.layers[0], *({"width": w, "connect": "sparse", "fan_in": 1} for w in scratch.layers[1:-1]), 1]
        built = Topology.from_config(NetworkConfig(layers=layers, skip=scratch.grown_skip()))
        assert built.edges == Topology.from_config(plan.config).edges, arm
    assert any("skip" in s for s in claims.ARMS["net221-skip-tree8"].overrides(80, 10, 8))


def test_a_smoke_run_of_every_tree_arm_samples_a_whole_tree():
    # at G 2 a tree with 8 readouts per first-layer sample has no first-layer sample ([0, 8])
    for name, arm in claims.ARMS.items():
        if arm.tree:
            branching = arm.branching(len(arm.layers) - len(arm.deepened), claims.smoke_group_size(arm))
            assert branching[0] >= 1, name


def test_mean_curve_averages_seeds_at_the_steps_they_all_reached():
    """A seed that missed step 10's evaluation is not averaged with another seed's step 20."""
    a = np.array([[0, 0, 0.1], [10, 5, 0.2], [20, 9, 0.4]])
    b = np.array([[0, 0, 0.3], [20, 11, 0.6]])
    np.testing.assert_allclose(claims.mean_curve([a, b]), [[0, 0, 0.2], [20, 10, 0.5]])


def test_goal_needs_five_points_a_ci_above_zero_three_seeds_and_no_loss_at_equal_compute():
    def diff(mean, low, seeds=3):
        return {"mean": mean, "ci_low": low, "ci_high": mean + 0.1, "seeds": list(range(seeds))}

    metrics = {
        "met": {"diffs": {"net": {"vs_single": diff(0.06, 0.01), "vs_single-compute": diff(0.0, -0.1)}}},
        "ci": {"diffs": {"net": {"vs_single": diff(0.20, -0.01), "vs_single-compute": diff(0.1, 0.0)}}},
        "small": {"diffs": {"net": {"vs_single": diff(0.04, 0.01), "vs_single-compute": diff(0.1, 0.0)}}},
        "compute": {"diffs": {"net": {"vs_single": diff(0.30, 0.20), "vs_single-compute": diff(-0.01, -0.2)}}},
        "no-compute": {"diffs": {"net": {"vs_single": diff(0.30, 0.20)}}},
        "two-seeds": {"diffs": {"net": {"vs_single": diff(0.30, 0.20, seeds=2)}}},
    }
    rows = {r["task"]: r["met"] for r in claims.goal(metrics)}
    assert rows == {"met": True, "ci": False, "small": False, "compute": False, "no-compute": False}


def test_the_growth_plot_marks_each_growth_and_is_drawn_only_where_a_grown_arm_ran(tmp_path, monkeypatch):
    """Claim (b)'s plot: a task with the grown arm gets a row, its growths marked at the steps the
    arm deepens (80 and 120 of a 160-step run over 80 task steps); without a grown arm, no file."""
    from matplotlib.axes import Axes

    curve = [[0, 0, 0.01], [80, 1000, 0.2], [160, 2000, 0.4]]
    metrics = {"arith-4x1-mix": {"net2221-grown-tree8": {"steps": 160, "curves": {"0": curve, "1": curve}},
                                 "net221-msgs-tree8": {"steps": 120, "curves": {"0": curve[:2]}}},
               "arith-2x2": {"single": {"steps": 40, "curves": {"0": curve[:2]}}}}
    marked = []
    monkeypatch.setattr(Axes, "axvline", lambda self, x, **kw: marked.append(x))
    claims.plot_growth(metrics, tmp_path / "growth.png")
    assert (tmp_path / "growth.png").stat().st_size > 0 and marked == [80, 120]
    claims.plot_growth({"arith-2x2": metrics["arith-2x2"]}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
