"""Frozen multi-agent baselines: Mixture-of-Agents, multi-agent debate, a role-assigned workflow.

Message names in traces: MoA `L<l>P<i>` (layer l, proposer i) and `aggregator`; debate
`R<r>A<i>` (round r, agent i); the workflow `planner`, `solver`, `checker`.
"""

from __future__ import annotations

from neuromas.baselines.base import Method, Run, chat
from neuromas.baselines.prompting import draft_prompt
from neuromas.errors import NeuromasError


def _listing(texts: list[str], label: str) -> str:
    return "\n".join(f"[{label} {i + 1}] {t.strip() or '(empty)'}" for i, t in enumerate(texts))


class MixtureOfAgents(Method):
    """Layers of proposers, then one aggregator (Wang et al. 2024), all the same frozen model.

    `widths` is a network's shape, output layer last: [2, 2, 1] runs two layers of two
    proposers and the aggregator, so it makes as many calls as that network. First-layer
    proposers sample (one model has no other source of diversity); later ones read every
    response of the layer before, as a dense network layer does, but with an instruction to
    synthesise instead of a structural prompt.
    """

    name = "moa"

    def __init__(self, *args, widths: list[int] | tuple[int, ...] = (2, 1), **kwargs):
        super().__init__(*args, **kwargs)
        if len(widths) < 2 or widths[-1] != 1 or min(widths) < 1:
            raise NeuromasError(f"moa: widths {list(widths)} must be proposer layers then one aggregator, e.g. [2, 1]")
        self.widths = list(widths)

    @property
    def calls(self) -> int:
        return sum(self.widths)

    def solve(self, runs, answer_format):
        previous: dict[int, list[str]] = {}
        for l, width in enumerate(self.widths):
            last = l == len(self.widths) - 1
            layer: dict[int, list[str]] = {id(r): [] for r in runs}
            for i in range(width):
                if l == 0:
                    texts = self.ask(runs, f"L1P{i + 1}", lambda r: draft_prompt(r, answer_format), sample=True)
                else:
                    verb = "Synthesize these responses into one best answer." if last else \
                        "Using these responses, write your own best answer."

                    def synthesis(run: Run, verb=verb) -> list[dict[str, str]]:
                        return chat(f"{run.example.input.strip()}\n\nResponses from other assistants:\n"
                                    f"{_listing(previous[id(run)], 'Response')}\n\n{verb} {answer_format}")

                    texts = self.ask(runs, "aggregator" if last else f"L{l + 1}P{i + 1}", synthesis)
                for run, text in zip(runs, texts):
                    layer[id(run)].append(text)
            previous = layer
        for run in runs:
            run.answer = previous[id(run)][0]


class Debate(Method):
    """`agents` agents answer, then for `rounds - 1` rounds each reads the others' latest answers
    and updates its own (Du et al. 2023); the final answer is the majority of the last round."""

    name = "debate"

    def __init__(self, *args, agents: int = 3, rounds: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        if agents < 2 or rounds < 1:
            raise NeuromasError(f"debate: needs at least 2 agents and 1 round (got {agents} agents, {rounds} rounds)")
        self.agents, self.rounds = agents, rounds

    @property
    def calls(self) -> int:
        return self.agents * self.rounds

    def solve(self, runs, answer_format):
        for a in range(self.agents):
            self.ask(runs, f"R1A{a + 1}", lambda r: draft_prompt(r, answer_format), sample=True)
        for r in range(2, self.rounds + 1):
            for a in range(self.agents):
                def update(run: Run, a=a, r=r) -> list[dict[str, str]]:
                    others = [run.messages[f"R{r - 1}A{b + 1}"].text for b in range(self.agents) if b != a]
                    own = run.messages[f"R{r - 1}A{a + 1}"].text.strip()
                    return chat(f"{run.example.input.strip()}\n\nYour previous answer:\n{own}\n\n"
                                f"Answers of the other agents:\n{_listing(others, 'Agent')}\n\n"
                                f"Using their reasoning as additional advice, give your updated answer. {answer_format}")

                self.ask(runs, f"R{r}A{a + 1}", update, sample=True)
        for run in runs:
            run.answer = self.vote(run, [f"R{self.rounds}A{a + 1}" for a in range(self.agents)])


PLANNER = "You are the planner. Break the problem into short steps for a solver to follow. Do not solve it."
SOLVER = "You are the solver. Follow the plan and solve the problem."
CHECKER = "You are the checker. Verify the solution, correct any mistake, and give the final answer."


class RoleWorkflow(Method):
    """Planner -> solver -> checker, each told its role: what a hand-designed workflow looks like,
    and the role-assigned counterpart of a role-free [1, 1, 1] network."""

    name = "workflow"

    @property
    def calls(self) -> int:
        return 3

    def solve(self, runs, answer_format):
        plans = dict(zip(map(id, runs), self.ask(runs, "planner", lambda r: chat(r.example.input.strip(), PLANNER))))

        def solver(run: Run) -> list[dict[str, str]]:
            return chat(f"{run.example.input.strip()}\n\nPlan:\n{plans[id(run)].strip()}\n\n{answer_format}", SOLVER)

        solutions = dict(zip(map(id, runs), self.ask(runs, "solver", solver)))

        def checker(run: Run) -> list[dict[str, str]]:
            return chat(f"{run.example.input.strip()}\n\nSolution:\n{solutions[id(run)].strip()}\n\n{answer_format}", CHECKER)

        for run, text in zip(runs, self.ask(runs, "checker", checker)):
            run.answer = text
