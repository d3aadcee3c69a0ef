"""Jointly trained networks vs a single agent trained with the same recipe.

For each task (`arith`: sums of four one-digit numbers, fixed 128-question test split;
`navigate`: BBH Navigate, seeded 150 train / 100 test) and each arm

    neuromas3  [1, 1, 1], a rank-8 LoRA per node, trained jointly
    net21      [2, 1],    a rank-8 LoRA per node, trained jointly
    single     [1],       one rank-24 LoRA: the networks' total trainable parameters (3 x rank 8)

this runs `neuromas run configs/<task>-<arm>.yaml` (evaluate greedily, train, evaluate) once per
seed, each in its own process so that its peak memory is its own, and collects accuracy with a
95% Wilson CI, LLM calls and generated tokens per question, and the learning curves. The
evaluation before training is the arm's untrained baseline (`untrained-<arm>`). Every arm gets
the same steps, batch and group size; the recipe is in the configs.

Finished runs are kept under `runs/train_compare/` and reused, so an interrupted benchmark
continues where it stopped: finished runs are read back, interrupted ones resumed from their newest
checkpoint (`--fresh` reruns). Results are rewritten after every run, so a
partial benchmark still leaves its figures in `benchmarks/results/train_compare.{json,md,png}`.

    python -m benchmarks.train_compare                    # both tasks, all arms, 1 seed
    python -m benchmarks.train_compare --seeds 3 --tasks arith
    python -m benchmarks.train_compare --smoke            # one tiny step per arm, to check the script
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import (
    ARMS,
    RESULTS,
    ROOT,
    SMOKE_TRAIN,
    ci,
    pyplot,
    read_run,
    smoke_runs,
    summarize,
    table,
    train_arm,
    write_results,
)

TASKS = ("arith", "navigate")


def collect(done: dict[tuple[str, str], dict[int, dict]]) -> tuple[dict, list[list]]:
    metrics: dict = {}
    rows = []
    for (task, arm), by_seed in done.items():
        seeds = sorted(by_seed)
        runs = [by_seed[s] for s in seeds]
        trained = summarize([r["after"] for r in runs], seeds, runs[0]["steps"])
        trained.update({
            "step_s": round(sum(r["step_s"] for r in runs) / len(runs), 2),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
            "trainable_parameters": runs[0]["trainable_parameters"],
            "curves": {str(s): {"reward": r["reward"], "tied_fraction": r["tied_fraction"], "eval": r["eval"]}
                       for s, r in zip(seeds, runs)},
        })
        untrained = summarize([r["before"] for r in runs], seeds, 0)
        metrics.setdefault(task, {})[arm] = trained
        metrics[task][f"untrained-{arm}"] = untrained
        for name, m in ((arm, trained), (f"untrained-{arm}", untrained)):
            rows.append([task, name, f"{100 * m['acc']:.1f}", ci(m), f"{m['calls_per_q']:g}", f"{m['tokens_per_q']:.1f}",
                         m["steps"], len(m["seeds"]), m.get("step_s", ""), m.get("peak_rss_gb", "")])
    net21 = metrics.get("arith", {}).get("net21")
    if net21:  # the headline step time and memory: the [2, 1] network's on arith
        metrics["step_s"], metrics["peak_rss_gb"] = net21["step_s"], net21["peak_rss_gb"]
    return metrics, rows


def plot(metrics: dict, path: Path) -> None:
    """Learning curves: training reward per step and held-out accuracy, one panel per task."""
    plt = pyplot()
    tasks = [t for t in TASKS if t in metrics]
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 7), squeeze=False)
    for column, task in enumerate(tasks):
        for arm in ARMS:
            if arm not in metrics[task]:
                continue
            trained, seeds = metrics[task][arm], metrics[task][arm]["seeds"]
            for seed, curve in trained["curves"].items():
                label = f"{arm} (seed {seed})"
                axes[0][column].plot(range(1, len(curve["reward"]) + 1), curve["reward"], label=label, alpha=0.8)
                points = [[0, metrics[task][f"untrained-{arm}"]["acc_per_seed"][0]], *curve["eval"]]
                points.append([trained["steps"], trained["acc_per_seed"][seeds.index(int(seed))]])
                axes[1][column].plot(*zip(*points), marker="o", label=label)
        axes[0][column].set(title=f"{task}: training reward (mean of the group)", xlabel="step", ylabel="reward")
        axes[1][column].set(title=f"{task}: held-out accuracy (greedy)", xlabel="step", ylabel="accuracy")
        axes[0][column].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per arm")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_compare")
    parser.add_argument("--fresh", action="store_true", help="rerun arms that already finished")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for every arm, e.g. train.steps=10 (changes the recipe)")
    parser.add_argument("--smoke", action="store_true",
                        help="arith, one seed, one tiny step per arm, runs in a temporary directory; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.tasks, args.seeds, args.overrides = ["arith"], 1, [*args.overrides, *SMOKE_TRAIN]

    with smoke_runs(args):
        done: dict[tuple[str, str], dict[int, dict]] = {}
        for seed in range(args.seeds):  # seed-major: one seed of every arm before a second of any
            for task in args.tasks:
                for arm in args.arms:
                    run_dir = train_arm(task, arm, seed, args.runs, args.overrides, args.fresh)
                    done.setdefault((task, arm), {})[seed] = read_run(run_dir)
                    write_report(args, done)


def write_report(args: argparse.Namespace, done: dict[tuple[str, str], dict[int, dict]]) -> None:
    metrics, rows = collect(done)
    config = {
        "configs": sorted({f"configs/{t}-{ARMS[a]}.yaml" for t, a in done}),
        "overrides": args.overrides,
        "seeds": args.seeds,
    }
    markdown = (
        "Trained (joint RL, greedy evaluation) vs untrained, embedded SmolLM2-135M-Instruct, bf16. "
        "acc is the mean over seeds; the CI pools all seeds' answers.\n\n"
        + table(["task", "arm", "acc %", "95% CI", "calls/q", "tokens/q", "steps", "seeds", "s/step", "peak RSS GB"], rows)
        + "\n\nLearning curves: `train_compare.png` (the evaluations during training use "
        "`train.eval_limit` examples, those before and after the whole test split).\n"
    )
    write_results("train_compare", config, metrics, markdown, write=not args.smoke)
    plot(metrics, (args.runs if args.smoke else RESULTS) / "train_compare.png")


if __name__ == "__main__":
    main()
