"""Held-out evaluation: greedy accuracy with a Wilson 95% interval, and what it cost.

Cost is reported beside accuracy because multi-agent methods are easy to flatter by spending
more: LLM calls per question, generated tokens per question (all nodes), prompt tokens per
question and wall time are measured on the same inputs as the accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

from neuromas.network import Network
from neuromas.progress import Progress, say
from neuromas.tasks.base import Split, Task
from neuromas.trace import Trace


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; well-behaved at 0, n and small n.

    `successes` may be fractional (the sum of rewards in [0, 1]): such a reward's variance is at
    most p(1 - p), the binomial's, so the interval stays valid, if conservative.
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EvalResult:
    task: str
    split: str
    n: int
    correct: float
    acc: float
    ci_low: float
    ci_high: float
    calls_per_q: float
    tokens_per_q: float
    prompt_tokens_per_q: float
    seconds: float
    # Time spent learning on the train split before this evaluation (GPTSwarm's edge optimisation);
    # 0 for a method that learns nothing. Kept apart from `seconds` so that cost is not hidden.
    fit_seconds: float = 0.0
    traces: list[Trace] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        """Everything but the traces: what goes into results.json."""
        data = asdict(self)
        data.pop("traces")
        return data

    def line(self) -> str:
        return (
            f"{self.task}/{self.split}: acc {100 * self.acc:.1f}% "
            f"[{100 * self.ci_low:.1f}, {100 * self.ci_high:.1f}] on {self.n}, "
            f"{self.calls_per_q:g} calls/q, {self.tokens_per_q:.1f} tokens/q, {self.seconds:.1f}s"
        )


def evaluate(
    net: Network,
    task: Task,
    split: Split = "test",
    limit: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    label: str = "eval",
) -> EvalResult:
    """Greedy accuracy of `net` on a task split (the first `limit` examples of it).

    With `progress`: a bar in a terminal while it runs, and one line with the result at the end
    (the only line where the output is not a terminal), starting with `label`.
    """
    examples = task.examples(split)[:limit]
    was_training = net.training
    net.eval()
    traces: list[Trace] = []
    start = time.perf_counter()
    try:
        with Progress(f"{label} {task.name}/{split}", len(examples), progress, plain_lines=False, transient=True) as bar:
            for i in range(0, len(examples), batch_size):
                batch = examples[i : i + batch_size]
                traces += net(batch, task=task)
                bar.update(len(traces), f"{sum(t.reward or 0.0 for t in traces):g} right")
    finally:
        net.train(was_training)
    result = summarize(task.name, split, traces, net.calls_per_pass, time.perf_counter() - start)
    say(f"{label}: {result.line()}", progress)
    return result


def before_after_line(before: EvalResult, after: EvalResult) -> str:
    """The one line that says whether training helped, on the same questions."""
    verdict = ("the intervals do not overlap: it learned" if after.ci_low > before.ci_high else
               "the intervals do not overlap: it got worse" if after.ci_high < before.ci_low else
               "the intervals overlap: no difference shown")
    return (f"accuracy on the same {after.n} test questions: {100 * before.acc:.1f}% "
            f"[{100 * before.ci_low:.1f}, {100 * before.ci_high:.1f}] before training -> {100 * after.acc:.1f}% "
            f"[{100 * after.ci_low:.1f}, {100 * after.ci_high:.1f}] after ({verdict})")


def reward_interval(rewards: list[float], z: float = 1.959964) -> tuple[float, float]:
    """95% interval of the mean reward: Wilson's for rewards in [0, 1] (exact-match and partial
    credit), the normal approximation for a custom reward outside that range."""
    n = len(rewards)
    if n == 0 or all(0.0 <= r <= 1.0 for r in rewards):
        return wilson_interval(sum(rewards), n, z)
    mean = sum(rewards) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in rewards) / max(n - 1, 1))
    return mean - z * sd / math.sqrt(n), mean + z * sd / math.sqrt(n)


def summarize(task: str, split: str, traces: list[Trace], calls_per_q: float, seconds: float) -> EvalResult:
    """Accuracy, interval and cost of scored greedy traces (one per question)."""
    n = len(traces)
    rewards = [t.reward or 0.0 for t in traces]
    correct = sum(rewards)
    low, high = reward_interval(rewards)
    return EvalResult(
        task=task,
        split=split,
        n=n,
        correct=correct,
        acc=correct / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        calls_per_q=float(calls_per_q),
        tokens_per_q=sum(t.tokens for t in traces) / max(n, 1),
        prompt_tokens_per_q=sum(t.prompt_tokens for t in traces) / max(n, 1),
        seconds=seconds,
        traces=traces,
    )
