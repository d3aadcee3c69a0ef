"""What a person watching a run sees (issue 19): plain lines when the output is not a terminal,
the before/after verdict, and one line instead of transformers' GGUF dequantization bar."""

import re
import sys

import pytest

from neuromas import progress
from neuromas.eval import before_after_line, summarize
from neuromas.models import _quiet_dequantization
from neuromas.trace import Trace


def test_not_a_terminal_gives_one_plain_line_per_step(monkeypatch, capsys):
    monkeypatch.delenv("NEUROMAS_PROGRESS", raising=False)
    assert progress.mode() == "plain"  # pytest's captured stderr is not a terminal
    with progress.Progress("train step", 3) as bar:
        bar.update(1, "reward 0.250")
        bar.update(3, "reward 0.500")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("train step 1/3: reward 0.250, ") and lines[0].endswith(" left")
    assert lines[1] == "train step 3/3: reward 0.500"  # nothing left to estimate
    assert "\r" not in "".join(lines)


def test_evaluation_bars_print_no_lines_and_off_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("NEUROMAS_PROGRESS", "plain")
    with progress.Progress("eval", 10, plain_lines=False) as bar:
        bar.update(5, "2 right")
    progress.say("eval: the result")
    assert capsys.readouterr().err == "eval: the result\n"
    monkeypatch.setenv("NEUROMAS_PROGRESS", "off")
    with progress.Progress("train step", 2) as bar:
        bar.update(1, "x")
    progress.say("nothing")
    assert capsys.readouterr().err == "" and progress.mode(enabled=False) == "off"


def test_a_terminal_bar_takes_any_label_and_status(monkeypatch, capsys):
    monkeypatch.setenv("NEUROMAS_PROGRESS", "rich")
    with progress.Progress("moa:widths=[2,2,1] {x}", 2, transient=False) as bar:
        bar.update(1, "[bold]reward[/] {0}")
        bar.update(2, "done")
    err = capsys.readouterr().err
    assert "moa:widths=[2,2,1] {x}" in err
    assert re.search(r"\d:\d\d:\d\d elapsed, (\d:\d\d:\d\d|-:--:--) left", err), err  # not "0:04:19 left 0:00:00"


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (59.6, "1:00"), (754, "12:34"), (3723, "1:02:03")])
def test_clock(seconds, text):
    assert progress.clock(seconds) == text


def result(right: int, n: int):
    traces = [Trace(str(i), "q", 0, {}, "a", reward=float(i < right)) for i in range(n)]
    return summarize("arith", "test", traces, 3, 1.0)


def test_the_before_after_line_says_whether_the_intervals_are_apart():
    assert before_after_line(result(9, 64), result(30, 64)).endswith("(the intervals do not overlap: it learned)")
    line = before_after_line(result(9, 64), result(12, 64))
    assert "14.1% [7.6, 24.6] before training -> 18.8%" in line and line.endswith("no difference shown)")
    assert before_after_line(result(30, 64), result(9, 64)).endswith("it got worse)")


def test_the_first_gguf_load_prints_one_line_instead_of_a_bar(capsys, tmp_path):
    with _quiet_dequantization(True, tmp_path / "copy"):
        print("Converting and de-quantizing GGUF tensors...: 10%", file=sys.stderr)  # what tqdm writes
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dequantizing the GGUF model" in err and str(tmp_path / "copy") in err
    with _quiet_dequantization(False, None):  # a cached copy or an ordinary model: nothing to say or hide
        print("kept", file=sys.stderr)
    assert capsys.readouterr().err == "kept\n"
