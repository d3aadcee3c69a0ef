"""Tasks: examples, an answer format for the readout, and a reward. Load one by name:

    task = neuromas.tasks.load("arith", operands=4, digits=1)
    task.examples("test")[0].input   # "What is 3+5+2+7?"

| name      | what                                         | parameters (besides seed, sizes)  |
|-----------|----------------------------------------------|-----------------------------------|
| arith     | generated arithmetic, the hierarchical bed   | operands, digits, operators, depth, ... |
| lookup    | generated key-value lookup in a list         | pairs, digits, queries, ...       |
| story     | generated sums told as sentences             | people, min_value, max_value, ... |
| digitsum  | generated sums of a number's digits          | digits, min_digit, train_digits   |
| gsm8k     | grade-school math word problems              | data_dir, hf_dataset              |
| arc       | ARC-Challenge, multiple choice               | data_dir, hf_dataset              |
| mmlu      | one MMLU subject, multiple choice            | subject, data_dir, hf_dataset     |
| bbh       | one of the 27 BIG-Bench Hard tasks           | subset, data_dir, hf_dataset      |
| navigate  | BBH Navigate (150 train, 100 test)           | data_dir, hf_dataset              |
| humaneval | Python functions graded by tests, sandboxed  | timeout_s, memory_mb, workers, ... |
| jsonl     | your own {"input", "target"} rows            | path, reward, answer_format       |

Every file-backed task reads `data_dir` (see `resolve_data_dir`) or, with `hf_dataset`, the hub.
"""

from neuromas.tasks.base import Example, Task
from neuromas.tasks.data import resolve_data_dir
from neuromas.tasks.registry import load, names, register

# isort: split
# Importing the task modules registers them (after the registry they register in).
from neuromas.tasks import arc, arithmetic, bbh, digitsum, gsm8k, humaneval, jsonl, lookup, mmlu, story  # noqa: F401

__all__ = ["Example", "Task", "load", "names", "register", "resolve_data_dir"]
