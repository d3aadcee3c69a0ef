"""`neuromas report RUN`: one self-contained HTML page about a run (also written by `neuromas run`).

The page holds the comparison table (before/after training, and the baselines when
`neuromas baselines` wrote a `baselines.json` into the run directory or `--baselines DIR`), the
learning curve and accuracy-vs-tokens plots (also saved as PNG under `report/`), the network
drawn as a graph, per-node statistics (stats.py), and a trace viewer: clicking a node lists
what it wrote on each test example, before and after training, with the final answer and
whether it was right. Everything is inlined (data as JSON, plots as base64 PNG, plain
JavaScript), so the file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from neuromas.build import build_network, load_task
from neuromas.checkpoint import saved_network_config
from neuromas.configfile import load_config
from neuromas.errors import NeuromasError
from neuromas.files import atomic_write
from neuromas.network import Network
from neuromas.report import plots
from neuromas.report.stats import node_ablation, node_statistics
from neuromas.rl.metrics import read_metrics
from neuromas.topology import Topology
from neuromas.trace import read_traces

TEMPLATE = Path(__file__).with_name("page.html")


def write_report(run_dir: str | Path, baselines_dir: str | Path | None = None, ablation: bool = False,
                 max_examples: int = 100) -> Path:
    """Write `<run_dir>/report.html` (and `report/*.png`); return its path."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "results.json").is_file():
        raise NeuromasError(f"{run_dir}: not a finished run (config.yaml and results.json are needed)")
    config = load_config(run_dir / "config.yaml")
    results = json.loads((run_dir / "results.json").read_text())
    phases = _read_phases(run_dir)
    try:
        task = load_task(config)
        examples = {e.id: e for split in ("train", "test") for e in task.examples(split)}
    except NeuromasError:  # the task's data is not on this machine: report without parsing answers
        task, examples = None, {}
    topology = Topology.from_config(_final_network_config(run_dir, config))
    stats = {phase: node_statistics(traces, task, examples) for phase, traces in phases.items()}
    if ablation:
        stats["ablation"] = _ablation(run_dir, config, task, examples, max_examples)
    rows = _comparison_rows(results, run_dir, Path(baselines_dir) if baselines_dir else None)
    figures_dir = run_dir / "report"
    figures_dir.mkdir(exist_ok=True)
    metrics = read_metrics(run_dir)
    acc = {name: results[name]["acc"] for name in ("before", "after", "eval") if name in results}
    figures = [f for f in (
        plots.learning_curve(metrics, figures_dir / "learning_curve.png", acc.get("before"), acc.get("after")),
        plots.accuracy_vs_tokens(rows, figures_dir / "accuracy_vs_tokens.png"),
    ) if f is not None]
    data = {"nodes": [n.id for n in topology.nodes], "phases": list(phases),
            "examples": _viewer_examples(phases, max_examples), "stats": stats}
    page = TEMPLATE.read_text().replace("%TITLE%", html.escape(_title(config, topology))) \
        .replace("%SUMMARY%", _summary(config, results, topology)) \
        .replace("%TABLE%", _table(rows)) \
        .replace("%FIGURES%", "".join(_img(f) for f in figures)) \
        .replace("%GRAPH%", graph_svg(topology)) \
        .replace("%STATS%", _stats_table(stats, topology)) \
        .replace("%DATA%", json.dumps(data, ensure_ascii=False).replace("</", "<\\/"))
    atomic_write(run_dir / "report.html", page)
    return run_dir / "report.html"


def _read_phases(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    names = {"before": "traces_before.jsonl", "after": "traces_after.jsonl", "eval": "traces.jsonl"}
    return {phase: read_traces(run_dir / f) for phase, f in names.items() if (run_dir / f).is_file()}


def _final_network_config(run_dir: Path, config):
    final = run_dir / "final"
    return saved_network_config(final) if (final / "network.yaml").is_file() else config.network


def _ablation(run_dir: Path, config, task, examples, limit: int) -> dict[str, float]:
    if task is None:
        raise NeuromasError("--ablation needs the task's data to score answers, and it is not on this machine")
    net = Network.load(run_dir) if (run_dir / "final" / "network.yaml").is_file() else build_network(config)
    chosen = task.examples(config.eval.split)[: min(limit, config.eval.limit or limit)]
    return node_ablation(net, task, chosen, config.eval.batch_size)


def _comparison_rows(results: dict[str, Any], run_dir: Path, baselines_dir: Path | None) -> list[dict[str, Any]]:
    widths = results["network"]["widths"]
    rows = [{"name": f"network {widths} {phase}".replace(" eval", ""), "network": True, **results[phase]}
            for phase in ("before", "after", "eval") if phase in results]
    for directory in [run_dir, baselines_dir]:
        if directory is not None and (directory / "baselines.json").is_file():
            methods = json.loads((directory / "baselines.json").read_text())["methods"]
            rows += [{"name": spec, "network": spec == "network", **m} for spec, m in methods.items()]
    return rows


def _viewer_examples(phases: dict[str, list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """One entry per example: its input and target, and per phase every node's message."""
    merged: dict[str, dict[str, Any]] = {}
    for phase, traces in phases.items():
        for trace in traces:
            if trace.get("sample", 0) != 0:
                continue
            entry = merged.setdefault(trace["example_id"], {"id": trace["example_id"], "input": trace["input"],
                                                             "target": str(trace.get("target"))})
            entry[phase] = {"answer": trace["answer"], "prediction": trace.get("prediction"), "reward": trace.get("reward"),
                            "messages": {node: m["text"] for node, m in trace["messages"].items()}}
    return list(merged.values())[:limit]


def graph_svg(topology: Topology) -> str:
    """The network as an SVG: layers left to right, one circle per node, a line per edge."""
    dx, dy, r = 170, 90, 26
    tallest = max(topology.widths)
    height = max(tallest * dy, dy) + 40
    where = {}
    for l, layer in enumerate(topology.layers):
        top = (height - len(layer) * dy) / 2 + dy / 2
        for node in layer:
            where[node.id] = (90 + l * dx, top + node.index * dy)
    width = 90 + (len(topology.layers) - 1) * dx + 90
    lines = [f'<line x1="{where[a][0]}" y1="{where[a][1]}" x2="{where[b][0]}" y2="{where[b][1]}" class="edge"/>'
             for a, b in topology.edges]
    nodes = [f'<g class="node{" readout" if n.is_readout else ""}" data-node="{n.id}" tabindex="0">'
             f'<circle cx="{where[n.id][0]}" cy="{where[n.id][1]}" r="{r}"/>'
             f'<text x="{where[n.id][0]}" y="{where[n.id][1] + 4}">{n.id}</text></g>' for n in topology.nodes]
    return (f'<svg id="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(lines)}{"".join(nodes)}</svg>')


def _title(config, topology: Topology) -> str:
    return f"neuromas: {config.task.name}, network {topology.widths}"


def _summary(config, results: dict[str, Any], topology: Topology) -> str:
    model = config.model.name or "SmolLM2-135M-Instruct (embedded)"
    parts = [f"task <b>{html.escape(config.task.name)}</b>", f"network <b>{topology.widths}</b>",
             f"model {html.escape(model)} ({config.model.backend}, {results.get('model_dtype') or 'server'})",
             f"seed {config.seed}"]
    if "train" in results:
        parts.append(f"{results['train']['steps']} training steps, {results['train']['trainable_parameters']:,} trainable parameters")
    return " · ".join(parts)


def _table(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>method</th><th>acc %</th><th>95% CI</th><th>calls/q</th><th>tokens/q</th><th>n</th></tr>"
    body = "".join(
        f'<tr class="{"net" if r.get("network") else ""}"><td>{html.escape(r["name"])}</td><td>{100 * r["acc"]:.1f}</td>'
        f'<td>[{100 * r["ci_low"]:.1f}, {100 * r["ci_high"]:.1f}]</td><td>{r["calls_per_q"]:g}</td>'
        f'<td>{r["tokens_per_q"]:.1f}</td><td>{r["n"]}</td></tr>' for r in rows)
    return f'<table id="comparison">{head}{body}</table>'


def _stats_table(stats: dict[str, dict[str, Any]], topology: Topology) -> str:
    columns = [(phase, key) for phase in ("before", "after", "eval") if phase in stats
               for key in ("tokens", "own_acc", "agrees_with_readout") if any(key in s for s in stats[phase].values())]
    head = "".join(f"<th>{phase}: {key.replace('_', ' ')}</th>" for phase, key in columns)
    if "ablation" in stats:
        head += "<th>accuracy drop when blanked</th>"
    body = ""
    for node in topology.nodes:
        cells = "".join(f"<td>{_cell(stats[phase].get(node.id, {}).get(key), key)}</td>" for phase, key in columns)
        if "ablation" in stats:
            cells += f"<td>{_cell(stats['ablation'].get(node.id), 'drop')}</td>"
        body += f"<tr><td>{node.id}</td>{cells}</tr>"
    return f'<table id="node-stats"><tr><th>node</th>{head}</tr>{body}</table>'


def _cell(value, key: str) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if key == "tokens" else f"{100 * value:+.1f} pts" if key == "drop" else f"{100 * value:.0f}%"


def _img(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem.replace("_", " ")}" src="data:image/png;base64,{encoded}"/>'
