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
                 test_size: int = 128):
        if not 2 <= pairs <= len(KEYS):
            raise NeuromasError(f"lookup: pairs={pairs} must be between 2 and {len(KEYS)} (the distinct keys it has)")
        if not 1 <= digits <= 9:
            raise NeuromasError(f"lookup: digits={digits} must be between 1 and 9")
        self.pairs, self.digits = pairs, digits
        self.low, self.high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
        if self.high - self.low + 1 < pairs:
            raise NeuromasError(f"lookup: {digits}-digit values cannot give pairs={pairs} distinct numbers; raise digits")
        if train_size < 0 or test_size < 0:
            raise NeuromasError("lookup: train_size and test_size must be >= 0")
        test_rng, train_rng = random.Random(f"lookup-test:{seed}"), random.Random(f"lookup-train:{seed}")
        test: list[Example] = []
        seen: set[str] = set()
        while len(test) < test_size:  # the space is astronomically larger than any split
            example = self._example(test_rng, "test", len(test))
            if example.input not in seen:
                seen.add(example.input)
                test.append(example)
        train: list[Example] = []
        while len(train) < train_size:
            example = self._example(train_rng, "train", len(train))
            if example.input not in seen:
                train.append(example)
        super().__init__(train, test)

    def _example(self, rng: random.Random, split: str, index: int) -> Example:
        keys = rng.sample(KEYS, self.pairs)
        values = rng.sample(range(self.low, self.high + 1), self.pairs)
        query = rng.randrange(self.pairs)
        lines = [f"{key}: {value}" for key, value in zip(keys, values, strict=True)]
        return Example(id=f"lookup/{split}/{index}", input="\n".join([self._question(keys[query]), *lines]),
                       target=values[query], meta={"keys": keys, "values": values, "query": query})

    @staticmethod
    def _question(key: str) -> str:
        return f"Find the number of the {key}."

    def split_input(self, example: Example, parts: int) -> list[str]:
        """Consecutive runs of the lines, each under the question: "Find the number of the owl.\\n
        owl: 47\\n..." for the part that holds the key, the same question over other lines for the
        rest. More parts than lines leaves the last ones empty, which says so."""
        question = self._question(example.meta["keys"][example.meta["query"]])
        return ["\n".join([question, *(f"{key}: {value}" for key, value in run)]) if run
                else f"{question}\n(no lines in this part)"
                for run in self._runs(example, parts)]

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """The answer for the part that holds the key; None for the parts that do not (nothing
        in them answers the question)."""
        key = example.meta["keys"][example.meta["query"]]
        return [next((value for k, value in run if k == key), None) for run in self._runs(example, parts)]

    @staticmethod
    def _runs(example: Example, parts: int) -> list[list[tuple[str, int]]]:
        return consecutive_runs(list(zip(example.meta["keys"], example.meta["values"], strict=True)), parts)

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)
