"""A custom task from a JSONL file, so users bring a problem without writing a Task class.

Each line is {"input": "...", "target": ...} (an optional "id" is kept). A row may also carry
"parts": ["...", "..."], the input cut into self-contained pieces, one per first-layer node: with
`network.input_slices: true` node i of the first layer sees part i instead of the input (later
layers see the whole input, or with `input_to_all: false` only the messages). An optional
"part_targets" gives what a node solving its part alone should answer (analyses read it), and
"question" what the input asks without its data, what later layers see with `input_to_all:
question`. The file is one pool,
split by a seeded shuffle like BBH. The default reward is exact match of the extracted answer
(the "Answer:" line, else the last line), normalised; numbers are compared as numbers, so a
target 1234 matches "Answer: 1,234".

Any other reward is a function named as "module:function", importable from PYTHONPATH, with
TRL's reward signature. It is called with keywords, so it may take them in any order:

    def my_reward(completions: list[str], targets: list, inputs: list[str]) -> list[float]
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import data, rewards
from neuromas.tasks.base import Example, SplitTask
from neuromas.tasks.registry import register

RewardFn = Callable[..., list[float]]


def import_reward(spec: str) -> RewardFn:
    """'package.module:function' -> the function, or a NeuromasError that says why not."""

    def fail(reason: str) -> NeuromasError:
        return NeuromasError(f"reward function {spec!r} cannot be imported: {reason}; "
                             "give it as module:function importable from PYTHONPATH")

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise fail("expected exactly one ':' between a module and a function name")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - ImportError, or anything the module raises
        raise fail(f"{type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise fail(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise fail(f"{attr!r} is a {type(fn).__name__}, not a function")
    return fn


def check_scores(scores: Any, n: int, spec: str | None) -> list[float]:
    """A user reward function's result as n finite floats, or a NeuromasError saying what it returned."""
    def fail(what: str) -> NeuromasError:
        return NeuromasError(f"reward function {spec!r} returned {what}; it must return a list of {n} finite "
                             "numbers, one per completion")

    if isinstance(scores, (str, bytes, dict)) or not hasattr(scores, "__iter__"):
        raise fail(f"a {type(scores).__name__}")
    scores = list(scores)
    if len(scores) != n:
        raise fail(f"{len(scores)} scores for {n} completions")
    out = []
    for i, score in enumerate(scores):
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise fail(f"{score!r} ({type(score).__name__}) for completion {i}") from None
        if isinstance(score, (str, bytes)) or not math.isfinite(value):
            raise fail(f"{score!r} for completion {i}")
        out.append(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_examples(path: Path) -> list[Example]:
    examples = []
    for number, row in data.read_jsonl(path):
        if not isinstance(row, dict):
            raise NeuromasError(f"{path} line {number}: expected a JSON object with keys "
                                f"'input' and 'target', got {type(row).__name__}")
        for key in ("input", "target"):
            if key not in row:
                raise NeuromasError(f"{path} line {number}: missing key {key!r} "
                                    "(each row needs 'input' and 'target')")
        if not isinstance(row["input"], str):
            raise NeuromasError(f"{path} line {number}: 'input' must be a string")
        if isinstance(row["target"], float) and not math.isfinite(row["target"]):
            raise NeuromasError(f"{path} line {number}: 'target' is {row['target']}; give a finite number or a string")
        parts = row.get("parts")
        if parts is not None and (not isinstance(parts, list) or not parts
                                  or not all(isinstance(p, str) for p in parts)):
            raise NeuromasError(f"{path} line {number}: 'parts' must be a non-empty list of strings, "
                                "one per first-layer node")
        targets = row.get("part_targets")
        if targets is not None and (not isinstance(targets, list) or parts is None
                                    or len(targets) != len(parts)):
            raise NeuromasError(f"{path} line {number}: 'part_targets' must be a list as long as "
                                "'parts' (one target per part)")
        if "question" in row and not isinstance(row["question"], str):
            raise NeuromasError(f"{path} line {number}: 'question' must be a string (what the input asks, "
                                "without its data)")
        meta = {k: v for k, v in row.items() if k not in ("id", "input", "target")}
        examples.append(Example(id=str(row.get("id", f"{path.stem}/{number}")),
                                input=row["input"], target=row["target"], meta=meta))
    return examples


@register("jsonl")
class JSONLTask(SplitTask):
    """Rows of {"input", "target"}; reward by normalised exact match or a user function."""

    def __init__(self, path: str, reward: str | None = None, answer_format: str | None = None,
                 seed: int = 0, train_size: int | None = None, test_size: int | None = 100):
        file = Path(path).expanduser()
        if not file.is_file():
            raise NeuromasError(f"jsonl task: no file {file}; give `path` as a JSONL file of "
                                '{"input", "target"} rows')
        self.name = f"jsonl/{file.stem}"
        self.reward_spec = reward
        self.reward_fn = import_reward(reward) if reward else None
        if answer_format is not None:
            self.answer_format = answer_format
        pool = read_examples(file)
        if not pool:
            raise NeuromasError(f"jsonl task: {file} has no rows")
        super().__init__(*data.split_pool(pool, seed, train_size, test_size, label=self.name))

    def split_input(self, example: Example, parts: int) -> list[str]:
        """The row's own "parts"; their number must be the first layer's width."""
        given = example.meta.get("parts")
        if given is None:
            raise NeuromasError(f"{self.name} row {example.id!r} has no \"parts\": with network.input_slices "
                                f"every row needs \"parts\": [...], one per first-layer node ({parts} here), "
                                "or set network.input_slices: false")
        if len(given) != parts:
            raise NeuromasError(f"{self.name} row {example.id!r} has {len(given)} parts but the network's first "
                                f"layer has {parts} nodes: give each row one part per first-layer node, or "
                                f"make the first layer {len(given)} wide")
        return list(given)

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """The row's own "question", for every part (a row has one)."""
        if "question" not in example.meta:
            raise NeuromasError(f"{self.name} row {example.id!r} has no \"question\": with network.input_to_all: "
                                "question every row needs \"question\": \"...\" (what it asks, without its data), "
                                "or set input_to_all to true or false")
        return example.meta["question"]

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        targets = example.meta.get("part_targets")
        return list(targets) if targets is not None and len(targets) == parts else None

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        if example is not None and _is_number(example.target):
            return rewards.extract_number(completion)
        return rewards.extract_text(completion)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_number(target) if _is_number(target) else \
            rewards.normalize_text(str(target))

    def reward(self, completions: list[str], examples: list[Example]) -> list[float]:
        if self.reward_fn is None:
            return super().reward(completions, examples)
        try:
            scores = self.reward_fn(completions=list(completions),
                                    targets=[ex.target for ex in examples],
                                    inputs=[ex.input for ex in examples])
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code: say whose it was
            raise NeuromasError(f"reward function {self.reward_spec!r} failed: "
                                f"{type(e).__name__}: {e}") from None
        return check_scores(scores, len(completions), self.reward_spec)
