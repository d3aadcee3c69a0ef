"""Fewer FLOPs for the same learning? The quickstart recipe with options that cut work per step.

Prompt tokens are most of a step's work (the quickstart's [2, 1] read ~385 prompt tokens per
question and wrote ~35 with the full header). Arms, each the quickstart recipe
(configs/quickstart.yaml: [2, 1] on sums of two 2-digit numbers) with the same seeds, each
option set explicitly so that the arms do not depend on what the shipped recipe chose:

    base          the full structural header, every group in the loss
    short-header  `network.header: short`: the structural description in one line (prompts.py)
    drop-tied     `train.drop_tied_groups: true`: a group whose G rewards tie leaves the batch, so
                  its tokens no longer dilute the token-mean loss (its rows never ran anyway: a
                  row with advantage 0 is skipped by the update, `Trainer._needed`)
    both          both options: the shipped recipe

Per arm: useful GFLOP per step (rollout and update, benchmarks/flops.py), prompt tokens per
question of the greedy test evaluation, seconds per step, and greedy test accuracy before and
after training, per seed. Sharing one prefix across the nodes of a layer is not an arm: every
node reads its prompt through its own LoRA adapter (on q, k, v, o), so two nodes' KV caches of
the same text differ and cannot be shared without changing what the network computes.

    python -m benchmarks.fewer_flops --seeds 0 1 2      # the recipe x 4 arms x 3 seeds: about an hour on a CPU
    python -m benchmarks.fewer_flops --smoke            # 1 step of 2 x G 2, 4 test questions; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import CONFIGS, SMOKE_TRAIN, table, write_results
from benchmarks.flops import ModelShape
from benchmarks.train_speed import CountingTrainer

ARMS = {
    "base": ["network.header=full", "train.drop_tied_groups=false"],
    "short-header": ["network.header=short", "train.drop_tied_groups=false"],
    "drop-tied": ["network.header=full", "train.drop_tied_groups=true"],
    "both": ["network.header=short", "train.drop_tied_groups=true"],
}


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> dict:
    """Evaluate, train and evaluate one arm with one seed, in this process; its figures."""
    from neuromas.build import build_network, load_task, model_dtype
    from neuromas.configfile import load_config
    from neuromas.eval import evaluate

    overrides = [f"seed={seed}", f"model.dtype={args.dtype}", *ARMS[arm], *(SMOKE_TRAIN if args.smoke else [])]
    config = load_config(CONFIGS / "quickstart.yaml", overrides)
    task, net = load_task(config), build_network(config)
    limit = config.eval.limit
    before = evaluate(net, task, config.eval.split, limit, config.eval.batch_size, progress=False)
    trainer = CountingTrainer(net, task, config.train, progress=False)
    shape = ModelShape.from_config(net.backend.model.config)
    steps = []
    while trainer.step < config.train.steps:
        start = time.perf_counter()
        metrics = trainer.train_step()
        rollout, update = trainer.step_flops(shape)
        steps.append({"step_s": time.perf_counter() - start, "rollout_s": metrics["time/rollout_s"],
                      "gflop_rollout": rollout / 1e9, "gflop_update": update / 1e9})
    after = evaluate(net, task, config.eval.split, limit, config.eval.batch_size, progress=False)
    prompt_tokens = statistics.mean(sum(m.num_prompt_tokens for m in t.messages.values()) for t in after.traces)
    mean = {key: statistics.mean(s[key] for s in steps) for key in steps[0]}
    return {"dtype": model_dtype(net), "acc_before": before.acc, "acc_after": after.acc, "prompt_tokens_per_q": prompt_tokens, **mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="model.dtype (auto: bf16 where the CPU computes it natively); not auto: results "
                             "go to fewer_flops_<dtype>.*")
    parser.add_argument("--smoke", action="store_true", help="one tiny step per arm, seed 0; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.seeds = [0]

    results: dict[str, list[dict]] = {}
    for arm in args.arms:
        for seed in args.seeds:
            figures = run_arm(arm, seed, args)
            print(f"{arm} seed {seed}: {figures}", flush=True)
            dtype = figures.pop("dtype")
            results.setdefault(arm, []).append(figures)

    metrics: dict = {}
    rows = []
    for arm, runs in results.items():
        mean = {key: round(statistics.mean(r[key] for r in runs), 4) for key in runs[0]}
        metrics[arm] = {**mean, "acc_after_per_seed": [round(r["acc_after"], 4) for r in runs]}
        rows.append([arm, f"{mean['gflop_rollout']:.0f}", f"{mean['gflop_update']:.0f}", f"{mean['step_s']:.1f}",
                     f"{mean['prompt_tokens_per_q']:.0f}", f"{100 * mean['acc_before']:.1f}",
                     f"{100 * mean['acc_after']:.1f}", metrics[arm]["acc_after_per_seed"]])
    markdown = (
        f"The quickstart recipe (configs/quickstart.yaml) per arm, model.dtype {args.dtype} ({dtype}), seeds "
        f"{args.seeds}; means over seeds.\n\n"
        + table(["arm", "GFLOP rollout/step", "GFLOP update/step", "s/step", "prompt tokens/q", "acc before %",
                 "acc after %", "acc after per seed"], rows)
    )
    name = "fewer_flops" if args.dtype == "auto" else f"fewer_flops_{args.dtype}"
    write_results(name, {"seeds": args.seeds, "dtype": args.dtype, "arms": {a: ARMS[a] for a in args.arms}}, metrics,
                  markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
