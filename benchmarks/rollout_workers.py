"""Training steps with the rollouts on Ray workers vs in one process (issue 20, item 6).

The quickstart recipe (configs/quickstart.yaml: a [2, 1] network, 8 inputs x G 4, 12-token
messages, bf16 where the CPU has it) for a few steps, three ways, each in its own process:

    process     one process, torch on 2 threads, samples and updates (the default, rollout_workers 0)
    ray         the same driver (2 threads for the update) with `train.rollout_workers: 2`: two local
                Ray workers of 1 CPU and 1 thread each sample the rollouts (distributed.py)
    process-64  as `process`, at the default `model.max_batch_rows` 64 instead of `--rows`

Workers share out each layer's micro-batches (`model.max_batch_rows` rows each), so `process`
and `ray` run with `--rows` (16: 4 micro-batches in the first layer, 2 in the readout's), and
`process-64` shows what the smaller micro-batches cost in one process. Since `process` and
`ray` run the same config with the same seed, their per-step rewards, tokens and losses must be
equal (the rollouts are the same bit for bit where thread counts do not change a rounding).

    python -m benchmarks.rollout_workers                 # writes benchmarks/results/rollout_workers.*
    python -m benchmarks.rollout_workers --threads 1     # one worker x 1 thread vs one process x 1 thread: equal?
    python -m benchmarks.rollout_workers --smoke         # 1 step of 2 inputs x G 2, 4 tokens; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import CONFIGS, emit_result, flags, peak_rss_gb, run_arm, table, write_results

ARMS = ("process", "ray", "process-64")
CHILD_FLAGS = ["steps", "rows", "threads", "smoke"]
PER_STEP = ("reward_mean", "tokens", "loss")  # what the process and ray arms must share, step by step


def measure(arm: str, args: argparse.Namespace) -> dict:
    import torch

    from neuromas.build import build_network, load_task, model_dtype
    from neuromas.configfile import load_config
    from neuromas.rl.trainer import Trainer

    torch.set_num_threads(args.threads)
    rows = 64 if arm == "process-64" else args.rows
    overrides = [f"model.max_batch_rows={rows}", f"train.steps={args.steps}"]
    if args.smoke:
        overrides += ["train.batch_size=2", "train.group_size=2", "network.generation.max_new_tokens=4"]
    config = load_config(CONFIGS / "quickstart.yaml", overrides)
    start = time.perf_counter()
    net = build_network(config).attach_adapters()
    load_s, workers, extra = time.perf_counter() - start, None, {}
    if arm == "ray":
        import ray

        from neuromas.distributed import RolloutWorkers

        ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start = time.perf_counter()
        workers = RolloutWorkers(config.model, "local", workers=args.threads, cpus_per_worker=1, dtype=model_dtype(net))
        workers.sync(net, -1)  # waits for both workers' model (the first rollout's sync sends version 0)
        state = {name: net.backend.adapter_state(name) for name in dict.fromkeys(net.adapters.values())}
        extra = {"workers_start_s": time.perf_counter() - start,
                 "adapter_mb_per_sync": sum(t.numel() * t.element_size() for s in state.values() for t in s.values()) / 1e6}
        sync, synced = workers.sync, []

        def timed_sync(*a):
            begin = time.perf_counter()
            sync(*a)
            synced.append(time.perf_counter() - begin)

        workers.sync = timed_sync
    trainer = Trainer(net, load_task(config), config.train, progress=False, rollout_workers=workers)
    steps = [trainer.train_step() for _ in range(args.steps)]
    if workers is not None:
        extra["sync_s"] = statistics.mean(synced)
        workers.close()
    return {
        "arm": arm, "dtype": model_dtype(net),
        "recipe": (f"{config.train.batch_size} inputs x G {config.train.group_size}, "
                   f"{config.network.generation.max_new_tokens}-token messages"),
        "max_batch_rows": rows, "load_s": load_s, "peak_rss_gb": peak_rss_gb(),
        "steps_s": [m["time/step_s"] for m in steps], "rollout_s": [m["time/rollout_s"] for m in steps],
        "reward_mean": [m["reward/mean"] for m in steps], "tokens": [m["tokens/total"] for m in steps],
        "loss": [m["loss/policy"] for m in steps], **extra,
    }


def same_text(differ: list[tuple[str, int]], args: argparse.Namespace) -> str:
    """Whether the ray arm's steps equal the process arm's (`differ`: (field, step) where they do
    not), and where they first part if not."""
    if not differ:
        return "yes"
    field, step = min(differ, key=lambda d: d[1])
    threads = ("" if args.threads == 1 else
               f" (each worker computes on 1 thread, the process on {args.threads}: a matmul's sums, and so a sampled"
               " token near a tie, can depend on the thread count; `--threads 1` compares like with like)")
    return f"no, {field.replace('_', ' ')} first differs at step {step}{threads}"


def summary(result: dict) -> dict:
    update = [s - r for s, r in zip(result["steps_s"], result["rollout_s"])]
    return {"step_s": statistics.mean(result["steps_s"]), "rollout_s": statistics.mean(result["rollout_s"]),
            "update_s": statistics.mean(update)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="training steps per arm (all timed)")
    parser.add_argument("--rows", type=int, default=16, help="model.max_batch_rows of the process and ray arms")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of one process = Ray workers x 1 thread")
    parser.add_argument("--arm", choices=ARMS, help="run one arm here and print its JSON line")
    parser.add_argument("--smoke", action="store_true", help="1 step of 2 inputs x G 2, 4 tokens; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.steps = 1
    if args.arm:
        emit_result(measure(args.arm, args))
        return

    results = {arm: run_arm("benchmarks.rollout_workers", arm, flags(args, CHILD_FLAGS)) for arm in ARMS}
    process, ray = results["process"], results["ray"]
    differ = [(k, i + 1) for k in PER_STEP for i, (a, b) in enumerate(zip(process[k], ray[k])) if a != b]
    metrics = {arm: {**{k: round(v, 2) for k, v in summary(r).items()}, "steps_s": [round(s, 2) for s in r["steps_s"]],
                     "peak_rss_gb": round(r["peak_rss_gb"], 3), "max_batch_rows": r["max_batch_rows"],
                     **{k: r[k] for k in PER_STEP}}
               for arm, r in results.items()}
    metrics["ray"].update({"workers_start_s": round(ray["workers_start_s"], 1), "sync_s": round(ray["sync_s"], 3),
                           "adapter_mb_per_sync": round(ray["adapter_mb_per_sync"], 2)})
    metrics["same_rollouts_as_process"] = not differ
    metrics["speedup_step"] = round(summary(process)["step_s"] / summary(ray)["step_s"], 2)
    metrics["speedup_rollout"] = round(summary(process)["rollout_s"] / summary(ray)["rollout_s"], 2)
    names = {"process": f"one process x {args.threads} threads", "ray": f"{args.threads} Ray workers x 1 thread",
             "process-64": f"one process x {args.threads} threads, max_batch_rows 64"}
    markdown = (
        f"configs/quickstart.yaml ([2, 1], {process['recipe']}, {process['dtype']}), {args.steps} "
        f"training steps per arm, each arm in its own process, mean over all steps.\n\n"
        + table(["arm", "max_batch_rows", "s/step", "rollout s", "update s", "peak RSS GB (driver)"], [
            [names[arm], r["max_batch_rows"], f"{s['step_s']:.1f}", f"{s['rollout_s']:.1f}", f"{s['update_s']:.1f}",
             f"{r['peak_rss_gb']:.2f}"] for arm, r in results.items() for s in [summary(r)]])
        + f"\n\nRay vs one process at max_batch_rows {args.rows}: step {metrics['speedup_step']}x, rollout "
        f"{metrics['speedup_rollout']}x. Same rewards, tokens and losses at every step: {same_text(differ, args)}. "
        f"Adapters sent per step: {metrics['ray']['adapter_mb_per_sync']} MB, {metrics['ray']['sync_s']} s; "
        f"starting the workers (each loads the model): {metrics['ray']['workers_start_s']} s, not in the step times."
    )
    print("\n" + markdown)
    write_results("rollout_workers", {"config": "configs/quickstart.yaml", "steps": args.steps, "rows": args.rows,
                                      "threads": args.threads}, metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
