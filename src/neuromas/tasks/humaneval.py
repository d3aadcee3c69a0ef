"""HumanEval: write a Python function from its signature and docstring; graded by unit tests.

One of the paper's benchmarks. The input is the problem's prompt (imports, signature,
docstring); the reward is 1 when the program built from the reply passes the problem's tests in
the sandbox (`sandbox.py`), else 0. The 164 problems are one pool, split by a seeded shuffle:
64 test and 100 train by default. The paper's HumanEval accuracies (30.5, 17.7, 11.0, ...) are
multiples of 1/164, so it evaluated on all 164: `test_size: 164, train_size: 0` does the same.

How a reply becomes a program: take its code (the last ```python block that defines the entry
point, else the first code block, else the raw text from its first top-level statement on);
put the prompt in front, so the prompt's imports and helper functions exist (a full function
then replaces the prompt's stub; a bare body completes it); then the tests and
`check(<entry point>)`.
"""

from __future__ import annotations

import re
from typing import Any

from neuromas.tasks import data
from neuromas.tasks.base import Example, SplitTask
from neuromas.tasks.registry import register
from neuromas.tasks.sandbox import SandboxResult, run_programs

# A fenced block and its language tag; an unclosed fence (a reply cut off at the token limit)
# runs to the end of the text.
_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_STATEMENT_RE = re.compile(r"^(?:def |async def |class |import |from |@)", re.MULTILINE)
_PYTHON_TAGS = {"", "python", "python3", "py"}


def defines(code: str, entry_point: str) -> bool:
    """Whether `code` defines `entry_point` at the top level."""
    return re.search(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", code,
                     re.MULTILINE) is not None


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The code in a reply (see the module docstring); "" when there is none."""
    if not isinstance(completion, str):
        return ""
    blocks = [body for tag, body in _FENCE_RE.findall(completion) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        defining = [b for b in blocks if entry_point and defines(b, entry_point)]
        return (defining[-1] if defining else blocks[0]).strip("\n")
    if entry_point and defines(completion, entry_point):
        start = _STATEMENT_RE.search(completion)  # skip prose before the code
        return completion[start.start():] if start else completion
    return completion


def build_program(completion: str, example: Example) -> str:
    """Prompt + the reply's code + the problem's tests + `check(<entry point>)`."""
    entry_point = example.target["entry_point"]
    code = extract_code(completion, entry_point)
    separator = "\n\n" if defines(code, entry_point) else ""
    return f"{example.input}{separator}{code}\n\n{example.target['test']}\n\ncheck({entry_point})\n"


def example_from_row(row: dict[str, Any]) -> Example:
    return Example(
        id=row["task_id"], input=row["prompt"],
        target={"test": row["test"], "entry_point": row["entry_point"]},
        meta={"entry_point": row["entry_point"], "canonical_solution": row["canonical_solution"]},
    )


@register("humaneval")
class HumanEval(SplitTask):
    """Reward 1 when the reply's function passes the problem's unit tests in the sandbox."""

    name = "humaneval"
    answer_format = "Write the complete function, signature included, in one ```python code block."

    def __init__(self, seed: int = 0, train_size: int | None = None, test_size: int | None = 64,
                 timeout_s: float = 5.0, memory_mb: int = 1024, workers: int | None = None,
                 data_dir: str | None = None, hf_dataset: str | None = None):
        self.timeout_s, self.memory_mb, self.workers = timeout_s, memory_mb, workers
        if hf_dataset:  # openai/openai_humaneval: the same columns, all rows in "test"
            rows = data.hf_rows(hf_dataset, None, "test")
        else:
            path = data.data_file(data_dir, "humaneval", "HumanEval.jsonl.gz", "HumanEval")
            rows = [row for _, row in data.read_jsonl(path)]
        pool = [example_from_row(r) for r in rows]
        super().__init__(*data.split_pool(pool, seed, train_size, test_size, label="humaneval"))

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        entry_point = example.target["entry_point"] if example is not None else None
        return extract_code(completion, entry_point).strip() or None

    def grade(self, completions: list[str], examples: list[Example]) -> list[SandboxResult]:
        """Run every completion's program against its tests, a few in parallel."""
        programs = [build_program(c if isinstance(c, str) else "", ex)
                    for c, ex in zip(completions, examples, strict=True)]
        return run_programs(programs, self.timeout_s, self.memory_mb, self.workers)

    def reward(self, completions: list[str], examples: list[Example]) -> list[float]:
        return [float(result.passed) for result in self.grade(completions, examples)]
