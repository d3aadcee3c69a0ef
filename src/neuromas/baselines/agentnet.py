"""AgentNet (arXiv:2504.00587, NeurIPS 2025): decentralised agents that route, remember and rewire.

Followed: zoe-yyx/AgentNet `AgentNet_Code/src/experiment.py` (`solve_a_single_task`,
`update_agent_graph`), `src/agentgraph.py` (`select_an_agent`, `collect_neighbors_info`,
`update_edge_weight`), `src/agent.py` (router, executor, abilities and their decay),
`src/pool.py` (experience pools) and `config/setting.py` (`ROUTER_PROMPT_FORMAT`; defaults of
`config/experiment/default.yaml`: abilities 0.6, forward path 3, memory 50, decay 0.1 every 10).

`agents` agents, each a router and an executor over the one shared base model (they differ by
their id, memory, ability and edges, never by a role). Every agent starts linked to every
other (the code's `complete` graph, weight 1.0); a task never returns to an agent it left, so
each route is a path of the DAG the paper describes. Per question:

- **Route.** The task starts at the most able agent (ties: a seeded draw). Its router sees
  the task, the progress so far, its own successful routing decisions retrieved from memory,
  and its available neighbours (not yet visited, edge weight above `prune_below`) with their
  ability and success rate; it answers `DECISION: execute | forward | split`. With no
  neighbour left, or after `max_forwards` forwards, it may only execute or split.
- **Forward** moves the task to `NEXT_AGENT_ID` (an unavailable choice goes to the most able
  available neighbour, the code's `find_best_alternative_agent`).
- **Execute**: the executor first writes a thought (`react`, the code's `user_react`), then
  solves the task shown its most similar past successes; its reply is the answer.
- **Split**: the executor does the part it named (`EXECUTABLE`), the router then says whether
  the task is `COMPLETED` (its reply is the answer) or names the agent to continue, which gets
  the progress; at most `max_splits` splits (the code allows 30).

Adaptation (`optimize`, on the train split, timed as `fit_seconds`): after each question is
scored, every edge a decision used (a forward, or the hand-over after a split) is updated by
the code's multiplicative rule, w <- clip(w * (1.1 if success else 0.9), 0.1, 2.0), and an
edge at or under `prune_below` (0.3) is removed; on success the executing agents' abilities
rise by 0.1 (to at most 2.0) and their trajectories, and the routers' decisions, enter their
memories (bounded by `memory`, oldest evicted first); an agent that goes `decay_interval`
results without a success loses `decay_rate` of its ability. Evaluation changes nothing, as in
the code's `evaluate`.

Departures, each because of the shared model or the budget: retrieval ranks memories by
word-count cosine similarity of the questions (the code embeds them with bge-large-en-v1.5, a
second model); eviction drops the oldest trajectory (the code's "smart eviction" scores them
with that embedding model); the edge rule's time factor, min(1, 10 / seconds of the router
call), is left out (1 for calls under 10 s, and wall time would make the graph depend on the
machine); an unparsable decision executes (the code asks the same router again, without bound);
the graph is updated after each batch of `batch_size` training questions (in question order)
rather than after each question, so a batch shares its generate calls. Calls per question vary
with the route and are measured. Message names: `<hop>.<kind>.A<agent>`, kind one of route,
thought, execute, next.
"""

from __future__ import annotations

import collections
import math
import random
import re
from dataclasses import dataclass, field

from neuromas.baselines.base import Method, Run, chat
from neuromas.errors import NeuromasError
from neuromas.network import score
from neuromas.seeds import derive_seed
from neuromas.tasks.base import Task
from neuromas.trace import Trace

ROUTER = ("You are Agent {id} in a network of agents that solve tasks together. Decide how to handle the task: "
          "execute it yourself, forward it to another agent, or split it.")
EXECUTOR = "You are Agent {id} in a network of agents that solve tasks together. Solve the task you are given."


def words(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\w+", text.lower()))


def similarity(a: collections.Counter, b: collections.Counter) -> float:
    dot = sum(a[w] * b[w] for w in a.keys() & b.keys())
    norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def field_of(text: str, key: str) -> str:
    """The text after `KEY:` up to the next `KEY:` line (the code's `extract_content_as_dict`)."""
    match = re.search(rf"{key}\s*[:：]\s*(.*?)(?=\n\s*[A-Z_]{{4,}}\s*[:：]|\Z)", text, re.DOTALL | re.IGNORECASE)
    return match.group(1).strip().strip("*").strip() if match else ""


@dataclass
class Agent:
    id: int
    ability: float = 0.6
    executed: int = 0
    succeeded: int = 0
    since_success: int = 0  # results since this agent's last success (for the ability decay)
    routes: collections.deque = field(default_factory=collections.deque)  # (question, decision text)
    trajectories: collections.deque = field(default_factory=collections.deque)  # (question, result)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.executed if self.executed else 0.0

    def describe(self) -> str:
        rate = f"{self.success_rate:.0%}" if self.succeeded else "not succeeded yet"
        return f"Agent {self.id}: ability {self.ability:.2f}, success rate {rate}"


@dataclass
class Route:
    """One question's state as it moves through the network."""

    agent: int
    forwards_left: int
    visited: list[int] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    next: str = "route"  # the call this question makes next: route, thought, execute, next; "" when done
    splits: int = 0
    part: str = ""  # the part being executed after a split ("" : the whole task)
    thought: str = ""
    edges: list[tuple[int, int]] = field(default_factory=list)  # edges the decisions used
    executors: list[int] = field(default_factory=list)
    decisions: list[tuple[int, str]] = field(default_factory=list)  # (agent, its router's reply)


class AgentNet(Method):
    name = "agentnet"

    def __init__(self, *args, agents: int = 3, max_forwards: int = 3, max_splits: int = 2, memory: int = 50,
                 retrieve: int = 2, react: bool = True, prune_below: float = 0.3, decay_rate: float = 0.1,
                 decay_interval: int = 10, fit_questions: int = 64, batch_size: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        if agents < 2 or max_forwards < 0 or max_splits < 0 or memory < 1 or retrieve < 0:
            raise NeuromasError(f"agentnet: needs at least 2 agents, memory >= 1 and non-negative max_forwards, "
                                f"max_splits and retrieve (got agents={agents}, memory={memory})")
        self.max_forwards, self.max_splits, self.retrieve, self.react = max_forwards, max_splits, retrieve, react
        self.prune_below, self.decay_rate, self.decay_interval = prune_below, decay_rate, decay_interval
        self.fit_questions, self.batch_size = fit_questions, batch_size
        self.agents = {i: Agent(i, routes=collections.deque(maxlen=memory), trajectories=collections.deque(maxlen=memory))
                       for i in range(1, agents + 1)}
        self.weights = {i: {j: 1.0 for j in self.agents if j != i} for i in self.agents}
        self.outgoing = {i: [j for j in self.agents if j != i] for i in self.agents}

    @property
    def calls(self) -> int:
        """The fewest calls a question can take: one routing decision and its execution."""
        return 3 if self.react else 2

    # the graph's rules ----------------------------------------------------------------------
    def update_edge(self, source: int, target: int, success: bool) -> None:
        """The code's `update_edge_weight` (time factor 1): multiplicative, clipped, pruned."""
        if target not in self.outgoing[source]:
            return
        weight = self.weights[source][target] * (1.1 if success else 0.9)
        self.weights[source][target] = max(0.1, min(2.0, weight))
        if self.weights[source][target] <= self.prune_below:
            self.outgoing[source].remove(target)

    def neighbours(self, agent: int, route: Route) -> list[int]:
        """Agents `agent` may forward to: its edges above the pruning weight, not yet visited."""
        return [j for j in self.outgoing[agent] if self.weights[agent][j] > self.prune_below and j not in route.visited]

    def most_able(self, candidates: list[int], key: str) -> int:
        best = max(self.agents[a].ability for a in candidates)
        tied = [a for a in candidates if self.agents[a].ability == best]
        return random.Random(derive_seed(self.seed, "agentnet", key)).choice(tied)

    def recall(self, memories, question: str) -> list:
        query = words(question)
        ranked = sorted(memories, key=lambda m: -similarity(query, words(m[0])))
        return ranked[: self.retrieve]

    # one question's way -----------------------------------------------------------------------
    def solve(self, runs, answer_format):
        routes = {id(r): Route(self.most_able(list(self.agents), f"start-{r.example.id}"), self.max_forwards) for r in runs}
        self._routes = routes
        for hop in range(1, 4 * (self.max_forwards + 2) * (self.max_splits + 1) + 1):  # a bound no route reaches
            active = [r for r in runs if routes[id(r)].next]
            if not active:
                break
            groups: dict[tuple[str, int], list[Run]] = collections.defaultdict(list)
            for run in active:
                groups[(routes[id(run)].next, routes[id(run)].agent)].append(run)
            for (kind, agent), group in sorted(groups.items()):
                replies = self.ask(group, f"{hop}.{kind}.A{agent}", lambda r, k=kind: self._prompt(r, k, answer_format))
                for run, reply in zip(group, replies):
                    self._advance(run, routes[id(run)], kind, reply)
        for run in runs:
            if routes[id(run)].next:  # cannot happen within the bound; answer with what there is
                run.answer = run.answer or (routes[id(run)].progress or [""])[-1]

    def _prompt(self, run: Run, kind: str, answer_format: str) -> list[dict[str, str]]:
        state = self._routes[id(run)]
        agent = self.agents[state.agent]
        question = run.example.input.strip()
        progress = "\n".join(f"- {p}" for p in state.progress) or "None yet."
        if kind == "route":
            past = "\n".join(f"- Task: {q}\n  Decision: {d}" for q, d in self.recall(agent.routes, question)) or "None yet."
            others = self.neighbours(agent.id, state) if state.forwards_left > 0 else []
            listing = "\n".join(self.agents[j].describe() for j in others)
            choices = ("execute, forward or split", f"\nAvailable agents:\n{listing}") if others else ("execute or split", "")
            return chat(f"Task: {question}\n\nYou: {agent.describe()}\n\nYour previous related successes:\n{past}\n\n"
                        f"Progress so far:\n{progress}{choices[1]}\n\nDecide: {choices[0]}. Answer in this format:\n"
                        "DECISION: <execute, forward or split>\nREASON: <one sentence>\n"
                        "NEXT_AGENT_ID: <the agent to forward to, if forward>\n"
                        "EXECUTABLE: <the part you will do now, if split>", ROUTER.format(id=agent.id))
        if kind == "next":
            others = self.neighbours(agent.id, state)
            listing = "\n".join(self.agents[j].describe() for j in others) or "None."
            return chat(f"Task: {question}\n\nProgress so far:\n{progress}\n\nAvailable agents:\n{listing}\n\n"
                        "Is the task completed? Answer in this format:\nDECISION: <completed or incompleted>\n"
                        "REASON: <what remains>\nNEXT_AGENT_ID: <the agent to continue, if incompleted>",
                        ROUTER.format(id=agent.id))
        examples = "\n".join(f"- Task: {q}\n  Solution: {s.strip()[:300]}" for q, s in self.recall(agent.trajectories, question))
        part = f"\n\nYour part now: {state.part}" if state.part else ""
        context = f"Task: {question}{part}\n\nProgress so far:\n{progress}\n\nSimilar tasks you solved:\n{examples or 'None yet.'}"
        if kind == "thought":
            return chat(f"{context}\n\nThink about how to solve it. Be brief.", EXECUTOR.format(id=agent.id))
        thought = f"\n\nYour thought:\n{state.thought.strip()}" if state.thought else ""
        closing = f"Do your part and report the result; if that completes the task, {answer_format[0].lower()}{answer_format[1:]}" \
            if state.part else f"Solve it. {answer_format}"
        return chat(f"{context}{thought}\n\n{closing}", EXECUTOR.format(id=agent.id))

    def _advance(self, run: Run, state: Route, kind: str, reply: str) -> None:
        if kind == "route":
            self._route(state, reply)
        elif kind == "thought":
            state.thought, state.next = reply, "execute"
        elif kind == "execute":
            state.executors.append(state.agent)
            state.thought = ""
            if state.part:  # a split part: ask whether the task is done
                state.progress.append(f"Agent {state.agent} did: {state.part} -> {reply.strip()[:300]}")
                state.next = "next"
                run.answer = reply
            else:
                run.answer, state.next = reply, ""
        elif kind == "next":
            state.decisions.append((state.agent, reply))
            others = self.neighbours(state.agent, state)
            if "incomplete" not in field_of(reply, "DECISION").lower() or not others:
                state.next = ""  # completed: the last part's result is the answer
                return
            target = self._target(reply, others, f"{run.example.id}-{state.splits}")
            state.edges.append((state.agent, target))
            state.visited.append(state.agent)
            state.agent, state.forwards_left, state.part, state.next = target, self.max_forwards, "", "route"

    def _route(self, state: Route, reply: str) -> None:
        decision = field_of(reply, "DECISION").lower()
        state.decisions.append((state.agent, reply))
        others = self.neighbours(state.agent, state) if state.forwards_left > 0 else []
        if ("forward" in decision or "delegate" in decision) and others:
            target = self._target(reply, others, f"{len(state.visited)}-{state.agent}")
            state.edges.append((state.agent, target))
            state.visited.append(state.agent)
            state.agent, state.forwards_left = target, state.forwards_left - 1
            return  # the next agent's router decides
        if "split" in decision and state.splits < self.max_splits:
            state.splits += 1
            state.part = field_of(reply, "EXECUTABLE") or "the first step"
        else:
            state.part = ""
        state.next = "thought" if self.react else "execute"

    def _target(self, reply: str, others: list[int], key: str) -> int:
        named = re.search(r"\d+", field_of(reply, "NEXT_AGENT_ID"))
        if named and int(named.group()) in others:
            return int(named.group())
        return self.most_able(others, f"alternative-{key}")

    # adaptation on the train split ------------------------------------------------------------
    def learn(self, run: Run, state: Route, success: bool) -> None:
        """The code's `update_agent_graph` for one scored question."""
        for source, target in state.edges:
            self.update_edge(source, target, success)
        for agent_id in dict.fromkeys(state.executors):
            agent = self.agents[agent_id]
            agent.executed += 1
            if success:
                agent.succeeded += 1
                agent.ability = min(2.0, agent.ability + 0.1)
                agent.trajectories.append((run.example.input.strip(), run.answer))
        if success:
            for agent_id, decision in state.decisions:
                self.agents[agent_id].routes.append((run.example.input.strip(), decision.strip()[:200]))
        for agent_id in dict.fromkeys(state.executors):  # decay: an ability fades without successes
            agent = self.agents[agent_id]
            agent.since_success = 0 if success else agent.since_success + 1
            if agent.since_success >= self.decay_interval:
                agent.ability = max(0.1, agent.ability * (1 - self.decay_rate))
                agent.since_success = 0

    def optimize(self, task: Task, questions: int | None = None, batch_size: int | None = None) -> list[float]:
        """Run the first `questions` training questions (a seeded order), learning from each
        result; returns the mean reward of each batch."""
        train = list(task.examples("train"))
        random.Random(derive_seed(self.seed, "agentnet", "fit-order")).shuffle(train)
        train = train[: questions or self.fit_questions]
        size, history = batch_size or self.batch_size, []
        self._task = task
        for start in range(0, len(train), size):
            runs = [Run(x) for x in train[start : start + size]]
            self.solve(runs, task.answer_format)
            traces = [Trace(r.example.id, r.example.input, 0, r.messages, r.answer, target=r.example.target) for r in runs]
            score(task, traces, [r.example for r in runs])
            for run, trace in zip(runs, traces):
                self.learn(run, self._routes[id(run)], (trace.reward or 0.0) >= 1.0)
            history.append(sum(t.reward or 0.0 for t in traces) / len(traces))
        return history
