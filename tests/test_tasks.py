"""Task registry, parameter checks, data location, splits and the arithmetic testbed."""

from __future__ import annotations

from pathlib import Path

import pytest

import neuromas.tasks as tasks
from neuromas.errors import NeuromasError
from neuromas.tasks import arithmetic, data
from neuromas.tasks.base import Example, Task

FIXTURE_DATA = Path(__file__).parent / "fixtures" / "data"
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(),
                                     reason=f"no shared data at {REAL_DATA}")

# Every file-backed task, with parameters that fit the few rows of tests/fixtures/data.
FIXTURE_TASKS = [
    ("gsm8k", {"test_size": 2}),
    ("arc", {"test_size": 3}),
    ("mmlu", {"subject": "abstract_algebra", "test_size": 3}),
    ("bbh", {"subset": "navigate", "test_size": 4}),
    ("bbh", {"subset": "date_understanding", "test_size": 2}),
    ("navigate", {"test_size": 4, "train_size": None}),
    ("humaneval", {"test_size": 1}),
]
REAL_TASKS = [
    ("gsm8k", {}), ("arc", {}), ("mmlu", {"subject": "abstract_algebra"}),
    ("mmlu", {"subject": "college_physics"}), ("mmlu", {"subject": "professional_medicine"}),
    ("bbh", {"subset": "causal_judgement"}), ("navigate", {}), ("humaneval", {}),
]


def _ids(task_list):
    return [f"{name}-{'-'.join(str(v) for v in params.values())}" for name, params in task_list]


# ---- registry --------------------------------------------------------------------------------


def test_names_lists_every_task():
    assert tasks.names() == sorted(
        ["arc", "arith", "bbh", "digitsum", "gsm8k", "humaneval", "jsonl", "lookup", "mmlu", "navigate", "story"])


def test_unknown_task_lists_the_valid_names():
    with pytest.raises(NeuromasError, match="unknown task 'arithmetic'") as err:
        tasks.load("arithmetic")
    assert "\n" not in str(err.value)
    for name in tasks.names():
        assert name in str(err.value)


def test_unknown_parameter_names_it_and_the_valid_ones():
    with pytest.raises(NeuromasError, match="no parameter 'operand'") as err:
        tasks.load("arith", operand=4)
    assert "operands" in str(err.value) and "digits" in str(err.value)


@pytest.mark.parametrize("params, bad", [
    ({"digits": "two"}, "digits"),
    ({"digits": True}, "digits"),           # a bool is not an integer in a config
    ({"operands": 4.5}, "operands"),
    ({"operands": [2, "4"]}, "operands"),
    ({"train_size": None}, "train_size"),   # arith generates: "all" has no meaning
    ({"operators": ["+"]}, "operators"),
])
def test_ill_typed_parameter_is_named(params, bad):
    with pytest.raises(NeuromasError, match=f"parameter '{bad}' must be"):
        tasks.load("arith", **params)


def test_missing_required_parameter_is_named():
    with pytest.raises(NeuromasError, match="needs parameter 'subject'"):
        tasks.load("mmlu")


def test_register_makes_a_class_loadable():
    @tasks.register("test-constant")
    class Constant(Task):
        name = "constant"

        def __init__(self, value: int = 1):
            self.value = value

    try:
        assert "test-constant" in tasks.names()
        assert tasks.load("test-constant", value=3).value == 3
        with pytest.raises(NeuromasError, match="parameter 'value' must be int"):
            tasks.load("test-constant", value="3")
    finally:
        tasks.registry._TASKS.pop("test-constant")


def test_unknown_split_is_an_error():
    task = tasks.load("arith", train_size=5, test_size=5)
    with pytest.raises(NeuromasError, match="unknown split 'valid'"):
        task.examples("valid")


# ---- data location ---------------------------------------------------------------------------


def test_data_dir_argument_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROMAS_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert data.resolve_data_dir(None) == tmp_path / "env"


def test_data_dir_falls_back_to_shared_data_beside_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("NEUROMAS_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert data.resolve_data_dir() == tmp_path / "shared" / "data"


def test_data_dir_falls_back_to_shared_data_beside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("NEUROMAS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    repo_candidate = Path(tasks.__file__).resolve().parents[3].parent / "shared" / "data"
    expected = repo_candidate if repo_candidate.is_dir() else tmp_path.parent / "shared" / "data"
    assert data.resolve_data_dir() == expected


@pytest.mark.parametrize("name, params, message", [
    ("navigate", {}, r"BBH data not found: no navigate.json under .*bbh; set data_dir"),
    ("gsm8k", {}, r"GSM8K data not found: no train.jsonl under .*gsm8k"),
    ("arc", {}, r"ARC data not found: no ARC-Challenge-Train.jsonl"),
    ("mmlu", {"subject": "anatomy"}, r"MMLU data not found: no anatomy_dev.csv"),
    ("humaneval", {}, r"HumanEval data not found: no HumanEval.jsonl.gz .*NEUROMAS_DATA_DIR"),
])
def test_missing_data_says_where_it_looked(tmp_path, name, params, message):
    with pytest.raises(NeuromasError, match=message):
        tasks.load(name, data_dir=str(tmp_path), **params)


def test_environment_variable_points_loaders_at_the_data(monkeypatch):
    monkeypatch.setenv("NEUROMAS_DATA_DIR", str(FIXTURE_DATA))
    assert len(tasks.load("navigate", test_size=4, train_size=None).examples("test")) == 4


# ---- splits ----------------------------------------------------------------------------------


def _assert_disjoint_and_deterministic(name, params):
    first = tasks.load(name, **params)
    again = tasks.load(name, **params)
    train, test = first.examples("train"), first.examples("test")
    assert test, "the test split must not be empty"
    assert {e.input for e in train}.isdisjoint(e.input for e in test)
    assert {e.id for e in train}.isdisjoint(e.id for e in test)
    assert len({e.id for e in train + test}) == len(train + test)
    assert again.examples("train") == train and again.examples("test") == test
    return first


@pytest.mark.parametrize("name, params", FIXTURE_TASKS, ids=_ids(FIXTURE_TASKS))
def test_fixture_splits_are_disjoint_and_deterministic(name, params):
    _assert_disjoint_and_deterministic(name, {**params, "data_dir": str(FIXTURE_DATA)})


@needs_real_data
@pytest.mark.parametrize("name, params", REAL_TASKS, ids=_ids(REAL_TASKS))
def test_real_splits_are_disjoint_and_deterministic(name, params):
    _assert_disjoint_and_deterministic(name, {**params, "data_dir": str(REAL_DATA)})


@needs_real_data
def test_seed_changes_the_split_and_test_ignores_train_size():
    base = tasks.load("navigate", data_dir=str(REAL_DATA))
    other_seed = tasks.load("navigate", seed=1, data_dir=str(REAL_DATA))
    smaller_train = tasks.load("navigate", train_size=20, data_dir=str(REAL_DATA))
    assert base.examples("test") != other_seed.examples("test")
    assert smaller_train.examples("test") == base.examples("test")
    small_ids = {e.id for e in smaller_train.examples("train")}
    assert len(small_ids) == 20 and small_ids < {e.id for e in base.examples("train")}


@needs_real_data
def test_own_test_file_is_sampled_from_the_test_file_only():
    small = tasks.load("gsm8k", test_size=50, data_dir=str(REAL_DATA)).examples("test")
    full = tasks.load("gsm8k", test_size=None, data_dir=str(REAL_DATA)).examples("test")
    assert len(small) == 50 and len(full) == 1319
    assert all(e.id.startswith("gsm8k/test/") for e in small)


@pytest.mark.parametrize("params, message", [
    ({"test_size": 300}, "test_size=300 but only 10 examples are available"),
    ({"test_size": 4, "train_size": 7}, "train_size=7 but only 6 examples are available"),
    ({"test_size": -1}, "test_size=-1 must be >= 0"),
])
def test_impossible_split_sizes_are_errors(params, message):
    with pytest.raises(NeuromasError, match=message):
        tasks.load("navigate", data_dir=str(FIXTURE_DATA), **params)


# ---- arith -----------------------------------------------------------------------------------


def test_arith_default_examples_are_what_the_docs_promise():
    task = tasks.load("arith")
    train, test = task.examples("train"), task.examples("test")
    assert (len(train), len(test)) == (2000, 128)
    assert task.answer_format == "End your message with 'Answer: <integer>'."
    for ex in test[:20]:
        numbers = ex.meta["operands"]
        assert len(numbers) == 4 and all(0 <= n <= 9 for n in numbers)
        assert ex.input == f"What is {'+'.join(map(str, numbers))}?"
        assert ex.target == sum(numbers)
    assert len({e.input for e in test}) == len(test)
    assert {e.input for e in train}.isdisjoint(e.input for e in test)


def test_arith_test_split_depends_only_on_seed_and_knobs():
    a = tasks.load("arith", seed=3, train_size=10)
    b = tasks.load("arith", seed=3, train_size=500)
    c = tasks.load("arith", seed=4, train_size=10)
    assert a.examples("test") == b.examples("test")
    assert a.examples("test") != c.examples("test")


def test_arith_depth_two_groups_balanced_halves_and_records_subresults():
    task = tasks.load("arith", operands=4, depth=2, train_size=0, test_size=30)
    for ex in task.examples("test"):
        a, b, c, d = ex.meta["operands"]
        assert ex.input == f"What is ({a}+{b})+({c}+{d})?"
        assert ex.meta["subresults"] == [
            {"expr": f"{a}+{b}", "value": a + b},
            {"expr": f"{c}+{d}", "value": c + d},
            {"expr": f"({a}+{b})+({c}+{d})", "value": a + b + c + d},
        ]


def test_arith_evaluates_precedence_and_parentheses_like_python():
    task = tasks.load("arith", operands=5, digits=2, operators="+-*", depth=1,
                      train_size=50, test_size=50)
    deep = tasks.load("arith", operands=6, digits=2, operators="+-*", depth=3,
                      train_size=50, test_size=50)
    for ex in task.examples("train") + deep.examples("test"):
        expression = ex.input.removeprefix("What is ").removesuffix("?")
        assert ex.target == eval(expression)  # noqa: S307 - our own generated digits and +-*()
        assert all(10 <= n <= 99 for n in ex.meta["operands"])
        for sub in ex.meta["subresults"]:
            assert sub["value"] == eval(sub["expr"])  # noqa: S307


def test_build_tree_depth_three_on_eight_operands():
    tree = arithmetic.build_tree(list(range(1, 9)), ["+"] * 7, depth=3)
    assert tree["expr"] == "((1+2)+(3+4))+((5+6)+(7+8))"
    assert [s["value"] for s in arithmetic.subresults(tree)] == [3, 7, 10, 11, 15, 26, 36]


def test_arith_operand_range_is_a_curriculum():
    task = tasks.load("arith", operands=[2, 4], train_size=600, test_size=60)
    counts = {len(e.meta["operands"]) for e in task.examples("train")}
    assert counts == {2, 3, 4}
    assert {len(e.meta["operands"]) for e in task.examples("test")} <= {2, 3, 4}


def test_arith_train_operands_change_the_train_split_only():
    plain = tasks.load("arith", operands=4, train_size=300)
    curriculum = tasks.load("arith", operands=4, train_operands=[2, 4], train_size=300)
    assert [e.input for e in curriculum.examples("test")] == [e.input for e in plain.examples("test")]
    assert {len(e.meta["operands"]) for e in curriculum.examples("train")} == {2, 3, 4}
    held_out = {e.input for e in curriculum.examples("test")}
    assert not held_out & {e.input for e in curriculum.examples("train")}


@pytest.mark.parametrize("params, message", [
    ({"operands": 1}, "operands=1 must be"),
    ({"operands": [4, 2]}, r"operands=\[4, 2\] must be"),
    ({"operands": [2, 3, 4]}, "operands=.* must be"),
    ({"digits": 0}, "digits=0 must be"),
    ({"operators": "+/"}, "operators='\\+/' must be made of"),
    ({"depth": 0}, "depth=0 must be >= 1"),
    ({"operands": 2, "test_size": 101}, "only 100 distinct expressions"),
    ({"operands": 2, "test_size": 100, "train_size": 5}, "leaving none to train on"),
    ({"train_operands": [3, 2]}, r"train_operands=\[3, 2\] must be"),
])
def test_arith_rejects_impossible_knobs(params, message):
    with pytest.raises(NeuromasError, match=message):
        tasks.load("arith", **params)


def test_arith_reward_reads_the_answer():
    task = tasks.load("arith", train_size=0, test_size=3)
    examples = task.examples("test")
    target = examples[0].target
    completions = [f"Let me add.\nAnswer: {target}", f"Answer: {target + 1}", "I don't know"]
    assert task.reward(completions, [examples[0]] * 3) == [1.0, 0.0, 0.0]


def test_example_is_a_frozen_record():
    ex = Example(id="x", input="q", target=1)
    with pytest.raises(AttributeError):
        ex.target = 2  # type: ignore[misc]


def test_arith_split_input_cuts_the_sum_into_consecutive_parts_that_add_up():
    task = tasks.load("arith", operands=5, digits=2)
    for example in task.examples("test")[:20]:
        parts = task.split_input(example, 2)
        numbers = [[int(n) for n in p.removeprefix("What is ").removesuffix("?").split("+")] for p in parts]
        assert [n for run in numbers for n in run] == example.meta["operands"]
        assert [len(run) for run in numbers] == [3, 2]
        assert sum(sum(run) for run in numbers) == example.target


def test_arith_split_input_says_when_a_part_has_no_numbers():
    task = tasks.load("arith", operands=2, test_size=10)
    example = task.examples("test")[0]
    a, b = example.meta["operands"]
    assert task.split_input(example, 3) == [
        f"What is {a}?", f"What is {b}?", "(no numbers in this part)"]


def test_arith_sum_of_products_splits_into_its_two_products():
    task = tasks.load("arith", operands=4, min_value=1, operators="*", top_operators="+", depth=2,
                      train_operands=[2, 4], train_size=300, test_size=50)
    for example in task.examples("test"):
        a, b, c, d = example.meta["operands"]
        assert example.input == f"What is ({a}*{b})+({c}*{d})?"
        assert example.target == a * b + c * d and min(a, b, c, d) >= 1
        assert task.split_input(example, 2) == [f"What is {a}*{b}?", f"What is {c}*{d}?"]
        assert task.part_targets(example, 2) == [a * b, c * d]
    shapes = {}  # the curriculum's shorter items: "a+b" and "(a*b)+c" split at their top "+" as well
    for example in task.examples("train"):
        shapes.setdefault(len(example.meta["operands"]), example)
    a, b = shapes[2].meta["operands"]
    assert shapes[2].input == f"What is {a}+{b}?" and task.split_input(shapes[2], 2) == [
        f"What is {a}?", f"What is {b}?"]
    a, b, c = shapes[3].meta["operands"]
    assert shapes[3].input == f"What is ({a}*{b})+{c}?" and task.part_targets(shapes[3], 2) == [a * b, c]
    with pytest.raises(NeuromasError, match="first layer of width 2"):
        task.split_input(task.examples("test")[0], 3)


def test_arith_flat_sum_of_products_splits_where_the_precedence_does():
    task = tasks.load("arith", operands=4, min_value=1, max_value=5, operators="*", top_operators="+",
                      depth=1, spaced=True, train_operands=[2, 4], train_size=300, test_size=50)
    for example in task.examples("test"):
        a, b, c, d = example.meta["operands"]
        assert example.input == f"What is {a} * {b} + {c} * {d}?" and example.target == a * b + c * d
        assert task.split_input(example, 2) == [f"What is {a} * {b}?", f"What is {c} * {d}?"]
        assert task.part_targets(example, 2) == [a * b, c * d]
    three = next(e for e in task.examples("train") if len(e.meta["operands"]) == 3)
    a, b, c = three.meta["operands"]
    assert three.input == f"What is {a} * {b} + {c}?" and task.part_targets(three, 2) == [a * b, c]
    mixed = tasks.load("arith", operands=[2, 6], operators="+-*", top_operators="+", depth=1,
                       train_size=0, test_size=200)  # "-" and "*" inside the halves: still their sum
    for example in mixed.examples("test"):
        assert sum(mixed.part_targets(example, 2)) == example.target, example.input
    plain = tasks.load("arith", operands=4, operators="*", depth=1, test_size=20)  # no "+" between the halves
    with pytest.raises(NeuromasError, match="parts that add up"):
        plain.split_input(plain.examples("test")[0], 2)


def test_arith_min_and_max_value_bound_every_number_drawn():
    task = tasks.load("arith", operands=[2, 4], min_value=2, max_value=6, train_size=200, test_size=100)
    drawn = {n for split in ("train", "test") for e in task.examples(split) for n in e.meta["operands"]}
    assert drawn == {2, 3, 4, 5, 6}
    with pytest.raises(NeuromasError, match="these knobs allow only 25 distinct"):
        tasks.load("arith", operands=2, min_value=2, max_value=6, test_size=26)


def test_arith_new_knobs_keep_the_default_questions():
    """top_operators, min_value and max_value draw nothing unless set, so past runs' questions stay the same:
    the first questions of each split as the generator drew them before the knobs existed."""
    task = tasks.load("arith", operands=[2, 4], digits=2, operators="+-*", depth=2, train_size=20, test_size=20)
    assert [e.input for e in task.examples("train")[:3]] == [
        "What is (21*20)+(40-49)?", "What is (47*26)-(74-77)?", "What is (50*37)-(17-15)?"]
    assert [e.input for e in task.examples("test")[:3]] == [
        "What is (40*35)-(22-17)?", "What is 74*34?", "What is (75*35)-(85-45)?"]


@pytest.mark.parametrize("min_result", [0, 1])
def test_arith_min_result_redraws_every_question_with_a_smaller_part(min_result):
    task = tasks.load("arith", operands=[2, 4], operators="-", top_operators="+", depth=2, min_result=min_result,
                      train_size=300, test_size=100)
    examples = task.examples("train") + task.examples("test")
    values = [r["value"] for e in examples for r in e.meta["subresults"]]
    assert min(values) == min_result and any(op == "-" for e in examples for op in e.meta["operators"])
    signed = tasks.load("arith", operands=4, operators="-", top_operators="+", depth=2, test_size=100)
    assert any(r["value"] < 0 for e in signed.examples("test") for r in e.meta["subresults"])
    with pytest.raises(NeuromasError, match="min_result=0 found no expression"):
        tasks.load("arith", operands=3, digits=2, operators="-", min_result=0, min_value=10, max_value=10,
                   test_size=1)  # 10-10-10 is the only question


def test_arith_answer_not_shown_redraws_every_question_whose_answer_it_shows():
    knobs = dict(operands=[3, 4], operators="-", top_operators="+", depth=2, min_result=1, min_value=1, spaced=True)
    shown = tasks.load("arith", **knobs, test_size=100).examples("test")
    assert sum(e.target in e.meta["operands"] for e in shown) > 20  # "(6 - 5) + (6 - 1)" is 6
    task = tasks.load("arith", **knobs, answer_not_shown=True, train_size=300, test_size=100)
    examples = task.examples("train") + task.examples("test")
    assert len(examples) == 400 and not any(e.target in e.meta["operands"] for e in examples)
    assert min(r["value"] for e in examples for r in e.meta["subresults"]) == 1
    with pytest.raises(NeuromasError, match="answer_not_shown found no expression"):
        tasks.load("arith", operands=2, operators="+", min_value=0, max_value=0, answer_not_shown=True, test_size=1)


def test_arith_spaced_writes_operators_apart_in_the_question_and_its_parts():
    task = tasks.load("arith", operands=4, operators="-", top_operators="+", depth=2, min_result=0, spaced=True)
    example = task.examples("test")[0]
    a, b, c, d = example.meta["operands"]
    assert example.input == f"What is ({a} - {b}) + ({c} - {d})?"
    assert task.split_input(example, 2) == [f"What is {a} - {b}?", f"What is {c} - {d}?"]
    assert task.part_targets(example, 2) == [a - b, c - d] and example.target == a - b + c - d
    flat = tasks.load("arith", operands=4, spaced=True).examples("test")[0]
    unspaced = tasks.load("arith", operands=4).examples("test")[0]
    assert flat.input == unspaced.input.replace("+", " + ") and flat.target == unspaced.target


@pytest.mark.parametrize("params, message", [
    ({"top_operators": "/", "depth": 2}, "top_operators='/' must be made of"),
    ({"min_value": 10}, "min_value=10 must be between 0 and 9"),
    ({"digits": 2, "min_value": 5}, "min_value=5 must be between 10 and 99"),
    ({"max_value": 10}, "max_value=10 must be between 0 and 9"),
    ({"min_value": 3, "max_value": 2}, "max_value=2 must be between 3 and 9"),
])
def test_arith_rejects_bad_top_operators_and_min_value(params, message):
    with pytest.raises(NeuromasError, match=message):
        tasks.load("arith", **params)


def test_split_input_is_refused_where_parts_do_not_add_up_or_the_task_cannot_cut():
    minus = tasks.load("arith", operators="-")
    with pytest.raises(NeuromasError, match="input_slices needs parts that add up"):
        minus.split_input(minus.examples("test")[0], 2)
    other = tasks.load("bbh", subset="navigate", test_size=4, data_dir=str(FIXTURE_DATA))
    with pytest.raises(NeuromasError, match="set network.input_slices: false"):
        other.split_input(other.examples("test")[0], 2)
