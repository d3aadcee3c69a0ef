"""Where benchmark data lives, and how examples are split into train and test.

Data is read from local files (see `../shared/data/README.md` for the layout we provide) or,
for users with the internet, from the Hugging Face hub with `hf_dataset=...`. Both paths give
the same rows, so one parser per task serves both.

Splits are made here, in one way for every task, so that they are comparable across runs:

- A source with its own test file (ARC, GSM8K, MMLU) keeps it: `test_size` draws a seeded
  subset of that file, `train_size` one of the train file(s).
- A source that is one pool (BBH, HumanEval) is shuffled with the seed; the test set is the
  first `test_size` of that order and train the next `train_size`. The test set therefore
  depends only on the seed and `test_size`, never on `train_size`.
- In both cases train never holds an input that test holds (the sources repeat a few
  questions), so no input is ever in both splits.

Selected examples keep their order in the source file, which makes reports easy to compare.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from neuromas.errors import NeuromasError, missing_extra
from neuromas.tasks.base import Example

T = TypeVar("T")
ENV_VAR = "NEUROMAS_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]  # src/neuromas/tasks/data.py -> repository


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: the argument, else $NEUROMAS_DATA_DIR, else ../shared/data.

    ../shared/data is tried relative to the working directory first (a run started from the
    project), then relative to this repository (tests and scripts started from elsewhere). If
    neither exists the working-directory one is returned, so the "not found" error names it.
    """
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    candidates = [Path.cwd().parent / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def data_file(data_dir: str | os.PathLike | None, folder: str, name: str, label: str) -> Path:
    """`<data dir>/<folder>/<name>`, or a NeuromasError that says how to point at the data."""
    root = resolve_data_dir(data_dir) / folder
    path = root / name
    if not path.is_file():
        raise NeuromasError(
            f"{label} data not found: no {name} under {root}; "
            f"set data_dir in the task config or {ENV_VAR}"
        )
    return path


def read_json(path: Path) -> Any:
    """A JSON file's content, or a NeuromasError naming the file and the problem."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise NeuromasError(f"{path} is not valid JSON: {e}") from e


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file (gzipped if .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append((number, json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise NeuromasError(f"{path} line {number} is not valid JSON: {e.msg}") from e
                    except RecursionError:
                        raise NeuromasError(f"{path} line {number} is nested too deeply") from None
    except UnicodeDecodeError as e:
        raise NeuromasError(f"{path} line {number + 1} is not UTF-8 text (byte {e.start}); "
                            "save the file as UTF-8") from None
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a gzip file cut short, EOFError
        raise NeuromasError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    return rows


def hf_rows(dataset: str, config: str | None, split: str) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset split, as plain dicts (needs `datasets` and the hub)."""
    try:
        import datasets  # lazy: an optional extra, and slow to import
    except ImportError as e:
        raise missing_extra(f"hf_dataset={dataset!r} (the datasets package)", "datasets") from e
    try:
        rows = datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # noqa: BLE001 - network, auth, unknown name: all one message
        where = f"{dataset} ({config}, split {split})" if config else f"{dataset} (split {split})"
        raise NeuromasError(f"cannot load {where} from the Hugging Face hub: {e}") from e
    return [dict(row) for row in rows]


def _check_size(size: int | None, available: int, what: str, label: str) -> int:
    if size is None:
        return available
    if size < 0:
        raise NeuromasError(f"{label}: {what}={size} must be >= 0")
    if size > available:
        raise NeuromasError(
            f"{label}: {what}={size} but only {available} examples are available; "
            f"lower {what} or set it to null for all of them"
        )
    return size


def sample(items: Sequence[T], size: int | None, seed: int, salt: str, *, what: str,
           label: str) -> list[T]:
    """A seeded subset of `size` items (None: all), in source order.

    `salt` keeps the draws for different splits independent under one seed.
    """
    size = _check_size(size, len(items), what, label)
    chosen = random.Random(f"{salt}:{seed}").sample(range(len(items)), size)
    return [items[i] for i in sorted(chosen)]


def unique_inputs(examples: Sequence[Example]) -> list[Example]:
    """The first example of each input text: a source may hold one question twice."""
    seen: set[str] = set()
    kept = []
    for ex in examples:
        if ex.input not in seen:
            seen.add(ex.input)
            kept.append(ex)
    return kept


def split_sources(train: Sequence[Example], test: Sequence[Example], seed: int,
                  train_size: int | None, test_size: int | None, *,
                  label: str) -> tuple[list[Example], list[Example]]:
    """Seeded subsets of a source's own train and test files, with no test input in train.

    The test file is used as published, repeats included (MMLU college_physics repeats 11 of
    its 102 questions), so accuracies stay comparable with other work. Train leaves out every
    input of the whole test file, not only of the sampled subset, so the training data does not
    change with `test_size`.
    """
    held_out = {ex.input for ex in test}
    train = [ex for ex in train if ex.input not in held_out]
    return (sample(train, train_size, seed, "train", what="train_size", label=label),
            sample(test, test_size, seed, "test", what="test_size", label=label))


def split_pool(pool: Sequence[Example], seed: int, train_size: int | None,
               test_size: int | None, *, label: str) -> tuple[list[Example], list[Example]]:
    """Split one pool: a seeded shuffle; test = the first `test_size`, train = the next ones.

    A repeated input is kept once, or its copies could land on both sides.
    """
    pool = unique_inputs(pool)
    order = list(range(len(pool)))
    random.Random(f"pool:{seed}").shuffle(order)
    n_test = _check_size(test_size, len(pool), "test_size", label)
    n_train = _check_size(train_size, len(pool) - n_test, "train_size", label)
    test = sorted(order[:n_test])
    train = sorted(order[n_test:n_test + n_train])
    return [pool[i] for i in train], [pool[i] for i in test]
