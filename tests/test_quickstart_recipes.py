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
