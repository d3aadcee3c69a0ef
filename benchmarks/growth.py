"""Path dependence (the paper's Table 3): networks grown from a trained smaller one vs the
same shapes trained from scratch, at the same total number of training steps.

Per task, with S training steps per stage (`--stage-steps`):

    grown      one run: [1, 1, 1] trained S steps (`base-3`), widened to [2, 2, 1] and trained S
               more (`grown-5`, 2S in all), deepened to [2, 2, 2, 1] and trained S more (`grown-7`,
               3S in all), through the run's `train.growth` schedule (new nodes cloned from trained
               ones, fading in over `--ramp-steps`)
    scratch-5  [2, 2, 1] trained 2S steps from the base model
    scratch-7  [2, 2, 2, 1] trained 3S steps

Every run evaluates greedily on the whole test split every S steps, so `base-3` and `grown-5` are
the grown run's evaluations at steps S and 2S. Rollout tokens are every token generated in
training up to that point. Right after each growth the grown network is compared with its parent
on the test split: accuracy with the new nodes switched fully on at once (no fade-in), and how
often its final answer equals the parent's (with the fade-in at its start, the grown network *is*
the parent: 100% by construction, which tests/test_grow.py checks).

With `--sweep [TASK ...]` (no task named: every task), the scaling sweep adds more grown shapes:
[1, 1, 1, 1] (the trained NeuroMAS-3 at step S made deeper, trained S more) and [3, 3, 1] (the
grown [2, 2, 1] at step 2S made wider, trained S more), each grown from the grown run's checkpoint
with `neuromas grow`; the table and the plot's second row give every grown shape's accuracy
against its inference cost.
`--set key=value` overrides every run's config (e.g. `--set train.batch_size=4` to fit a CPU).

Tasks: `navigate` (configs/navigate-neuromas3.yaml: BBH Navigate, 150 train / 100 test), `arith`
(configs/arith-neuromas3.yaml: sums of four one-digit numbers, training on 2-4) and `arith8` (the
same with 8 numbers, training on 2-8). On the embedded 135M model arith8 is at the floor: 0 of
128 right untrained and after 5 and 10 steps of the grown run (batch 4, G 4), every node writing
the same line, so `arith` is the deeper task that can tell arms apart here.
Runs live under `runs/growth/` and are reused; results go to `benchmarks/results/growth.{json,md,png}`.

    python -m benchmarks.growth --tasks navigate --stage-steps 10
    python -m benchmarks.growth --smoke     # arith and its sweep, 1 tiny step per stage, 4 questions; writes nothing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import (
    CONFIGS,
    RESULTS,
    ROOT,
    SMOKE_TRAIN,
    ci,
    neuromas,
    pair_by_id,
    pyplot,
    read_results,
    run_or_reuse,
    set_args,
    smoke_runs,
    table,
    write_results,
)
from neuromas.rl.metrics import read_metrics
from neuromas.trace import read_traces

TASKS = {
    "navigate": ("navigate-neuromas3.yaml", [], 100),
    "arith": ("arith-neuromas3.yaml", [], 128),
    "arith8": ("arith-neuromas3.yaml", ["task.operands=8", "task.train_operands=[2, 8]"], 128),
}
SHAPES = {"base-3": [1, 1, 1], "grown-5": [2, 2, 1], "grown-7": [2, 2, 2, 1],
          "scratch-5": [2, 2, 1], "scratch-7": [2, 2, 2, 1]}
WIDEN = {"widen": [{"layer": 1, "width": 2}, {"layer": 2, "width": 2}]}  # [1, 1, 1] -> [2, 2, 1]
DEEPEN = {"deepen": [{"after_layer": 2, "width": 2}]}  # [2, 2, 1] -> [2, 2, 2, 1]
# The scaling sweep's further grown shapes: (stage of the grown run whose checkpoint is grown,
# the growth, the shape), each then trained S steps, so a shape grown from stage k has (k+1)S.
SWEEP = {
    "deep-4": (1, ["--deepen", "2:1"], [1, 1, 1, 1]),  # base-3 made deeper
    "wide-7": (2, ["--widen", "1:3", "--widen", "2:3"], [3, 3, 1]),  # grown-5 made wider
}


def test_size(task: str, args: argparse.Namespace) -> int:
    """Test questions every evaluation uses: the task's whole test split, 4 in a smoke test."""
    return 4 if args.smoke else TASKS[task][2]


def run(task: str, arm: str, stages: int, stage_steps: int, ramp: int, runs: Path, extra: list[str],
        test_size: int) -> Path:
    """One `neuromas run` (a process of its own); finished runs are reused, interrupted ones resumed."""
    config, overrides, _ = TASKS[task]
    run_dir = runs / f"{task}-{arm}"
    start_shape = SHAPES["base-3"] if arm == "grown-7" else SHAPES[arm]  # the grown run starts as NeuroMAS-3
    sets = [*overrides, *extra, f"network.layers={start_shape}", f"train.steps={stages * stage_steps}",
            f"train.eval_every={stage_steps}", f"train.eval_limit={test_size}", f"eval.limit={test_size}",
            f"train.checkpoint_every={stage_steps}", "train.keep_checkpoints=3"]
    if arm == "grown-7":
        schedule = [{**WIDEN, "at_step": stage_steps, "ramp_steps": ramp},
                    {**DEEPEN, "at_step": 2 * stage_steps, "ramp_steps": ramp}]
        sets.append(f"train.growth={json.dumps(schedule)}")  # JSON is YAML
    return run_or_reuse(run_dir, f"{task} {arm}",
                        lambda: neuromas("run", str(CONFIGS / config), "--out", str(run_dir), "--quiet", *set_args(sets)))


def sweep_run(task: str, arm: str, stage_steps: int, ramp: int, runs: Path, extra: list[str], test_size: int) -> Path:
    """Grow a checkpoint of the grown run (`neuromas grow`) and train the new shape S steps."""
    stage, growth, _ = SWEEP[arm]
    run_dir = runs / f"{task}-{arm}"
    sets = [*extra, f"train.steps={stage_steps}", f"train.eval_every={stage_steps}", f"train.eval_limit={test_size}",
            f"eval.limit={test_size}", f"train.checkpoint_every={stage_steps}", "train.keep_checkpoints=1"]

    def start() -> None:
        if not (run_dir / "grown").is_dir():
            parent = runs / f"{task}-grown-7" / "checkpoints" / f"step-{stage * stage_steps:06d}"
            neuromas("grow", str(parent), "--out", str(run_dir), *growth, "--ramp-steps", str(ramp))
        neuromas("run", str(run_dir / "config.yaml"), "--quiet", *set_args(sets))

    # `neuromas grow` writes config.yaml, so the run has started once its training has (results_before.json)
    return run_or_reuse(run_dir, f"{task} {arm}", start, started="results_before.json")


def curve(run_dir: Path, step_offset: int = 0, token_offset: int = 0) -> list[dict]:
    """Per evaluation: step, accuracy, CI and rollout tokens so far (step 0 = untrained).

    The offsets count the training a grown run's parent had before it (steps and tokens).
    """
    before = read_results(run_dir, "results_before.json")
    points = [{"step": step_offset, "acc": before["acc"], "ci_low": before["ci_low"], "ci_high": before["ci_high"],
               "rollout_tokens": token_offset}]
    tokens = float(token_offset)
    steps = read_metrics(run_dir)
    for m in steps:
        tokens += m["tokens/total"]
        if "eval/acc" in m:
            points.append({"step": step_offset + m["step"], "acc": m["eval/acc"], "ci_low": m["eval/ci_low"],
                           "ci_high": m["eval/ci_high"], "rollout_tokens": int(tokens)})
    after = read_results(run_dir)["after"]
    points.append({"step": step_offset + steps[-1]["step"], "acc": after["acc"], "ci_low": after["ci_low"],
                   "ci_high": after["ci_high"], "rollout_tokens": int(tokens), "calls_per_q": after["calls_per_q"],
                   "tokens_per_q": after["tokens_per_q"]})
    return points


def top_answer_share(traces: Path) -> float | None:
    """How often the most common final answer was given: a network that learned a constant answer
    (BBH Navigate's majority "No" is 54% of the test split) shows it here, not in its accuracy."""
    if not traces.is_file():
        return None
    predictions = [t["prediction"] for t in read_traces(traces)]
    return max(predictions.count(p) for p in set(predictions)) / len(predictions)


def at_growth(run_dir: Path, step: int, widen: bool, test_size: int) -> dict:
    """The parent at a growth step vs the grown network switched fully on at once (cached in the run)."""
    cached = run_dir / f"at-growth-{step:06d}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    import neuromas as nm
    from neuromas.config import GrowthStage
    from neuromas.configfile import load_config
    from neuromas.runner import load_task

    task = load_task(load_config(run_dir / "config.yaml"))
    parent = nm.Network.load(run_dir / "checkpoints" / f"step-{step:06d}")
    stage = GrowthStage(at_step=1, **(WIDEN if widen else DEEPEN))
    grown = nm.grow.apply(parent, nm.grow.plan_stage(parent.config, stage), ramp_steps=0)  # fully on at once
    after = nm.evaluate(grown, task, limit=test_size, progress=False)
    periodic = run_dir / f"traces_step-{step:06d}.jsonl"  # the run's own evaluation of the parent at that step
    before = (read_traces(periodic) if periodic.is_file()
              else [t.to_dict() for t in nm.evaluate(parent, task, limit=test_size, progress=False).traces])
    n = len(before)
    same = sum(a["prediction"] == b.prediction for a, b in pair_by_id(before, after.traces, f"{run_dir} at step {step}"))
    result = {"parent_acc": sum(t["reward"] or 0.0 for t in before) / n, "grown_acc": after.acc, "answer_agreement": same / n,
              "parent_calls_per_q": sum(len(t["messages"]) for t in before) / n,
              "parent_tokens_per_q": sum(len(m["token_ids"]) for t in before for m in t["messages"].values()) / n}
    cached.write_text(json.dumps(result, indent=2) + "\n")
    return result


def sweep(task: str, grown: list[dict], right_after: dict, args: argparse.Namespace) -> list[dict]:
    """Every grown shape with its accuracy and inference cost: the architecture-picking table."""
    s = args.stage_steps
    by_step = {p["step"]: p for p in grown}
    cost = {1: right_after["3->5"], 2: right_after["5->7"]}  # the parents' own greedy evaluations
    points = [
        {"arm": "base-3", "shape": SHAPES["base-3"], **by_step[s], "calls_per_q": cost[1]["parent_calls_per_q"],
         "tokens_per_q": cost[1]["parent_tokens_per_q"]},
        {"arm": "grown-5", "shape": SHAPES["grown-5"], **by_step[2 * s], "calls_per_q": cost[2]["parent_calls_per_q"],
         "tokens_per_q": cost[2]["parent_tokens_per_q"]},
        {"arm": "grown-7", "shape": SHAPES["grown-7"], **grown[-1]},
    ]
    for arm, (stage, _, shape) in SWEEP.items():
        run_dir = sweep_run(task, arm, s, args.ramp_steps, args.runs, args.sets, test_size(task, args))
        points.append({"arm": arm, "shape": shape, **curve(run_dir, stage * s, by_step[stage * s]["rollout_tokens"])[-1]})
    for point in points:
        point["nodes"] = sum(point["shape"])
    return sorted(points, key=lambda p: (p["nodes"], len(p["shape"])))


def plot(metrics: dict, path: Path) -> None:
    """Learning curves (grown vs scratch) and, per task, accuracy against inference tokens per shape."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(metrics), figsize=(6 * len(metrics), 8), squeeze=False)
    for column, (task, arms) in enumerate(metrics.items()):
        axis = axes[0][column]
        for name in ("grown", "scratch-5", "scratch-7"):
            if name in arms.get("curves", {}):
                points = arms["curves"][name]
                axis.plot([p["step"] for p in points], [p["acc"] for p in points], marker="o", label=name)
        axis.set(title=f"{task}: held-out accuracy (greedy)", xlabel="training steps", ylabel="accuracy")
        axis.legend()
        axis = axes[1][column]
        if not arms.get("sweep"):  # the sweep ran on other tasks only
            axis.set_visible(False)
        for i, point in enumerate(sorted(arms.get("sweep", []), key=lambda p: p["tokens_per_q"])):
            axis.errorbar(point["tokens_per_q"], point["acc"], fmt="o",
                          yerr=[[point["acc"] - point["ci_low"]], [point["ci_high"] - point["acc"]]])
            axis.annotate(f"{point['shape']} ({point['step']} steps)", (point["tokens_per_q"], point["acc"]),
                          textcoords="offset points", xytext=(5, 5 if i % 2 else -12), fontsize=8)  # neighbours apart
        axis.set(title=f"{task}: grown shapes, accuracy vs cost", xlabel="generated tokens per question",
                 ylabel="accuracy (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(metrics: dict, args: argparse.Namespace) -> str:
    def share(value: float | None) -> str:
        return "" if value is None else f"{100 * value:.0f}"

    rows = [[task, arm, m["shape"], f"{100 * m['acc']:.1f}", ci(m), m["steps"], m["rollout_tokens"],
             share(m.get("top_answer_share"))]
            for task, arms in metrics.items() for arm, m in arms.items() if arm in SHAPES]
    after = [[task, growth, f"{100 * r['parent_acc']:.1f}", f"{100 * r['grown_acc']:.1f}", f"{100 * r['answer_agreement']:.1f}"]
             for task, arms in metrics.items() for growth, r in arms["right_after_growth"].items()]
    text = (
        f"Grown vs from scratch at equal training steps ({args.stage_steps} per stage, fade-in {args.ramp_steps} steps, "
        f"overrides {args.sets or 'none'}), greedy accuracy on the whole test split, embedded SmolLM2-135M-Instruct.\n\n"
        + table(["task", "arm", "shape", "acc %", "95% CI", "steps", "rollout tokens", "most common answer %"], rows)
        + "\n\nRight after growth, new nodes fully on at once (no fade-in; with the fade-in the grown "
        "network starts as its parent):\n\n"
        + table(["task", "growth", "parent acc %", "grown acc %", "same final answer %"], after) + "\n"
    )
    for task, arms in metrics.items():
        if arms.get("sweep"):
            text += (f"\nScaling sweep on {task}, every shape grown from the trained NeuroMAS-3 ({args.stage_steps} "
                     "steps per growth stage):\n\n")
            text += table(["shape", "nodes", "acc %", "95% CI", "calls/q", "tokens/q", "steps", "rollout tokens",
                           "most common answer %"],
                          [[p["shape"], p["nodes"], f"{100 * p['acc']:.1f}", ci(p), f"{p['calls_per_q']:g}",
                            f"{p['tokens_per_q']:.1f}", p["step"], p["rollout_tokens"], share(p.get("top_answer_share"))]
                           for p in arms["sweep"]]) + "\n"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["navigate", "arith"], choices=list(TASKS))
    parser.add_argument("--stage-steps", type=int, default=10, help="training steps per stage (S)")
    parser.add_argument("--ramp-steps", type=int, default=5, help="fade-in steps after each growth")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "growth")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, e.g. train.batch_size=4 (repeatable)")
    parser.add_argument("--sweep", nargs="*", choices=list(TASKS), metavar="TASK",
                        help=f"also grow and train the sweep's shapes ({', '.join(SWEEP)}) on these tasks (none named: all)")
    parser.add_argument("--smoke", action="store_true", help="arith and its sweep, 1 step per stage, batch 2 x G 2, "
                        "4 test questions, runs in a temporary directory; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.tasks, args.sweep, args.stage_steps, args.ramp_steps = ["arith"], [], 1, 1
        args.sets = [*args.sets, *SMOKE_TRAIN]  # its steps and evaluations are overridden per run
    with smoke_runs(args):
        grow_and_compare(args)


def grow_and_compare(args: argparse.Namespace) -> None:
    s = args.stage_steps
    sweep_tasks = [] if args.sweep is None else [t for t in args.tasks if not args.sweep or t in args.sweep]

    metrics: dict = {}
    for task in args.tasks:
        size = test_size(task, args)
        grown = curve(run(task, "grown-7", 3, s, args.ramp_steps, args.runs, args.sets, size))
        growth_dir = args.runs / f"{task}-grown-7"
        by_step = {p["step"]: p for p in grown}
        arms = {"base-3": by_step[s], "grown-5": by_step[2 * s], "grown-7": grown[-1]}
        curves = {"grown": grown}
        for arm, stages in (("scratch-5", 2), ("scratch-7", 3)):
            curves[arm] = curve(run(task, arm, stages, s, args.ramp_steps, args.runs, args.sets, size))
            arms[arm] = curves[arm][-1]
        right_after = {"3->5": at_growth(growth_dir, s, True, size), "5->7": at_growth(growth_dir, 2 * s, False, size)}
        traces = {"base-3": growth_dir / f"traces_step-{s:06d}.jsonl", "grown-5": growth_dir / f"traces_step-{2 * s:06d}.jsonl",
                  "grown-7": growth_dir / "traces_after.jsonl", **{arm: args.runs / f"{task}-{arm}" / "traces_after.jsonl"
                                                                    for arm in ("scratch-5", "scratch-7")}}
        metrics[task] = {
            **{arm: {"acc": p["acc"], "ci_low": p["ci_low"], "ci_high": p["ci_high"], "steps": p["step"],
                     "rollout_tokens": p["rollout_tokens"], "shape": SHAPES[arm],
                     "top_answer_share": top_answer_share(traces[arm])}
               for arm, p in arms.items()},
            "right_after_growth": right_after, "curves": curves,
        }
        if task in sweep_tasks:
            metrics[task]["sweep"] = sweep(task, grown, right_after, args)
            for point in metrics[task]["sweep"]:
                point["top_answer_share"] = top_answer_share(traces.get(point["arm"], args.runs / f"{task}-{point['arm']}"
                                                                        / "traces_after.jsonl"))
        config = {"tasks": {t: TASKS[t][:2] for t in metrics}, "stage_steps": s, "ramp_steps": args.ramp_steps,
                  "overrides": args.sets, "sweep": {arm: SWEEP[arm] for arm in SWEEP} if sweep_tasks else None,
                  "sweep_tasks": [t for t in sweep_tasks if t in metrics]}
        write_results("growth", config, metrics, markdown(metrics, args), write=not args.smoke)
        plot(metrics, (args.runs if args.smoke else RESULTS) / "growth.png")


if __name__ == "__main__":
    main()
