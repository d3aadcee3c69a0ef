"""Which quickstart recipe learns on every seed? Greedy accuracy of configs/quickstart.yaml with
overrides, per seed, before training and after chosen steps, on the same test questions.

The quickstart must show learning beyond doubt (issue 19): the after-training 95% interval
entirely above the before-training one. One seed says little: the greedy answers of a 135M model
swing by 20 points from one step to the next, so a recipe is judged by how many seeds end apart,
and by whether they stay apart a step earlier or later. The schedule must be constant for
`--evals` to be worth a shorter run's result (step k of a longer run is then the end of a k-step
run; with a decaying schedule it is not). One JSON line per seed is appended to
benchmarks/results/quickstart_recipes.jsonl, with the machine and commit it ran on.

    python -m benchmarks.quickstart_recipes NAME train.steps=5 train.group_size=8 --seeds 0 1 2 3 --evals 3 4
    python -m benchmarks.quickstart_recipes q128 eval.limit=128 --seeds 0 1 --first 64   # judged on 128 and on the first 64
    python -m benchmarks.quickstart_recipes smoke --smoke      # 1 tiny step, 4 questions; writes nothing

Float32 by default (`model.dtype=float32`), what a CPU without native bf16 runs. The first rows
(commit 0cfa90f) ran on the quickstart of that commit, 6 steps of 8 inputs x G 4.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from benchmarks.common import CONFIGS, RESULTS, SMOKE_TRAIN, commit, machine


def run_seed(seed: int, overrides: list[str], evals: set[int], first: Sequence[int] = ()) -> dict:
    """Evaluate, train (evaluating after the `evals` steps) and evaluate one seed of the recipe.

    `first`: also judge each evaluation on its first N questions alone, under "first" in the row.
    With N a multiple of eval.batch_size those N are batched as an N-question evaluation batches
    them, so one run measures both evaluation sizes.
    """
    from neuromas.build import build_network, load_task
    from neuromas.configfile import load_config
    from neuromas.eval import evaluate, summarize
    from neuromas.rl.trainer import Trainer

    config = load_config(CONFIGS / "quickstart.yaml", [f"seed={seed}", *overrides])
    task, net = load_task(config), build_network(config)

    def accuracy():
        return evaluate(net, task, config.eval.split, config.eval.limit, config.eval.batch_size, progress=False)

    def percent(r) -> list[float]:
        return [round(100 * x, 1) for x in (r.acc, r.ci_low, r.ci_high)]

    def judged(before, after, during) -> dict:  # apart: on the unrounded intervals, as `neuromas run` judges
        return {"before": percent(before), "after": percent(after), "apart": after.ci_low > before.ci_high,
                "evals": [[step, *percent(r)] for step, r in during]}

    def head(r, n: int):
        return summarize(r.task, r.split, r.traces[:n], r.calls_per_q, r.seconds)

    before = accuracy()
    trainer = Trainer(net, task, config.train, progress=False)
    rewards, during = [], []
    start = time.perf_counter()
    while trainer.step < config.train.steps:
        rewards.append(round(trainer.train_step()["reward/mean"], 3))
        if trainer.step in evals and trainer.step < config.train.steps:
            during.append((trainer.step, accuracy()))
    train_s = time.perf_counter() - start
    after = accuracy()
    subsets = {n: judged(head(before, n), head(after, n), [(step, head(r, n)) for step, r in during]) for n in first}
    return {"seed": seed, **judged(before, after, during), **({"first": subsets} if subsets else {}),
            "rewards": rewards, "steps": config.train.steps, "train_s_with_evals": round(train_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the recipe's label in the results")
    parser.add_argument("overrides", nargs="*", help="config overrides KEY=VALUE on configs/quickstart.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--evals", type=int, nargs="*", default=[], help="also evaluate after these steps")
    parser.add_argument("--first", type=int, nargs="*", default=[],
                        help="also judge every evaluation on its first N questions (N a multiple of eval.batch_size)")
    parser.add_argument("--dtype", default="float32", help="model.dtype (float32: as on a CPU without native bf16)")
    parser.add_argument("--smoke", action="store_true", help="one tiny step, seed 0; writes nothing")
    args = parser.parse_intermixed_args()  # overrides before or after the options
    overrides = [f"model.dtype={args.dtype}", *args.overrides, *(SMOKE_TRAIN if args.smoke else [])]
    for seed in [0] if args.smoke else args.seeds:
        row = {"name": args.name, "overrides": args.overrides, **run_seed(seed, overrides, set(args.evals), args.first)}
        print(json.dumps(row), flush=True)
        if not args.smoke:
            row.update(commit=commit(), machine=machine(), date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            with open(RESULTS / "quickstart_recipes.jsonl", "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
