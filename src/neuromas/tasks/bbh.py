"""BIG-Bench Hard: 27 reasoning tasks, one file of (input, target) rows each.

BBH Navigate is one of the paper's benchmarks (registered on its own as `navigate`), and
`multistep_arithmetic_two` is tree-shaped arithmetic like our synthetic task. Each file is one
pool of up to 250 rows, split by a seeded shuffle: by default 100 test, the rest (150 for
Navigate) train.

The subsets answer in seven different ways, so each has a kind that fixes its answer format,
its extraction and how its target is normalised: option letters "(A)", Yes/No, True/False,
valid/invalid, integers, sorted word lists and bracket sequences.

Two subsets split into independent parts for `network.input_slices` (first-layer node i sees
part i): `word_sorting` (each part sorts a consecutive run of the list; merging sorted runs is
the readout's work) and `object_counting` (each part counts a consecutive run of the items,
with the question; the counts add up). The others have no natural cut and refuse.

Three rows of the source have a target that is not one of their options (movie_recommendation
"Monsters, Inc", whose options split that title in two, and two ruin_names rows): no answer
could match them, so they are left out.
"""

from __future__ import annotations

import random
import re
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import data, rewards
from neuromas.tasks.base import Example, SplitTask, consecutive_runs
from neuromas.tasks.choice import CHOICE_FORMAT, parse_options
from neuromas.tasks.registry import register

_CHOICE = ("date_understanding disambiguation_qa geometric_shapes hyperbaton "
           "logical_deduction_five_objects logical_deduction_seven_objects "
           "logical_deduction_three_objects movie_recommendation penguins_in_a_table "
           "reasoning_about_colored_objects ruin_names salient_translation_error_detection snarks "
           "temporal_sequences tracking_shuffled_objects_five_objects "
           "tracking_shuffled_objects_seven_objects "
           "tracking_shuffled_objects_three_objects").split()
KINDS: dict[str, str] = {
    **{subset: "choice" for subset in _CHOICE},
    "causal_judgement": "yes_no", "navigate": "yes_no", "sports_understanding": "yes_no",
    "web_of_lies": "yes_no", "boolean_expressions": "true_false",
    "formal_fallacies": "valid_invalid", "multistep_arithmetic_two": "integer",
    "object_counting": "integer", "word_sorting": "words", "dyck_languages": "brackets",
}
SUBSETS = tuple(sorted(KINDS))
_VOCABULARY = {"yes_no": ("yes", "no"), "true_false": ("true", "false"),
               "valid_invalid": ("valid", "invalid")}
ANSWER_FORMATS = {
    "choice": CHOICE_FORMAT,
    "yes_no": "End your message with 'Answer: Yes' or 'Answer: No'.",
    "true_false": "End your message with 'Answer: True' or 'Answer: False'.",
    "valid_invalid": "End your message with 'Answer: valid' or 'Answer: invalid'.",
    "integer": "End your message with 'Answer: <integer>'.",
    "words": "End your message with 'Answer: ' and the sorted words, separated by spaces.",
    "brackets": "End your message with 'Answer: ' and the closing brackets that complete the "
                "sequence, separated by spaces.",
}
_BRACKETS = set("()[]{}<>")
_SORT_PREFIX = "Sort the following words alphabetically: List:"
_COUNTING_RE = re.compile(r"I have (.+)\. (How many .+\?)", re.DOTALL)
_QUESTION_RE = re.compile(r"How many (.+) do I have\?")
# object_counting's vocabulary (every noun of its 250 rows), by the category a question counts:
# what lets an analysis say how many of a part's items count (`part_targets`).
_CATEGORIES = {
    "fruits": "apple banana blackberry grape nectarine orange peach plum raspberry strawberry",
    "vegetables": "cabbage carrot cauliflower garlic yam onion potato lettuce-head head-of-broccoli "
                  "stalk-of-celery",
    "musical instruments": "accordion clarinet drum flute piano trombone trumpet violin",
    "animals": "bear cat chicken cow dog donkey duck fish frog goat mouse pig rabbit snail snake",
    "objects": "bed car chair couch fridge lamp microwave oven stove table toaster",
}
_CATEGORY_OF = {noun.replace("-", " "): category for category, nouns in _CATEGORIES.items() for noun in nouns.split()}
_PLURALS = {"mice": "mouse", "heads of broccoli": "head of broccoli",
            "stalks of celery": "stalk of celery", "lettuce heads": "lettuce head"}
_NUMBER_WORDS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())} | {"a": 1, "an": 1}
SPLITTABLE = ("object_counting", "word_sorting")


def _words(text: str) -> str:
    """'Apple, banana  cherry.' -> 'apple banana cherry' (commas are separators here)."""
    return " ".join(rewards.normalize_text(text).replace(",", " ").split())


def _brackets(text: str) -> str:
    """Only the bracket characters: '] ) .' and '])' are the same answer."""
    return "".join(ch for ch in text if ch in _BRACKETS)


@register("bbh")
class BBH(SplitTask):
    """One BBH subset; `subset` is any of the 27 file names (see SUBSETS)."""

    def __init__(self, subset: str = "navigate", seed: int = 0, train_size: int | None = None,
                 test_size: int | None = 100, data_dir: str | None = None,
                 hf_dataset: str | None = None, train_sublists: bool = False):
        if subset not in KINDS:
            raise NeuromasError(
                f"unknown BBH subset {subset!r}; valid subsets: {', '.join(SUBSETS)}")
        if train_sublists and subset != "object_counting":
            raise NeuromasError(f"bbh: train_sublists is for subset object_counting (its lists of items), "
                                f"not {subset!r}; drop it")
        self.subset, self.kind = subset, KINDS[subset]
        self.name = f"bbh/{subset}"
        self.answer_format = ANSWER_FORMATS[self.kind]
        rows = self._rows(subset, data_dir, hf_dataset)
        examples = (self._example(i, row) for i, row in enumerate(rows))
        pool = [ex for ex in examples if ex is not None]
        train, test = data.split_pool(pool, seed, train_size, test_size, label=self.name)
        if train_sublists:
            train = self._sublists(train, {ex.input for ex in test}, seed)
        super().__init__(train, test)

    def _sublists(self, train: list[Example], held_out: set[str], seed: int) -> list[Example]:
        """object_counting's curriculum, as `train_operands` is arith's: each train row gives one
        consecutive run of its items of every length from 1 to all of them (a seeded start), counted
        with the subset's vocabulary. On whole lists the untrained model counts badly, and a network
        whose nodes count parts of a list would rarely see its parts right; short lists give every
        arm easy cases to learn from, and the test stays the source's whole lists."""
        rng = random.Random(f"bbh-sublists:{seed}")
        out: list[Example] = []
        for example in train:
            items, question = self._items_of(example)
            for length in range(1, len(items) + 1):
                start = rng.randrange(len(items) - length + 1)
                run = items[start:start + length]
                count = _count_items(run, question)
                text = f"I have {_list_items(run)}. {question}"
                if count is not None and text not in held_out:
                    out.append(Example(id=f"{example.id}/items{start}-{start + length}", input=text,
                                       target=str(count), meta={**example.meta, "source": example.id}))
        return data.unique_inputs(out)

    @staticmethod
    def _rows(subset: str, data_dir: str | None, hf_dataset: str | None) -> list[dict[str, Any]]:
        if hf_dataset:  # lukaemon/bbh: one config per subset, all rows in "test"
            return data.hf_rows(hf_dataset, subset, "test")
        path = data.data_file(data_dir, "bbh", f"{subset}.json", "BBH")
        return data.read_json(path)["examples"]

    def _example(self, index: int, row: dict[str, Any]) -> Example | None:
        meta = {"subset": self.subset}
        if self.kind == "choice":
            meta["options"] = parse_options(row["input"])
            if self.normalize(row["target"]) not in meta["options"]:
                return None  # a source error (see the module docstring)
        return Example(id=f"bbh/{self.subset}/{index}", input=row["input"],
                       target=row["target"], meta=meta)

    def split_input(self, example: Example, parts: int) -> list[str]:
        """word_sorting: "Sort ... List: w1 ... wn" cut into runs of the words, each a list to
        sort; object_counting: "I have a, b, and c. How many ...?" cut into runs of the items,
        each with the question. A part left with nothing (more parts than words) says so."""
        if self.subset == "word_sorting":
            return [f"{_SORT_PREFIX} {' '.join(run)}" if run else "(no words in this part)"
                    for run in consecutive_runs(self._words_of(example), parts)]
        if self.subset == "object_counting":
            items, question = self._items_of(example)
            return [f"I have {_list_items(run)}. {question}" if run else "(no items in this part)"
                    for run in consecutive_runs(items, parts)]
        return super().split_input(example, parts)

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """word_sorting: each run sorted; object_counting: how many of each run's items are of the
        question's category ("two lamps" is 2), None for the whole example when the counts do not
        add up to its target (a noun outside the vocabulary: nothing to trust)."""
        if self.subset == "word_sorting":
            return [" ".join(sorted(run)) if run else None for run in consecutive_runs(self._words_of(example), parts)]
        if self.subset != "object_counting":
            return None
        items, question = self._items_of(example)
        runs = consecutive_runs(items, parts)
        counts = [_count_items(run, question) if run else None for run in runs]
        if any(run and count is None for run, count in zip(runs, counts)):
            return None
        return counts if sum(c for c in counts if c is not None) == int(example.target) else None

    @staticmethod
    def _words_of(example: Example) -> list[str]:
        if not example.input.startswith(_SORT_PREFIX):
            raise NeuromasError(f"bbh/word_sorting: {example.id} does not start with {_SORT_PREFIX!r}; "
                                "cannot split it (set network.input_slices: false)")
        return example.input[len(_SORT_PREFIX):].split()

    @staticmethod
    def _items_of(example: Example) -> tuple[list[str], str]:
        match = _COUNTING_RE.fullmatch(example.input.strip())
        if match is None:
            raise NeuromasError(f"bbh/object_counting: {example.id} is not 'I have ... . How many ...?'; "
                                "cannot split it (set network.input_slices: false)")
        items = [item.strip() for item in match.group(1).split(",")]
        items = [item.removeprefix("and ").strip() for item in items]
        if len(items) == 1 and " and " in items[0]:  # "a piano and a flute"
            items = [item.strip() for item in items[0].split(" and ")]
        return [item for item in items if item], match.group(2)

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        kind = self.kind
        if kind == "choice":
            options = example.meta.get("options") if example is not None else None
            return rewards.extract_choice(completion, options=options)
        if kind in _VOCABULARY:
            return rewards.extract_word(completion, _VOCABULARY[kind])
        if kind == "integer":
            return rewards.extract_number(completion)
        answer = rewards.answer_span(completion) or rewards.last_line(completion)
        if answer is None:
            return None
        return (_words(answer) if kind == "words" else _brackets(answer)) or None

    def normalize(self, target: Any) -> str:
        if self.kind == "choice":
            return rewards.normalize_choice(target)
        if self.kind == "integer":
            return rewards.normalize_number(target)
        if self.kind == "words":
            return _words(str(target))
        if self.kind == "brackets":
            return _brackets(str(target))
        return rewards.normalize_text(str(target))


def _count_items(items: list[str], question: str) -> int | None:
    """How many of `items` ("a flute", "two lamps") the object_counting question counts; None when
    an item's number or noun is not in the vocabulary."""
    match = _QUESTION_RE.fullmatch(question.strip())
    if match is None or match.group(1) not in _CATEGORIES:
        return None
    total = 0
    for item in items:
        number, _, noun = item.partition(" ")
        noun = _singular(noun)
        if number not in _NUMBER_WORDS or noun not in _CATEGORY_OF:
            return None
        total += _NUMBER_WORDS[number] * (_CATEGORY_OF[noun] == match.group(1))
    return total


def _singular(noun: str) -> str:
    """The vocabulary's form of a noun: lamps -> lamp, strawberries -> strawberry, mice -> mouse."""
    if noun in _CATEGORY_OF:
        return noun
    if noun in _PLURALS:
        return _PLURALS[noun]
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
        if noun.endswith(suffix) and noun[: -len(suffix)] + replacement in _CATEGORY_OF:
            return noun[: -len(suffix)] + replacement
    return noun


def _list_items(items: list[str]) -> str:
    """['a piano'] -> 'a piano'; ['a', 'b', 'c'] -> 'a, b, and c' (the source's own style)."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + f", and {items[-1]}"


@register("navigate")
class Navigate(BBH):
    """BBH Navigate, the paper's benchmark: a seeded split of 150 train and a held-out 100 test."""

    def __init__(self, seed: int = 0, train_size: int | None = 150, test_size: int | None = 100,
                 data_dir: str | None = None, hf_dataset: str | None = None):
        super().__init__("navigate", seed=seed, train_size=train_size, test_size=test_size,
                         data_dir=data_dir, hf_dataset=hf_dataset)
