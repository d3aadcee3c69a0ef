"""GSM8K: grade-school math word problems with a numeric answer.

Each solution ends with "#### <answer>"; the target is that answer without thousands commas
("1,234" -> "1234"), and the full worked solution is kept in `meta["solution"]`. Train and
test are the release's own files; the default test size of 200 is a seeded subset of the 1319
test problems, small enough to evaluate often on a CPU.
"""

from __future__ import annotations

from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import data, rewards
from neuromas.tasks.base import Example, SplitTask
from neuromas.tasks.registry import register


def final_answer(solution: str) -> str:
    """'... #### 1,234' -> '1234'."""
    if "####" not in solution:
        raise NeuromasError(f"GSM8K solution has no '####' answer: {solution[-80:]!r}")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def example_from_row(row: dict[str, Any], split: str, index: int) -> Example:
    return Example(id=f"gsm8k/{split}/{index}", input=row["question"].strip(),
                   target=final_answer(row["answer"]), meta={"solution": row["answer"]})


@register("gsm8k")
class GSM8K(SplitTask):
    """Exact match of the final number (commas, "$" and "12.0" forms accepted)."""

    name = "gsm8k"
    answer_format = "End your message with 'Answer: <number>'."

    def __init__(self, seed: int = 0, train_size: int | None = None, test_size: int | None = 200,
                 data_dir: str | None = None, hf_dataset: str | None = None):
        examples = {}
        for split in ("train", "test"):
            if hf_dataset:  # openai/gsm8k, config "main": the same question/answer columns
                rows = data.hf_rows(hf_dataset, "main", split)
            else:
                path = data.data_file(data_dir, "gsm8k", f"{split}.jsonl", "GSM8K")
                rows = [row for _, row in data.read_jsonl(path)]
            examples[split] = [example_from_row(r, split, i) for i, r in enumerate(rows)]
        super().__init__(*data.split_sources(examples["train"], examples["test"], seed,
                                             train_size, test_size, label="gsm8k"))

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_number(target)
