"""The main job behind `neuromas run` and `neuromas eval`: one run directory per run.

Layout of a run directory (every file is written whole or not at all):

    config.yaml      the fully resolved config, saved before any work starts
    traces.jsonl     (eval only) every node's prompt and message on every evaluated example
    traces_before.jsonl, traces_after.jsonl     (with training) the same before and after
    traces_step-NNNNNN.jsonl                     (with training) the same at each periodic evaluation
    results.json     accuracy with CI, cost, time, peak memory, versions and CPU (before/after training)
    results_before.json                          the evaluation before training, for --resume
    metrics.jsonl, tensorboard/                  one line of scalars per training step
    growth.jsonl     (with growth) one line per growth: the widths, which node ids a deepening renamed,
                     where new nodes' adapters came from (rl/metrics.py; `neuromas grow` writes one too)
    checkpoints/step-NNNNNN/                     the last few atomic checkpoints
    final/           the trained network: `Network.load(run_dir)`
    rollout-adapters/  (train.rollout_backend: vllm) the adapters vLLM samples the next rollouts with
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from neuromas.build import build_network, load_task, model_dtype
from neuromas.checkpoint import newest_intact_checkpoint, saved_network_config
from neuromas.config import GrowthStage, RunConfig, dump_config, format_validation_error
from neuromas.configfile import load_config
from neuromas.distributed import RolloutWorkers, connect, evaluate_on_ray
from neuromas.errors import NeuromasError
from neuromas.eval import EvalResult, evaluate
from neuromas.files import atomic_write, disk_error, disk_message
from neuromas.grow import apply
from neuromas.network import Network
from neuromas.plan import plan_stage
from neuromas.rl.trainer import Trainer
from neuromas.tasks.base import Task
from neuromas.trace import write_traces


def make_run_dir(config: RunConfig, config_path: str | Path | None) -> Path:
    """The new run's directory. One that holds another run's checkpoints is refused: a new run there
    would overwrite some of them and leave the later ones, which `--resume` would then continue."""
    if config.out_dir:
        run_dir = Path(config.out_dir)
        held = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir())
        if held:
            raise NeuromasError(f"out_dir: {run_dir} already holds a run (checkpoints up to {held[-1]}); continue it "
                                f"with: neuromas run --resume {run_dir}, or give another --out")
    else:
        stem = Path(config_path).stem if config_path else "run"
        run_dir = Path("runs") / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NeuromasError(f"out_dir: cannot create {run_dir}: {error.strerror}") from None
    return run_dir


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def environment() -> dict[str, Any]:
    """What a run's numbers depend on beyond its config: the same seed and config give the same
    samples in any process on one machine, but another CPU (bf16 or not), transformers or peft can
    move the low bits of a logit, and a few sampled steps later the runs part ways."""
    import peft
    import torch
    import transformers

    from neuromas import __version__
    from neuromas.models import cpu_has_native_bf16, cpu_model

    return {
        "neuromas": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _evaluate(net: Network, task, config: RunConfig, run_dir: Path, name: str, progress: bool) -> EvalResult:
    label = name.removeprefix("traces_") + " training"  # "before training", "after training"
    result = evaluate(net, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress, label)
    write_traces(result.traces, run_dir / f"{name}.jsonl")
    return result


def _write_results(net: Network, run_dir: Path, results: dict[str, EvalResult], extra: dict,
                   widths: dict[str, list[int]] | None = None) -> None:
    summary = {
        "network": {"widths": net.topology.widths, "calls_per_pass": net.calls_per_pass},
        "backend": net.model_config.backend,
        "model_dtype": model_dtype(net),
        **{name: result.summary() for name, result in results.items()},
        **extra,
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "environment": environment(),
        "finished": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write(run_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    widths = widths or {name: net.topology.widths for name in results}
    atomic_write(run_dir / "results.md", results_markdown(results, widths))


def run_eval(config: RunConfig, run_dir: Path, progress: bool = True, task: Task | None = None,
             ray: str | None = None, ray_workers: int = 2) -> EvalResult:
    """Evaluate the configured network on the configured task and write the run directory;
    with `ray` ('local' or a cluster address), sharded over `ray_workers` Ray workers."""
    task = task or load_task(config)  # before the model: a bad task fails in a second, not after loading
    if ray is not None:
        results, info = evaluate_on_ray(config, ray, ray_workers)
        result = results[None]
        net = Network.from_config(config)  # the structure, for results.json; its model is never loaded here
        extra = {"ray": {"address": ray, "workers": info["workers"]}, "model_dtype": info["model_dtype"]}
    else:
        net = build_network(config)
        result = evaluate(net, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress)
        extra = {}
    write_traces(result.traces, run_dir / "traces.jsonl")
    _write_results(net, run_dir, {"eval": result}, extra)
    return result


def check_ray_training(config: RunConfig, ray: str | None) -> None:
    """`train.rollout_workers` and `--ray` go together: one line naming the missing one."""
    workers = config.train.rollout_workers
    if workers and ray is None:
        raise NeuromasError(f"train.rollout_workers {workers} samples the rollouts on Ray workers: add --ray local "
                            "(this machine) or --ray ADDRESS (a cluster), or set train.rollout_workers=0")
    if ray is not None and not workers:
        raise NeuromasError(f"--ray {ray}: set train.rollout_workers to the number of Ray workers that sample the "
                            "rollouts, e.g. --set train.rollout_workers=2")


def run_train(
    config: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True, task: Task | None = None,
    ray: str | None = None,
) -> dict[str, EvalResult]:
    """The main job with training: evaluate, train, evaluate, save the trained network.

    On `resume` the newest complete checkpoint is loaded and the evaluation before training is
    read back from the run directory rather than redone. With `ray` ('local' or a cluster
    address), `train.rollout_workers` Ray workers sample the rollouts (they get the adapters
    before every rollout, so also after a resume).
    """
    check_ray_training(config, ray)
    if ray is not None:
        connect(ray)  # a missing extra or a wrong address fails before the model loads
    task = task or load_task(config)
    with _disk_errors(run_dir):
        if resume:  # what would stop the resume is said before the model loads (a minute on a small machine)
            _check_writable(run_dir)
            config_file = run_dir / "config.yaml"
            newest_intact_checkpoint(run_dir, config_file.read_text(encoding="utf-8") if config_file.is_file() else None,
                                     quiet=True)
        return _train(config, run_dir, task, resume, progress, ray)


def _train(config: RunConfig, run_dir: Path, task: Task, resume: bool, progress: bool,
           ray: str | None) -> dict[str, EvalResult]:
    net = build_network(config)
    workers = None
    if ray is not None:  # the driver's model first: the workers compute in its dtype
        workers = RolloutWorkers(config.model, ray, config.train.rollout_workers, config.train.rollout_worker_cpus,
                                 dtype=model_dtype(net.attach_adapters()))
    try:
        return _train_and_evaluate(config, run_dir, resume, progress, task, net, workers)
    finally:
        if workers is not None:
            workers.close()


def _train_and_evaluate(config: RunConfig, run_dir: Path, resume: bool, progress: bool, task: Task, net: Network,
                        workers: RolloutWorkers | None) -> dict[str, EvalResult]:
    trainer = Trainer(net, task, config.train, run_dir, eval_config=config.eval, progress=progress,
                      rollout_workers=workers)
    resumed = resume and trainer.resume()
    before_file = run_dir / "results_before.json"
    before = _read_before(before_file) if resumed else None
    if before is None:
        before = _evaluate(net, task, config, run_dir, "traces_before", progress)
        atomic_write(before_file, json.dumps(before.summary(), indent=2) + "\n")
    trainer.train()
    net = trainer.net  # the grown network, when the run has a growth schedule
    net.save(run_dir / "final")
    after = _evaluate(net, task, config, run_dir, "traces_after", progress)
    steps = trainer.history
    extra = {
        "train": {
            "steps": trainer.step,
            "resumed": bool(resumed),
            "step_s": round(sum(m["time/step_s"] for m in steps) / max(len(steps), 1), 2),
            "trainable_parameters": sum(p.numel() for p in net.parameters()),
            **({"rollout_workers": config.train.rollout_workers} if workers is not None else {}),
        }
    }
    widths = {"before": [layer.width for layer in config.network.layers], "after": net.topology.widths}
    _write_results(net, run_dir, {"before": before, "after": after}, extra, widths)
    return {"before": before, "after": after}


@contextlib.contextmanager
def _disk_errors(run_dir: Path):
    """A write the disk refuses in a training run (full, read-only, forbidden): one line naming
    what could not be written, the fix and how the run continues. Checkpoints are atomic, so the
    resume starts from the last complete one."""
    try:
        yield
    except Exception as error:
        refused = disk_error(error)
        if refused is None:
            raise
        if refused.filename is None:  # a native writer's error names no file: the run directory, then
            refused = OSError(refused.errno, refused.strerror, str(run_dir))
        raise NeuromasError(disk_message(refused, run_dir)) from None


def _check_writable(run_dir: Path) -> None:
    probe = run_dir / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"\n")  # a full disk refuses even a byte on tmpfs; a read-only mount refuses the file
        probe.unlink()
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(run_dir)) from None


def _read_before(path: Path) -> EvalResult | None:
    """The evaluation before training that a resumed run saved; None (redo it) when it is
    missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return EvalResult(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None


def run_grow(run_dir: Path, out: Path, stage: dict) -> tuple[Path, dict]:
    """Grow a run's network into a new run directory; return the new run's config and what the
    growth did (`Plan.record`, also written to `<out>/growth.jsonl` as a schedule's growths are).

    `run_dir` is a finished run (its `final/` network grows) or one of its checkpoints
    (`RUN/checkpoints/step-N`: the network as it was at step N, e.g. before a scheduled growth).
    The new run keeps the old run's config (task, training recipe, seed) with the grown network,
    `init_from` pointing at the grown network saved in `<out>/grown`, and no growth schedule.
    """
    if (run_dir / "config.yaml").is_file():
        config_file, saved = run_dir / "config.yaml", run_dir / "final"
    elif run_dir.parent.name == "checkpoints" and (run_dir.parent.parent / "config.yaml").is_file():
        config_file, saved = run_dir.parent.parent / "config.yaml", run_dir
    else:
        raise NeuromasError(f"{run_dir}: not a run directory or a run's checkpoint (no config.yaml with it)")
    if out.exists() and any(out.iterdir()):
        raise NeuromasError(f"--out {out} already holds files; give a new directory")
    try:
        growth = GrowthStage.model_validate(stage)
    except ValidationError as error:
        raise NeuromasError(format_validation_error(error, "grow")) from None
    config = load_config(config_file)
    plan = plan_stage(saved_network_config(saved), growth)  # a bad request fails before the model loads
    grown = apply(Network.load(saved), plan, growth.init, growth.ramp_steps)
    grown.save(out / "grown")
    new = config.model_copy(update={
        "network": grown.config, "init_from": str(out / "grown"), "out_dir": str(out),
        "train": config.train.model_copy(update={"growth": []}),
    })
    save_config(new, out)
    record = {"step": 0, "from": str(run_dir), **plan.record(saved_network_config(saved), growth.init),
              "init": growth.init, "ramp_steps": growth.ramp_steps}
    atomic_write(out / "growth.jsonl", json.dumps(record) + "\n")
    return out / "config.yaml", record


def save_config(config: RunConfig, run_dir: Path) -> str:
    text = dump_config(config)
    atomic_write(run_dir / "config.yaml", text)
    return text


def results_markdown(results: dict[str, EvalResult], widths: dict[str, list[int]]) -> str:
    """One row per evaluation, each with the shape evaluated (a growth schedule changes it)."""
    first = next(iter(results.values()))
    lines = [
        f"# {first.task} ({first.split}, n={first.n})\n",
        "| network | when | acc % | 95% CI | calls/q | tokens/q | prompt tokens/q | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {widths[name]} | {name} | {100 * r.acc:.1f} | [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] "
            f"| {r.calls_per_q:g} | {r.tokens_per_q:.1f} | {r.prompt_tokens_per_q:.1f} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"
