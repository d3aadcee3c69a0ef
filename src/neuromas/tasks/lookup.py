"""Key-value lookup in a list: the testbed where the work splits and combining is choosing.

"Find the number of the owl." above a list of lines "owl: 47", one line per key. Cut into parts,
each part is a run of the lines with the question on top, and exactly one part holds the answer:
the whole is solved by the node whose part holds the key, and the readout only has to pick that
node's message. Two measured facts make this the decomposing task for a small model
(SmolLM2-135M, greedy, untrained; `benchmarks/claims_combine.py` and the claims ladder):

- a readout handed two correct partial sums answers their sum on 0.8% of four-number sums (the
  same addition asked as a question: 45.3%): combining parts by arithmetic starts from almost no
  reward, while an untrained readout already copies one of its messages on 85-95% of questions;
- reading gets worse with the length of the list, so a node that reads half of it answers more
  often than one that reads all of it (claims_ladder.md, 128 test questions: with 16 lines, 40.6%
  on the whole list and 62.5% for the first-layer node holding the key in its half; with 32
  lines, 19.5% and 39.8%).

With `queries: 2` the question asks for the sum of two keys' numbers ("Find the sum of the
numbers of the owl and the cat."), and the keys lie one in each half of the list (in general: one
in each of `queries` consecutive runs), so cut into that many parts, every part holds one key and
asks for it ("Find the number of the owl." above its half) and the readout must add what the
parts found: reading, the part an untrained node does often, split
from adding, the part it does from messages rarely (the arith-4x1 pattern, where only training
taught the readout to add). Values of two or more digits are never 0, so a readout that copies
one part's number is never right.

`train_pairs` and `train_queries` ([lo, hi], train split only) draw the list's length and the
number of keys asked per example, the curriculum that `train_operands` is for arith: with two
lines and two keys every part is one line, found without reading, and a readout gets questions
whose parts are right to learn adding from; with two keys of four, a part finds one number
instead of adding two.

Keys are distinct nouns, values distinct `digits`-digit numbers, so copying the wrong line is
wrong. The test set is drawn first from the seed and the knobs, distinct inputs; train is drawn
from a second stream with the test inputs excluded.
"""

from __future__ import annotations

import random
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import rewards
from neuromas.tasks.base import Example, SplitTask, consecutive_runs
from neuromas.tasks.registry import register

KEYS = ("apple bird chair desk egg fish goat hat ink jar kite lamp map nest owl pen queen rope sock tent "
        "vase wolf yarn zebra boat cake drum fan gate harp kettle leaf moon nut oven pear ring star tree "
        "bell coin door frog glove horse key lion mouse").split()


@register("lookup")
class Lookup(SplitTask):
    """Answer the number a list gives for one key; exact match on the integer."""

    name = "lookup"
    answer_format = "End your message with 'Answer: <integer>'."

    def __init__(self, pairs: int = 16, digits: int = 2, seed: int = 0, train_size: int = 2000,
                 test_size: int = 128, queries: int = 1, train_pairs: list[int] | None = None,
                 train_queries: list[int] | None = None):
        if not 2 <= pairs <= len(KEYS):
            raise NeuromasError(f"lookup: pairs={pairs} must be between 2 and {len(KEYS)} (the distinct keys it has)")
        if not 1 <= digits <= 9:
            raise NeuromasError(f"lookup: digits={digits} must be between 1 and 9")
        if not 1 <= queries <= pairs:
            raise NeuromasError(f"lookup: queries={queries} must be between 1 and pairs={pairs}")
        train_asked = _span("train_queries", train_queries, queries, 1, pairs)
        train_lengths = _span("train_pairs", train_pairs, pairs, max(2, train_asked[-1]), len(KEYS))
        self.pairs, self.digits, self.queries = pairs, digits, queries
        self.low, self.high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
        if self.high - self.low + 1 < max(pairs, train_lengths[-1]):
            raise NeuromasError(f"lookup: {digits}-digit values cannot give {max(pairs, train_lengths[-1])} "
                                "distinct numbers; raise digits")
        if train_size < 0 or test_size < 0:
            raise NeuromasError("lookup: train_size and test_size must be >= 0")
        test_rng, train_rng = random.Random(f"lookup-test:{seed}"), random.Random(f"lookup-train:{seed}")
        test: list[Example] = []
        seen: set[str] = set()
        while len(test) < test_size:  # the space is astronomically larger than any split
            example = self._example(test_rng, "test", len(test), pairs, queries)
            if example.input not in seen:
                seen.add(example.input)
                test.append(example)
        train: list[Example] = []
        while len(train) < train_size:  # a fixed knob draws nothing, so the train stream stays as it was
            length = pairs if len(train_lengths) == 1 else train_rng.choice(train_lengths)
            asked = queries if len(train_asked) == 1 else train_rng.choice(train_asked)
            example = self._example(train_rng, "train", len(train), length, asked)
            if example.input not in seen:
                train.append(example)
        super().__init__(train, test)

    def _example(self, rng: random.Random, split: str, index: int, pairs: int, n_queries: int) -> Example:
        keys = rng.sample(KEYS, pairs)
        values = rng.sample(range(self.low, self.high + 1), pairs)
        if n_queries == 1:
            queries = [rng.randrange(pairs)]
        else:  # one key in each of `n_queries` consecutive runs of the list
            queries = [rng.choice(run) for run in consecutive_runs(list(range(pairs)), n_queries)]
        lines = [f"{key}: {value}" for key, value in zip(keys, values, strict=True)]
        asked = [keys[q] for q in queries]
        return Example(id=f"lookup/{split}/{index}", input="\n".join([self._question(asked), *lines]),
                       target=sum(values[q] for q in queries),
                       meta={"keys": keys, "values": values, "queries": queries})

    @staticmethod
    def _question(asked: list[str]) -> str:
        if len(asked) == 1:
            return f"Find the number of the {asked[0]}."
        names = ", ".join(f"the {key}" for key in asked[:-1]) + f" and the {asked[-1]}"
        return f"Find the sum of the numbers of {names}."

    def split_input(self, example: Example, parts: int) -> list[str]:
        """Consecutive runs of the lines, each under the question about the asked keys it holds:
        "Find the number of the owl.\\nowl: 47\\n..." (a sub-question, as arith's part of "3+1+0+9" is
        "3+1"), the whole question over a run that holds none. More parts than lines leaves the last
        ones empty, which says so."""
        asked = self._asked(example)
        texts = []
        for run in self._runs(example, parts):
            lines = [f"{key}: {value}" for key, value in run] or ["(no lines in this part)"]
            texts.append("\n".join([self._run_question(asked, run), *lines]))
        return texts

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """The input's first line, "Find the sum of the numbers of the owl and the cat.", without
        the list; of part `part` of `parts`, the first line `split_input` gives that part."""
        return self._run_question(self._asked(example), self._runs(example, parts)[part])

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """Per part, the sum of the asked keys' numbers it holds (with one key in each part: that
        key's number); None for a part that holds none (nothing in it answers the question)."""
        asked = set(self._asked(example))
        targets = []
        for run in self._runs(example, parts):
            found = [value for key, value in run if key in asked]
            targets.append(sum(found) if found else None)
        return targets

    @classmethod
    def _run_question(cls, asked: list[str], run: list[tuple[str, int]]) -> str:
        """What a run of the lines asks: the asked keys it holds (all of them for the whole list),
        the whole question where it holds none."""
        held = [key for key in asked if key in dict(run)]
        return cls._question(held or asked)

    @staticmethod
    def _asked(example: Example) -> list[str]:
        return [example.meta["keys"][q] for q in example.meta["queries"]]

    @staticmethod
    def _runs(example: Example, parts: int) -> list[list[tuple[str, int]]]:
        return consecutive_runs(list(zip(example.meta["keys"], example.meta["values"], strict=True)), parts)

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)


def _span(field: str, value: list[int] | None, default: int, low: int, high: int) -> range:
    """A train-only [lo, hi] knob as the range it draws from (`default` alone when unset)."""
    if value is None:
        return range(default, default + 1)
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise NeuromasError(f"lookup: {field}={list(value)!r} must be a pair [lo, hi] with {low} <= lo <= hi <= {high}")
    return range(value[0], value[1] + 1)
