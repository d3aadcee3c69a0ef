"""One joint-RL training step: our Trainer vs the straightforward implementation.

Why: a straightforward implementation (one `generate` and one fp32 forward/backward with
full-vocabulary logits per node, micro-batches of 16) took ~80 s a step and 9 GB here for a
[2, 1] network at G=8, batch 8, 24/16-token messages. Target: our Trainer at least 4x faster
and under 4 GB peak RSS.

Both arms run the same step on the embedded SmolLM2-135M: a [2, 1] network (two first-layer
nodes read the task, the readout reads both and the task), task `arith` (4 one-digit operands,
trained on 2-4), 8 inputs x G=8 sampled passes, 24-token hidden messages and a 16-token
readout at temperature 0.7, one LoRA adapter (rank 8, alpha 16, q/k/v/o) per node, AdamW
lr 2e-4, gradient clipping at 1.0, advantage = (reward - group mean) / group std, token-mean
loss. The same inputs in the same order (the Trainer's shuffle).

- ours: `neuromas.Trainer(...).train_step()` (bf16, layer-batched sampling, mixed-adapter
  micro-batches, log-probs of the completion positions only);
- reference (`Reference` below): fp32, PEFT adapters switched with `set_adapter`, per node one
  `model.generate` over all its rows, then per node micro-batches of 16 rows through a full
  forward with full-vocabulary logits and `log_softmax`.

Each arm runs in its own subprocess so peak RSS (`ru_maxrss`, model load included) is its own;
each does `--warmup` untimed steps, then reports the mean of `--steps` timed steps.

Model FLOPs utilisation (benchmarks/flops.py): the parent measures this machine's matmul peak in
each arm's dtype first (a large GEMM, best of a few), each arm counts the useful FLOPs of its
timed steps (the rollout's distinct messages; the update's forward + backward over the rows whose
advantage is not 0, the only ones that carry gradient), and `mfu_rollout`, `mfu_update` and
`mfu_step` are those FLOPs over time x peak. The same definition for both arms: the reference's
redundant work (repeated prompts, zero-advantage rows, padding) is its waste, not extra credit.

    python -m benchmarks.train_speed                  # both arms, writes benchmarks/results/train_speed.*
    python -m benchmarks.train_speed --smoke          # tiny settings to check the script; writes nothing
    python -m benchmarks.train_speed --arm ours       # one arm in this process; prints its JSON line
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tests.reference import ReferenceStep

from benchmarks.common import (
    commit,
    emit_result,
    flags,
    machine,
    peak_rss_gb,
    run_arm,
    table,
    write_results,
)
from benchmarks.flops import ModelShape, matmul_peak, mfu, rollout_flops, update_flops
from neuromas import tasks
from neuromas.build import model_dtype
from neuromas.config import TrainConfig
from neuromas.models import load_model
from neuromas.network import Network
from neuromas.rl.grpo import group_advantages
from neuromas.rl.trainer import Rows, Trainer
from neuromas.seeds import derive_seed
from neuromas.tasks.base import Example, Task
from neuromas.trace import Trace

TEMPERATURE = 0.7
LORA = {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
SEED = 0


def network_config(args: argparse.Namespace) -> dict:
    return {
        "layers": [{"width": 2, "max_new_tokens": args.hidden_tokens}, {"width": 1, "max_new_tokens": args.readout_tokens}],
        "generation": {"temperature": TEMPERATURE, "top_p": 1.0},
        "adapters": {"sharing": "node", **LORA},
    }


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        batch_size=args.inputs, group_size=args.samples, lr=2e-4, weight_decay=0.0, max_grad_norm=1.0,
        std_normalize=True, loss_aggregation="token-mean", micro_batch_rows=args.micro_batch_rows,
    )


def load_task() -> Task:
    return tasks.load("arith", operands=4, train_operands=[2, 4])


class CountingTrainer(Trainer):
    """The Trainer as shipped, keeping the step's traces and update rows for the FLOP count, and
    profiling its rollout and its update apart when `profiles` is a dict (`profile_step`)."""

    traces: list[Trace] = []
    rows: Rows | None = None
    profiles: dict[str, dict] | None = None  # phase -> {"wall_s", "operators": {name: [self ns, calls]}}

    def rollout(self, step: int) -> list[Trace]:
        with self._profiled("rollout"):
            self.traces, self.rows = super().rollout(step), None
        return self.traces

    def update(self, rows: Rows) -> dict[str, float]:
        self.rows = rows
        with self._profiled("update"):
            return super().update(rows)

    @contextlib.contextmanager
    def _profiled(self, phase: str):
        if self.profiles is None:
            yield
            return
        from torch.profiler import ProfilerActivity, profile

        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            yield
        self.profiles[phase] = {"wall_s": time.perf_counter() - start,
                                "operators": self_times(prof.profiler.kineto_results.events())}

    def step_flops(self, shape: ModelShape) -> tuple[float, float]:
        """Useful FLOPs of the last step: (rollout, update). The rollout's distinct messages; the
        update's forward + backward over the rows it ran (advantage != 0), 0 when it ran none."""
        lora = self.net.config.adapters
        size = shape.lora_params(lora.rank, lora.target_modules)
        messages = {id(m): m for trace in self.traces for m in trace.messages.values()}.values()
        rollout = rollout_flops(shape, [(self.net.adapters.get(m.node), m.prompt_ids, m.token_ids) for m in messages],
                                size)
        if self.rows is None:
            return rollout, 0.0
        rows, needed = self.rows, self._needed(self.rows)
        extra = (self.config.epochs > 1) + (self.config.kl_coef > 0)  # the old policy's and the base model's log-probs
        update = update_flops(shape, [(rows.adapters[i], rows.prompts[i], rows.completions[i]) for i in needed], size,
                              self.config.epochs, extra)
        return rollout, update


def lora_size(shape: ModelShape) -> int:
    return shape.lora_params(LORA["rank"], LORA["target_modules"])


class Ours:
    """The Trainer's step, as shipped (bf16 by default)."""

    def __init__(self, task: Task, args: argparse.Namespace):
        net = Network(network_config(args), seed=SEED)
        self.trainer = CountingTrainer(net, task, train_config(args), progress=False)
        self.shape = ModelShape.from_config(net.backend.model.config)
        self.dtype = model_dtype(net)

    def step(self) -> dict:
        m = self.trainer.train_step()
        updated = "update/skipped" in m and not m["update/skipped"]  # absent: every group tied, no update ran
        flops_rollout, flops_update = self.trainer.step_flops(self.shape)
        return {"rollout_s": m["time/rollout_s"], "tokens": m["tokens/total"], "reward": m["reward/mean"],
                "updated": float(updated), "flops_rollout": flops_rollout, "flops_update": flops_update}


class Reference:
    """The straightforward step (`tests/reference.py`, the specification the Trainer's loss and
    gradients are tested against): fp32, one generate and one full-logits loss per node."""

    def __init__(self, task: Task, args: argparse.Namespace):
        from peft import LoraConfig, get_peft_model

        topology = Network(network_config(args)).topology  # the graph only; loads no model
        model, tokenizer = load_model(None, dtype="float32")  # left padding, frozen base
        model = copy.deepcopy(model)  # its own adapters: the cached model is shared in the process
        lora = LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], target_modules=LORA["target_modules"],
                          lora_dropout=0.0, bias="none")
        names = [node.id for node in topology.nodes]
        model = get_peft_model(model, lora, adapter_name=names[0])
        for name in names[1:]:
            model.add_adapter(name, lora)
        model.eval()
        self.reference = ReferenceStep(model, tokenizer, topology, task, args.samples, lr=2e-4)
        self.examples, self.step_index, self.args = task.examples("train"), 0, args
        self.shape, self.dtype = ModelShape.from_config(model.config), "float32"

    def step(self) -> dict:
        start = time.perf_counter()
        examples = same_batch(self.examples, self.step_index, self.args.inputs)
        self.step_index += 1
        rows, rewards = self.reference.rollout(examples)
        rollout_s = time.perf_counter() - start
        self.reference.step(rows, rewards)
        tokens = float(sum(len(r.completion) for r in rows))
        # useful FLOPs as for ours: each message once; the update over the rows with advantage != 0
        lora = lora_size(self.shape)
        advantages = group_advantages(rewards.float()).flatten()
        flops_rollout = rollout_flops(self.shape, [(r.node, r.prompt, r.completion) for r in rows], lora)
        flops_update = update_flops(self.shape, [(r.node, r.prompt, r.completion) for r in rows
                                                 if advantages[r.sample] != 0], lora)
        return {"rollout_s": rollout_s, "tokens": tokens, "reward": rewards.float().mean().item(), "updated": 1.0,
                "flops_rollout": flops_rollout, "flops_update": flops_update}


def same_batch(examples: list[Example], step: int, size: int) -> list[Example]:
    """The inputs `Trainer.batch_examples` picks for a step (epochs over a seeded shuffle)."""
    picked, orders = [], {}
    for position in range(step * size, (step + 1) * size):
        epoch, index = divmod(position, len(examples))
        if epoch not in orders:
            orders[epoch] = list(range(len(examples)))
            random.Random(derive_seed(SEED, "train-order", epoch)).shuffle(orders[epoch])
        picked.append(examples[orders[epoch][index]])
    return picked


def measure(arm: str, args: argparse.Namespace) -> dict:
    """Load, warm up, time `args.steps` steps; everything this process measured."""
    torch.manual_seed(SEED)
    start = time.perf_counter()
    runner = (Ours if arm == "ours" else Reference)(load_task(), args)
    load_s, load_rss = time.perf_counter() - start, peak_rss_gb()
    for _ in range(args.warmup):
        runner.step()
    steps = []
    for _ in range(args.steps):
        start = time.perf_counter()
        m = runner.step()
        steps.append({**m, "step_s": time.perf_counter() - start})
    mean = {key: statistics.mean(s[key] for s in steps) for key in steps[0]}
    peak_rss = peak_rss_gb()  # before the profiled step: the profiler's event buffers are not the step's memory
    if args.profile and arm == "ours":
        profile_step(runner, args.profile)
    return {
        "step_s": mean["step_s"],
        "rollout_s": mean["rollout_s"],
        "update_s": mean["step_s"] - mean["rollout_s"],
        "tokens_per_step": mean["tokens"],
        "reward_mean": mean["reward"],
        "updated_steps": int(sum(s["updated"] for s in steps)),  # timed steps that ran backward + AdamW
        "steps_s": [s["step_s"] for s in steps],
        "load_s": load_s,
        "load_peak_rss_gb": load_rss,
        "peak_rss_gb": peak_rss,
        "threads": torch.get_num_threads(),
        "dtype": runner.dtype,
        "flops_rollout": mean["flops_rollout"],
        "flops_update": mean["flops_update"],
    }


def profile_step(runner: Ours, path: str) -> None:
    """One more step of ours under torch's profiler, its rollout and its update apart: each
    phase's wall time split into matmuls, attention, the other operators and the time outside
    any operator (Python, the sampling loop's bookkeeping), then the operators by their own CPU
    time, written to `path` (what explains the gap between MFU and 1). Not part of the timed steps.

    The tables are summed here from the profiler's raw events, not by `key_averages()`: that turns
    every event of the step into a Python `FunctionEvent` with its tree of children, and on a
    full-size step (tens of thousands of decode-time operators per token) it grew past 17 GB of
    RSS and was still growing (with `record_shapes=True`, which also keeps every input tensor
    alive, pytorch/pytorch#133444, past 24 GB and the OOM killer). Shapes are not recorded for
    the same reason; the operator names split the time between matmuls and the rest.
    """
    trainer = runner.trainer
    trainer.profiles = {}
    try:
        runner.step()
        profiles = trainer.profiles
    finally:
        trainer.profiles = None
    heading = (f"# train_speed profile\n\ncommit {commit()}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
               f"{machine()}\n\nOne more step of ours ({runner.dtype}) after the timed steps, under torch's profiler.")
    sections = [heading, phase_summary(profiles)]
    for phase, profile in profiles.items():
        sections.append(f"## {phase}: operators by self time\n\n" + operator_table(profile["operators"]))
    Path(path).write_text("\n\n".join(sections))
    print(f"profile written to {path}", file=sys.stderr, flush=True)


# What each operator is, for the phase summary: dense matmuls (the model's and the adapters'
# linear layers, the LM head) and attention; everything else is "other operators". Attention is
# torch's fused kernels or, where the update runs it on the math kernel (bf16 on CPU, CUDA:
# `rl.trainer.update_kernels`), that kernel's batched matmuls and softmax: nothing else in a
# Llama layer calls them (the rotary table's one small bmm a forward aside).
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::_weight_int8pack_mm"}
MATH_ATTENTION_OPS = {"aten::bmm", "aten::baddbmm", "aten::_softmax", "aten::_softmax_backward_data"}
ATTENTION_PREFIX = "aten::_scaled_dot_product"


def phase_summary(profiles: dict[str, dict]) -> str:
    """Per phase: wall seconds and their split, the shares the MFU gap comes from."""
    rows = []
    for phase, profile in profiles.items():
        ops = profile["operators"]
        matmul = sum(ns for name, (ns, _) in ops.items() if name in MATMUL_OPS) / 1e9
        attention = sum(ns for name, (ns, _) in ops.items()
                        if name.startswith(ATTENTION_PREFIX) or name in MATH_ATTENTION_OPS) / 1e9
        total = sum(ns for ns, _ in ops.values()) / 1e9
        wall = profile["wall_s"]
        calls = sum(c for _, c in ops.values())
        rows.append([phase, f"{wall:.2f}", *(f"{x:.2f} ({100 * x / wall:.0f}%)" for x in
                     (matmul, attention, total - matmul - attention, max(wall - total, 0.0))), f"{calls:,}"])
    header = ["phase", "wall s", "matmuls s", "attention s", "other operators s", "outside operators s",
              "operator events"]
    return ("## Where a profiled step's time goes\n\n" + table(header, rows)
            + "\n\nUnder the profiler (a few microseconds more per operator call than a timed step).")


def self_times(events) -> dict[str, list[int]]:
    """{operator: [self ns, calls]} from raw profiler events: an event's self time is its
    duration less its direct children's, the children being the events of its thread that start
    inside it (operators nest strictly within a thread); a child of the parent's name is the
    parent (torch's own table merges them too)."""
    by_thread: dict[int, list[tuple[int, int, str]]] = {}
    for event in events:
        by_thread.setdefault(event.start_thread_id(), []).append(
            (event.start_ns(), -event.end_ns(), event.name()))
    totals: dict[str, list[int]] = {}

    def close(frame: list) -> None:
        end, start, name, children_ns = frame
        entry = totals.setdefault(name, [0, 0])
        entry[0] += end - start - children_ns
        entry[1] += 1

    for spans in by_thread.values():
        spans.sort()  # by start, the enclosing (later-ending) event first
        stack: list[list] = []
        for start, neg_end, name in spans:
            while stack and stack[-1][0] <= start:
                close(stack.pop())
            if stack and stack[-1][2] == name:
                continue  # an operator redispatching to itself (aten::sum in aten::sum): one call, as torch counts
            if stack:
                stack[-1][3] += -neg_end - start
            stack.append([-neg_end, start, name, 0])
        while stack:
            close(stack.pop())
    return totals


def operator_table(totals: dict[str, list[int]], rows: int = 40) -> str:
    """The `rows` operators with the most self time, as a markdown table."""
    whole = sum(self_ns for self_ns, _ in totals.values()) or 1
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:rows]
    lines = ["| operator | self ms | self % | calls | us per call |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {self_ns / 1e6:.1f} | {100 * self_ns / whole:.1f} | {calls} | {self_ns / 1e3 / calls:.1f} |"
              for name, (self_ns, calls) in ranked]
    return "\n".join(lines) + f"\n\nAll operators: {whole / 1e9:.2f} s of self CPU time.\n"


CHILD_FLAGS = ["steps", "warmup", "inputs", "samples", "hidden_tokens", "readout_tokens", "micro_batch_rows", "profile"]


def launch(arm: str, args: argparse.Namespace) -> dict:
    """Run one arm in a fresh interpreter (its own peak RSS) and read its result line."""
    result = run_arm("benchmarks.train_speed", arm, flags(args, CHILD_FLAGS))
    print(f"{arm}: {result['step_s']:.1f} s/step, peak RSS {result['peak_rss_gb']:.2f} GB", flush=True)
    return result


def utilisation(arm: dict, peak: float) -> dict:
    """`mfu_rollout`, `mfu_update`, `mfu_step` of an arm, and the FLOPs they are made of."""
    return {
        "mfu_rollout": round(mfu(arm["flops_rollout"], arm["rollout_s"], peak), 4),
        "mfu_update": round(mfu(arm["flops_update"], arm["update_s"], peak), 4),
        "mfu_step": round(mfu(arm["flops_rollout"] + arm["flops_update"], arm["step_s"], peak), 4),
        "gflop_rollout": round(arm["flops_rollout"] / 1e9, 1),
        "gflop_update": round(arm["flops_update"] / 1e9, 1),
    }


def report(args: argparse.Namespace, ours: dict, ref: dict, peaks: dict[str, float]) -> tuple[dict, str]:
    metrics = {
        "step_s": round(ours["step_s"], 2),
        "reference_step_s": round(ref["step_s"], 2),
        "speedup": round(ref["step_s"] / ours["step_s"], 2),
        "peak_rss_gb": round(ours["peak_rss_gb"], 3),
        "reference_peak_rss_gb": round(ref["peak_rss_gb"], 3),
        **{f"peak_gflops_{dtype}": round(peak / 1e9, 1) for dtype, peak in peaks.items()},
    }
    for prefix, arm in (("", ours), ("reference_", ref)):
        metrics.update({f"{prefix}{key}": value for key, value in utilisation(arm, peaks[arm["dtype"]]).items()})
        metrics.update({
            f"{prefix}rollout_s": round(arm["rollout_s"], 2),
            f"{prefix}update_s": round(arm["update_s"], 2),
            f"{prefix}tokens_per_step": round(arm["tokens_per_step"], 1),
            f"{prefix}reward_mean": round(arm["reward_mean"], 4),
            f"{prefix}updated_steps": arm["updated_steps"],
            f"{prefix}steps_s": [round(s, 2) for s in arm["steps_s"]],
            f"{prefix}load_s": round(arm["load_s"], 1),
            f"{prefix}load_peak_rss_gb": round(arm["load_peak_rss_gb"], 3),
        })
    rows = [("ours (Trainer, bf16)", ours), ("reference (fp32, generate + full logits per node)", ref)]
    markdown = (
        f"One joint-RL step of a [2, 1] network on arith (4 one-digit operands, trained on 2-4): "
        f"{args.inputs} inputs x G={args.samples}, {args.hidden_tokens}/{args.readout_tokens}-token messages, "
        f"temperature {TEMPERATURE}, LoRA r{LORA['rank']} per node; mean of {args.steps} steps after "
        f"{args.warmup} warm-up, each arm in its own process.\n\n"
        + table(["arm", "s/step", "rollout s", "update s", "tokens/step", "peak RSS GB", "MFU rollout", "MFU update",
                 "MFU step"], [
            [name, f"{a['step_s']:.1f}", f"{a['rollout_s']:.1f}", f"{a['update_s']:.1f}", f"{a['tokens_per_step']:.0f}",
             f"{a['peak_rss_gb']:.2f}", *(f"{u[k]:.3f}" for k in ("mfu_rollout", "mfu_update", "mfu_step"))]
            for name, a in rows for u in [utilisation(a, peaks[a["dtype"]])]
        ])
        + f"\n\nSpeed-up: **{metrics['speedup']}x**; peak RSS {metrics['peak_rss_gb']} GB vs "
        f"{metrics['reference_peak_rss_gb']} GB (target: at least 4x, under 4 GB). MFU: useful FLOPs over time x "
        f"this machine's matmul peak ({', '.join(f'{d} {p / 1e9:.0f} GFLOP/s' for d, p in peaks.items())}; "
        f"benchmarks/flops.py; target mfu_step >= 0.5)."
    )
    return metrics, markdown


def run_config(args: argparse.Namespace) -> dict:
    """The settings both arms ran with, for the results file."""
    train = train_config(args).model_dump(
        include={"batch_size", "group_size", "lr", "max_grad_norm", "std_normalize", "loss_aggregation", "micro_batch_rows"}
    )
    return {
        "model": "embedded SmolLM2-135M-Instruct", "dtype": {"ours": "bfloat16", "reference": "float32"},
        "network": network_config(args), "task": {"name": "arith", "operands": 4, "train_operands": [2, 4]},
        "train": train, "steps": args.steps, "warmup": args.warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per arm first")
    parser.add_argument("--inputs", type=int, default=8, help="task inputs per step")
    parser.add_argument("--samples", type=int, default=8, help="G: sampled passes per input")
    parser.add_argument("--hidden-tokens", type=int, default=24, help="max new tokens of first-layer nodes")
    parser.add_argument("--readout-tokens", type=int, default=16, help="max new tokens of the readout")
    parser.add_argument("--micro-batch-rows", type=int, default=TrainConfig().micro_batch_rows,
                        help="ours: rows per update micro-batch (train.micro_batch_rows; default: the shipped one)")
    parser.add_argument("--arm", choices=["ours", "reference"], help="run one arm here and print its JSON line")
    parser.add_argument("--profile", default="",
                        help="profile one extra step of ours and write its operator table to this file")
    parser.add_argument("--peak-size", type=int, default=None, help="side of the square GEMM that measures the peak")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    parser.add_argument("--smoke", action="store_true",
                        help="2 inputs x G=2, 4 tokens, 1 step, no warm-up; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.inputs = args.samples = 2
        args.hidden_tokens = args.readout_tokens = 4
        args.steps, args.warmup, args.no_write = 1, 0, True
        args.peak_size = args.peak_size or 512

    if args.arm:
        emit_result(measure(args.arm, args))
        return

    ours, ref = launch("ours", args), launch("reference", args)
    # the peak after the arms, in this process, in each arm's dtype: nothing else runs meanwhile
    peaks = {dtype: matmul_peak(dtype, size=args.peak_size) for dtype in sorted({ours["dtype"], ref["dtype"]})}
    metrics, markdown = report(args, ours, ref, peaks)
    print("\n" + markdown)
    if args.no_write:
        print(json.dumps(metrics, indent=2))
        return
    write_results("train_speed", run_config(args), metrics, markdown)


if __name__ == "__main__":
    main()
