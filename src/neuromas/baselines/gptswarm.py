"""GPTSwarm (Zhuge et al. 2024): frozen agents on a graph whose edges are optimised.

`agents` agents in a fixed order and a final decision node that reads every agent. Each
potential edge from an earlier agent to a later one (i -> j, i < j) has a logit; a graph is
drawn by keeping each edge with probability sigmoid(logit). `optimize` learns the logits on the
training split with REINFORCE, as the paper optimises its edge distribution: for each question,
`samples` graphs are drawn, run (agents greedy, so a graph's score depends only on the graph),
scored, and each graph's log-probability is pushed up by its reward minus the mean reward of
that question's graphs. Evaluation uses the most likely graph (the edges with p >= 0.5).

The agents themselves stay frozen; only the edge logits (agents * (agents - 1) / 2 numbers)
are learned. Message names in traces: `A<i>` for agents, `decision` for the final node.
"""

from __future__ import annotations

import math
import random

from neuromas.baselines.base import Method, Run, chat
from neuromas.baselines.prompting import STEP_BY_STEP
from neuromas.errors import NeuromasError
from neuromas.network import score
from neuromas.tasks.base import Task
from neuromas.trace import Trace

Edge = tuple[int, int]


class GPTSwarm(Method):
    name = "gptswarm"

    def __init__(self, *args, agents: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        if agents < 2:
            raise NeuromasError(f"gptswarm: needs at least 2 agents (got {agents})")
        self.agents = agents
        self.logits: dict[Edge, float] = {(i, j): 0.0 for j in range(agents) for i in range(j)}

    @property
    def calls(self) -> int:
        return self.agents + 1

    def probabilities(self) -> dict[Edge, float]:
        return {edge: 1 / (1 + math.exp(-logit)) for edge, logit in self.logits.items()}

    def solve(self, runs, answer_format):
        edges = [e for e, p in self.probabilities().items() if p >= 0.5]
        self._run_graphs(runs, [edges] * len(runs), answer_format)

    def _run_graphs(self, runs: list[Run], graphs: list[list[Edge]], answer_format: str) -> None:
        """Run each question on its own graph; one batched call per agent position."""
        sources = [{j: [i for i, k in graph if k == j] for j in range(self.agents)} for graph in graphs]
        where = {id(run): n for n, run in enumerate(runs)}
        for j in range(self.agents):
            def agent(run: Run, j=j) -> list[dict[str, str]]:
                reads = sources[where[id(run)]][j]
                context = "".join(f"\n[Agent {i + 1}] {run.messages[f'A{i + 1}'].text.strip() or '(empty)'}" for i in reads)
                notes = f"\n\nNotes from other agents:{context}" if reads else ""
                return chat(f"{run.example.input.strip()}{notes}\n\n{STEP_BY_STEP} {answer_format}")

            self.ask(runs, f"A{j + 1}", agent)

        def decision(run: Run) -> list[dict[str, str]]:
            answers = "\n".join(f"[Agent {i + 1}] {run.messages[f'A{i + 1}'].text.strip() or '(empty)'}"
                                for i in range(self.agents))
            return chat(f"{run.example.input.strip()}\n\nAnswers of the agents:\n{answers}\n\n"
                        f"Decide the final answer. {answer_format}")

        for run, text in zip(runs, self.ask(runs, "decision", decision)):
            run.answer = text

    def optimize(self, task: Task, steps: int = 5, batch_size: int = 8, samples: int = 4, lr: float = 0.5) -> list[float]:
        """Learn the edge logits on `task`'s train split; returns the mean reward of each step."""
        rng = random.Random(self.seed)
        train = task.examples("train")
        self._task, history = task, []
        for _ in range(steps):
            questions = rng.sample(train, min(batch_size, len(train)))
            probs = self.probabilities()
            graphs = [[e for e, p in probs.items() if rng.random() < p] for _ in questions for _ in range(samples)]
            runs = [Run(q) for q in questions for _ in range(samples)]
            self._run_graphs(runs, graphs, task.answer_format)
            traces = [Trace(r.example.id, r.example.input, 0, r.messages, r.answer, target=r.example.target) for r in runs]
            score(task, traces, [r.example for r in runs])
            rewards = [t.reward or 0.0 for t in traces]
            gradient = dict.fromkeys(self.logits, 0.0)
            for q in range(len(questions)):  # baseline: the mean reward of this question's graphs
                group = range(q * samples, (q + 1) * samples)
                mean = sum(rewards[k] for k in group) / samples
                for k in group:
                    for edge, p in probs.items():  # d log Bernoulli(kept | sigmoid(l)) / dl = kept - p
                        gradient[edge] += (rewards[k] - mean) * ((edge in graphs[k]) - p)
            for edge in self.logits:
                self.logits[edge] += lr * gradient[edge] / len(runs)
            history.append(sum(rewards) / len(rewards))
        return history
