"""What every baseline is: a frozen-backbone method that answers questions like a network does.

A method takes the same inputs as `Network.forward` and returns the same `Trace`s (one per
question, each LLM call a named message), so `evaluate`, the traces files and the report treat
baselines and networks alike, on the same backend and inputs. Every method batches: a step of
the method (all drafts, then all critiques, ...) is one `backend.generate` call over every
question of the batch, as a network layer is.

Methods that need diverse samples (self-consistency, debate, mixture-of-agents proposers) sample
at `temperature` with seeds derived from the method's seed, so a rerun is identical; the others
decode greedily. Every call has a system turn of our own: SmolLM2's template otherwise injects
its persona.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Sequence

from neuromas.backends import from_config
from neuromas.backends.base import Backend, GenerationRequest
from neuromas.config import ModelConfig
from neuromas.network import DEFAULT_ANSWER_FORMAT, score
from neuromas.prompts import prompt_text
from neuromas.seeds import derive_seed
from neuromas.tasks.base import Example, Task
from neuromas.trace import NodeMessage, Trace

ASSISTANT = "You are a helpful assistant."


def chat(user: str, system: str = ASSISTANT) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass
class Run:
    """One question's way through a method: every call's message, and the final answer."""

    example: Example
    messages: dict[str, NodeMessage] = field(default_factory=dict)
    answer: str = ""


class Method:
    """Base class: subclasses set `name` and `calls` and implement `solve`."""

    name = "method"

    def __init__(self, backend: Backend | None = None, model: ModelConfig | None = None,
                 max_new_tokens: int = 96, temperature: float = 0.7, seed: int = 0):
        self._backend, self.model_config = backend, model or ModelConfig()
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.training = False  # frozen: evaluation and "training" mode behave the same
        self._calls_made = 0
        self._answered, self._messages = 0, 0  # questions answered through `__call__`, and their calls

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = from_config(self.model_config)
        return self._backend

    @property
    def calls(self) -> int:
        """LLM calls per question."""
        return 1

    @property
    def calls_per_pass(self) -> float:  # the name `evaluate` reads, shared with Network
        """Calls per question: measured over the questions answered so far (every call is one
        message of a trace), else `calls`. Equal for methods of fixed shape; for those whose
        calls depend on the question (GoA drops weak agents, AgentNet routes), the mean."""
        return self._messages / self._answered if self._answered else self.calls

    def eval(self) -> Method:
        return self

    def train(self, mode: bool = True) -> Method:
        return self

    def __call__(self, inputs: Sequence[str | Example], num_samples: int = 1, task: Task | None = None,
                 seed: int | None = None) -> list[Trace]:
        examples = [x if isinstance(x, Example) else Example(id=str(i), input=x, target=None) for i, x in enumerate(inputs)]
        runs = [Run(example) for example in examples]
        self._task = task
        self.solve(runs, task.answer_format if task is not None else DEFAULT_ANSWER_FORMAT)
        self._answered += len(runs)
        self._messages += sum(len(r.messages) for r in runs)
        traces = [Trace(r.example.id, r.example.input, 0, r.messages, r.answer, target=r.example.target) for r in runs]
        if task is not None:
            score(task, traces, examples)
        return [t for t in traces for _ in range(num_samples)]

    def solve(self, runs: list[Run], answer_format: str) -> None:
        raise NotImplementedError

    # helpers for subclasses ----------------------------------------------------------------
    def ask(self, runs: list[Run], step: str, prompts: Callable[[Run], list[dict[str, str]]],
            sample: bool = False, max_new_tokens: int | None = None) -> list[str]:
        """One batched call: every run's chat for this step; records and returns the messages."""
        chats = [prompts(run) for run in runs]
        temperature = self.temperature if sample else 0.0
        tokens = max_new_tokens or self.max_new_tokens
        requests = [GenerationRequest(c, None, tokens, temperature) for c in chats]
        self._calls_made += 1
        generations = self.backend.generate(requests, seed=derive_seed(self.seed, "baseline", step, self._calls_made))
        for run, c, gen in zip(runs, chats, generations):
            run.messages[step] = NodeMessage(step, prompt_text(c), gen.text, gen.token_ids, gen.logprobs, gen.prompt_ids,
                                             gen.finished, gen.completion_tokens, gen.prompt_tokens)
        return [gen.text for gen in generations]

    def vote(self, run: Run, steps: list[str]) -> str:
        """Majority answer over some of a run's messages: the first message giving the most
        common parsed answer (messages without one never win while another has one)."""
        texts = [run.messages[s].text for s in steps]
        parsed = [self._extract(t, run.example) for t in texts]
        counts = collections.Counter(p for p in parsed if p is not None)
        if not counts:
            return texts[0]
        best = counts.most_common(1)[0][0]
        return texts[parsed.index(best)]

    def _extract(self, text: str, example: Example) -> str | None:
        if self._task is None:
            return text.strip() or None
        try:
            return self._task.extract(text, example)
        except Exception:  # noqa: BLE001 - a vote must not crash on odd text, like a reward
            return None
