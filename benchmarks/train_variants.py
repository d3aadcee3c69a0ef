"""What we tried to make the jointly trained network beat the single agent (issue 3).

`train_compare.py` runs the recipe in the configs. This runs variants of it on `arith` (sums of
four one-digit numbers, fixed 128-question test split, greedy), each a set of config overrides
applied to the `[2, 1]` network and, where the change also applies to one node, to the single
agent, so every row compares the two under the same change:

    lr1e-3      learning rate 1e-3 instead of 5e-4 (the quickstart learned fast with it)
    tokens48    48-token messages instead of 24 (room to show work)
    share-all   one rank-24 adapter for all three nodes (the single agent's parameters)
    kl0.05      a k3 KL penalty to the base model, coefficient 0.05
    slices      each first-layer node sees half of the numbers (`network.input_slices`, the
                "receptive fields" of DESIGN.md), the readout the whole sum; network only

Each (variant, arm) is one `neuromas run` process under `runs/train_variants/<variant>/`; finished
runs are reused, so an interrupted benchmark continues. Results are rewritten after every run to
`benchmarks/results/train_variants.{json,md}`; the recipe's own row comes from `train_compare`.

    python benchmarks/train_variants.py                       # every variant
    python benchmarks/train_variants.py --variants lr1e-3 slices
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, write_results  # noqa: E402
from train_compare import ROOT, read_run, run_arm, summarize  # noqa: E402

# variant -> (overrides, arms it applies to)
VARIANTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "lr1e-3": (["train.lr=1e-3"], ("net21", "single")),
    "slices": (["network.input_slices=true"], ("net21",)),
    "share-all": (["network.adapters.sharing=all", "network.adapters.rank=24"], ("net21",)),
    "kl0.05": (["train.kl_coef=0.05"], ("net21",)),
    "tokens48": (["network.generation.max_new_tokens=48"], ("net21", "single")),
}


def row(variant: str, arm: str, m: dict) -> str:
    return (
        f"| {variant} | {arm} | {m['dtype']} | {100 * m['before']['acc']:.1f} | {100 * m['acc']:.1f} "
        f"| [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] | {m['calls_per_q']:g} | {m['tokens_per_q']:.1f} "
        f"| {m['final_reward']:.3f} | {m['step_s']} | {m['peak_rss_gb']} |"
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


def recipe_rows() -> tuple[dict, list[str]]:
    """The unchanged recipe's arith rows, as train_compare measured them."""
    path = RESULTS / "train_compare.json"
    if not path.is_file():
        return {}, []
    arith = json.loads(path.read_text())["metrics"].get("arith", {})
    metrics, rows = {}, []
    for arm in ("net21", "single"):
        if arm in arith:
            m = dict(arith[arm])
            m["before"] = {"acc": arith[f"untrained-{arm}"]["acc"]}
            m["dtype"] = "bfloat16"  # measured before dtype: auto, on a CPU with AVX-512 BF16
            curve = next(iter(m["curves"].values()))
            m["final_reward"] = round(sum(curve["reward"][-5:]) / len(curve["reward"][-5:]), 4)
            metrics[arm] = {k: m[k] for k in ("acc", "ci_low", "ci_high", "calls_per_q", "tokens_per_q", "steps")}
            rows.append(row("recipe", arm, m))
    return metrics, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_variants")
    parser.add_argument("--fresh", action="store_true", help="rerun variants that already finished")
    args = parser.parse_args()

    recipe, rows = recipe_rows()
    metrics: dict = {"recipe": recipe} if recipe else {}
    for variant in args.variants:
        overrides, arms = VARIANTS[variant]
        for arm in arms:
            run_dir = run_arm("arith", arm, 0, args.runs / variant, args.fresh, overrides)
            m = measure(run_dir)
            metrics.setdefault(variant, {})[arm] = m
            rows.append(row(variant, arm, m))
            markdown = (
                "Variants of the arith recipe (configs/arith-*.yaml: 20 steps, batch 8 x G 8, T 0.7, seed 0), "
                "[2, 1] network vs single agent (rank 24) under the same change. Accuracy is greedy on the fixed "
                "128 four-number sums; reward is the mean training reward of the last 5 steps. The recipe rows "
                "come from train_compare (bf16 on a CPU with AVX-512 BF16); compare each variant's two arms with "
                "each other, and across rows only where the dtype matches.\n\n"
                "| variant | arm | dtype | untrained acc % | trained acc % | 95% CI | calls/q | tokens/q | reward "
                "| s/step | peak RSS GB |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
            )
            config = {"task": "arith", "variants": {v: VARIANTS[v][0] for v in args.variants}, "seed": 0}
            write_results("train_variants", config, metrics, markdown)


if __name__ == "__main__":
    main()
