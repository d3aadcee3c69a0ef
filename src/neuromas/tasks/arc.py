"""ARC-Challenge (AI2 Reasoning Challenge): grade-school science, multiple choice.

One of the paper's benchmarks. Train comes from the release's Train file, test from its Test
file (Dev is left out, as a validation set we do not use). The default test size of 200 is a
seeded subset of the 1172 test questions: the paper's ARC accuracies (24.5, 37.5, 56.5, ...)
are all multiples of 0.5, which fits a 200-question test set.

A few questions label their options 1-4 instead of A-D; they are relabelled A-D so that every
question is answered with a letter. Some have 3 or 5 options; each keeps its own.
"""

from __future__ import annotations

from typing import Any

from neuromas.tasks import data
from neuromas.tasks.base import Example
from neuromas.tasks.choice import MultipleChoiceTask, format_question
from neuromas.tasks.registry import register

_FILES = {"train": "ARC-Challenge-Train.jsonl", "test": "ARC-Challenge-Test.jsonl"}
_HF_SPLITS = {"train": "train", "test": "test"}


def _letter(label: str) -> str:
    """'A' -> 'A', '3' -> 'C'."""
    label = str(label).strip()
    return chr(ord("A") + int(label) - 1) if label.isdigit() else label.upper()


def example_from_row(row: dict[str, Any]) -> Example:
    """One ARC row, in the release's JSONL form, as an Example."""
    choices = row["question"]["choices"]
    options = {_letter(c["label"]): c["text"].strip() for c in choices}
    stem = row["question"]["stem"]
    return Example(
        id=row["id"],
        input=format_question(stem, options),
        target=_letter(row["answerKey"]),
        meta={"options": options},
    )


def row_from_hf(row: dict[str, Any]) -> dict[str, Any]:
    """allenai/ai2_arc's columns (question, choices {text, label}) in the release's form."""
    choices = [{"text": t, "label": lab} for t, lab in zip(row["choices"]["text"],
                                                          row["choices"]["label"], strict=True)]
    return {"id": row["id"], "question": {"stem": row["question"], "choices": choices},
            "answerKey": row["answerKey"]}


@register("arc")
class ARC(MultipleChoiceTask):
    """ARC-Challenge as multiple choice: target is the option letter."""

    name = "arc"

    def __init__(self, seed: int = 0, train_size: int | None = None, test_size: int | None = 200,
                 data_dir: str | None = None, hf_dataset: str | None = None):
        rows = {split: self._rows(split, data_dir, hf_dataset) for split in ("train", "test")}
        examples = {split: [example_from_row(r) for r in rs] for split, rs in rows.items()}
        super().__init__(*data.split_sources(examples["train"], examples["test"], seed,
                                             train_size, test_size, label="arc"))

    @staticmethod
    def _rows(split: str, data_dir: str | None, hf_dataset: str | None) -> list[dict[str, Any]]:
        if hf_dataset:
            return [row_from_hf(r) for r in data.hf_rows(hf_dataset, "ARC-Challenge",
                                                          _HF_SPLITS[split])]
        path = data.data_file(data_dir, "arc", _FILES[split], "ARC")
        return [row for _, row in data.read_jsonl(path)]
