"""The paper's Table 1 on the embedded model: every baseline and the networks, per task.

Per task, one `neuromas baselines` run (`compare.run_baselines`: one loaded model, every method
on the same test inputs, the same scoring) of the frozen-backbone methods and the untrained
NeuroMAS-3, plus any trained networks named with `--trained TASK:NAME=RUN`, each evaluated on
the same inputs. Tasks and their fixed test inputs:

    arith      configs/arith-neuromas3.yaml: four one-digit numbers, the fixed 128-question split
    navigate   configs/navigate-neuromas3.yaml: BBH Navigate, the seeded held-out 100
    humaneval  configs/paper/humaneval-neuromas3.yaml on the embedded model: the first
               `--humaneval-limit` problems of the seeded 64-problem test split, 128-token
               replies (frozen-backbone methods only: nothing trains on it here)

Tasks that share their test questions with a task of the claims campaign (`benchmarks/claims.py`)
also get its trained arms as rows, read from `benchmarks/results/claims.json` (`claims:<arm>`: the
mean over its seeds, the campaign's bootstrap CI over seeds and questions), after checking that the
two configs draw the same test questions:

    arith      claims task arith-4x1-mix (trained on 2-4 numbers, tested on the same 128)

The cost-matched rows are self-consistency with as many samples as the network makes calls
(k=3 for NeuroMAS-3, k=5 for NeuroMAS-5). Each method's result is kept under `runs/table1/<task>`
and reused, so an interrupted run resumes where it stopped and a method added to a task's list is
the only one run. Results:
`benchmarks/results/table1.{json,md}` (metrics keyed by task and method).

    python -m benchmarks.table1 --trained navigate:neuromas3=runs/growth/navigate-grown-7/checkpoints/step-000005
    python -m benchmarks.table1 --tasks arith --methods goa agentnet   # add rows, keep the others
    python -m benchmarks.table1 --tasks arith --methods none   # refresh the claims rows alone
    python -m benchmarks.table1 --smoke     # arith, 2 questions, 4-token replies, to check the script; writes nothing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, ci, machine, smoke_runs, table, write_results
from neuromas.rl.metrics import read_metrics

FROZEN = ["direct", "cot", "self-consistency:k=3", "self-consistency:k=5", "self-refine", "self-check",
          "moa:widths=[2,2,1]", "debate", "workflow", "gptswarm", "goa", "agentnet"]
TASKS = {
    "arith": ("configs/arith-neuromas3.yaml", [], FROZEN),
    "navigate": ("configs/navigate-neuromas3.yaml", [], FROZEN),
    "humaneval": ("configs/paper/humaneval-neuromas3.yaml",
                  ["model.name=null", "model.dtype=auto", "model.chat_template_kwargs={}",
                   "network.generation.max_new_tokens=128", "network.generation.temperature=0.7",
                   "task.train_size=100", "task.test_size=64"],
                  FROZEN),
}
# table1 task -> the claims task with the same test questions (claims_rows checks that they are).
CLAIMS_TASKS = {"arith": "arith-4x1-mix"}
CLAIMS_FILE = RESULTS / "claims.json"
UNTRAINED = "untrained-neuromas3"
RESULTS_FILE = RESULTS / "table1.json"
SMOKE = ["network.generation.max_new_tokens=4"]  # with 2 questions a task


def task_config(task: str, limit: int | None, extra: list[str]):
    from neuromas.configfile import load_config

    path, overrides, _ = TASKS[task]
    sets = [*overrides, *extra] + ([f"eval.limit={limit}"] if limit else [])
    return load_config(ROOT / path, sets)


def run_task(task: str, limit: int | None, trained: dict[str, Path], runs: Path, extra: list[str],
             only: list[str] | None = None) -> dict:
    """Every method's summary on one task's test inputs (reusing what an earlier run finished);
    with `only`, just those methods (and the trained networks)."""
    import neuromas as nm
    from neuromas.compare import NETWORK, run_baselines
    from neuromas.files import atomic_write
    from neuromas.runner import load_task
    from neuromas.trace import write_traces

    config = task_config(task, limit, extra)
    out = runs / task
    (out / "traces").mkdir(parents=True, exist_ok=True)  # a trained row alone (--methods) may come first
    done = out / "baselines.json"
    methods = json.loads(done.read_text())["methods"] if done.is_file() else {}
    missing = [spec for spec in [NETWORK, *TASKS[task][2]] if spec not in methods and (only is None or spec in only)]
    print(f"{task}: {len(methods)} methods reused from {done}, {len(missing)} to run on "
          f"{config.eval.limit or 'all'} inputs", flush=True)
    for spec in missing:  # one at a time, each kept as soon as it is done
        methods[spec] = {**run_baselines(config, out, [spec], progress=False)[spec].summary(), "machine": machine()}
        alone = json.loads(done.read_text())  # what run_baselines wrote: this method only
        atomic_write(done, json.dumps({**alone, "methods": methods}, indent=2) + "\n")
        print(f"{task} {spec}: {100 * methods[spec]['acc']:.1f}%", flush=True)
    summaries = {UNTRAINED if spec == NETWORK else spec: m for spec, m in methods.items()}
    task_data = load_task(config)
    for name, run_dir in trained.items():
        cached = out / f"trained-{name}.json"
        if not cached.is_file():
            net = nm.Network.load(run_dir)
            result = nm.evaluate(net, task_data, config.eval.split, config.eval.limit, config.eval.batch_size, progress=False)
            write_traces(result.traces, out / "traces" / f"trained-{name}.jsonl")
            summary = {**result.summary(), "run": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT)
                       else run_dir.name, "widths": net.topology.widths, "machine": machine()}
            cached.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"{task} {name}: {result.line()}", flush=True)
            del net
        summaries[name] = {**json.loads(cached.read_text()), "fit_seconds": training_seconds(run_dir)}
    return summaries


def claims_rows(task: str) -> dict:
    """The claims campaign's trained arms on `task`'s test questions (nothing where the task has no
    claims twin or the campaign has no results yet). Why read and not rerun: each arm is several
    seeds of hour-long runs whose adapters are not kept; the campaign's greedy evaluation is
    `evaluate` on the same inputs with the same scoring, so its numbers are this table's."""
    from neuromas.configfile import load_config
    from neuromas.runner import load_task

    twin = CLAIMS_TASKS.get(task)
    if twin is None or not CLAIMS_FILE.is_file():
        return {}
    config = task_config(task, None, [])
    claims_config = load_config(ROOT / "configs" / "claims" / f"{twin}.yaml")
    ours, theirs = (load_task(c).examples("test")[: c.eval.limit] for c in (config, claims_config))
    if [(e.id, e.input, e.target) for e in ours] != [(e.id, e.input, e.target) for e in theirs]:
        raise SystemExit(f"table1: {task} and the claims task {twin} no longer draw the same test questions; "
                         "drop it from CLAIMS_TASKS or align the configs")
    record = json.loads(CLAIMS_FILE.read_text())
    rows = {}
    for arm, m in record["metrics"].get(twin, {}).items():
        if not (isinstance(m, dict) and m.get("steps")):  # a trained arm; not an untrained one (0 steps) or a summary
            continue
        rows[f"claims:{arm}"] = {
            "acc": m["acc"], "ci_low": m["ci_low"], "ci_high": m["ci_high"], "n": m["n"], "seeds": len(m["seeds"]),
            "calls_per_q": m["calls_per_q"], "tokens_per_q": m["tokens_per_q"], "seconds": None,
            "fit_seconds": m["train_s"], "steps": m["steps"],
            "machine": f"claims campaign ({twin}), 1 thread a run, report of {record['commit']}"}
    return rows


def training_seconds(run_dir: Path) -> float | None:
    """Wall time of the training steps that made a trained network: its run's `time/step_s` up to
    the checkpoint's step (a grown network's includes the stages before growth). None when the
    run's metrics are not there."""
    step = None
    if run_dir.parent.name == "checkpoints":  # runs/<run>/checkpoints/step-000010
        step, run_dir = int(run_dir.name.rpartition("-")[2]), run_dir.parent.parent
    elif run_dir.name == "final":
        run_dir = run_dir.parent
    steps = [m for m in read_metrics(run_dir) if step is None or m["step"] <= step]
    return round(sum(m["time/step_s"] for m in steps), 1) if steps else None


def markdown(metrics: dict) -> str:
    rows = []
    for task, methods in metrics.items():
        for name, m in sorted(methods.items(), key=lambda item: -item[1]["acc"]):
            fit = f"{m['fit_seconds']:.0f}" if m.get("fit_seconds") else ""
            n = f"{m['n']} x {m['seeds']} seeds" if m.get("seeds", 1) > 1 else m["n"]
            seconds = "" if m["seconds"] is None else f"{m['seconds']:.0f}"
            rows.append([task, name, f"{100 * m['acc']:.1f}", ci(m), f"{m['calls_per_q']:.3g}", f"{m['tokens_per_q']:.1f}",
                         n, seconds, fit, cpu_label(m.get("machine", ""))])
    return ("Every method on the same test inputs per task, greedy where the method allows, embedded "
            "SmolLM2-135M-Instruct. Sorted by accuracy within a task. `seconds` is the evaluation; `fit seconds` "
            "the learning before it: GPTSwarm's edge optimisation and AgentNet's adaptation on the train split, a "
            "trained network's training steps (CoLLM-CC: `train.algorithm: collm-cc`); blank for the frozen methods, "
            "and for GPTSwarm rows run before it was recorded. GoA's and AgentNet's calls/q are measured means "
            "(they depend on the question). Rows were added over several sessions on different CPUs: `cpu` says "
            "where each row ran, and seconds compare only between rows of one CPU. `claims:` rows are the claims "
            "campaign's trained arms on the same test questions (`benchmarks/results/claims.md`): the mean over "
            "seeds with a bootstrap CI over seeds and questions, `fit seconds` a run's mean training time (runs on "
            "several CPUs, 1 thread each, often beside another run).\n\n"
            + table(["task", "method", "acc %", "95% CI", "calls/q", "tokens/q", "n", "seconds", "fit seconds", "cpu"], rows)
            + "\n")


def cpu_label(machine_line: str) -> str:
    """Where a row ran, from a `common.machine()` line: "x86_64, 2 cores, AMD EPYC, torch 2.13.0+cpu
    (1 threads)" -> "AMD EPYC, 1 threads"."""
    parts = machine_line.split(", ")
    if len(parts) < 4:
        return machine_line
    threads = parts[-1].rpartition("(")[2].rstrip(")")
    return f"{parts[2]}, {threads}" if threads.endswith("threads") else parts[2]


def parse_trained(values: list[str]) -> dict[str, dict[str, Path]]:
    trained: dict[str, dict[str, Path]] = {}
    for value in values:
        task, sep, rest = value.partition(":")
        name, sep2, path = rest.partition("=")
        if not (sep and sep2) or task not in TASKS:
            raise SystemExit(f"--trained {value!r}: write it as TASK:NAME=RUN with TASK one of {', '.join(TASKS)}")
        if not Path(path).exists():
            raise SystemExit(f"--trained {value!r}: {path} does not exist")
        trained.setdefault(task, {})[name] = Path(path).resolve()
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--trained", action="append", default=[], metavar="TASK:NAME=RUN",
                        help="a trained network (run directory or checkpoint) to add to a task's table (repeatable)")
    parser.add_argument("--humaneval-limit", type=int, default=32, help="HumanEval problems (of the 64 in the test split)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "table1")
    parser.add_argument("--methods", nargs="+", default=None, metavar="SPEC",
                        help="run only these of a task's methods (and --trained networks) and keep the other rows of "
                             "benchmarks/results/table1.json as they are: adds rows without rerunning the table")
    parser.add_argument("--smoke", action="store_true", help="arith, 2 questions, 4-token replies, "
                        "runs in a temporary directory; writes nothing")
    args = parser.parse_args()
    trained = parse_trained(args.trained)
    if args.smoke:
        args.tasks = ["arith"]

    kept = json.loads(RESULTS_FILE.read_text()) if args.methods and RESULTS_FILE.is_file() and not args.smoke else {}
    # Rows from before rows carried their machine ran where the file they were kept in says.
    metrics = {task: {name: {"machine": kept.get("machine", ""), **row} for name, row in rows.items()}
               for task, rows in kept.get("metrics", {}).items()}
    kept_trained = kept.get("config", {}).get("trained", {})
    with smoke_runs(args):
        for task in args.tasks:
            limit = 2 if args.smoke else args.humaneval_limit if task == "humaneval" else None
            rows = run_task(task, limit, trained.get(task, {}), args.runs, SMOKE if args.smoke else [], args.methods)
            metrics[task] = {**metrics.get(task, {}), **rows}
            if not args.smoke:
                metrics[task] = {**{n: r for n, r in metrics[task].items() if not n.startswith("claims:")},
                                 **claims_rows(task)}
            config = {"tasks": {t: {"config": TASKS[t][0], "overrides": TASKS[t][1], "methods": TASKS[t][2]}
                                for t in metrics},  # the tasks done so far
                      "humaneval_limit": args.humaneval_limit,
                      "trained": {t: {**kept_trained.get(t, {}),
                                      **{n: str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name
                                         for n, p in trained.get(t, {}).items()}}
                                  for t in dict.fromkeys([*kept_trained, *trained])}}
            write_results("table1", config, metrics, markdown(metrics), write=not args.smoke)


if __name__ == "__main__":
    main()
