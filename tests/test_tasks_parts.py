"""Input slices for any task: JSONL rows with "parts", BBH subsets that split, and what each part's
answer is (no model: a backend that echoes what each node was shown)."""

import dataclasses
import json
from pathlib import Path

import pytest

import neuromas.tasks as tasks
from neuromas.backends.base import Generation
from neuromas.errors import NeuromasError
from neuromas.network import Network
from neuromas.tasks.base import consecutive_runs

FIXTURE_DATA = str(Path(__file__).parent / "fixtures" / "data")
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"no shared data at {REAL_DATA}")


class EchoBackend:
    """Answers every request with the first line of its user turn: what the node was shown."""

    def generate(self, requests, seed):
        return [Generation(r.messages[1]["content"].splitlines()[0], [], []) for r in requests]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


ROWS = [{"id": f"r{i}", "input": f"What is {i}+1+2+{i}?", "target": 2 * i + 3,
         "parts": [f"What is {i}+1?", f"What is 2+{i}?"], "part_targets": [i + 1, i + 2]} for i in range(6)]


def test_consecutive_runs_put_the_remainder_first():
    assert consecutive_runs([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert consecutive_runs([1, 2], 3) == [[1], [2], []]
    assert consecutive_runs(list("abcd"), 1) == [list("abcd")]


def test_jsonl_parts_go_to_the_first_layer_and_the_readout_can_see_only_messages(tmp_path):
    task = tasks.load("jsonl", path=write_rows(tmp_path / "rows.jsonl", ROWS), test_size=2)
    example = task.examples("test")[0]
    assert task.split_input(example, 2) == example.meta["parts"]
    assert task.part_targets(example, 2) == example.meta["part_targets"]
    net = Network({"layers": [2, 1], "input_slices": True, "input_to_all": False}, backend=EchoBackend()).eval()
    (trace,) = net([example], task=task)
    assert [trace.messages[n].text for n in ("L1N1", "L1N2")] == example.meta["parts"]
    readout_prompt = trace.messages["L2N1"].prompt
    assert example.input not in readout_prompt and "[L1N1] " + example.meta["parts"][0] in readout_prompt


def test_jsonl_question_is_what_later_layers_see_with_input_to_all_question(tmp_path):
    rows = [dict(row, question="What is the sum?") for row in ROWS]
    task = tasks.load("jsonl", path=write_rows(tmp_path / "rows.jsonl", rows), test_size=2)
    example = task.examples("test")[0]
    net = Network({"layers": [2, 1], "input_slices": True, "input_to_all": "question"}, backend=EchoBackend()).eval()
    (trace,) = net([example], task=task)
    assert trace.messages["L2N1"].text == "What is the sum?" and example.input not in trace.messages["L2N1"].prompt
    plain = tasks.load("jsonl", path=write_rows(tmp_path / "plain.jsonl", ROWS), test_size=2)
    with pytest.raises(NeuromasError, match=r'has no "question": with network.input_to_all: question'):
        plain.question(plain.examples("test")[0])


def test_jsonl_parts_must_match_the_first_layer(tmp_path):
    task = tasks.load("jsonl", path=write_rows(tmp_path / "rows.jsonl", ROWS), test_size=2)
    example = task.examples("test")[0]
    with pytest.raises(NeuromasError, match=r"has 2 parts but the network's first layer has 3 nodes") as error:
        task.split_input(example, 3)
    assert "\n" not in str(error.value)
    net = Network({"layers": [3, 1], "input_slices": True}, backend=EchoBackend()).eval()
    with pytest.raises(NeuromasError, match="first layer has 3 nodes"):
        net([example], task=task)


def test_jsonl_rows_without_parts_are_refused_with_slices(tmp_path):
    rows = [{"input": "What is 1+1?", "target": 2}] * 1 + [{"input": "What is 2+2?", "target": 4}]
    task = tasks.load("jsonl", path=write_rows(tmp_path / "plain.jsonl", rows), test_size=1)
    with pytest.raises(NeuromasError, match=r'has no "parts".*input_slices: false'):
        task.split_input(task.examples("test")[0], 2)
    assert task.part_targets(task.examples("test")[0], 2) is None


@pytest.mark.parametrize("row, message", [
    ({"input": "x", "target": 1, "parts": "x"}, "'parts' must be a non-empty list of strings"),
    ({"input": "x", "target": 1, "parts": []}, "'parts' must be a non-empty list of strings"),
    ({"input": "x", "target": 1, "parts": ["a", 2]}, "'parts' must be a non-empty list of strings"),
    ({"input": "x", "target": 1, "parts": ["a", "b"], "part_targets": [1]}, "'part_targets' must be a list as long"),
    ({"input": "x", "target": 1, "part_targets": [1]}, "'part_targets' must be a list as long"),
    ({"input": "x", "target": 1, "question": 3}, "'question' must be a string"),
])
def test_jsonl_bad_parts_fail_when_the_file_is_read(tmp_path, row, message):
    with pytest.raises(NeuromasError, match=rf"line 1: {message}"):
        tasks.load("jsonl", path=write_rows(tmp_path / "bad.jsonl", [row, row]), test_size=1)


def check_word_sorting(task):
    for example in task.examples("test") + task.examples("train"):
        parts = task.split_input(example, 2)
        words = [w for p in parts for w in p.split("List:")[1].split()]
        assert words == example.input.split("List:")[1].split()
        assert all(p.startswith("Sort the following words alphabetically: List: ") for p in parts)
        assert sorted(w for t in task.part_targets(example, 2) for w in t.split()) == example.target.split()


def test_bbh_word_sorting_splits_the_list_and_knows_each_sorted_part():
    check_word_sorting(tasks.load("bbh", subset="word_sorting", test_size=1, data_dir=FIXTURE_DATA))


def test_bbh_object_counting_splits_the_items_and_keeps_the_question():
    task = tasks.load("bbh", subset="object_counting", test_size=1, data_dir=FIXTURE_DATA)
    examples = task.examples("test") + task.examples("train")
    example = next(e for e in examples if e.input.startswith("I have a flute, a piano"))
    assert task.split_input(example, 2) == [
        "I have a flute, a piano, a trombone, four stoves, and a violin. How many musical instruments do I have?",
        "I have an accordion, a clarinet, a drum, two lamps, and a trumpet. How many musical instruments do I have?",
    ]
    short = next(e for e in examples if e.input.startswith("I have a fridge"))
    assert task.split_input(short, 2) == ["I have a fridge and a chair. How many objects do I have?",
                                          "I have a microwave. How many objects do I have?"]
    # musical instruments: flute, piano, trombone, violin (not the stoves) | accordion, clarinet, drum, trumpet
    assert task.part_targets(example, 2) == [4, 4] and example.target == "8"
    assert task.part_targets(short, 2) == [2, 1]
    assert task.part_targets(short, 4) == [1, 1, 1, None]  # three items: the fourth part has none
    unknown = dataclasses.replace(example, input=example.input.replace("a trombone", "a kazoo"))
    assert task.part_targets(unknown, 2) is None  # a noun outside the vocabulary: no counts to trust
    wrong = dataclasses.replace(example, target="9")
    assert task.part_targets(wrong, 2) is None  # counts that do not add up to the target are not trusted


def test_object_counting_sublists_train_on_runs_of_every_length_and_keep_the_test():
    whole = tasks.load("bbh", subset="object_counting", test_size=1, data_dir=FIXTURE_DATA)
    mixed = tasks.load("bbh", subset="object_counting", test_size=1, data_dir=FIXTURE_DATA, train_sublists=True)
    assert mixed.examples("test") == whole.examples("test")
    for source in whole.examples("train"):
        items, question = whole._items_of(source)
        runs = [e for e in mixed.examples("train") if e.meta["source"] == source.id]
        lengths = sorted(len(mixed._items_of(e)[0]) for e in runs)
        # one run of each length (a one-item run may be dropped as a repeat of another row's)
        assert len(set(lengths)) == len(lengths) and set(range(2, len(items) + 1)) <= set(lengths)
        for run in runs:
            assert run.input.endswith(question) and int(run.target) == sum(mixed.part_targets(run, 1))
        full = next(e for e in runs if len(mixed._items_of(e)[0]) == len(items))
        assert full.input == source.input and full.target == str(source.target)
    test_inputs = {e.input for e in mixed.examples("test")}
    assert not test_inputs & {e.input for e in mixed.examples("train")}
    with pytest.raises(NeuromasError, match="train_sublists is for subset object_counting"):
        tasks.load("bbh", subset="navigate", test_size=1, data_dir=FIXTURE_DATA, train_sublists=True)


@needs_real_data
def test_every_real_word_sorting_and_object_counting_row_splits():
    check_word_sorting(tasks.load("bbh", subset="word_sorting", test_size=128, data_dir=str(REAL_DATA)))
    task = tasks.load("bbh", subset="object_counting", test_size=128, data_dir=str(REAL_DATA))
    for example in task.examples("test") + task.examples("train"):
        parts = task.split_input(example, 3)  # a few rows have two items: the third part says so
        empty = "(no items in this part)"
        assert all(p.startswith("I have ") and p.endswith("do I have?") or p == empty for p in parts)
        assert parts[0] != "(no items in this part)"
        counts = task.part_targets(example, 2)  # every noun of the data is in the vocabulary
        assert counts is not None and sum(counts) == int(example.target), example.input


def test_bbh_subsets_without_a_natural_cut_refuse():
    task = tasks.load("bbh", subset="dyck_languages", test_size=1, data_dir=FIXTURE_DATA)
    with pytest.raises(NeuromasError, match="cannot split its input.*bbh word_sorting and object_counting"):
        task.split_input(task.examples("test")[0], 2)


def test_arith_part_targets_are_the_sums_of_its_parts():
    task = tasks.load("arith", operands=5)
    example = task.examples("test")[0]
    a, b, c, d, e = example.meta["operands"]
    assert task.part_targets(example, 2) == [a + b + c, d + e]
    assert sum(task.part_targets(example, 2)) == example.target


def test_lookup_parts_keep_the_question_and_exactly_one_holds_the_answer():
    task = tasks.load("lookup", pairs=5, test_size=20, train_size=50)
    for example in task.examples("test"):
        keys, values, (query,) = example.meta["keys"], example.meta["values"], example.meta["queries"]
        question = f"Find the number of the {keys[query]}."
        assert example.input.splitlines() == [question, *(f"{k}: {v}" for k, v in zip(keys, values))]
        assert example.target == values[query] and len(set(keys)) == len(set(values)) == 5
        parts = task.split_input(example, 2)
        assert [p.splitlines()[0] for p in parts] == [question, question]
        assert [len(p.splitlines()) - 1 for p in parts] == [3, 2]  # the remainder goes first
        targets = task.part_targets(example, 2)
        holder = 0 if query < 3 else 1
        assert targets[holder] == example.target and targets[1 - holder] is None
        assert f"{keys[query]}: {example.target}" in parts[holder] and keys[query] + ":" not in parts[1 - holder]
    assert "(no lines in this part)" in task.split_input(task.examples("test")[0], 6)[5]


def test_lookup_splits_are_seeded_distinct_and_disjoint():
    task = tasks.load("lookup", pairs=4, test_size=30, train_size=200, seed=3)
    again = tasks.load("lookup", pairs=4, test_size=30, train_size=200, seed=3)
    test = [e.input for e in task.examples("test")]
    assert test == [e.input for e in again.examples("test")] and len(set(test)) == 30
    assert not set(test) & {e.input for e in task.examples("train")}
    assert test != [e.input for e in tasks.load("lookup", pairs=4, test_size=30, train_size=0, seed=4).examples("test")]
    example = task.examples("test")[0]
    other = next(v for v in example.meta["values"] if v != example.target)
    replies = [f"The {example.meta['keys'][0]} is {other}. Answer: {example.target}", f"Answer: {other}", ""]
    assert task.reward(replies, [example] * 3) == [1.0, 0.0, 0.0]


def test_lookup_of_two_keys_asks_their_sum_with_one_key_in_each_half():
    task = tasks.load("lookup", pairs=7, queries=2, test_size=30, train_size=0)
    for example in task.examples("test"):
        keys, values, queries = example.meta["keys"], example.meta["values"], example.meta["queries"]
        assert queries[0] < 4 <= queries[1]  # 7 lines in halves of 4 and 3
        assert example.input.splitlines()[0] == f"Find the sum of the numbers of the {keys[queries[0]]} and the {keys[queries[1]]}."
        assert example.target == values[queries[0]] + values[queries[1]]
        parts = task.split_input(example, 2)
        assert task.part_targets(example, 2) == [values[queries[0]], values[queries[1]]]
        assert [p.splitlines()[0] for p in parts] == [f"Find the number of the {keys[q]}." for q in queries]
        assert f"{keys[queries[1]]}: {values[queries[1]]}" in parts[1]
        # the whole list in one part holds both keys; in three parts, one or two hold none
        assert task.part_targets(example, 1) == [example.target]
        three = task.part_targets(example, 3)
        assert three.count(None) in (1, 2) and sum(t for t in three if t is not None) == example.target
    # the question of a part is the first line its part shows (a reduction tree's middle node reads it)
    four = tasks.load("lookup", pairs=8, digits=1, queries=4, test_size=3, train_size=0)
    for example in four.examples("test"):
        for parts in (1, 2, 4):
            assert [four.question(example, parts, i) for i in range(parts)] == [
                p.splitlines()[0] for p in four.split_input(example, parts)]
    three = tasks.load("lookup", pairs=9, queries=3, test_size=5, train_size=0).examples("test")[0]
    keys = [three.meta["keys"][q] for q in three.meta["queries"]]
    assert three.input.startswith(f"Find the sum of the numbers of the {keys[0]}, the {keys[1]} and the {keys[2]}.")


def test_lookup_train_pairs_draw_the_train_lists_length_only():
    plain = tasks.load("lookup", pairs=16, queries=2, train_size=300)
    mixed = tasks.load("lookup", pairs=16, queries=2, train_pairs=[2, 16], train_size=300)
    assert [e.input for e in plain.examples("test")] == [e.input for e in mixed.examples("test")]
    lengths = [len(e.meta["keys"]) for e in mixed.examples("train")]
    assert min(lengths) == 2 and max(lengths) == 16 and len(set(lengths)) == 15
    assert {len(e.meta["keys"]) for e in plain.examples("train")} == {16}
    two = next(e for e in mixed.examples("train") if len(e.meta["keys"]) == 2)
    assert two.meta["queries"] == [0, 1] and two.target == sum(two.meta["values"])


def test_lookup_train_queries_mix_the_keys_asked_and_parts_ask_for_theirs():
    task = tasks.load("lookup", pairs=8, digits=1, queries=4, train_queries=[2, 4], train_size=300, test_size=20)
    assert {len(e.meta["queries"]) for e in task.examples("test")} == {4}
    assert {len(e.meta["queries"]) for e in task.examples("train")} == {2, 3, 4}
    example = task.examples("test")[0]
    keys, values, queries = example.meta["keys"], example.meta["values"], example.meta["queries"]
    assert [q // 2 for q in queries] == [0, 1, 2, 3]  # one key in each run of two lines
    parts = task.split_input(example, 2)
    assert parts[0].splitlines()[0] == f"Find the sum of the numbers of the {keys[queries[0]]} and the {keys[queries[1]]}."
    assert task.part_targets(example, 2) == [values[queries[0]] + values[queries[1]], values[queries[2]] + values[queries[3]]]
    assert sum(task.part_targets(example, 2)) == example.target


@pytest.mark.parametrize("params, message", [({"pairs": 1}, "pairs=1 must be between 2 and"),
                                             ({"pairs": 12, "digits": 1}, "cannot give 12 distinct"),
                                             ({"pairs": 8, "digits": 1, "train_pairs": [2, 12]}, "cannot give 12 distinct"),
                                             ({"queries": 0}, "queries=0 must be between 1 and pairs=16"),
                                             ({"queries": 3, "train_pairs": [2, 8]}, r"train_pairs=\[2, 8\] must be"),
                                             ({"train_pairs": [9, 4]}, r"train_pairs=\[9, 4\] must be"),
                                             ({"pairs": 4, "train_queries": [2, 5]}, r"train_queries=\[2, 5\] must be .* <= 4"),
                                             ({"digits": 0}, "digits=0 must be between 1 and 9")])
def test_lookup_bad_knobs_fail_in_one_line(params, message):
    with pytest.raises(NeuromasError, match=message) as error:
        tasks.load("lookup", **params)
    assert "\n" not in str(error.value)


def test_story_parts_ask_about_their_people_and_add_up_to_the_answer():
    task = tasks.load("story", people=4, test_size=40, train_size=0)
    for example in task.examples("test"):
        names, values, thing = example.meta["names"], example.meta["values"], example.meta["thing"]
        assert len(set(names)) == 4 and all(1 <= v <= 9 for v in values) and example.target == sum(values)
        assert example.input.endswith(f"How many {thing} do {names[0]}, {names[1]}, {names[2]} and {names[3]} have in all?")
        parts = task.split_input(example, 2)
        assert parts[0].endswith(f"How many {thing} do {names[0]} and {names[1]} have in all?")
        assert f"{names[2]} has {values[2]} " in parts[1] and names[0] not in parts[1]
        assert task.part_targets(example, 2) == [values[0] + values[1], values[2] + values[3]]
        assert [task.question(example, 2, i) for i in (0, 1)] == [p[p.index("How many"):] for p in parts]
        assert task.question(example) == example.input[example.input.index("How many"):]
    one = task.split_input(task.examples("test")[0], 4)[0]
    assert one.endswith("have?") and " does " in one
    assert task.split_input(task.examples("test")[0], 5)[4] == "(nobody in this part)"
    assert task.part_targets(task.examples("test")[0], 5)[4] is None
    example = task.examples("test")[0]
    replies = [f"{example.meta['names'][0]} has {example.meta['values'][0]}. Answer: {example.target}", "Answer: 0", ""]
    assert task.reward(replies, [example] * 3) == [1.0, 0.0, 0.0]


def test_story_one_of_a_thing_is_singular_and_train_people_mixes_the_train_split_only():
    task = tasks.load("story", people=4, train_people=[1, 4], test_size=30, train_size=400, seed=2)
    assert {len(e.meta["names"]) for e in task.examples("test")} == {4}
    assert {len(e.meta["names"]) for e in task.examples("train")} == {1, 2, 3, 4}
    assert not {e.input for e in task.examples("test")} & {e.input for e in task.examples("train")}
    same = tasks.load("story", people=4, test_size=30, train_size=0, seed=2)
    assert [e.input for e in same.examples("test")] == [e.input for e in task.examples("test")]
    lone = next(e for e in task.examples("train") if len(e.meta["names"]) == 1)
    assert lone.input.endswith(f"How many {lone.meta['thing']} does {lone.meta['names'][0]} have?")
    ones = [e for e in task.examples("train") if 1 in e.meta["values"]]
    assert ones and all(f" has 1 {e.meta['thing'][:-1]}." in e.input for e in ones)


@pytest.mark.parametrize("params, message", [({"people": 0}, "people=0 must be between 1 and"),
                                             ({"min_value": 5, "max_value": 3}, "min_value=5, max_value=3"),
                                             ({"train_people": [3, 2]}, r"train_people=\[3, 2\] must be"),
                                             ({"people": 1, "min_value": 1, "max_value": 1, "test_size": 300},
                                              "could not draw 300 distinct test inputs")])
def test_story_bad_knobs_fail_in_one_line(params, message):
    with pytest.raises(NeuromasError, match=message):
        tasks.load("story", **params)


def test_digitsum_parts_are_runs_of_digits_whose_sums_add_up_to_the_answer():
    task = tasks.load("digitsum", digits=4, test_size=60, train_size=0)
    for example in task.examples("test"):
        digits = example.meta["digits"]
        number = "".join(map(str, digits))
        assert example.input == f"What is the sum of the digits of {number}?" and example.target == sum(digits)
        assert all(1 <= d <= 9 for d in digits)
        assert task.split_input(example, 2) == [f"What is the sum of the digits of {number[:2]}?",
                                                f"What is the sum of the digits of {number[2:]}?"]
        assert task.part_targets(example, 2) == [digits[0] + digits[1], digits[2] + digits[3]]
    example = task.examples("test")[0]
    assert task.split_input(example, 4)[3] == f"What is the sum of the digits of {example.meta['digits'][3]}?"
    assert task.split_input(example, 5)[4] == "(no digits in this part)" and task.part_targets(example, 5)[4] is None
    assert task.reward([f"{example.meta['digits'][0]} + ... Answer: {example.target}", "Answer: 0"], [example] * 2) == [1.0, 0.0]


def test_digitsum_train_digits_mixes_the_train_split_only_and_zeros_never_lead():
    task = tasks.load("digitsum", digits=4, min_digit=0, train_digits=[1, 4], test_size=50, train_size=500, seed=3)
    assert {len(e.meta["digits"]) for e in task.examples("test")} == {4}
    assert {len(e.meta["digits"]) for e in task.examples("train")} == {1, 2, 3, 4}
    assert not {e.input for e in task.examples("test")} & {e.input for e in task.examples("train")}
    everything = task.examples("test") + task.examples("train")
    assert all(e.meta["digits"][0] != 0 for e in everything) and any(0 in e.meta["digits"] for e in everything)
    same = tasks.load("digitsum", digits=4, min_digit=0, test_size=50, train_size=0, seed=3)
    assert [e.input for e in same.examples("test")] == [e.input for e in task.examples("test")]


@pytest.mark.parametrize("params, message", [({"digits": 0}, "digits=0 must be between 1 and 30"),
                                             ({"min_digit": 10}, "min_digit=10 must be between 0 and 9"),
                                             ({"train_digits": [3, 2]}, r"train_digits=\[3, 2\] must be"),
                                             ({"digits": 1, "test_size": 20}, "could not draw 20 distinct test inputs")])
def test_digitsum_bad_knobs_fail_in_one_line(params, message):
    with pytest.raises(NeuromasError, match=message) as error:
        tasks.load("digitsum", **params)
    assert "\n" not in str(error.value)
