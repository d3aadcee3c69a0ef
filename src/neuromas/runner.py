"""The main job behind `neuromas run` and `neuromas eval`: one run directory per run.

Layout of a run directory (every file is written whole or not at all):

    config.yaml      the fully resolved config, saved before any work starts
    traces.jsonl     every node's prompt and message on every evaluated example
    results.json     accuracy with CI, cost, time, peak memory, versions
    results.md       the same as a readable table
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from neuromas.config import RunConfig, dump_config
from neuromas.errors import NeuromasError
from neuromas.eval import EvalResult, evaluate
from neuromas.network import Network
from neuromas.trace import write_traces


def make_run_dir(config: RunConfig, config_path: str | Path | None) -> Path:
    if config.out_dir:
        run_dir = Path(config.out_dir)
    else:
        stem = Path(config_path).stem if config_path else "run"
        run_dir = Path("runs") / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NeuromasError(f"out_dir: cannot create {run_dir}: {error.strerror}") from None
    return run_dir


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def environment() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def load_task(config: RunConfig):
    from neuromas import tasks

    return tasks.load(config.task.name, **config.task.params)


def run_eval(config: RunConfig, run_dir: Path, progress: bool = True) -> EvalResult:
    """Evaluate the configured network on the configured task and write the run directory."""
    task = load_task(config)  # before the model: a bad task fails in a second, not after loading
    net = Network.from_config(config)
    result = evaluate(net, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress)
    traces_tmp = run_dir / "traces.jsonl.tmp"
    write_traces(result.traces, traces_tmp)
    os.replace(traces_tmp, run_dir / "traces.jsonl")
    summary = {
        "network": {"widths": net.topology.widths, "calls_per_pass": net.calls_per_pass},
        "eval": result.summary(),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "environment": environment(),
        "finished": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write(run_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    atomic_write(run_dir / "results.md", results_markdown(config, result))
    return result


def save_config(config: RunConfig, run_dir: Path) -> str:
    text = dump_config(config)
    atomic_write(run_dir / "config.yaml", text)
    return text


def results_markdown(config: RunConfig, result: EvalResult) -> str:
    widths = [layer.width for layer in config.network.layers]
    return (
        f"# Evaluation: {result.task} ({result.split}, n={result.n})\n\n"
        "| network | acc % | 95% CI | calls/q | tokens/q | prompt tokens/q | seconds |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {widths} | {100 * result.acc:.1f} | [{100 * result.ci_low:.1f}, {100 * result.ci_high:.1f}] "
        f"| {result.calls_per_q:g} | {result.tokens_per_q:.1f} | {result.prompt_tokens_per_q:.1f} | {result.seconds:.1f} |\n"
    )
