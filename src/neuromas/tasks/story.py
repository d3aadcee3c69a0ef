"""Sums told as a story: reading numbers out of sentences and adding them.

"Anna has 7 coins. Ben has 3 coins. Carl has 8 coins. Dana has 2 coins. How many coins do Anna,
Ben, Carl and Dana have in all?" The answer is a sum of one-digit numbers, as in arith's
"What is 7+3+8+2?", but each number has to be read out of its sentence first, and the question
says neither "add" nor where the numbers are. Cut into parts, each part is a run of the
sentences under the question about the people in it ("How many coins do Anna and Ben have in
all?", or "How many coins does Anna have?" for a run of one), and the readout adds what the parts
found. Unlike arith's one-number part ("What is 7?", which the untrained SmolLM2-135M answers
with unrelated text), a one-person part is a question the model answers by reading, so a
training mix of two to four people (`train_people`) gives the readout right parts to learn
adding from on every size of question.

Names are distinct within an example, the counted thing is one noun per example, and values are
drawn from `min_value`-`max_value` (1-9 by default: nobody "has 0 coins", and a part is never 0,
so a readout that copies one message is never right). The test set is drawn first from the seed
and the knobs, distinct inputs; train is drawn from a second stream with the test inputs excluded.
"""

from __future__ import annotations

import random
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import rewards
from neuromas.tasks.base import Example, SplitTask, consecutive_runs, draw_splits, train_counts
from neuromas.tasks.registry import register

NAMES = ("Anna Ben Carl Dana Emma Finn Gina Hugo Ivy Jack Kate Leo Mia Nina Owen Paul Rosa Sam Tina "
         "Vera Will Zoe").split()
THINGS = "apples books coins pens stamps marbles cards shells cups hats".split()


@register("story")
class StorySum(SplitTask):
    """How many things a few people have together; exact match on the integer."""

    name = "story"
    answer_format = "End your message with 'Answer: <integer>'."

    def __init__(self, people: int = 4, min_value: int = 1, max_value: int = 9, seed: int = 0,
                 train_size: int = 2000, test_size: int = 128, train_people: list[int] | None = None):
        if not 1 <= people <= len(NAMES):
            raise NeuromasError(f"story: people={people} must be between 1 and {len(NAMES)} (the distinct names it has)")
        if not 0 <= min_value <= max_value:
            raise NeuromasError(f"story: min_value={min_value}, max_value={max_value} must satisfy 0 <= min_value <= max_value")
        counts = train_counts("story", "train_people", train_people, people, len(NAMES))
        self.low, self.high = min_value, max_value

        def draw(rng: random.Random, split: str, index: int) -> Example:
            return self._example(rng, split, index, people if split == "test" else rng.choice(counts))

        train, test = draw_splits("story", draw, seed, test_size, train_size, "people, min_value-max_value")
        super().__init__(train, test)

    def _example(self, rng: random.Random, split: str, index: int, people: int) -> Example:
        names = rng.sample(NAMES, people)
        thing = rng.choice(THINGS)
        values = [rng.randint(self.low, self.high) for _ in names]
        sentences = [_has(name, value, thing) for name, value in zip(names, values, strict=True)]
        return Example(id=f"story/{split}/{index}", input=" ".join([*sentences, _question(names, thing)]),
                       target=sum(values), meta={"names": names, "values": values, "thing": thing})

    def split_input(self, example: Example, parts: int) -> list[str]:
        """Consecutive runs of the sentences, each under the question about its people: "Anna has 7
        coins. Ben has 3 coins. How many coins do Anna and Ben have in all?"; a part left with
        nobody (more parts than people) says so rather than inventing a question."""
        texts = []
        for run in self._runs(example, parts):
            if not run:
                texts.append("(nobody in this part)")
                continue
            sentences = [_has(name, value, example.meta["thing"]) for name, value in run]
            texts.append(" ".join([*sentences, _question([name for name, _ in run], example.meta["thing"])]))
        return texts

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """The question without the sentences, "How many coins do Anna, Ben, Carl and Dana have in
        all?"; of part `part` of `parts`, the question about that part's people."""
        names = [name for name, _ in self._runs(example, parts)[part]] or example.meta["names"]
        return _question(names, example.meta["thing"])

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """The sum of each part's values (None for a part with nobody)."""
        return [sum(value for _, value in run) if run else None for run in self._runs(example, parts)]

    @staticmethod
    def _runs(example: Example, parts: int) -> list[list[tuple[str, int]]]:
        return consecutive_runs(list(zip(example.meta["names"], example.meta["values"], strict=True)), parts)

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_number(target)


def _has(name: str, value: int, thing: str) -> str:
    return f"{name} has {value} {thing if value != 1 else thing[:-1]}."  # every thing is a plain plural


def _question(names: list[str], thing: str) -> str:
    if len(names) == 1:
        return f"How many {thing} does {names[0]} have?"
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"How many {thing} do {listed} have in all?"
