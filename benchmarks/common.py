"""What the benchmarks share, so that each script holds only what it measures.

- the results files: `benchmarks/results/<name>.json`
  (`{"benchmark", "commit", "date", "machine", "config", "metrics"}`) and a readable `<name>.md`;
- arms run in child processes (`run_arm`), so that each arm's peak memory is its own;
- `neuromas run` directories started, reused when finished and resumed when interrupted
  (`run_or_reuse`), and read back (`read_run`, `summarize`);
- markdown tables (`table`, `ci`);
- paired comparisons: two evaluations' answers matched by example id (`pair_by_id`) and
  McNemar's exact test (`mcnemar_p`).

Every benchmark imports this module first: it turns progress bars off before anything imports
tqdm (which reads its settings from the environment when it is imported).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

from neuromas.runner import peak_rss_gb  # noqa: F401 - re-exported for the benchmark scripts

ROOT = Path(__file__).resolve().parents[1]  # the repository root: configs/, runs/, `python -m benchmarks.X`
CONFIGS = ROOT / "configs"
RESULTS = ROOT / "benchmarks" / "results"
RESULT_PREFIX = "BENCHMARK_RESULT "  # how a child arm's JSON line is found in its stdout


# results files ------------------------------------------------------------------------------
def machine() -> str:
    import torch

    from neuromas.models import cpu_model

    return (f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")


def commit() -> str:
    """The code's commit; NEUROMAS_COMMIT names it where the copy's .git is not the code's (a device machine)."""
    if os.environ.get("NEUROMAS_COMMIT"):
        return os.environ["NEUROMAS_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               check=False, cwd=ROOT)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(name: str, config: dict, metrics: dict, markdown: str, folder: Path | None = None,
                  write: bool = True, extra: dict | None = None) -> Path | None:
    """Write `<folder>/<name>.json` and `.md` (folder: `benchmarks/results`) and print the metrics.

    `write=False` (a `--smoke` run) prints the markdown and the metrics and writes nothing;
    `extra`: more top-level fields of the JSON record (after `metrics`).
    """
    if not write:
        print(f"{markdown}\n\n{json.dumps(metrics, indent=2)}\n{name}: nothing written (smoke test)")
        return None
    folder = RESULTS if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "commit": commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": config,
        "metrics": metrics,
        **(extra or {}),
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    (folder / f"{name}.md").write_text(
        f"# {name}\n\ncommit {record['commit']}, {record['date']}, {record['machine']}\n\n{markdown}\n"
    )
    print(json.dumps(metrics, indent=2))
    return path


# arms in child processes --------------------------------------------------------------------
def run_arm(module: str, arm: str, argv: list[str]) -> dict:
    """Run `python -m <module> --arm ARM ...` from the repository root and return its result.

    Why a process per arm: peak RSS (`ru_maxrss`) only ever grows, so an arm's peak memory is
    its own only in a fresh interpreter, and one arm's allocations cannot slow the next. The
    arms run one after the other, never at once. The child's stderr passes through; its result
    is the last stdout line that `emit_result` printed.
    """
    command = [sys.executable, "-m", module, "--arm", arm, *argv]
    print(f"== {arm}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout)
        raise SystemExit(f"arm {arm} failed (exit status {done.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def emit_result(result: dict) -> None:
    """In a child arm: print the line `run_arm` reads back."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def flags(args: Any, names: list[str]) -> list[str]:
    """The command-line flags that give a child arm the parent's settings: `--name value` for each
    of `names` in `args`, a bare `--name` for a switch that is on, nothing for one that is off."""
    argv: list[str] = []
    for name in names:
        value, flag = getattr(args, name), f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


# `neuromas run` directories -----------------------------------------------------------------
# `--smoke` settings of the benchmarks that train: one tiny step and a few test questions, enough
# to go through every code path of a benchmark in minutes
SMOKE_TRAIN = ["train.steps=1", "train.batch_size=2", "train.group_size=2", "train.eval_every=0", "eval.limit=4",
               "network.generation.max_new_tokens=4"]


@contextmanager
def smoke_runs(args: Any) -> Iterator[None]:
    """With `args.smoke`, `args.runs` is a temporary directory while in the block (removed after),
    so that a smoke test neither reuses real runs nor leaves any behind."""
    if not args.smoke:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="benchmark-smoke-") as runs:
        args.runs = Path(runs)
        yield


def neuromas(*args: str) -> None:
    """Run the neuromas CLI in a process of its own (its peak memory its own), failing if it fails."""
    print("neuromas " + " ".join(args), flush=True)
    run_child([sys.executable, "-m", "neuromas.cli", *args], cwd=ROOT)


def run_child(command: list[str], **popen: Any) -> None:
    """Run `command` to its end, failing if it fails; a SIGTERM to this process is passed on to it
    and waited for (a training run stops at its next clean point and says how to resume), and so
    is Ctrl-C, which the terminal sends to both. Without this, a benchmark stopped with `kill`
    died at once and left its `neuromas run` going on alone (seen with `claims run`). A stop asked
    for ends this process too, with one line and the signal's exit status, not a traceback."""
    child = subprocess.Popen(command, **popen)
    stopped: list[int] = []

    def forward(signum, frame):
        stopped.append(signum)
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        status = child.wait()
    except KeyboardInterrupt:
        child.wait()
        stopped.append(signal.SIGINT)
        status = 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped and status:
        print(f"stopped by {signal.Signals(stopped[0]).name}: {' '.join(command[:4])} ... ended with status "
              f"{status}; run the same command again to go on from its last checkpoint", file=sys.stderr, flush=True)
        raise SystemExit(128 + stopped[0])
    if status:
        raise subprocess.CalledProcessError(status, command)


def run_or_reuse(run_dir: Path, label: str, start: Callable[[], None], *, fresh: bool = False,
                 started: str = "config.yaml") -> Path:
    """A finished run directory, made by `start()` unless it is already there.

    Why: a benchmark of many training runs takes hours, so a finished run (its `results.json`
    written) is reused and an interrupted one (its `started` file there) goes on from its newest
    checkpoint with `neuromas run --resume`, so that rerunning the benchmark continues where it
    stopped. A run is known by its directory only: runs with other settings belong in another
    directory. `fresh` deletes the directory and starts over.
    """
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if (run_dir / "results.json").is_file():
        print(f"{label}: reusing {run_dir}", flush=True)
    elif (run_dir / started).is_file():
        neuromas("run", "--resume", str(run_dir), "--quiet")
    else:
        start()
    return run_dir


# the bundled configs `configs/<task>-<suffix>.yaml` of the three arms the benchmarks compare:
# NeuroMAS-3 [1, 1, 1] and [2, 1] with a rank-8 adapter per node, one node with rank 24
ARMS = {"neuromas3": "neuromas3", "net21": "2x1", "single": "single"}


def arm_config(task: str, arm: str) -> Path:
    return CONFIGS / f"{task}-{ARMS[arm]}.yaml"


def train_arm(task: str, arm: str, seed: int, runs: Path, overrides: list[str], fresh: bool = False) -> Path:
    """`neuromas run` of one arm's bundled config with one seed, into `<runs>/<task>-<arm>-seed<N>`
    (evaluate, train, evaluate); return the finished run directory."""
    run_dir = runs / f"{task}-{arm}-seed{seed}"
    command = ["run", str(arm_config(task, arm)), "--out", str(run_dir), "--set", f"seed={seed}", "--quiet"]
    return run_or_reuse(run_dir, f"{task} {arm} seed {seed}", lambda: neuromas(*command, *set_args(overrides)), fresh=fresh)


def set_args(overrides: list[str]) -> list[str]:
    """`--set KEY=VALUE` for each override, as `neuromas run` takes them."""
    return [arg for value in overrides for arg in ("--set", value)]


def read_results(run_dir: Path, name: str = "results.json") -> dict:
    return json.loads((run_dir / name).read_text())


def read_run(run_dir: Path) -> dict:
    """A finished training run: evaluations before and after, step time, memory, learning curves."""
    from neuromas.rl.metrics import read_metrics

    results = read_results(run_dir)
    steps = read_metrics(run_dir)
    return {
        "before": results["before"],
        "after": results["after"],
        "step_s": results["train"]["step_s"],
        "steps": results["train"]["steps"],
        "trainable_parameters": results["train"]["trainable_parameters"],
        "peak_rss_gb": results["peak_rss_gb"],
        "model_dtype": results.get("model_dtype", "bfloat16"),
        "reward": [round(m["reward/mean"], 4) for m in steps],
        "tied_fraction": [round(m["reward/tied_fraction"], 4) for m in steps],
        "eval": [[m["step"], round(m["eval/acc"], 4)] for m in steps if "eval/acc" in m],
    }


def summarize(evals: list[dict], seeds: list[int], steps: int) -> dict:
    """Mean accuracy over seeds; the CI pools every seed's answers (n = seeds x test size)."""
    from neuromas.eval import wilson_interval

    correct = sum(round(e["acc"] * e["n"]) for e in evals)
    total = sum(e["n"] for e in evals)
    low, high = wilson_interval(correct, total)
    return {
        "acc": round(sum(e["acc"] for e in evals) / len(evals), 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "acc_per_seed": [round(e["acc"], 4) for e in evals],
        "n": evals[0]["n"],
        "calls_per_q": evals[0]["calls_per_q"],
        "tokens_per_q": round(sum(e["tokens_per_q"] for e in evals) / len(evals), 1),
        "steps": steps,
        "seeds": seeds,
    }


# markdown -----------------------------------------------------------------------------------
def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table, one row per list of cells (no newline after the last row)."""
    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(cell) for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


def ci(m: dict) -> str:
    """A 95% interval in percent, as every table writes it: `[12.3, 20.1]`."""
    return f"[{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"


def pyplot():
    """matplotlib's pyplot drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# paired comparisons -------------------------------------------------------------------------
def _example_id(trace: Any) -> str:
    return trace["example_id"] if isinstance(trace, dict) else trace.example_id


def pair_by_id(left: list, right: list, what: str = "the two evaluations") -> list[tuple[Any, Any]]:
    """Two evaluations' traces (dicts read from a run's jsonl, or `Trace` objects) matched by
    example id, in `left`'s order.

    Why by id and not by position: the order of a traces file is the order a run happened to
    evaluate in; two runs agree on it only by accident of configuration. Fails, naming ids, when
    an example appears twice (several samples per input: pair greedy evaluations) or when the two
    did not answer the same examples.
    """
    by_id: list[dict[str, Any]] = [{}, {}]
    for side, traces in zip(by_id, (left, right)):
        for trace in traces:
            key = _example_id(trace)
            if key in side:
                raise ValueError(f"{what}: example {key!r} answered twice; pair evaluations with one answer per example")
            side[key] = trace
    only_left, only_right = by_id[0].keys() - by_id[1].keys(), by_id[1].keys() - by_id[0].keys()
    if only_left or only_right:
        raise ValueError(
            f"{what} did not answer the same examples: {len(only_left)} only in the first "
            f"(e.g. {sorted(only_left)[:3]}), {len(only_right)} only in the second (e.g. {sorted(only_right)[:3]})"
        )
    return [(trace, by_id[1][key]) for key, trace in by_id[0].items()]


def mcnemar_p(only_left: int, only_right: int) -> float:
    """McNemar's exact two-sided p-value from the discordant pairs (right on one side only): the
    binomial tail of the smaller count (written out: scipy would be a dependency for one line)."""
    n, k = only_left + only_right, min(only_left, only_right)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
