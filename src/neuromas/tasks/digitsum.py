"""The sum of a number's digits: "What is the sum of the digits of 7715?" (20).

Two skills in sequence, neither named in the question: read the number as its digits, then add
them. The untrained SmolLM2-135M does the first readily ("7 + 7 + 1 + 5 = ...") and then adds
four one-digit numbers as badly as arith's "What is 7+7+1+5?" (14.8% of 4-digit numbers at 48
tokens, `benchmarks/results/claims.md`). It splits like a sum: a part is a run of the
digits asked about as a number of its own ("What is the sum of the digits of 77?", 14), the
parts' answers add up to the whole, and a part of one digit ("... of 7?") is answered by reading.
A training mix of shorter numbers (`train_digits`) gives a readout that adds its parts right
parts to learn from on every size of question, as arith's `train_operands` does.

Digits are drawn from `min_digit`-9 (1 by default: no 0, so no part starts with a 0, "... of
05?", and no part is 0, where a readout that copies the other message would be right; the whole
number never starts with a 0). The test set is drawn first from the seed and the knobs, distinct numbers;
train is drawn from a second stream with the test numbers excluded (`draw_splits`).
"""

from __future__ import annotations

import random
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import rewards
from neuromas.tasks.base import Example, SplitTask, consecutive_runs, draw_splits, train_counts
from neuromas.tasks.registry import register


@register("digitsum")
class DigitSum(SplitTask):
    """The sum of the digits of a generated number; exact match on the integer."""

    name = "digitsum"
    answer_format = "End your message with 'Answer: <integer>'."

    def __init__(self, digits: int = 4, min_digit: int = 1, seed: int = 0, train_size: int = 2000,
                 test_size: int = 128, train_digits: list[int] | None = None):
        if not 1 <= digits <= 30:
            raise NeuromasError(f"digitsum: digits={digits} must be between 1 and 30")
        if not 0 <= min_digit <= 9:
            raise NeuromasError(f"digitsum: min_digit={min_digit} must be between 0 and 9")
        counts = train_counts("digitsum", "train_digits", train_digits, digits, 30)

        def draw(rng: random.Random, split: str, index: int) -> Example:
            count = digits if split == "test" else rng.choice(counts)
            # the first digit is never 0: "0715" is not how a number is written
            values = [rng.randint(max(1, min_digit) if k == 0 else min_digit, 9) for k in range(count)]
            number = "".join(map(str, values))
            return Example(id=f"digitsum/{split}/{index}", input=_question(number), target=sum(values),
                           meta={"digits": values})

        train, test = draw_splits("digitsum", draw, seed, test_size, train_size, "digits, min_digit")
        super().__init__(train, test)

    def split_input(self, example: Example, parts: int) -> list[str]:
        """Consecutive runs of the digits, each asked about as a number: "What is the sum of the
        digits of 7715?" -> "... of 77?", "... of 15?"; a part left with no digit says so."""
        return [_question("".join(map(str, run))) if run else "(no digits in this part)"
                for run in consecutive_runs(example.meta["digits"], parts)]

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """What a node that reduces parts is asked, without the number: every reduction of a digit
        sum is a sum of the parts' sums."""
        return "What is the sum of the parts?"

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """The digit sum of each part (None for a part with no digit)."""
        return [sum(run) if run else None for run in consecutive_runs(example.meta["digits"], parts)]

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_number(target)


def _question(number: str) -> str:
    return f"What is the sum of the digits of {number}?"
