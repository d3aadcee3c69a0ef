"""Frozen-backbone baselines: their call structure, voting and specs on a scripted backend, and
every method end to end through `evaluate` on the real embedded model."""

import pytest

from neuromas import baselines, tasks
from neuromas.backends.base import Generation
from neuromas.errors import NeuromasError
from neuromas.eval import evaluate


class ScriptedBackend:
    """Answers each request with `reply(request, index)` and records every batch it was sent."""

    def __init__(self, reply):
        self.reply, self.batches = reply, []

    def generate(self, requests, seed=0):
        self.batches.append(requests)
        return [Generation(self.reply(r, i), [1, 2], [0.0, 0.0]) for i, r in enumerate(requests)]


def test_every_method_makes_its_stated_calls_as_one_batch_per_step():
    task = tasks.load("arith", operands=2, digits=2)
    examples = task.examples("test")[:3]
    for name, params in [("direct", {}), ("cot", {}), ("self-consistency", {"k": 4}), ("self-refine", {"rounds": 2}),
                         ("self-check", {}), ("moa", {"widths": [2, 2, 1]}), ("debate", {"agents": 3, "rounds": 2}),
                         ("workflow", {})]:
        backend = ScriptedBackend(lambda r, i: "Answer: 1")
        method = baselines.load(name, backend, **params)
        traces = method(examples, task=task)
        assert len(backend.batches) == method.calls, name  # one batched call per step
        assert all(len(batch) == len(examples) for batch in backend.batches), name
        assert all(len(t.messages) == method.calls and t.tokens == 2 * method.calls for t in traces), name
        assert all(r.messages[0]["role"] == "system" for batch in backend.batches for r in batch), name


def test_self_consistency_votes_the_majority_and_samples_while_direct_is_greedy():
    task = tasks.load("arith", operands=2, digits=2)
    example = task.examples("test")[0]
    answers = iter(["Answer: 5", "no idea", f"Answer: {example.target}", f"so Answer: {example.target}",
                    f"Answer: {example.target}", "Answer: 1"])
    backend = ScriptedBackend(lambda r, i: next(answers))
    (trace,) = baselines.load("self-consistency", backend, k=5)([example], task=task)
    assert trace.answer == f"Answer: {example.target}" and trace.reward == 1.0  # 3 of 5 votes
    assert {r.temperature for batch in backend.batches for r in batch} == {0.7}
    baselines.load("direct", backend)([example], task=task)
    assert backend.batches[-1][0].temperature == 0.0


def test_later_steps_read_earlier_messages():
    backend = ScriptedBackend(lambda r, i: f"msg{len(r.messages[1]['content'])}")
    (trace,) = baselines.load("debate", backend, agents=2, rounds=2)(["What is 2+2?"])
    update = trace.messages["R2A1"].prompt
    assert trace.messages["R1A2"].text in update and trace.messages["R1A1"].text in update
    (trace,) = baselines.load("workflow", backend)(["What is 2+2?"])
    assert "You are the planner" in trace.messages["planner"].prompt
    assert trace.messages["planner"].text in trace.messages["solver"].prompt


def test_specs_and_their_errors():
    assert baselines.parse_spec("moa:widths=[2,2,1]") == ("moa", {"widths": [2, 2, 1]})
    assert baselines.parse_spec("debate:agents=3,rounds=2") == ("debate", {"agents": 3, "rounds": 2})
    assert baselines.load("self-consistency:k=7", ScriptedBackend(str)).calls == 7
    with pytest.raises(NeuromasError, match="unknown baseline 'majority'; valid: direct, cot"):
        baselines.load("majority")
    with pytest.raises(NeuromasError, match="unexpected keyword argument 'depth'"):
        baselines.load("moa:depth=3")
    with pytest.raises(NeuromasError, match="one aggregator"):
        baselines.load("moa:widths=[2,2]")
    with pytest.raises(NeuromasError, match="name:key=value"):
        baselines.load("debate:3")


@pytest.mark.slow
def test_every_method_through_evaluate_on_the_real_model(backend32):
    task = tasks.load("arith", operands=2, digits=1, test_size=32)
    for name in baselines.names():
        method = baselines.load(name, backend32, max_new_tokens=8, **({"k": 3} if name == "self-consistency" else {}))
        result = evaluate(method, task, limit=2, progress=False)
        assert result.n == 2 and result.calls_per_q == method.calls, name
        assert 0 < result.tokens_per_q <= 8 * method.calls, name
        assert all(t.reward in (0.0, 1.0) and t.answer.strip() for t in result.traces), name


@pytest.mark.slow
def test_the_baselines_command_writes_one_table_for_all_methods(tmp_path):
    import csv
    import json

    from typer.testing import CliRunner

    from neuromas.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, [
        "baselines", "configs/quickstart.yaml", "--limit", "3", "--out", str(out), "--quiet",
        "-m", "network", "-m", "direct", "-m", "self-consistency:k=3", "-m", "gptswarm:agents=2",
        "--set", "network.generation.max_new_tokens=8", "--set", "model.dtype=float32",
    ])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "baselines.csv").open()))
    assert [r["method"] for r in rows] == ["network", "direct", "self-consistency:k=3", "gptswarm:agents=2"]
    assert [float(r["calls_per_q"]) for r in rows] == [3.0, 1.0, 3.0, 3.0]
    # GPTSwarm's edge optimisation on the train split (5 steps of 8 questions x 4 graphs, 3 calls
    # each) is reported apart from its evaluation of 3 questions, and the frozen methods learn nothing.
    fit = {r["method"]: float(r["fit_seconds"]) for r in rows}
    assert fit["gptswarm:agents=2"] > float(rows[3]["seconds"]) and fit["direct"] == fit["network"] == 0
    saved = json.loads((out / "baselines.json").read_text())
    assert saved["network"] == [2, 1] and saved["methods"]["direct"]["n"] == 3
    assert "| network [2, 1] |" in (out / "baselines.md").read_text()
    assert len((out / "traces" / "self-consistency_k=3.jsonl").read_text().splitlines()) == 3


def test_gptswarm_learns_to_keep_an_edge_that_pays():
    """Agent 2 is right only when it reads agent 1: REINFORCE must raise that edge's probability."""
    task = tasks.load("arith", operands=2, digits=2)

    def reply(request, i):
        user = request.messages[1]["content"]
        target = next(e.target for s in ("train", "test") for e in task.examples(s) if e.input.strip() in user)
        if "Answers of the agents" in user:  # the decision node repeats agent 2
            return user.split("[Agent 2] ")[1].split("\n")[0]
        return f"Answer: {target}" if "[Agent 1]" in user else "Answer: 0"

    swarm = baselines.load("gptswarm", ScriptedBackend(reply), agents=2, seed=3)
    assert swarm.probabilities() == {(0, 1): 0.5} and swarm.calls == 3
    rewards = swarm.optimize(task, steps=10, batch_size=4, samples=4, lr=2.0)
    assert swarm.probabilities()[(0, 1)] > 0.9
    (trace,) = swarm([task.examples("test")[0]], task=task)
    assert trace.reward == 1.0 and "[Agent 1]" in trace.messages["A2"].prompt
    assert rewards[-1] > rewards[0]
