"""What we tried to make the jointly trained network beat the single agent.

`python -m benchmarks.train_compare` runs the recipe in the configs. This runs variants of it on `arith` (sums of
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
                "receptive fields" of a layer), the readout the whole sum; network only ([2, 1])

`--set` applies to every run (`--set train.steps=10` for a shorter recipe; keep those runs apart
with `--runs`). Each (variant, arm) is one `neuromas run` process under `<runs>/<variant>/`;
finished runs are reused and interrupted ones resumed, so an interrupted benchmark continues. Results are rewritten after every
run to `benchmarks/results/train_variants.{json,md}`.

`--seeds N` runs seeds 0..N-1 of every (variant, arm), seed-major (one seed of every run before
a second of any), and reports the mean accuracy with a CI that pools every seed's answers;
`--arms` keeps only some arms; `--name` names the results file.

    python -m benchmarks.train_variants                       # every variant, [2, 1], 20 steps
    python -m benchmarks.train_variants --variants recipe slices lr1e-3 --set train.steps=10 \
        --set train.eval_every=0 --runs runs/train_variants10
    python -m benchmarks.train_variants --variants share-all recipe --arms network single --seeds 3 \
        --skip recipe:network --set train.steps=10 --set train.eval_every=0 --runs runs/tv10s --name train_variants_seeds
    python -m benchmarks.train_variants --smoke              # one tiny step per arm, to check the script
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import (
    ROOT,
    SMOKE_TRAIN,
    ci,
    mcnemar_p,
    pair_by_id,
    read_run,
    smoke_runs,
    summarize,
    table,
    train_arm,
    write_results,
)
from neuromas.trace import read_traces

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


def row(variant: str, arm: str, m: dict) -> list:
    per_seed = ", ".join(f"{100 * a:.1f}" for a in m["acc_per_seed"])
    return [variant, arm, f"{100 * m['before']['acc']:.1f}", f"{100 * m['acc']:.1f}", per_seed, ci(m),
            f"{m['calls_per_q']:g}", f"{m['tokens_per_q']:.1f}", f"{m['final_reward']:.3f}", m["steps"], m["step_s"],
            m["peak_rss_gb"]]


def measure(run_dirs: list[Path], seeds: list[int]) -> dict:
    """One (variant, arm) over its seeds: means, with the accuracy CI pooling every seed's answers."""
    runs = [read_run(d) for d in run_dirs]
    trained = summarize([r["after"] for r in runs], seeds, runs[0]["steps"])
    untrained = summarize([r["before"] for r in runs], seeds, 0)

    def mean(values):
        return round(sum(values) / len(values), 4)

    trained.update({
        "dtype": runs[0]["model_dtype"],
        "before": {"acc": untrained["acc"], "acc_per_seed": untrained["acc_per_seed"], "tokens_per_q": untrained["tokens_per_q"]},
        "final_reward": mean([mean(r["reward"][-5:]) for r in runs]),
        "reward": {str(s): r["reward"] for s, r in zip(seeds, runs)},
        "eval": {str(s): r["eval"] for s, r in zip(seeds, runs)},
        "step_s": round(mean([r["step_s"] for r in runs]), 1),
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        "trainable_parameters": runs[0]["trainable_parameters"],
    })
    return trained


def paired(network_dirs: list[Path], single_dirs: list[Path]) -> dict:
    """Network vs single agent question by question (answers matched by example id), seed by seed.

    Counts the questions only one of them got right, pooled over seeds, and McNemar's exact
    two-sided p-value.
    """
    network_only = single_only = 0
    for net_dir, single_dir in zip(network_dirs, single_dirs):
        pairs = pair_by_id(read_traces(net_dir / "traces_after.jsonl"), read_traces(single_dir / "traces_after.jsonl"),
                           f"{net_dir} and {single_dir}")
        network_only += sum(a["reward"] > 0 and not b["reward"] > 0 for a, b in pairs)
        single_only += sum(b["reward"] > 0 and not a["reward"] > 0 for a, b in pairs)
    return {"network_only": network_only, "single_only": single_only,
            "mcnemar_p": round(mcnemar_p(network_only, single_only), 4), "seeds": min(len(network_dirs), len(single_dirs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--network", default="net21", choices=["net21", "neuromas3"])
    parser.add_argument("--arms", nargs="+", default=[NETWORK, "single"], choices=[NETWORK, "single"],
                        help="which arms of each variant to run")
    parser.add_argument("--skip", nargs="+", default=[], metavar="VARIANT:ARM", help="leave out these runs")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of every run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (repeatable)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_variants")
    parser.add_argument("--name", default="train_variants", help="results: benchmarks/results/<name>.{json,md}")
    parser.add_argument("--fresh", action="store_true", help="rerun variants that already finished")
    parser.add_argument("--smoke", action="store_true",
                        help="the recipe variant, one tiny step per arm, runs in a temporary directory; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.variants, args.seeds, args.overrides = ["recipe"], 1, [*args.overrides, *SMOKE_TRAIN]
    if "slices" in args.variants and args.network != "net21":
        parser.error("slices needs a first layer of two nodes: --network net21")
    plan = [(v, arm) for v in args.variants for arm in VARIANTS[v][1]
            if arm in args.arms and f"{v}:{arm}" not in args.skip]
    if not plan:
        parser.error("--arms/--skip leave nothing to run")

    with smoke_runs(args):
        done: dict[tuple[str, str], list[Path]] = {}
        for seed in range(args.seeds):  # seed-major: one seed of every run before a second of any
            for variant, arm in plan:
                name = args.network if arm == NETWORK else arm
                overrides = [*args.overrides, *VARIANTS[variant][0]]
                run_dir = train_arm("arith", name, seed, args.runs / variant, overrides, args.fresh)
                done.setdefault((variant, arm), []).append(run_dir)
                write_report(args, plan, done)


def write_report(args, plan: list[tuple[str, str]], done: dict[tuple[str, str], list[Path]]) -> None:
    metrics: dict = {}
    rows = []
    for variant, arm in plan:
        if (variant, arm) not in done:
            continue
        name = args.network if arm == NETWORK else arm
        m = measure(done[variant, arm], list(range(len(done[variant, arm]))))
        metrics.setdefault(variant, {})[name] = m
        rows.append(row(variant, name, m))
    # each network row against the single agent under the same change, or else the recipe's
    comparisons = []
    for variant, arm in plan:
        against = next((v for v in (variant, "recipe") if (v, "single") in done), None)
        if arm != NETWORK or (variant, arm) not in done or against is None:
            continue
        pair = paired(done[variant, arm], done[against, "single"])
        metrics[variant][args.network]["vs_single"] = {"single_variant": against, **pair}
        comparisons.append([variant, against, pair["seeds"], pair["network_only"], pair["single_only"], pair["mcnemar_p"]])
    dtype = m["dtype"]
    paired_table = (
        "\nQuestion by question, seed by seed: how many questions only the network got right and only the single "
        "agent got right (pooled over seeds), and McNemar's exact two-sided p-value.\n\n"
        + table(["network variant", "single variant", "seeds", "network only", "single only", "p"], comparisons) + "\n"
    ) if comparisons else ""
    markdown = (
        f"Variants of the arith recipe (configs/arith-*.yaml: batch 8 x G 8, T 0.7; overrides for every run: "
        f"{', '.join(args.overrides) or 'none'}), the {args.network} network vs the single agent (rank 24) under the "
        f"same change, every row on this machine in {dtype}. Accuracy is greedy on the fixed 128 four-number sums, "
        "before and after training, the mean over seeds (each seed's beside it; the CI pools every seed's answers); "
        "reward is the mean training reward of the last 5 steps.\n\n"
        + table(["variant", "arm", "untrained acc %", "trained acc %", "per seed", "95% CI", "calls/q", "tokens/q",
                 "reward", "steps", "s/step", "peak RSS GB"], rows) + "\n"
        + paired_table
    )
    config = {"task": "arith", "network": args.network, "overrides": args.overrides, "seeds": args.seeds,
              "variants": {v: VARIANTS[v][0] for v in args.variants}, "skip": args.skip}
    write_results(args.name, config, metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
