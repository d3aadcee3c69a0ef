"""Single-model prompting baselines: direct, chain of thought, self-consistency, Self-Refine,
Self-Check. Message names in traces: `answer`, `sample<k>`, `draft`, `feedback<r>`, `refine<r>`,
`check`."""

from __future__ import annotations

from neuromas.baselines.base import Method, Run, chat

STEP_BY_STEP = "Think step by step."


def draft_prompt(run: Run, answer_format: str, reasoning: bool = True) -> list[dict[str, str]]:
    hint = f"{STEP_BY_STEP} " if reasoning else ""
    return chat(f"{run.example.input.strip()}\n\n{hint}{answer_format}")


class Direct(Method):
    """Ask once, greedily, for the answer in the task's format."""

    name = "direct"

    def solve(self, runs, answer_format):
        for run, text in zip(runs, self.ask(runs, "answer", lambda r: draft_prompt(r, answer_format, reasoning=False))):
            run.answer = text


class ChainOfThought(Method):
    """Ask once, greedily, to reason step by step before the answer."""

    name = "cot"

    def solve(self, runs, answer_format):
        for run, text in zip(runs, self.ask(runs, "answer", lambda r: draft_prompt(r, answer_format))):
            run.answer = text


class SelfConsistency(Method):
    """k sampled chains of thought, majority vote over their parsed answers (Wang et al. 2023).
    With k equal to a network's calls per question it is the cost-matched comparison."""

    name = "self-consistency"

    def __init__(self, *args, k: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        self.k = k

    @property
    def calls(self) -> int:
        return self.k

    def solve(self, runs, answer_format):
        steps = [f"sample{i + 1}" for i in range(self.k)]
        for step in steps:
            self.ask(runs, step, lambda r: draft_prompt(r, answer_format), sample=True)
        for run in runs:
            run.answer = self.vote(run, steps)


class SelfRefine(Method):
    """Draft, then `rounds` x (feedback on the latest answer, refined answer) (Madaan et al. 2023)."""

    name = "self-refine"

    def __init__(self, *args, rounds: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.rounds = rounds

    @property
    def calls(self) -> int:
        return 1 + 2 * self.rounds

    def solve(self, runs, answer_format):
        latest = {id(r): t for r, t in zip(runs, self.ask(runs, "draft", lambda r: draft_prompt(r, answer_format)))}
        for k in range(1, self.rounds + 1):
            def feedback(run: Run) -> list[dict[str, str]]:
                return chat(f"{run.example.input.strip()}\n\nProposed answer:\n{latest[id(run)].strip()}\n\n"
                            "Point out any mistake in the proposed answer. Be brief.")

            notes = dict(zip(map(id, runs), self.ask(runs, f"feedback{k}", feedback)))

            def refine(run: Run) -> list[dict[str, str]]:
                return chat(f"{run.example.input.strip()}\n\nProposed answer:\n{latest[id(run)].strip()}\n\n"
                            f"Feedback:\n{notes[id(run)].strip()}\n\nWrite an improved answer. {answer_format}")

            latest = dict(zip(map(id, runs), self.ask(runs, f"refine{k}", refine)))
        for run in runs:
            run.answer = latest[id(run)]


class SelfCheck(Method):
    """Draft, then one call that checks the draft step by step and states the final answer."""

    name = "self-check"

    @property
    def calls(self) -> int:
        return 2

    def solve(self, runs, answer_format):
        drafts = dict(zip(map(id, runs), self.ask(runs, "draft", lambda r: draft_prompt(r, answer_format))))

        def check(run: Run) -> list[dict[str, str]]:
            return chat(f"{run.example.input.strip()}\n\nProposed answer:\n{drafts[id(run)].strip()}\n\n"
                        f"Check the proposed answer step by step and correct it if it is wrong. {answer_format}")

        for run, text in zip(runs, self.ask(runs, "check", check)):
            run.answer = text
