"""The report: per-node statistics by hand, the page from a synthetic run, and a headless
Chromium that opens the report of a real small run, clicks a node and reads its messages."""

import json
import re
import shutil

import pytest
import yaml

from neuromas import tasks
from neuromas.configfile import parse_config
from neuromas.network import Network
from neuromas.report import graph_svg, write_report
from neuromas.report.stats import blanked_accuracy, node_ablation, node_statistics
from neuromas.topology import Topology


def trace(example, texts, answer_node="L2N1", reward=None, prediction=None):
    return {"example_id": example.id, "input": example.input, "sample": 0, "target": example.target,
            "answer": texts[answer_node], "prediction": prediction, "reward": reward,
            "messages": {n: {"node": n, "prompt": "p", "text": t, "token_ids": [0] * (i + 1), "logprobs": []}
                         for i, (n, t) in enumerate(texts.items())}}


def test_node_statistics_by_hand():
    task = tasks.load("arith", operands=2, digits=2)
    a, b = task.examples("test")[:2]
    traces = [
        trace(a, {"L1N1": f"Answer: {a.target}", "L1N2": "Answer: 3", "L2N1": f"Answer: {a.target}"}, reward=1.0,
              prediction=str(a.target)),
        trace(b, {"L1N1": "no idea", "L1N2": "Answer: 3", "L2N1": "Answer: 3"}, reward=0.0, prediction="3"),
    ]
    stats = node_statistics(traces, task, {e.id: e for e in (a, b)})
    assert stats["L1N1"] == {"tokens": 1.0, "own_acc": 0.5, "agrees_with_readout": 0.5}
    assert stats["L1N2"] == {"tokens": 2.0, "own_acc": 0.0, "agrees_with_readout": 0.5}
    assert stats["L2N1"] == {"tokens": 3.0, "own_acc": 0.5, "agrees_with_readout": 1.0}


class AddingBackend:
    """A network that divides the work: a first-layer node answers its part ("What is 3+5?" -> 8),
    the readout adds the numbers of the messages it reads (an empty one adds nothing)."""

    def generate(self, requests, seed):
        from neuromas.backends.base import Generation

        out = []
        for r in requests:
            user = r.messages[1]["content"]
            read = re.findall(r"^\[L1N\d\] (\d+)$", user, flags=re.M)
            if "Messages:" in user:
                out.append(Generation(f"Answer: {sum(map(int, read))}", [], []))
            else:
                out.append(Generation(str(sum(map(int, re.findall(r"\d+", user.splitlines()[-1])))), [], []))
        return out


def test_blanking_a_part_the_readout_adds_makes_it_wrong():
    task = tasks.load("arith", operands=4, min_value=1)
    examples = task.examples("test")[:6]
    net = Network({"layers": [2, 1], "input_slices": True, "input_to_all": False}, backend=AddingBackend()).train()
    acc = blanked_accuracy(net, task, examples, {"intact": frozenset(), "L1N1": frozenset({"L1N1"}),
                                                 "messages": frozenset({"L1N1", "L1N2"})}, batch_size=4)
    assert acc == {"intact": 1.0, "L1N1": 0.0, "messages": 0.0}
    assert net.training, "the network is left in the mode it was in"
    assert node_ablation(net, task, examples) == {"L1N1": 1.0, "L1N2": 1.0}


def test_the_graph_has_a_circle_per_node_and_a_line_per_edge():
    topology = Topology.from_config(parse_config({"network": {"layers": [2, 2, 1]}, "task": {"name": "arith"}}).network)
    svg = graph_svg(topology)
    assert svg.count("<circle") == 5 and svg.count("<line") == len(topology.edges) == 6
    assert 'data-node="L3N1"' in svg and "readout" in svg


def synthetic_run(path):
    config = {"network": {"layers": [2, 1]}, "task": {"name": "arith", "operands": 2, "digits": 2}, "train": {"steps": 2}}
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    task = tasks.load("arith", operands=2, digits=2)
    example = task.examples("test")[0]
    summary = {"acc": 0.5, "ci_low": 0.1, "ci_high": 0.9, "calls_per_q": 3.0, "tokens_per_q": 30.0, "n": 2}
    results = {"network": {"widths": [2, 1], "calls_per_pass": 3}, "model_dtype": "float32", "before": summary,
               "after": {**summary, "acc": 1.0}, "train": {"steps": 2, "trainable_parameters": 10}}
    (path / "results.json").write_text(json.dumps(results))
    for phase, text in [("before", "Answer: 1 <b>bold</b>"), ("after", f"Answer: {example.target}")]:
        row = trace(example, {"L1N1": text, "L1N2": "x", "L2N1": text})
        (path / f"traces_{phase}.jsonl").write_text(json.dumps(row) + "\n")
    (path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean": 0.1 * s}) + "\n" for s in (1, 2)))


def test_a_report_from_a_synthetic_run_is_self_contained(tmp_path):
    synthetic_run(tmp_path / "run")
    page = write_report(tmp_path / "run").read_text()
    assert page.count("data:image/png;base64,") == 2 and (tmp_path / "run" / "report" / "learning_curve.png").is_file()
    assert "network [2, 1] before" in page and "network [2, 1] after" in page
    assert "<b>bold</b>" not in page.split('<script id="data"')[0]  # messages only ever go in as text
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert data["nodes"] == ["L1N1", "L1N2", "L2N1"] and data["phases"] == ["before", "after"]


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_chromium_opens_the_report_of_a_real_run_and_a_click_shows_a_node_messages(tmp_path):
    from playwright.sync_api import sync_playwright
    from typer.testing import CliRunner

    from neuromas.cli import app

    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "configs/quickstart.yaml", "--out", str(run), "--quiet", "--set", "eval.limit=3",
        "--set", "train.steps=1", "--set", "train.batch_size=2", "--set", "train.group_size=2",
        "--set", "network.generation.max_new_tokens=8", "--set", "model.dtype=float32",
    ])
    assert result.exit_code == 0, result.output
    first = json.loads((run / "traces_after.jsonl").read_text().splitlines()[0])
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path(), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        page = browser.new_page()
        page.goto((run / "report.html").resolve().as_uri())
        assert page.locator("#graph .node").count() == 3
        assert page.locator("#comparison tr").count() == 3  # header, before, after
        page.locator('#graph .node[data-node="L1N2"]').click()
        table = page.locator("#messages-table")
        table.wait_for()
        assert page.locator("#messages-title").inner_text() == "Messages of L1N2"
        assert first["messages"]["L1N2"]["text"].strip()[:15] in table.inner_text()
        assert page.locator('#graph .node.selected').get_attribute("data-node") == "L1N2"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
