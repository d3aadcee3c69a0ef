"""Multiple choice, shared by ARC, MMLU and the option-style BBH tasks.

Every multiple-choice question is shown the same way, the way BBH already writes its own:

    <question>
    Options:
    (A) <text>
    (B) <text>

The target is the option letter. Each example keeps its options in `meta["options"]`, so a
reply that gives the option's text instead of its letter ("Answer: Planetary days will become
shorter") is still read correctly, and only that question's letters count (an "E" on a
four-option question is no answer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from neuromas.tasks import rewards
from neuromas.tasks.base import Example, SplitTask

CHOICE_FORMAT = "End your message with 'Answer: <letter of the correct option>'."
_OPTION_LINE_RE = re.compile(r"^\(([A-Z])\)\s?(.*)$", re.MULTILINE)


def format_question(stem: str, options: Mapping[str, str]) -> str:
    lines = [stem.strip(), "Options:"] + [f"({label}) {text}" for label, text in options.items()]
    return "\n".join(lines)


def parse_options(text: str) -> dict[str, str]:
    """The "(A) text" lines of a question, as {"A": "text"} (BBH writes its options this way)."""
    return {m.group(1): m.group(2).strip() for m in _OPTION_LINE_RE.finditer(text)}


class MultipleChoiceTask(SplitTask):
    """Exact match on the option letter, read against the example's own options."""

    answer_format = CHOICE_FORMAT

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        options = example.meta.get("options") if example is not None else None
        return rewards.extract_choice(completion, options=options)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_choice(target)
