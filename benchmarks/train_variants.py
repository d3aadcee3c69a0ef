"""What we tried to make the jointly trained network beat the single agent (issue 3).

`train_compare.py` runs the recipe in the configs. This runs variants of it on `arith` (sums of
four one-digit numbers, fixed 128-question test split, greedy), each a set of config overrides
applied to a network (`--network`: `net21` [2, 1] by default, or `neuromas3` [1, 1, 1]) and,
where the change also applies to one node, to the single agent (rank 24: the network's trainable
parameters), so every row compares the two under the same change:

    recipe      no change: the configs' recipe, measured here so that every row is on one machine
    lr1e-3      learning rate 1e-3 instead of 5e-4 (the quickstart learned fast with it)
    tokens48    48-token messages instead of 24 (room to show work)
    share-all   one rank-24 adapter for all the nodes (the single agent's parameters)
    kl0.05      a k3 KL penalty to the base model, coefficient 0.05
    slices      each first-layer node sees its part of the numbers (`network.input_slices`, the
                "receptive fields" of DESIGN.md), the readout the whole sum; network only ([2, 1])

`--set` applies to every run (`--set train.steps=10` for a shorter recipe; keep those runs apart
with `--runs`). Each (variant, arm) is one `neuromas run` process under `<runs>/<variant>/`;
finished runs are reused, so an interrupted benchmark continues. Results are rewritten after every
run to `benchmarks/results/train_variants.{json,md}`.

    python benchmarks/train_variants.py                       # every variant, [2, 1], 20 steps
    python benchmarks/train_variants.py --variants recipe slices lr1e-3 --set train.steps=10 \
        --set train.eval_every=0 --runs runs/train_variants10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_results  # noqa: E402
from train_compare import ROOT, read_run, run_arm, summarize  # noqa: E402

NETWORK = "network"  # stands for the `--network` arm in VARIANTS
# variant -> (overrides, arms it applies to)
VARIANTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "recipe": ([], (NETWORK, "single")),
    "slices": (["network.input_slices=true"], (NETWORK,)),
    "lr1e-3": (["train.lr=1e-3"], (NETWORK, "single")),
    "kl0.05": (["train.kl_coef=0.05"], (NETWORK,)),
    "share-all": (["network.adapters.sharing=all", "network.adapters.rank=24"], (NETWORK,)),
    "tokens48": (["network.generation.max_new_tokens=48"], (NETWORK, "single")),
}


def row(variant: str, arm: str, m: dict) -> str:
    return (
        f"| {variant} | {arm} | {100 * m['before']['acc']:.1f} | {100 * m['acc']:.1f} "
        f"| [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] | {m['calls_per_q']:g} | {m['tokens_per_q']:.1f} "
        f"| {m['final_reward']:.3f} | {m['steps']} | {m['step_s']} | {m['peak_rss_gb']} |"
    )


def measure(run_dir: Path) -> dict:
    run = read_run(run_dir)
    trained = summarize([run["after"]], [0], run["steps"])
    trained.update({
        "dtype": json.loads((run_dir / "results.json").read_text()).get("model_dtype", "bfloat16"),
        "before": {"acc": run["before"]["acc"], "tokens_per_q": run["before"]["tokens_per_q"]},
        "final_reward": round(sum(run["reward"][-5:]) / len(run["reward"][-5:]), 4),
        "reward": run["reward"],
        "eval": run["eval"],
        "step_s": run["step_s"],
        "peak_rss_gb": run["peak_rss_gb"],
        "trainable_parameters": run["trainable_parameters"],
    })
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--network", default="net21", choices=["net21", "neuromas3"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (repeatable)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_variants")
    parser.add_argument("--fresh", action="store_true", help="rerun variants that already finished")
    args = parser.parse_args()
    if "slices" in args.variants and args.network != "net21":
        parser.error("slices needs a first layer of two nodes: --network net21")

    metrics: dict = {}
    rows: list[str] = []
    for variant in args.variants:
        overrides, arms = VARIANTS[variant]
        for arm in (args.network if a == NETWORK else a for a in arms):
            run_dir = run_arm("arith", arm, 0, args.runs / variant, args.fresh, [*args.overrides, *overrides])
            m = measure(run_dir)
            metrics.setdefault(variant, {})[arm] = m
            rows.append(row(variant, arm, m))
            dtype = m["dtype"]
            markdown = (
                f"Variants of the arith recipe (configs/arith-*.yaml: batch 8 x G 8, T 0.7, seed 0; overrides for every "
                f"run: {', '.join(args.overrides) or 'none'}), the {args.network} network vs the single agent (rank 24) "
                f"under the same change, every row on this machine in {dtype}. Accuracy is greedy on the fixed 128 "
                "four-number sums, before and after training; reward is the mean training reward of the last 5 steps.\n\n"
                "| variant | arm | untrained acc % | trained acc % | 95% CI | calls/q | tokens/q | reward | steps "
                "| s/step | peak RSS GB |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
            )
            config = {"task": "arith", "network": args.network, "overrides": args.overrides, "seed": 0,
                      "variants": {v: VARIANTS[v][0] for v in args.variants}}
            write_results("train_variants", config, metrics, markdown)


if __name__ == "__main__":
    main()
