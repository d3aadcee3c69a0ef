"""MMLU: four-option multiple choice in 57 subjects, one subject per task.

The paper uses abstract_algebra, college_physics and professional_medicine. The release has
three files per subject: dev (the 5 few-shot examples), val and test. Train is dev + val (16
questions for abstract_algebra, 36 for professional_medicine: small, which is the paper's
setting too), test is the test file, whole by default.
"""

from __future__ import annotations

import csv
import difflib
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import data
from neuromas.tasks.base import Example
from neuromas.tasks.choice import MultipleChoiceTask, format_question
from neuromas.tasks.registry import register

SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology "
    "college_chemistry college_computer_science college_mathematics college_medicine "
    "college_physics computer_security conceptual_physics econometrics electrical_engineering "
    "elementary_mathematics formal_logic global_facts high_school_biology high_school_chemistry "
    "high_school_computer_science high_school_european_history high_school_geography "
    "high_school_government_and_politics high_school_macroeconomics high_school_mathematics "
    "high_school_microeconomics high_school_physics high_school_psychology "
    "high_school_statistics high_school_us_history high_school_world_history human_aging "
    "human_sexuality international_law jurisprudence logical_fallacies machine_learning "
    "management marketing medical_genetics miscellaneous moral_disputes moral_scenarios "
    "nutrition philosophy prehistory professional_accounting professional_law "
    "professional_medicine professional_psychology public_relations security_studies sociology "
    "us_foreign_policy virology world_religions"
).split()
PAPER_SUBJECTS = ("abstract_algebra", "college_physics", "professional_medicine")
_LETTERS = "ABCD"
# Our split -> the release's files (folder names) and cais/mmlu's split names.
_PARTS = {"train": ("dev", "val"), "test": ("test",)}
_HF_SPLITS = {"dev": "dev", "val": "validation", "test": "test"}


def check_subject(subject: str) -> None:
    if subject in SUBJECTS:
        return
    close = difflib.get_close_matches(subject, SUBJECTS, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    some = [*PAPER_SUBJECTS, "anatomy", "astronomy"]
    raise NeuromasError(
        f"unknown MMLU subject {subject!r}; {hint}valid subjects include {', '.join(some)} "
        f"({len(SUBJECTS)} in all, listed in neuromas.tasks.mmlu.SUBJECTS)"
    )


def example_from_row(row: list[str], subject: str, part: str, index: int) -> Example:
    """One CSV row [question, A, B, C, D, answer letter] as an Example."""
    question, *texts, answer = row
    options = dict(zip(_LETTERS, (t.strip() for t in texts), strict=True))
    return Example(
        id=f"mmlu/{subject}/{part}/{index}",
        input=format_question(question, options),
        target=answer.strip().upper(),
        meta={"options": options, "subject": subject},
    )


def row_from_hf(row: dict[str, Any]) -> list[str]:
    """cais/mmlu's columns (question, choices, answer index) as a CSV row."""
    return [row["question"], *row["choices"], _LETTERS[int(row["answer"])]]


@register("mmlu")
class MMLU(MultipleChoiceTask):
    """One MMLU subject as multiple choice: target is the option letter."""

    def __init__(self, subject: str, seed: int = 0, train_size: int | None = None,
                 test_size: int | None = None, data_dir: str | None = None,
                 hf_dataset: str | None = None):
        check_subject(subject)
        self.name = f"mmlu/{subject}"
        examples = {}
        for split, parts in _PARTS.items():
            examples[split] = [
                example_from_row(row, subject, part, i)
                for part in parts
                for i, row in enumerate(self._rows(subject, part, data_dir, hf_dataset))
            ]
        super().__init__(*data.split_sources(examples["train"], examples["test"], seed,
                                             train_size, test_size, label=self.name))

    @staticmethod
    def _rows(subject: str, part: str, data_dir: str | None,
              hf_dataset: str | None) -> list[list[str]]:
        if hf_dataset:
            return [row_from_hf(r) for r in data.hf_rows(hf_dataset, subject, _HF_SPLITS[part])]
        path = data.data_file(data_dir, f"mmlu/{part}", f"{subject}_{part}.csv", "MMLU")
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        for number, row in enumerate(rows, 1):
            if len(row) != 6:
                raise NeuromasError(f"{path} row {number} has {len(row)} fields, expected 6 "
                                    "(question, A, B, C, D, answer)")
        return rows
