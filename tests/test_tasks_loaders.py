"""Each loader on the fixtures (and on ../shared/data when present), hf_dataset, custom JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import neuromas.tasks as tasks
from neuromas.errors import NeuromasError
from neuromas.tasks import bbh, data, mmlu

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_DATA = FIXTURES / "data"
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(),
                                     reason=f"no shared data at {REAL_DATA}")
FIX = {"data_dir": str(FIXTURE_DATA)}


def _all(task):
    return task.examples("train") + task.examples("test")


def _by_id(task):
    return {ex.id: ex for ex in _all(task)}


# ---- GSM8K -----------------------------------------------------------------------------------


def test_gsm8k_target_is_the_number_after_hashes_without_commas():
    task = tasks.load("gsm8k", test_size=None, **FIX)
    assert len(task.examples("train")) == 4 and len(task.examples("test")) == 3
    assert "1234" not in task.answer_format and "Answer: <number>" in task.answer_format
    comma = _by_id(task)["gsm8k/train/3"]
    assert "," in comma.meta["solution"].split("####")[1] and "," not in comma.target
    first = task.examples("test")[0]
    assert first.target == "18" and first.input.startswith("Janet")
    assert task.reward(["Answer: $18.00", "Answer: 18 dollars", "so 1,8", "Answer: 81"],
                       [first] * 4) == [1.0, 1.0, 0.0, 0.0]


# ---- ARC -------------------------------------------------------------------------------------


def test_arc_formats_options_and_maps_numeric_labels_to_letters():
    task = tasks.load("arc", test_size=None, **FIX)
    test = task.examples("test")
    assert len(test) == 4
    numeric = next(ex for ex in test if ex.id == "NYSEDREGENTS_2008_8_34")  # labels 1-4 in the file
    assert list(numeric.meta["options"]) == ["A", "B", "C", "D"]
    assert "\n(A) " in numeric.input and "(1)" not in numeric.input
    assert numeric.target in "ABCD"
    three = next(ex for ex in test if len(ex.meta["options"]) == 3)
    assert three.input.endswith(f"(C) {three.meta['options']['C']}")
    # The train file repeats a test question: it is dropped from train.
    assert len(task.examples("train")) == 3
    assert not any(ex.id.startswith("Dup_") for ex in task.examples("train"))


def test_arc_reward_reads_letters_and_option_text():
    first = tasks.load("arc", test_size=None, **FIX).examples("test")[0]
    assert first.id == "Mercury_7175875" and first.target == "C"
    task = tasks.load("arc", test_size=None, **FIX)
    replies = ["Answer: C", "Answer: Planetary days will become shorter.", "Answer: (B)",
               "Answer: E", "blah"]
    assert task.reward(replies, [first] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert task.extract("Answer: Planetary days will become shorter.", first) == "C"


# ---- MMLU ------------------------------------------------------------------------------------


def test_mmlu_reads_quoted_csv_and_uses_dev_plus_val_for_train():
    task = tasks.load("mmlu", subject="abstract_algebra", test_size=None, **FIX)
    assert task.name == "mmlu/abstract_algebra"
    test, train = task.examples("test"), task.examples("train")
    assert len(test) == 4
    assert len(train) == 4  # dev 2 + val 2; the val row that repeats a test row is dropped
    assert {ex.id.split("/")[2] for ex in train} == {"dev", "val"}
    tricky = test[-1]
    assert tricky.input.startswith('Which of these, "quoted", text\nspans two lines?\nOptions:')
    assert tricky.meta["options"] == {"A": "1, 2", "B": "three", "C": '"four"', "D": "five"}
    assert tricky.target == "C"
    assert task.reward(['Answer: "four"', "Answer: C.", "Answer: B"], [tricky] * 3) == \
        [1.0, 1.0, 0.0]


def test_mmlu_unknown_subject_suggests_valid_ones():
    with pytest.raises(NeuromasError, match="unknown MMLU subject 'college_physic'") as err:
        tasks.load("mmlu", subject="college_physic", **FIX)
    message = str(err.value)
    assert "did you mean college_physics" in message and "professional_medicine" in message
    assert "\n" not in message


# ---- BBH -------------------------------------------------------------------------------------


def test_bbh_navigate_alias_is_the_bbh_subset():
    alias = tasks.load("navigate", test_size=4, train_size=None, **FIX)
    direct = tasks.load("bbh", subset="navigate", test_size=4, **FIX)
    assert alias.examples("test") == direct.examples("test")
    assert alias.name == direct.name == "bbh/navigate"
    assert alias.answer_format == "End your message with 'Answer: Yes' or 'Answer: No'."
    # 11 rows, one a repeat: 10 distinct questions.
    assert len(_all(alias)) == 10


def test_bbh_navigate_rejects_a_subset_parameter():
    with pytest.raises(NeuromasError, match="no parameter 'subset'"):
        tasks.load("navigate", subset="date_understanding", **FIX)


def test_bbh_unknown_subset_lists_them_all():
    with pytest.raises(NeuromasError, match="unknown BBH subset 'navigation'") as err:
        tasks.load("bbh", subset="navigation", **FIX)
    assert all(s in str(err.value) for s in bbh.SUBSETS)
    assert len(bbh.SUBSETS) == 27


@pytest.mark.parametrize("subset, replies, expected", [
    ("navigate", ["Answer: No", "answer: no.", "Answer: Yes", "no idea"], [1, 1, 0, 0]),
    ("date_understanding", ["Answer: (B)", "Answer: B", "Answer: 12/25/1937", "Answer: (A)"],
     [1, 1, 1, 0]),
    ("word_sorting", ["Answer: syndrome therefrom", "Answer: Syndrome, therefrom.",
                      "Answer: therefrom syndrome"], [1, 1, 0]),
    ("dyck_languages", ["Answer: ] ]", "Answer: ]]", "Answer: ] ] ]"], [1, 1, 0]),
    ("multistep_arithmetic_two", ["Answer: 24", "Answer: 24.0", "Answer: -24"], [1, 1, 0]),
])
def test_bbh_reward_per_answer_kind(subset, replies, expected):
    task = tasks.load("bbh", subset=subset, test_size=0, **FIX)
    first = min(_all(task), key=lambda ex: int(ex.id.rsplit("/", 1)[1]))  # the file's first row
    assert task.reward(replies, [first] * len(replies)) == [float(x) for x in expected]


def test_bbh_drops_rows_whose_target_is_not_an_option():
    task = tasks.load("bbh", subset="ruin_names", test_size=1, **FIX)
    assert len(_all(task)) == 3  # the fourth fixture row's target is not among its options
    assert all(task.normalize(ex.target) in ex.meta["options"] for ex in _all(task))


@needs_real_data
@pytest.mark.parametrize("subset", bbh.SUBSETS)
def test_every_real_bbh_subset_loads_and_rewards_its_own_target(subset):
    task = tasks.load("bbh", subset=subset, test_size=50, data_dir=str(REAL_DATA))
    examples = _all(task)
    assert len(examples) >= 140
    replies = [f"Some reasoning.\nAnswer: {ex.target}" for ex in examples]
    assert task.reward(replies, examples) == [1.0] * len(examples)
    assert task.reward(["Answer:"] * len(examples), examples) == [0.0] * len(examples)


@needs_real_data
def test_real_navigate_has_the_papers_split_sizes():
    task = tasks.load("navigate", data_dir=str(REAL_DATA))
    assert len(task.examples("train")) == 150 and len(task.examples("test")) == 100


# ---- real files: sizes -----------------------------------------------------------------------


@needs_real_data
@pytest.mark.parametrize("name, params, sizes", [
    ("gsm8k", {"test_size": None}, (7473, 1319)),
    ("arc", {"test_size": None}, (1119, 1172)),  # 8 train stems recur in test, other options
    ("mmlu", {"subject": "abstract_algebra"}, (16, 100)),
    ("mmlu", {"subject": "college_physics"}, (10, 102)),
    ("mmlu", {"subject": "professional_medicine"}, (36, 272)),
    ("humaneval", {"test_size": 164, "train_size": 0}, (0, 164)),
])
def test_real_split_sizes(name, params, sizes):
    task = tasks.load(name, data_dir=str(REAL_DATA), **params)
    assert (len(task.examples("train")), len(task.examples("test"))) == sizes


@needs_real_data
def test_real_mmlu_subjects_match_the_static_list():
    files = (REAL_DATA / "mmlu" / "test").iterdir()
    found = sorted(p.name.removesuffix("_test.csv") for p in files)
    assert found == sorted(mmlu.SUBJECTS)


@needs_real_data
def test_real_arc_targets_are_letters_among_their_options():
    task = tasks.load("arc", test_size=None, data_dir=str(REAL_DATA))
    for ex in _all(task):
        assert ex.target in ex.meta["options"]
        assert task.reward([f"Answer: {ex.target}"], [ex]) == [1.0]


# ---- hf_dataset ------------------------------------------------------------------------------


def test_hf_dataset_without_the_datasets_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(NeuromasError, match=r"needs the optional extra \[datasets\]: pip install"):
        tasks.load("navigate", hf_dataset="lukaemon/bbh")


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace the hub with rows in each dataset's real column layout; record what was asked."""
    calls = []
    rows = {
        "lukaemon/bbh": [{"input": f"Question {i}?\nOptions:\n- Yes\n- No", "target": "Yes"}
                         for i in range(5)],
        "allenai/ai2_arc": [{"id": "q1", "question": "Which is a gas?",
                             "choices": {"text": ["ice", "steam", "rock"],
                                         "label": ["1", "2", "3"]},
                             "answerKey": "2"}],
        "cais/mmlu": [{"question": "2+2?", "subject": "abstract_algebra",
                       "choices": ["3", "4", "5", "6"], "answer": 1}],
        "openai/gsm8k": [{"question": "How many?", "answer": "2 + 2 = 4\n#### 1,004"}],
        "openai/openai_humaneval": [{"task_id": "HumanEval/0", "prompt": "def f():\n",
                                     "canonical_solution": "    return 1\n",
                                     "test": "def check(c):\n    assert c() == 1\n",
                                     "entry_point": "f"}],
    }

    def hf_rows(dataset, config, split):
        calls.append((dataset, config, split))
        # Each split gets its own rows, so train and test stay distinct.
        return [{**r, **({"question": f"{r['question']} ({split})"} if "question" in r
                         and isinstance(r["question"], str) else {})} for r in rows[dataset]]

    monkeypatch.setattr(data, "hf_rows", hf_rows)
    return calls


def test_hf_bbh_reads_the_subset_config(fake_hub):
    task = tasks.load("navigate", hf_dataset="lukaemon/bbh", test_size=2, train_size=None)
    assert fake_hub == [("lukaemon/bbh", "navigate", "test")]
    assert len(task.examples("test")) == 2 and len(task.examples("train")) == 3


def test_hf_arc_maps_columns_and_numeric_labels(fake_hub):
    task = tasks.load("arc", hf_dataset="allenai/ai2_arc", test_size=None)
    assert ("allenai/ai2_arc", "ARC-Challenge", "test") in fake_hub
    ex = task.examples("test")[0]
    assert ex.target == "B" and ex.meta["options"] == {"A": "ice", "B": "steam", "C": "rock"}
    assert ex.input == "Which is a gas? (test)\nOptions:\n(A) ice\n(B) steam\n(C) rock"


def test_hf_mmlu_maps_answer_index_to_letter(fake_hub):
    task = tasks.load("mmlu", subject="abstract_algebra", hf_dataset="cais/mmlu", test_size=None)
    assert {split for _, _, split in fake_hub} == {"dev", "validation", "test"}
    assert all(config == "abstract_algebra" for _, config, _ in fake_hub)
    assert task.examples("test")[0].target == "B"


def test_hf_gsm8k_and_humaneval(fake_hub):
    gsm = tasks.load("gsm8k", hf_dataset="openai/gsm8k", test_size=None)
    assert ("openai/gsm8k", "main", "train") in fake_hub
    assert gsm.examples("test")[0].target == "1004"
    he = tasks.load("humaneval", hf_dataset="openai/openai_humaneval", test_size=1)
    assert he.examples("test")[0].target["entry_point"] == "f"


# ---- custom JSONL ----------------------------------------------------------------------------


def _jsonl(**params):
    return tasks.load("jsonl", path=str(FIXTURES / "custom.jsonl"), test_size=4, **params)


def test_jsonl_default_reward_is_normalised_exact_match():
    task = _jsonl()
    rows = _by_id(task)
    assert task.name == "jsonl/custom" and len(rows) == 10
    paris, times = rows["capital-fr"], rows["custom/1"]
    assert times.target == 6 and rows["custom/8"].meta == {"topic": "astronomy"}
    assert task.answer_format == "End your message with 'Answer: <answer>'."
    replies = ["Answer: paris.", "Answer: Paris, France", "I think\nParis", "Answer: 6.0",
               "Answer: 6", "Answer: seven"]
    examples = [paris, paris, paris, times, times, times]
    assert task.reward(replies, examples) == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]


def test_jsonl_custom_reward_and_answer_format(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    task = _jsonl(reward="custom_rewards:contains_target", answer_format="Reply in one word.")
    assert task.answer_format == "Reply in one word."
    ex = _by_id(task)["capital-fr"]
    assert task.reward(["It is Paris, of course.", "London"], [ex, ex]) == [1.0, 0.0]
    by_name = _jsonl(reward="custom_rewards:keyword_order")
    jupiter = _by_id(by_name)["custom/8"]
    assert by_name.reward(["x", "y"], [ex, jupiter]) == [0.5, 0.25]


@pytest.mark.parametrize("spec, reason", [
    ("custom_rewards", "expected exactly one ':'"),
    ("no_such_module_xyz:f", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("custom_rewards:missing", "module 'custom_rewards' has no attribute 'missing'"),
    ("custom_rewards:not_a_function", "'not_a_function' is a int, not a function"),
])
def test_jsonl_unimportable_reward_says_why(monkeypatch, spec, reason):
    monkeypatch.syspath_prepend(str(FIXTURES))
    with pytest.raises(NeuromasError) as err:
        _jsonl(reward=spec)
    message = str(err.value)
    assert message.startswith(f"reward function '{spec}' cannot be imported: ")
    assert reason in message and message.endswith("importable from PYTHONPATH")


@pytest.mark.parametrize("spec, message", [
    ("custom_rewards:wrong_length", "returned 1 scores for 2 completions"),
    ("custom_rewards:broken", "failed: RuntimeError: bug in the user's reward"),
])
def test_jsonl_misbehaving_reward_is_reported_by_name(monkeypatch, spec, message):
    monkeypatch.syspath_prepend(str(FIXTURES))
    task = _jsonl(reward=spec)
    examples = task.examples("test")[:2]
    with pytest.raises(NeuromasError, match=message):
        task.reward(["a", "b"], examples)


@pytest.mark.parametrize("lines, message", [
    (['{"input": "a", "target": 1}', '{"input": "b"}'], r"line 2: missing key 'target'"),
    (['{"target": 1}'], r"line 1: missing key 'input'"),
    (['{"input": "a", "target": 1}', "", '{"input": "b", "target": 2'],
     r"line 3 is not valid JSON"),
    (['["input", "target"]'], r"line 1: expected a JSON object"),
    (['{"input": 5, "target": 1}'], r"line 1: 'input' must be a string"),
    ([], r"has no rows"),
])
def test_jsonl_malformed_rows_name_the_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NeuromasError, match=message):
        tasks.load("jsonl", path=str(path), test_size=1)


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(NeuromasError, match=r"jsonl task: no file .*nope.jsonl"):
        tasks.load("jsonl", path=str(tmp_path / "nope.jsonl"))


def test_jsonl_default_test_size_too_large_for_a_small_file():
    with pytest.raises(NeuromasError, match="test_size=100 but only 10 examples"):
        tasks.load("jsonl", path=str(FIXTURES / "custom.jsonl"))


def test_jsonl_rows_round_trip_through_json(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"input": f"q{i}", "target": {"list": [i, i + 1]}} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tasks.load("jsonl", path=str(path), test_size=2, seed=5)
    assert sorted(ex.input for ex in _all(task)) == sorted(r["input"] for r in rows)
    assert _by_id(task)["rows/3"].target == {"list": [2, 3]}
