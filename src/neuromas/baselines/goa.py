"""Graph-of-Agents (GoA, arXiv:2604.17148, ICLR 2026): a graph of agents built per question.

Followed: UNITES-Lab/GoA `main.py` (`process_fn`, the defaults of `main`: top_k 3, threshold
0.05, one round, max pooling) and `modules.py` (`edge_sampling`, `parse_ranked_scores`,
`_run_s_to_t`, `_run_t_to_s`, `graph_pooling`). Per question:

1. **Node sampling.** GoA's meta-LLM picks `top_k` agents from a pool of different models by
   their model cards. Here every agent is the one shared base model, so the pool is `agents`
   **samples at temperature > 0** (this method's `temperature`) of the same prompt, not
   role-free prompts: with identical cards the selection has nothing to choose between, so
   the meta-LLM call is not made (0 calls) and the agents differ only by their samples.
2. **Answers.** Each agent answers with brief reasoning and a JSON object
   `{"reasoning", "answer", "confidence_level"}`. GoA uses the confidence only to replace a
   doubtful agent by the general model, which its code skips when the agent *is* the general
   model (`maybe_replace_with_general`): with one model that is always so, and no call is made.
3. **Edge sampling.** Each agent scores the other agents' responses with numbers summing to
   1 (a reply that does not parse, or whose scores do not sum to (0.9, 1], is asked again with
   the invalid replies shown, up to `retries` times, then that judge is dropped). An agent's
   score is the mean over its judges, normalised to sum 1; agents at or under `threshold` are
   dropped; the rest are ranked, with an edge from each agent to every lower-ranked one. If one
   agent survives its answer is final; if none, the answers are mean-pooled (one call).
4. **Message passing**, one round: every target (all but the top agent) refines its answer
   reading its higher-ranked sources' answers, each labelled high / moderate / low relevance by
   its normalised score; then the sources refine theirs reading their targets' refinements
   (with max pooling only the top agent does, as in `_run_t_to_s`).
5. **Graph pooling.** `max`: the top agent's final answer. `mean`: one more call synthesises
   every agent's final answer, each labelled by its score.

Calls per question: `agents` answers + `agents` scorings (+ retries) + (survivors - 1)
refinements + 1 (max) or survivors - 1 (+1 pooling, mean); fewer when agents are dropped, so
the reported calls/q is measured. Departures besides the shared model: agents sample, the
later calls decode greedily (like the other baselines; GoA samples every call at 0.7), and a
scoring reply is capped at `score_tokens` tokens (a list of numbers needs few; GoA allows 800). Message names:
`answer<i>`, `score<i>` (retries `score<i>.<t>`), `refine<i>`, `final<i>`, `pool`.
"""

from __future__ import annotations

import json
import re

from neuromas.baselines.base import Method, Run, chat
from neuromas.baselines.prompting import STEP_BY_STEP
from neuromas.errors import NeuromasError

SCORE_EXAMPLES = {1: [1.0], 2: [0.7, 0.3], 3: [0.1, 0.1, 0.8], 4: [0.3, 0.4, 0.1, 0.2], 5: [0.2, 0.4, 0.1, 0.3, 0.0]}


def parse_scores(text: str) -> list[float]:
    """GoA's `parse_ranked_scores`: a bracketed list, else `i: score` pairs, else bare numbers."""
    text = text.strip()[:2000]
    match = re.search(r"\[([0-9.,\s]+)\]", text)
    if match:
        try:
            return [float(t) for t in re.split(r"[,\s]+", match.group(1)) if t]
        except ValueError:
            pass
    pairs = re.findall(r"[\*\-]?\s*'?(\d+)'?\s*:\s*([0-9]*\.?[0-9]+)", text)
    if pairs:
        return [v for _, v in sorted((int(k), float(v)) for k, v in pairs)]
    try:
        return [float(t) for t in re.split(r"[,\s]+", text) if t]
    except ValueError:
        return []


def valid_scores(scores: list[float], others: int) -> bool:
    return len(scores) == others and 0.9 < sum(scores) <= 1.0 + 1e-9


def rank(judged: dict[int, dict[int, float]], agents: int, threshold: float) -> dict[int, float]:
    """Normalised scores of the agents that survive, best first (GoA's `edge_sampling`).

    `judged[j]` holds judge j's scores of the others (absent: that judge was dropped). Each
    agent's score is the mean over the judges that scored it, the scores are normalised to sum
    1, and agents at or under `threshold` are dropped."""
    totals, counts = [0.0] * agents, [0] * agents
    for scores in judged.values():
        for agent, score in scores.items():
            totals[agent] += score
            counts[agent] += 1
    mean = [totals[a] / counts[a] if counts[a] else 0.0 for a in range(agents)]
    norm = 1 / sum(mean) if sum(mean) > 0 else 1.0
    ranked = sorted(range(agents), key=lambda a: -mean[a])  # stable: ties keep the agents' order
    return {a: mean[a] * norm for a in ranked if mean[a] * norm > threshold}


def relevance(weight: float) -> str:
    return "high" if weight > 0.7 else "moderate" if weight > 0.4 else "low"


def json_answer(text: str) -> str:
    """An answer given as GoA's JSON, restated as "Answer: x" so the task reads it (the JSON's
    last number is the confidence, which a last-number fallback would take)."""
    match = re.search(r'"answer"\s*:\s*"?([^",}\n]*)', text)
    return f"{text}\nAnswer: {match.group(1).strip()}" if match and match.group(1).strip() else text


class GraphOfAgents(Method):
    name = "goa"

    def __init__(self, *args, agents: int = 3, pooling: str = "max", threshold: float = 0.05, retries: int = 3,
                 score_tokens: int = 32, **kwargs):
        super().__init__(*args, **kwargs)
        if agents < 2 or agents > 6:
            raise NeuromasError(f"goa: agents must be 2 to 6 (got {agents})")
        if pooling not in ("max", "mean"):
            raise NeuromasError(f"goa: pooling must be max or mean (got {pooling!r})")
        if not 0 <= threshold < 1 or retries < 0:
            raise NeuromasError(f"goa: threshold must be in [0, 1) and retries >= 0 (got {threshold}, {retries})")
        self.agents, self.pooling, self.threshold, self.retries = agents, pooling, threshold, retries
        self.score_tokens = score_tokens

    @property
    def calls(self) -> int:
        """The most calls a question can take without retries: every agent survives."""
        k = self.agents
        return 2 * k + (k - 1) + (1 if self.pooling == "max" else k)

    def solve(self, runs, answer_format):
        k = self.agents
        question = {id(r): f"{r.example.input.strip()}\n\n{STEP_BY_STEP} {answer_format}" for r in runs}

        def answer(run: Run) -> list[dict[str, str]]:
            return chat(f"{question[id(run)]}\n\nProvide brief reasoning (2-3 key sentences), then output your final "
                        'answer in JSON format:\n{"reasoning": "<brief reasoning>", "answer": "<your final answer>", '
                        '"confidence_level": "<a float between 0.0 and 1.0>"}\nPlease strictly output in JSON format.')

        for i in range(k):
            self.ask(runs, f"answer{i + 1}", answer, sample=True)
        initial = {id(r): [r.messages[f"answer{i + 1}"].text for i in range(k)] for r in runs}
        scores = self._edge_sampling(runs, question, initial)
        for run in runs:
            survivors = scores[id(run)]
            if len(survivors) == 1:
                run.answer = json_answer(initial[id(run)][next(iter(survivors))])
        passing = [r for r in runs if len(scores[id(r)]) >= 2]
        final = self._message_passing(passing, question, initial, scores, answer_format)
        for run in passing:
            top = next(iter(scores[id(run)]))
            run.answer = final[id(run)][top]
        pooled = [r for r in runs if not scores[id(r)]] + (passing if self.pooling == "mean" else [])
        if pooled:
            self._pool(pooled, question, {id(r): final.get(id(r), dict(enumerate(initial[id(r)]))) for r in pooled},
                       {id(r): scores[id(r)] for r in pooled if scores[id(r)]}, answer_format)

    def _edge_sampling(self, runs: list[Run], question: dict, initial: dict) -> dict[int, dict[int, float]]:
        """Each agent scores the others (retrying invalid replies); the surviving ranking per run."""
        judged: dict[int, dict[int, dict[int, float]]] = {id(r): {} for r in runs}
        for j in range(self.agents):
            others = [a for a in range(self.agents) if a != j]
            invalid: dict[int, list[str]] = {id(r): [] for r in runs}

            def score(run: Run, j=j, others=others, invalid=invalid) -> list[dict[str, str]]:
                responses = json.dumps({str(a + 1): initial[id(run)][a] for a in others})
                text = (f"Score the following {len(others)} model responses to this question.\n\n"
                        f"Question: {question[id(run)]}\n\n"
                        f"Responses (in order: {[a + 1 for a in others]}):\n{responses}\n\n"
                        "Assign a score to each response based on correctness, coherence, and relevance.\n"
                        f"Scores must sum to exactly 1.0. Output only a comma-separated list of {len(others)} scores.\n\n"
                        f"Example: {SCORE_EXAMPLES[len(others)]}\n\nAnswer:")
                if invalid[id(run)]:
                    text += (f"\n(Previous invalid responses: {invalid[id(run)]}. "
                             f"Must have exactly {len(others)} scores summing to 1.0.)")
                return chat(text)

            pending = runs
            for attempt in range(self.retries + 1):
                step = f"score{j + 1}" if attempt == 0 else f"score{j + 1}.{attempt + 1}"
                replies = self.ask(pending, step, score, max_new_tokens=min(self.score_tokens, self.max_new_tokens))
                failed = []
                for run, reply in zip(pending, replies):
                    parsed = parse_scores(reply)
                    if valid_scores(parsed, len(others)):
                        judged[id(run)][j] = dict(zip(others, parsed))
                    else:
                        invalid[id(run)].append(reply.strip())
                        failed.append(run)
                pending = failed
                if not pending:
                    break
        return {id(r): rank(judged[id(r)], self.agents, self.threshold) for r in runs}

    def _message_passing(self, runs: list[Run], question: dict, initial: dict, scores: dict,
                         answer_format: str) -> dict[int, dict[int, str]]:
        """One round: targets refine from their sources, then sources from their targets' refinements."""
        final = {id(r): {} for r in runs}

        def listing(run: Run, refs: list[int], texts: dict[int, str]) -> str:
            total = sum(scores[id(run)][a] for a in refs)
            return "\n\n".join(f"Model {a + 1} ({relevance(scores[id(run)][a] / total)} relevance):\n{texts[a]}"
                               for a in refs)

        for a in range(self.agents):  # source -> target: each target reads its higher-ranked sources
            def refine(run: Run, a=a) -> list[dict[str, str]]:
                order = list(scores[id(run)])
                sources = order[: order.index(a)]
                texts = dict(enumerate(initial[id(run)]))
                return chat(f"Refine your answer by considering other models' responses.\n\n"
                            f"Question: {question[id(run)]}\n\nYour initial response: {initial[id(run)][a]}\n\n"
                            f"Other models' responses (ranked by relevance):\n{listing(run, sources, texts)}\n\n"
                            "Integrate useful insights from these responses to improve your answer. "
                            "Be critical — some information may be incorrect.\n")

            targets = [r for r in runs if a in scores[id(r)] and list(scores[id(r)]).index(a) > 0]
            for run, text in zip(targets, self.ask(targets, f"refine{a + 1}", refine) if targets else []):
                final[id(run)][a] = text

        refined = {key: dict(texts) for key, texts in final.items()}  # what the sources read
        closing = answer_format if self.pooling == "max" else ""
        for a in range(self.agents):  # target -> source: each source reads its targets' refinements
            def finalise(run: Run, a=a) -> list[dict[str, str]]:
                order = list(scores[id(run)])
                targets = order[order.index(a) + 1 :]
                return chat("Other models refined their answers after seeing yours. Use their improvements to "
                            f"finalize your response.\n\nQuestion: {question[id(run)]}\n\n"
                            f"Your initial response: {initial[id(run)][a]}\n\n"
                            f"Updated responses from other models:\n{listing(run, targets, refined[id(run)])}\n\n"
                            "Write your final response, incorporating valuable refinements. "
                            f"Be critical — some information may be incorrect.\n{closing}")

            def is_source(run: Run, a=a) -> bool:
                order = list(scores[id(run)])
                if a not in order or order.index(a) == len(order) - 1:
                    return False
                return self.pooling == "mean" or order.index(a) == 0  # max pooling: only the top agent
            sources = [r for r in runs if is_source(r)]
            for run, text in zip(sources, self.ask(sources, f"final{a + 1}", finalise) if sources else []):
                final[id(run)][a] = text
        return final

    def _pool(self, runs: list[Run], question: dict, answers: dict, weights: dict, answer_format: str) -> None:
        """Mean pooling: one call synthesises the answers, labelled by score when there are scores."""
        def pool(run: Run) -> list[dict[str, str]]:
            w = weights.get(id(run))
            parts = [f"Model {a + 1} ({relevance(w[a])} relevance):\n{text}" if w else f"Model {a + 1}:\n{text}"
                     for a, text in sorted(answers[id(run)].items())]
            return chat("Synthesize these model responses into one final answer.\n\n"
                        f"Question: {question[id(run)]}\n\nModel responses:\n" + "\n\n".join(parts) + "\n\n"
                        "Produce an accurate, coherent answer integrating the best insights. "
                        f"Be critical — some information may be incorrect.\n{answer_format}")

        for run, text in zip(runs, self.ask(runs, "pool", pool)):
            run.answer = text
