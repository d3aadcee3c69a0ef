"""The update pass with shared prompt prefixes (the default) vs shared whole prompts only.

A node's prompt is the network header, the task input, then the messages it reads. The G
samples of one input give a first-layer node G identical prompts, but a later node G prompts
that differ only in their last few dozen tokens (the messages). `token_logprobs` shares the
longest common prefix of a chunk's rows (`backends/hf._prefix_groups`); with
`share_prefixes=False` only identical whole prompts share a forward pass. On a task with long
inputs (BBH Navigate: ~170-token node prompts before the messages) most of a later node's
update compute is that repeated prefix.

One rollout batch of a [2, 2, 1] network on Navigate (4 inputs x G=8, 24-token messages), then
`Trainer.update` on its rows, the adapters and optimizer restored after each (every repeat
starts from the same weights), alternating (`Trainer.backward` runs under torch's deterministic kernels, as in training):

    reference   rows grouped only when their whole prompts are equal (`share_prefixes=False`)
    prefix      rows grouped by shared prefix (the default)

Both must give the same loss and gradient norm; the speed-up is the reference's time over ours.

    python -m benchmarks.prefix_sharing --repeats 2
    python -m benchmarks.prefix_sharing --smoke     # [1, 1], 1 input x G=2, once, to check the script; writes nothing
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import CONFIGS, peak_rss_gb, table, write_results


def prefix_tokens(rows, chunk: int, grouping) -> int:
    """Prompt tokens the update's forward passes process (each group's prefix once, every suffix)."""
    total = 0
    order = sorted(range(len(rows)), key=lambda i: (rows.adapters[i], rows.prompts[i]))
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        prompts, adapters = [rows.prompts[i] for i in idx], [rows.adapters[i] for i in idx]
        group_of, lengths = grouping(prompts, adapters)
        if len(lengths) == len(prompts):  # nothing shared: every prompt in full
            total += sum(len(p) for p in prompts)
            continue
        total += sum(lengths) + sum(len(p) - lengths[g] for p, g in zip(prompts, group_of))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layers", default="[2, 2, 1]")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="[1, 1], 1 input x G=2, once; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.layers, args.batch, args.group, args.repeats = "[1, 1]", 1, 2, 1

    import functools

    import torch

    import neuromas.rl.trainer as trainer_module
    from neuromas.backends import hf
    from neuromas.config import TrainConfig
    from neuromas.configfile import load_config
    from neuromas.rl.trainer import Trainer
    from neuromas.runner import build_network, load_task, model_dtype

    config = load_config(CONFIGS / "navigate-neuromas3.yaml", [f"network.layers={args.layers}"])
    task = load_task(config)
    net = build_network(config)
    train = TrainConfig(steps=1, batch_size=args.batch, group_size=args.group)
    trainer = Trainer(net, task, train, progress=False)
    net.train()
    examples = trainer.batch_examples(0)
    start = time.perf_counter()
    traces = net(examples, num_samples=args.group, task=task)
    rollout_s = time.perf_counter() - start
    per_pass = torch.linspace(-1, 1, len(traces)).tolist()  # every row counts (no tied group is skipped)
    advantages = {(p, node): per_pass[p] for p, trace in enumerate(traces) for node in trace.messages}
    rows = trainer._rows(traces, advantages, torch.ones(len(traces), dtype=torch.bool))

    initial = [param.detach().clone() for param in trainer.params]
    default = trainer_module.token_logprobs
    arms = {"reference": functools.partial(default, share_prefixes=False), "prefix": default}
    times: dict[str, list[float]] = {name: [] for name in arms}
    results: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, logprobs_fn in arms.items():
            trainer_module.token_logprobs = logprobs_fn
            start = time.perf_counter()
            results[name] = trainer.update(rows)
            times[name].append(time.perf_counter() - start)
            with torch.no_grad():  # undo the update: every repeat starts from the same weights
                for param, value in zip(trainer.params, initial):
                    param.copy_(value)
            trainer.optimizer.state.clear()
            print(f"{name}: {times[name][-1]:.1f} s, loss {results[name]['loss/policy']:.6f}, "
                  f"grad norm {results[name]['grad/norm']:.6f}", flush=True)
    trainer_module.token_logprobs = default

    best = {name: min(t) for name, t in times.items()}
    chunk = train.micro_batch_rows
    metrics = {
        "update_s": best["prefix"], "reference_update_s": best["reference"],
        "speedup": round(best["reference"] / best["prefix"], 2),
        "prompt_tokens": prefix_tokens(rows, chunk, hf._prefix_groups),
        "reference_prompt_tokens": prefix_tokens(rows, chunk, functools.partial(hf._prefix_groups, whole=True)),
        "completion_tokens": sum(len(c) for c in rows.completions), "rows": len(rows),
        "loss": results["prefix"]["loss/policy"], "reference_loss": results["reference"]["loss/policy"],
        "grad_norm": results["prefix"]["grad/norm"], "reference_grad_norm": results["reference"]["grad/norm"],
        "rollout_s": round(rollout_s, 1), "peak_rss_gb": round(peak_rss_gb(), 3), "all_times": times,
    }
    markdown = (
        f"`Trainer.update` on one rollout batch of a {args.layers} network on BBH Navigate ({args.batch} inputs x "
        f"G={args.group}, {len(rows)} rows, micro-batches of {chunk} rows, {model_dtype(net)}); best of {args.repeats}.\n\n"
        + table(["grouping", "update s", "prompt tokens run", "loss", "grad norm"], [
            ["whole prompts only (share_prefixes=False)", f"{best['reference']:.1f}", metrics["reference_prompt_tokens"],
             f"{metrics['reference_loss']:.6f}", f"{metrics['reference_grad_norm']:.6f}"],
            ["shared prefixes (the default)", f"{best['prefix']:.1f}", metrics["prompt_tokens"], f"{metrics['loss']:.6f}",
             f"{metrics['grad_norm']:.6f}"],
        ])
        + f"\n\nSpeed-up of the update: **{metrics['speedup']}x**.\n"
    )
    write_results("prefix_sharing", vars(args), metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
