"""What a task is: examples with targets, an answer format for the readout, and a reward.

Tasks are plain objects. A network never looks inside one except for three things: the input
text of each example, the `answer_format` sentence shown to the readout node, and `reward`, which
scores the readout's final messages against the targets (TRL-style: a list in, a list of floats
out). `extract` is the same parsing the reward uses, exposed for traces and reports.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from neuromas.errors import NeuromasError

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class Example:
    """One task instance. `target` is whatever the reward needs (a number, a letter, unit tests)."""

    id: str
    input: str
    target: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Task:
    """Base class: subclasses fill `name`, `answer_format`, `examples()` and `extract()`.

    The default `reward` is exact match of `extract(completion)` against `normalize(target)`,
    which is what every task of the paper uses except HumanEval (which runs unit tests).
    Reward parsing never raises: garbage, empty or huge answers score 0.

    `extract` takes the example as an optional second argument because some answers can only be
    read against it: a multiple-choice reply that names the option's text instead of its letter
    needs that example's options. Without the example, extraction falls back to what the text
    alone says.
    """

    name: str = "task"
    answer_format: str = "End your message with 'Answer: <answer>'."

    def examples(self, split: Split) -> list[Example]:
        raise NotImplementedError

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        """The answer a completion commits to, normalised, or None if it gives none."""
        raise NotImplementedError

    def normalize(self, target: Any) -> str:
        return str(target).strip()

    def split_input(self, example: Example, parts: int) -> list[str]:
        """The input cut into `parts` self-contained sub-inputs, for `network.input_slices`.

        Only tasks that decompose into independent pieces can say how to cut them; the others
        refuse, naming the setting to turn off.
        """
        raise NeuromasError(
            f"task {self.name!r} cannot split its input into parts: set network.input_slices: false "
            "(tasks that can: arith with '+', lookup, story, jsonl rows with \"parts\", bbh word_sorting and object_counting)"
        )

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """What the input asks, without the data it asks about, for `network.input_to_all:
        question`; with `parts` > 1, what part `part` of `split_input(example, parts)` asks (the
        question a node reducing that part's messages answers). Only tasks whose inputs separate
        the two can say; the others refuse."""
        raise NeuromasError(
            f"task {self.name!r} does not separate its question from its data: set network.input_to_all "
            "to true or false (tasks that can: lookup, story, arith sums, jsonl rows with \"question\")"
        )

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """What a node that solves its part alone would answer, one per part of `split_input`,
        or None where the task cannot say (an analysis reads it; training never does)."""
        return None

    def reward(self, completions: list[str], examples: list[Example]) -> list[float]:
        rewards = []
        for completion, example in zip(completions, examples, strict=True):
            try:
                answer = self.extract(completion, example)
                right = answer is not None and answer == self.normalize(example.target)
                rewards.append(float(right))
            except Exception:  # noqa: BLE001 - a reward must never crash a run on odd text
                rewards.append(0.0)
        return rewards

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def consecutive_runs(items: list, parts: int) -> list[list]:
    """`items` cut into `parts` consecutive runs, the first ones one longer where it does not
    divide: 5 items in 2 parts -> 3 + 2; more parts than items leaves the last runs empty."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        runs.append(list(items[start:end]))
        start = end
    return runs


def train_counts(task: str, field: str, pair: list[int] | None, test_count: int, high: int) -> range:
    """The sizes a generated task's train split draws from: `pair` = [lo, hi] (a curriculum of
    shorter inputs than the test's), or the test's own size where it is None."""
    if pair is None:
        return range(test_count, test_count + 1)
    if len(pair) != 2 or not 1 <= pair[0] <= pair[1] <= high:
        raise NeuromasError(f"{task}: {field}={list(pair)!r} must be a pair [lo, hi] with 1 <= lo <= hi <= {high}")
    return range(pair[0], pair[1] + 1)


def draw_splits(name: str, draw: Callable[[random.Random, str, int], Example], seed: int, test_size: int,
                train_size: int, knobs: str) -> tuple[list[Example], list[Example]]:
    """(train, test) of a generated task. The test set is drawn first, from the seed alone, and
    holds distinct inputs, so it depends only on the seed and the knobs; train is drawn from a
    second stream with the test inputs excluded and may repeat an input (short ones do, and a
    trainer samples with replacement anyway). `draw(rng, split, index)` makes one example; both
    loops are bounded, so knobs that hold too few inputs fail in one line naming them (`knobs`)."""
    if train_size < 0 or test_size < 0:
        raise NeuromasError(f"{name}: train_size and test_size must be >= 0")
    test_rng, train_rng = random.Random(f"{name}-test:{seed}"), random.Random(f"{name}-train:{seed}")
    test: list[Example] = []
    seen: set[str] = set()
    for _ in range(50 * test_size + 1000):
        if len(test) == test_size:
            break
        example = draw(test_rng, "test", len(test))
        if example.input not in seen:
            seen.add(example.input)
            test.append(example)
    train: list[Example] = []
    for _ in range(100 * train_size + 10000):
        if len(train) == train_size:
            break
        example = draw(train_rng, "train", len(train))
        if example.input not in seen:
            train.append(example)
    if len(test) < test_size or len(train) < train_size:
        raise NeuromasError(f"{name}: could not draw {test_size} distinct test inputs and {train_size} others to "
                            f"train on; lower test_size or widen the knobs ({knobs})")
    return train, test


def check_split(split: str) -> None:
    """Fail with the valid names: a typo such as 'valid' must not silently give no examples."""
    if split not in SPLITS:
        raise NeuromasError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


class SplitTask(Task):
    """A task whose two splits are built once, in `__init__`, and then only read.

    Building up front means a bad path or an impossible split size fails when the task is
    loaded (with the config), not halfway through a training run.
    """

    def __init__(self, train: list[Example], test: list[Example]):
        self._splits = {"train": train, "test": test}

    def examples(self, split: Split) -> list[Example]:
        check_split(split)
        return list(self._splits[split])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self._splits[s])}" for s in SPLITS)
        return f"{type(self).__name__}(name={self.name!r}, {sizes})"
