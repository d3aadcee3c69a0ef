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
        # GoA's and AgentNet's calls depend on the question: measured, at least the fewest possible
        assert result.n == 2 and result.calls_per_q == method.calls_per_pass, name
        assert result.calls_per_q == method.calls or name in ("goa", "agentnet") and result.calls_per_q >= 2, name
        assert 0 < result.tokens_per_q <= 8 * result.calls_per_q, name
        assert all(t.reward in (0.0, 1.0) and t.answer.strip() for t in result.traces), name


@pytest.mark.slow
def test_the_baselines_command_writes_one_table_for_all_methods(tmp_path, monkeypatch):
    import csv
    import json

    from typer.testing import CliRunner

    from neuromas.baselines.gptswarm import GPTSwarm
    from neuromas.cli import app

    # GPTSwarm's fit here is one step (of its default 8 questions x 4 graphs) instead of five: the
    # table only has to report the fit apart from the evaluation; its learning is tested on a
    # scripted backend (test_gptswarm_learns_to_keep_an_edge_that_pays).
    optimize = GPTSwarm.optimize
    monkeypatch.setattr(GPTSwarm, "optimize", lambda self, task: optimize(self, task, steps=1))
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
    # GPTSwarm's edge optimisation on the train split (here 1 step of 8 questions x 4 graphs, 3 calls
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


# Graph-of-Agents ----------------------------------------------------------------------------------
def goa_reply(scores_of):
    """A scripted GoA: agents answer "Answer: <i>" by the order they are asked; judge j scores the
    others with `scores_of(j)`; refinements and finals echo their step."""
    asked = {"n": 0}

    def reply(request, i):
        user = request.messages[1]["content"]
        if user.startswith("Score the following"):
            judge = [a for a in (1, 2, 3) if f"in order: {[b for b in (1, 2, 3) if b != a]}" in user][0]
            return scores_of(judge)
        if user.startswith("Refine"):
            return "refined Answer: 7"
        if user.startswith("Other models refined"):
            return "final Answer: 8"
        if user.startswith("Synthesize"):
            return "pooled Answer: 9"
        asked["n"] += 1
        return f'{{"reasoning": "r", "answer": "{asked["n"]}", "confidence_level": "0.9"}}'
    return reply


def test_goa_makes_its_stated_calls_and_passes_messages_down_then_up():
    task = tasks.load("arith", operands=2, digits=2)
    examples = task.examples("test")[:2]
    # judge 1 scores (2, 3), judge 2 scores (1, 3), judge 3 scores (1, 2): agent 2 ranks first (mean 0.65),
    # then agent 3 (0.45), then agent 1 (0.4)
    scores = {1: "[0.6, 0.4]", 2: "[0.5, 0.5]", 3: "0.3, 0.7"}
    for pooling, calls in [("max", 3 + 3 + 2 + 1), ("mean", 3 + 3 + 2 + 2 + 1)]:
        backend = ScriptedBackend(goa_reply(scores.get))
        method = baselines.load(f"goa:pooling={pooling}", backend)
        traces = method(examples, task=task)
        assert method.calls == calls and method.calls_per_pass == calls, pooling
        assert len(backend.batches) == calls and all(len(b) == 2 for b in backend.batches), pooling
        (trace, _) = traces
        assert {r.temperature for r in backend.batches[0]} == {0.7}  # the pool: samples of one model
        # targets (agents 3 and 1) read the higher-ranked agents' answers; agent 1 reads both
        assert "Model 2 (" in trace.messages["refine3"].prompt and "Model 1 (" not in trace.messages["refine3"].prompt
        assert "Model 2 (" in trace.messages["refine1"].prompt and "Model 3 (" in trace.messages["refine1"].prompt
        assert "refine2" not in trace.messages  # the top agent has no source
        assert "final2" in trace.messages and "refined Answer: 7" in trace.messages["final2"].prompt
        if pooling == "max":  # only the top agent updates; its final answer is the answer
            assert "final3" not in trace.messages and trace.answer == "final Answer: 8"
        else:  # every agent with a lower-ranked one updates, then one call pools
            assert "final3" in trace.messages and "final1" not in trace.messages and trace.answer == "pooled Answer: 9"


def test_goa_drops_weak_agents_and_falls_back_when_no_score_parses():
    task = tasks.load("arith", operands=2, digits=2)
    example = task.examples("test")[0]
    # nobody rates agent 3: its normalised score 0 <= threshold drops it, leaving 2 -> 1
    backend = ScriptedBackend(goa_reply({1: "[1.0, 0.0]", 2: "[1.0, 0.0]", 3: "[0.5, 0.5]"}.get))
    method = baselines.load("goa", backend)
    (trace,) = method([example], task=task)
    assert sorted(trace.messages) == ["answer1", "answer2", "answer3", "final1", "refine2", "score1", "score2", "score3"]
    assert method.calls_per_pass == 8 < method.calls
    # a judge that never gives a valid list is asked 1 + retries times, then dropped; with every judge
    # dropped no agent survives and the initial answers are mean-pooled in one call
    backend = ScriptedBackend(goa_reply(lambda judge: "I think they are all good"))
    method = baselines.load("goa:retries=2", backend)
    (trace,) = method([example], task=task)
    assert len(trace.messages) == 3 + 3 * 3 + 1 and trace.answer == "pooled Answer: 9"
    assert "Previous invalid responses" in trace.messages["score1.3"].prompt


def test_goa_scores_parse_and_rank_as_in_its_code():
    from neuromas.baselines.goa import json_answer, parse_scores, rank

    assert parse_scores("Scores: [0.7, 0.3]") == [0.7, 0.3]
    assert parse_scores("'1': 0.2, '0': 0.8") == [0.8, 0.2]
    assert parse_scores("0.4, 0.6") == [0.4, 0.6] and parse_scores("no idea") == []
    # agents 0 and 2 get (0.5 + 0.6) / 2 (a tie keeps their order), agent 1 gets 0.4; normalised to sum 1
    judged = {0: {1: 0.4, 2: 0.6}, 1: {0: 0.5, 2: 0.5}, 2: {0: 0.6, 1: 0.4}}
    ranked = rank(judged, 3, 0.05)
    assert list(ranked) == [0, 2, 1] and abs(sum(ranked.values()) - 1) < 1e-9
    assert abs(ranked[1] - 0.4 / (0.55 + 0.4 + 0.55)) < 1e-9
    assert list(rank({0: {1: 1.0, 2: 0.0}}, 3, 0.05)) == [1]  # agent 0 was not judged, agent 2 scored 0
    assert json_answer('{"reasoning": "x", "answer": "42", "confidence_level": "0.9"}').endswith("Answer: 42")


# AgentNet ----------------------------------------------------------------------------------------
def test_agentnet_edge_rule_is_multiplicative_clipped_and_prunes():
    net = baselines.load("agentnet", ScriptedBackend(str), agents=2)
    net.update_edge(1, 2, True)
    assert abs(net.weights[1][2] - 1.1) < 1e-12
    net.update_edge(1, 2, False)
    assert abs(net.weights[1][2] - 0.99) < 1e-12
    for _ in range(20):
        net.update_edge(2, 1, True)
    assert net.weights[2][1] == 2.0  # clipped
    failures = 0
    while 2 in net.outgoing[1]:
        net.update_edge(1, 2, False)
        failures += 1
    assert failures == 12 and net.weights[1][2] <= 0.3  # 0.99 * 0.9^11 = 0.31, 0.99 * 0.9^12 = 0.28: pruned
    net.update_edge(1, 2, True)  # a pruned edge is gone: no update brings it back
    assert 2 not in net.outgoing[1]


def test_agentnet_learns_to_stop_forwarding_to_a_failing_agent():
    """Every router forwards to agent 2 while it can; agent 2's answers are wrong, agent 3's right.
    Adapting on the train split must prune the edges into agent 2 that were used, raise agent 3's
    ability, and leave an evaluation that never calls agent 2."""
    task = tasks.load("arith", operands=2, digits=2)
    targets = {e.input.strip(): e.target for s in ("train", "test") for e in task.examples(s)}

    def reply(request, i):
        system, user = request.messages[0]["content"], request.messages[1]["content"]
        agent = int(system.split("Agent ")[1].split(" ")[0])
        if "Decide:" in user:
            listing = user.split("Available agents:")[1] if "Available agents:" in user else ""
            return "DECISION: forward\nNEXT_AGENT_ID: 2" if "Agent 2:" in listing else "DECISION: execute"
        if "Think about" in user:
            return "thinking"
        question = user.split("Task: ")[1].split("\n")[0].strip()
        return f"Answer: {targets[question]}" if agent == 3 else "Answer: -1"

    backend = ScriptedBackend(reply)
    net = baselines.load("agentnet", backend, seed=1)
    assert net.calls == 3
    rewards = net.optimize(task, questions=48, batch_size=4)
    # both edges into agent 2 lost weight on every use; agent 3's, used more often, was pruned
    assert 2 not in net.outgoing[3] and net.weights[3][2] <= 0.3 < net.weights[1][2] < 1.0
    assert net.weights[2] == {1: 1.0, 3: 1.0}  # agent 2 never forwarded
    assert net.agents[3].ability > net.agents[1].ability and net.agents[3].ability > net.agents[2].ability
    assert rewards[-1] == 1.0 and rewards[-1] > rewards[0]
    assert net.agents[3].trajectories and not net.agents[2].trajectories  # only successes are remembered
    traces = net(task.examples("test")[:4], task=task)
    assert all(t.reward == 1.0 and not any(k.endswith("A2") for k in t.messages) for t in traces)
    assert net.calls_per_pass == 3  # route, thought, execute at agent 3


def test_agentnet_forward_and_split_calls():
    task = tasks.load("arith", operands=2, digits=2)
    example = task.examples("test")[0]
    # agent 1 forwards once; agent 2 splits, does its part, hands over to agent 3, which executes
    def reply(request, i):
        agent = int(request.messages[0]["content"].split("Agent ")[1].split(" ")[0])
        user = request.messages[1]["content"]
        if "Decide:" in user:
            return {1: "DECISION: forward\nNEXT_AGENT_ID: 2", 2: "DECISION: split\nEXECUTABLE: add the tens"}.get(
                agent, "DECISION: execute")
        if "Is the task completed" in user:
            return "DECISION: incompleted\nNEXT_AGENT_ID: 3"
        return f"agent {agent} wrote"

    net = baselines.load("agentnet:react=false", ScriptedBackend(reply))
    net.agents[1].ability = 1.0  # the task starts at the most able agent
    (trace,) = net([example], task=task)
    kinds = [k.split(".", 1)[1] for k in trace.messages]
    assert kinds == ["route.A1", "route.A2", "execute.A2", "next.A2", "route.A3", "execute.A3"]
    assert "Your part now: add the tens" in trace.messages["3.execute.A2"].prompt
    assert "agent 2 wrote" in trace.messages["6.execute.A3"].prompt and trace.answer == "agent 3 wrote"
