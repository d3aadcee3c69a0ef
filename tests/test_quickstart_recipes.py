"""benchmarks/quickstart_recipes.py: a recipe's evaluations land at the steps asked for, on the
same questions, and `apart` follows the intervals (the figure the quickstart is chosen by)."""

import pytest
from benchmarks.common import SMOKE_TRAIN
from benchmarks.quickstart_recipes import run_seed


@pytest.mark.slow
def test_a_seed_is_evaluated_before_after_the_steps_asked_for_and_at_the_end():
    overrides = ["model.dtype=float32", *SMOKE_TRAIN, "train.steps=3"]
    row = run_seed(0, overrides, evals={1, 3})
    assert row["steps"] == 3 and len(row["rewards"]) == 3
    assert [e[0] for e in row["evals"]] == [1]  # step 3 is the end: evaluated once, as `after`
    for acc, low, high in [row["before"], row["after"], *(e[1:] for e in row["evals"])]:
        assert 0 <= low <= acc <= high <= 100
    assert row["apart"] == (row["after"][1] > row["before"][2])


@pytest.mark.slow
def test_the_first_questions_of_a_longer_evaluation_are_judged_as_a_shorter_evaluation_would_be():
    overrides = ["model.dtype=float32", *SMOKE_TRAIN, "eval.batch_size=4", "network.generation.max_new_tokens=12"]
    longer = run_seed(0, [*overrides, "eval.limit=16"], evals=set(), first=[12])
    shorter = run_seed(0, [*overrides, "eval.limit=12"], evals=set())
    assert {k: longer["first"][12][k] for k in ("before", "after", "apart")} == \
        {k: shorter[k] for k in ("before", "after", "apart")}
    assert 0 < shorter["before"][0] != longer["before"][0]  # some right answers, and not the same set of questions
    assert longer["rewards"] == shorter["rewards"]  # training does not depend on the evaluation's size
