"""benchmarks/table1.py's rows from the claims campaign: read from claims.json, only where the two
configs draw the same test questions (no model is loaded)."""

import json

import pytest
from benchmarks import table1


def test_claims_rows_are_the_campaigns_trained_arms_on_the_same_questions():
    rows = table1.claims_rows("arith")
    arms = json.loads(table1.CLAIMS_FILE.read_text())["metrics"]["arith-4x1-mix"]
    trained = {arm for arm, m in arms.items() if not arm.startswith(("untrained-", "diff", "growth"))}
    assert "growth" in arms, "claim (b)'s comparison sits beside the arms and is no row"
    assert set(rows) == {f"claims:{arm}" for arm in trained} and "claims:net21-msgs-tree8" in rows
    row, arm = rows["claims:net21-msgs-tree8"], arms["net21-msgs-tree8"]
    assert (row["acc"], row["ci_low"], row["ci_high"], row["seeds"]) == (arm["acc"], arm["ci_low"], arm["ci_high"],
                                                                       len(arm["seeds"]))
    assert "| claims:net21-msgs-tree8 |" in table1.markdown({"arith": rows})
    assert table1.claims_rows("navigate") == {}  # no claims task shares its questions


def test_claims_rows_refuse_a_task_whose_questions_differ(monkeypatch):
    monkeypatch.setattr(table1, "CLAIMS_TASKS", {"arith": "arith-2x2"})  # two 2-digit numbers: other questions
    with pytest.raises(SystemExit, match="no longer draw the same test questions"):
        table1.claims_rows("arith")
