"""`neuromas baselines`: every method and the network on the same test inputs, in one run.

All methods share one loaded model (the network's backend; a trained network's adapters are
bypassed for the baselines, which run the frozen base model) and are evaluated by the same
`evaluate` on the same examples, so the table compares like with like. Each method's call
budget is the network's per-node message budget unless its spec says otherwise; the
cost-matched comparison the paper was criticised for lacking is self-consistency with as many
samples as the network makes calls (`self-consistency:k=<calls>`, in the default set).

Writes into the run directory: `baselines.md` and `baselines.csv` (the table), `baselines.json`
(every figure) and `traces/<method>.jsonl` (every call's message on every question).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from neuromas import baselines
from neuromas.build import build_network, load_task, model_dtype
from neuromas.config import RunConfig
from neuromas.distributed import evaluate_on_ray
from neuromas.eval import EvalResult, evaluate
from neuromas.files import atomic_write
from neuromas.network import Network
from neuromas.trace import write_traces

NETWORK = "network"


def default_methods(net: Network) -> list[str]:
    widths = net.topology.widths if len(net.topology.widths) >= 2 and net.topology.widths[-1] == 1 else [2, 1]
    return [NETWORK, "direct", "cot", f"self-consistency:k={net.calls_per_pass}", "self-refine", "self-check",
            f"moa:widths=[{','.join(map(str, widths))}]", "debate", "workflow", "gptswarm"]


def check_methods(methods: list[str]) -> None:
    """Fail on a bad spec before any model time is spent (building a method loads nothing)."""
    for spec in methods:
        if spec != NETWORK:
            baselines.load(spec)


def run_baselines(config: RunConfig, run_dir: Path, methods: list[str] | None = None, network_run: Path | None = None,
                  progress: bool = True, ray: str | None = None, ray_workers: int = 2) -> dict[str, EvalResult]:
    """Evaluate `methods` (specs; "network" is the configured or `network_run`'s network)."""
    task = load_task(config)
    net = Network.load(network_run) if network_run is not None else build_network(config)
    methods = methods or default_methods(net)
    check_methods(methods)
    gen = config.network.generation
    results: dict[str, EvalResult] = {}
    (run_dir / "traces").mkdir(parents=True, exist_ok=True)
    if ray is not None:  # one pool of workers, each loading the model once, runs every method
        keyed, _ = evaluate_on_ray(config, ray, ray_workers, methods=[None if m == NETWORK else m for m in methods])
        results = {spec: keyed[None if spec == NETWORK else spec] for spec in methods}
    for spec in methods:
        if spec not in results:
            solver = net if spec == NETWORK else baselines.load(
                spec, backend=net.backend, max_new_tokens=gen.max_new_tokens, seed=config.seed)
            fit_seconds = 0.0
            if hasattr(solver, "optimize"):  # GPTSwarm learns its edges on the train split first
                start = time.perf_counter()
                solver.optimize(task)
                fit_seconds = time.perf_counter() - start
            results[spec] = evaluate(solver, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress, spec)
            results[spec].fit_seconds = fit_seconds
        write_traces(results[spec].traces, run_dir / "traces" / f"{_file_name(spec)}.jsonl")
    _write_tables(run_dir, results, config, net)
    return results


def _file_name(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_=" else "_" for c in spec).strip("_")


def _write_tables(run_dir: Path, results: dict[str, EvalResult], config: RunConfig, net: Network) -> None:
    first = next(iter(results.values()))
    header = ["method", "acc", "ci_low", "ci_high", "calls_per_q", "tokens_per_q", "prompt_tokens_per_q", "seconds",
              "fit_seconds"]
    rows = [[spec, *(getattr(r, key) for key in header[1:])] for spec, r in results.items()]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([[row[0], *(f"{v:.4f}" if isinstance(v, float) else v for v in row[1:])] for row in rows])
    atomic_write(run_dir / "baselines.csv", out.getvalue())
    lines = [
        f"# {first.task} ({first.split}, n={first.n}): network {net.topology.widths} and baselines\n",
        "| method | acc % | 95% CI | calls/q | tokens/q | prompt tokens/q | seconds | fit seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec, r in results.items():
        name = f"network {net.topology.widths}" if spec == NETWORK else spec
        lines.append(f"| {name} | {100 * r.acc:.1f} | [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] | {r.calls_per_q:g} "
                     f"| {r.tokens_per_q:.1f} | {r.prompt_tokens_per_q:.1f} | {r.seconds:.1f} | {r.fit_seconds:.1f} |")
    atomic_write(run_dir / "baselines.md", "\n".join(lines) + "\n")
    summary = {"task": first.task, "split": first.split, "network": net.topology.widths, "backend": config.model.backend,
               "model_dtype": model_dtype(net), "methods": {spec: r.summary() for spec, r in results.items()}}
    atomic_write(run_dir / "baselines.json", json.dumps(summary, indent=2) + "\n")

