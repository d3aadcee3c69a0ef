"""The main job behind `neuromas run` and `neuromas eval`: one run directory per run.

Layout of a run directory (every file is written whole or not at all):

    config.yaml      the fully resolved config, saved before any work starts
    traces.jsonl     (eval only) every node's prompt and message on every evaluated example
    traces_before.jsonl, traces_after.jsonl     (with training) the same before and after
    results.json     accuracy with CI, cost, time, peak memory, versions (before/after training)
    results_before.json                          the evaluation before training, for --resume
    metrics.jsonl, tensorboard/                  one line of scalars per training step
    checkpoints/step-NNNNNN/                     the last few atomic checkpoints
    final/           the trained network: `Network.load(run_dir)`
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
from neuromas.tasks.base import Task
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


def load_task(config: RunConfig) -> Task:
    from neuromas import tasks

    return tasks.load(config.task.name, **config.task.params)


def _evaluate(net: Network, task, config: RunConfig, run_dir: Path, name: str, progress: bool) -> EvalResult:
    result = evaluate(net, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress)
    tmp = run_dir / f"{name}.jsonl.tmp"
    write_traces(result.traces, tmp)
    os.replace(tmp, run_dir / f"{name}.jsonl")
    return result


def _write_results(config: RunConfig, net: Network, run_dir: Path, results: dict[str, EvalResult], extra: dict) -> None:
    summary = {
        "network": {"widths": net.topology.widths, "calls_per_pass": net.calls_per_pass},
        **{name: result.summary() for name, result in results.items()},
        **extra,
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "environment": environment(),
        "finished": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write(run_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    atomic_write(run_dir / "results.md", results_markdown(config, results))


def run_eval(config: RunConfig, run_dir: Path, progress: bool = True, task: Task | None = None) -> EvalResult:
    """Evaluate the configured network on the configured task and write the run directory."""
    task = task or load_task(config)  # before the model: a bad task fails in a second, not after loading
    net = Network.from_config(config)
    result = _evaluate(net, task, config, run_dir, "traces", progress)
    _write_results(config, net, run_dir, {"eval": result}, {})
    return result


def run_train(
    config: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True, task: Task | None = None
) -> dict[str, EvalResult]:
    """The main job with training: evaluate, train, evaluate, save the trained network.

    On `resume` the newest complete checkpoint is loaded and the evaluation before training is
    read back from the run directory rather than redone.
    """
    from neuromas.rl.trainer import Trainer

    task = task or load_task(config)
    net = Network.from_config(config)
    trainer = Trainer(net, task, config.train, run_dir, eval_limit=config.eval.limit, progress=progress)
    resumed = resume and trainer.resume()
    before_file = run_dir / "results_before.json"
    if resumed and before_file.is_file():
        before = EvalResult(**json.loads(before_file.read_text()))
    else:
        before = _evaluate(net, task, config, run_dir, "traces_before", progress)
        atomic_write(before_file, json.dumps(before.summary(), indent=2) + "\n")
    trainer.train()
    net.save(run_dir / "final")
    after = _evaluate(net, task, config, run_dir, "traces_after", progress)
    steps = trainer.history
    extra = {
        "train": {
            "steps": trainer.step,
            "resumed": bool(resumed),
            "step_s": round(sum(m["time/step_s"] for m in steps) / max(len(steps), 1), 2),
            "trainable_parameters": sum(p.numel() for p in net.parameters()),
        }
    }
    _write_results(config, net, run_dir, {"before": before, "after": after}, extra)
    return {"before": before, "after": after}


def save_config(config: RunConfig, run_dir: Path) -> str:
    text = dump_config(config)
    atomic_write(run_dir / "config.yaml", text)
    return text


def results_markdown(config: RunConfig, results: dict[str, EvalResult]) -> str:
    widths = [layer.width for layer in config.network.layers]
    first = next(iter(results.values()))
    lines = [
        f"# {first.task} ({first.split}, n={first.n})\n",
        "| network | when | acc % | 95% CI | calls/q | tokens/q | prompt tokens/q | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {widths} | {name} | {100 * r.acc:.1f} | [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] "
            f"| {r.calls_per_q:g} | {r.tokens_per_q:.1f} | {r.prompt_tokens_per_q:.1f} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"
