"""One RL training step of a single node: neuromas' `Trainer` vs TRL's `GRPOTrainer`.

Both arms train one LoRA adapter on the same base model from the same prompts, with the same
sampling and the same update, and report the time of one optimizer step (rollouts, rewards,
advantages, loss, backward, clip, AdamW step) and peak resident memory. Each arm runs in its own
subprocess (`--arm ours` / `--arm trl`, one after the other, never at once), so peak RSS is that
arm's alone: the parent launches both and reads one JSON line from each. Each arm runs
`--warmup` untimed steps, then times `--steps` steps; `step_s` is their mean.

Matched settings (defaults; both arms take them from the same flags):

- model: the embedded SmolLM2-135M-Instruct GGUF, loaded by `neuromas.models.load_model` in
  both arms (dequantized to bf16 weights, CPU); TRL gets the model object and its tokenizer (no
  hub access). transformers leaves a "quantized with GGUF" mark on the dequantized model, which
  `Trainer` refuses; `unmark_gguf` removes it after checking every projection is a plain
  floating-point `nn.Linear`.
- prompts: the first `--prompts` (8) examples of the train split of
  `arith(operands=4, train_operands=[2, 4])`, each formatted exactly as the `[1]` network's only
  node sees it (`node_prompt(node, topology, input, {}, answer_format)`: our system + user turns),
  given to TRL as conversational prompts, so both apply the same chat template. Every step uses
  all of them (ours: `Trainer.examples` is set to them; TRL: the dataset holds only them and one
  generation batch is exactly one pass over it).
- group size G = 8 completions per prompt, so 64 completions and one optimizer step per step;
  at most 24 new tokens, temperature 0.7, top-p 1.0, no top-k; stop at the model's EOS.
- LoRA rank 8, alpha 16, dropout 0, on q_proj, k_proj, v_proj, o_proj (ours:
  `AdapterConfig(rank=8, alpha=16)`; TRL: `peft_config=LoraConfig(...)`).
- update: AdamW (betas 0.9, 0.999, eps 1e-8; TRL uses torch's fused kernel, ours the default
  one), lr 2e-4 constant (TRL `lr_scheduler_type="constant"`; TrainingArguments would otherwise
  decay it linearly), no warm-up, no weight decay, gradient norm clipped at 1.0; no KL
  (ours `kl_coef=0`, TRL `beta=0`, so neither computes reference log-probs); one update epoch
  (ours `epochs=1`, TRL `num_iterations=1` with `steps_per_generation == gradient_accumulation_steps`,
  so neither computes "old" log-probs: the ratio is 1 and the gradient is REINFORCE's).
- advantages: reward minus the group mean, divided by the group's reward std (ours
  `std_normalize=True`, TRL `scale_rewards="group"`).
- loss: token-mean over every completion token of the whole step (ours
  `loss_aggregation="token-mean"`; TRL `loss_type="dapo"`, which divides by the number of
  completion tokens of the whole generation batch; `bnpo` would divide per micro-batch instead).
- micro-batches: 16 completions per forward/backward, gradients accumulated into one update
  (ours `micro_batch_rows=16`; TRL `per_device_train_batch_size=16`,
  `gradient_accumulation_steps=4`, so `generation_batch_size` = 64 = one generation per step).
- reward: the task's exact-match reward, `task.reward(completions, examples)`; TRL's reward
  function receives chat messages and passes the assistant text on.
- precision: bf16 weights and compute in both. Ours runs the bf16 model as is; TRL gets
  `bf16=True, use_cpu=True` (its loss pass runs under CPU bf16 autocast; its generation runs the
  bf16 model as is). PEFT keeps the LoRA weights in fp32 in both arms; ours computes the small
  LoRA branch in fp32, TRL's autocast computes it in bf16 during the loss pass.
- gradient checkpointing: off in both. TRL turns it on by default (trading ~20% time for
  activation memory); ours has none, so it is off here; `--trl-gradient-checkpointing` measures
  TRL's default instead.

What cannot be matched exactly, and why:

- the samples: each arm samples its own completions (different samplers and random streams), so
  completion lengths, rewards and the work per step differ a little; the mean completion length
  and reward of the timed steps are reported for both arms.
- reward std: TRL divides by the Bessel-corrected group std plus 1e-4, ours by the population
  std plus 1e-6: the advantages differ by a constant factor sqrt(G / (G - 1)); no effect on cost.
- TRL counts the EOS token as a completion token (in its loss and lengths); ours does not.
- TRL also computes per-token entropies in its loss pass and logs metrics: part of its cost.
- work skipped for lack of signal: a completion whose group tied (all G rewards equal) has a zero
  advantage and adds nothing to the gradient. Ours leaves such completions out of its loss pass
  (their tokens still count in the token-mean), and skips the loss pass and optimizer step when
  every group tied; TRL runs forward and backward on all of them. So our step's cost depends on
  the rewards: `loss_rows_mean` (ours) vs `trl_loss_rows_mean` (always all completions) shows
  how much, `steps_with_update` counts our timed steps that updated, and the report warns when
  that is below `--steps`.
- both add adapters to the loaded model in place (ours to the one shared base model, under names
  of its own per network, `neuromas.backends.lora`); the committed results were measured when
  ours still copied the base model, a copy that counted in our memory.

Memory: `peak_rss_gb` is the whole process's peak (ru_maxrss: imports, loading, setup and the
steps); `train_peak_rss_gb` is the peak during the steps alone (the high-water mark is reset
through /proc/self/clear_refs after setup) and `setup_rss_gb` the RSS just before them. Each
prefixed `trl_` for TRL.

Timing needs an idle machine: on a shared 2-core machine a competing job made the same TRL step
take 2 s or 80 s. Each arm records the share of the wall time of its steps in which some task waited
for a CPU (Linux PSI, /proc/pressure/cpu), and the report warns above 10%.

    python -m benchmarks.vs_trl [--prompts 8] [--group 8] [--tokens 24] [--steps 3] [--warmup 1]
    python -m benchmarks.vs_trl --smoke     # --prompts 2 --group 2 --tokens 4 --steps 1 --warmup 0 --no-write

Needs TRL: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    emit_result,
    flags,
    peak_rss_gb,
    run_arm,
    table,
    write_results,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never try the hub
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

CONTENDED = 0.10  # above this share of time with a task waiting for a CPU, timings are noise
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


# memory -------------------------------------------------------------------------------------
def rss_gb() -> float:
    """Current RSS of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def cpu_stall_us() -> int | None:
    """Microseconds so far in which some runnable task on this machine waited for a CPU (PSI)."""
    try:
        return int(Path("/proc/pressure/cpu").read_text().split("total=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


class Contention:
    """Share of the wall time in which some task waited for a CPU: other jobs steal ours."""

    def __init__(self):
        self.start, self.stall = time.perf_counter(), cpu_stall_us()

    def fraction(self) -> float | None:
        end = cpu_stall_us()
        if self.stall is None or end is None:
            return None
        return (end - self.stall) / 1e6 / (time.perf_counter() - self.start)


def reset_peak() -> bool:
    """Reset the peak-RSS high-water mark to the current RSS (Linux 4.0+); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# shared inputs ------------------------------------------------------------------------------
def setup_inputs(args):
    """The task, the step's examples and their chats, exactly as the `[1]` network's node sees them."""
    from neuromas import tasks
    from neuromas.config import NetworkConfig
    from neuromas.prompts import node_prompt
    from neuromas.topology import Topology

    task = tasks.load("arith", operands=4, train_operands=[2, 4])
    examples = task.examples("train")[: args.prompts]
    topology = Topology.from_config(NetworkConfig(layers=[1]))
    node = topology.nodes[0]
    chats = [node_prompt(node, topology, e.input, {}, task.answer_format) for e in examples]
    return task, examples, chats


def summary(times: list[float], warmup: int) -> dict:
    timed = times[warmup:]
    return {
        "step_s": statistics.mean(timed),
        "step_s_min": min(timed),
        "step_s_all": [round(t, 3) for t in times],
        "warmup_s": times[:warmup],
    }


# our arm ------------------------------------------------------------------------------------
def run_ours(args) -> dict:
    import torch

    from neuromas.config import ModelConfig, TrainConfig
    from neuromas.network import Network
    from neuromas.prompts import node_prompt
    from neuromas.rl.trainer import Trainer

    torch.manual_seed(args.seed)
    task, examples, chats = setup_inputs(args)
    start = time.perf_counter()
    net = Network(
        {
            "layers": [1],
            "generation": {"max_new_tokens": args.tokens, "temperature": args.temperature, "top_p": 1.0},
            "adapters": {"rank": args.rank, "alpha": args.alpha, "target_modules": TARGETS},
        },
        model=ModelConfig(dtype=args.dtype, device="cpu"),
        seed=args.seed,
    )
    config = TrainConfig(
        steps=args.warmup + args.steps, batch_size=args.prompts, group_size=args.group, lr=args.lr,
        lr_schedule="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, epochs=1,
        kl_coef=0.0, loss_aggregation="token-mean", std_normalize=True, drop_tied_groups=False,
        micro_batch_rows=args.micro_batch,
    )
    trainer = Trainer(net, task, config, progress=False)  # loads the model, attaches the adapter
    trainer.examples = list(examples)  # every step: these prompts (batch_size == len), reshuffled
    node, topology = net.topology.nodes[0], net.topology  # the prompts our network builds are TRL's
    assert [node_prompt(node, topology, e.input, {}, task.answer_format) for e in examples] == chats
    setup_s = time.perf_counter() - start
    load_peak, setup_rss = peak_rss_gb(), rss_gb()
    reset = reset_peak()

    contention = Contention()
    times, lengths, rewards, loss_rows, updates = [], [], [], [], 0
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        metrics = trainer.train_step()
        times.append(time.perf_counter() - t0)
        if i >= args.warmup:
            lengths.append(metrics["tokens/total"] / (args.prompts * args.group))
            rewards.append(metrics["reward/mean"])
            # a step whose groups all tie has no signal: ours then skips the loss pass entirely
            updated = metrics.get("update/skipped") == 0.0
            updates += updated
            # completions the loss pass ran on (ours may leave out those with a zero advantage)
            loss_rows.append(metrics.get("update/rows", args.prompts * args.group) if updated else 0)
    train_peak = peak_rss_gb()
    return {
        **summary(times, args.warmup),
        "setup_s": setup_s,
        "peak_rss_gb": max(load_peak, train_peak),
        "train_peak_rss_gb": train_peak if reset else None,
        "setup_rss_gb": setup_rss,
        "cpu_stall_fraction": contention.fraction(),
        "completion_tokens_mean": statistics.mean(lengths),
        "reward_mean": statistics.mean(rewards),
        "steps_with_update": updates,
        "loss_rows_mean": statistics.mean(loss_rows),
        "threads": torch.get_num_threads(),
    }


# TRL's arm ----------------------------------------------------------------------------------
def unmark_gguf(model) -> None:
    """Drop the GGUF "quantized" mark of a fully dequantized model, or `Trainer` refuses it.

    transformers loads this GGUF file by dequantizing every tensor into plain bf16 `nn.Linear`
    weights (its legacy GGUF path: no GGUF kernels), yet leaves `hf_quantizer`, `is_quantized` and
    `config.quantization_config` set, and `Trainer.__init__` then refuses to train "a model
    quantized with GGUF". Only when every
    targeted projection is a plain floating-point `nn.Linear` is the mark dropped; otherwise it
    stays and TRL fails loudly.
    """
    import torch

    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    linears = [m for n, m in model.named_modules() if n.endswith(tuple(TARGETS))]
    dense = all(type(m) is torch.nn.Linear and m.weight.dtype.is_floating_point for m in linears)
    if linears and dense:
        quantizer.remove_quantization_config(model)  # transformers' own undo of the mark
        for module in model.modules():
            if getattr(getattr(module, "config", None), "_is_quantized", False):
                module.config._is_quantized = False


def run_trl(args) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from neuromas.models import load_model

    torch.manual_seed(args.seed)
    task, examples, chats = setup_inputs(args)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.logs: list[dict] = []
            self._t0 = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.logs.append(dict(logs))

    def exact_match(completions, idx, **kwargs) -> list[float]:
        # conversational prompts: each completion is [{"role": "assistant", "content": ...}]
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return task.reward(texts, [examples[i] for i in idx])

    total = args.prompts * args.group
    start = time.perf_counter()
    model, tokenizer = load_model(None, None, args.dtype, "cpu")
    unmark_gguf(model)
    dataset = Dataset.from_list([{"prompt": chat, "idx": i} for i, chat in enumerate(chats)])
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="vs_trl-") as out_dir:
        config = GRPOConfig(
            output_dir=out_dir,
            # batch: one generation of prompts x G completions = one optimizer step
            per_device_train_batch_size=args.micro_batch,
            gradient_accumulation_steps=total // args.micro_batch,
            num_generations=args.group,
            max_completion_length=args.tokens,
            temperature=args.temperature,
            top_p=1.0,
            top_k=0,
            # update
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            beta=0.0,
            num_iterations=1,
            loss_type="dapo",
            scale_rewards="group",
            # precision and memory
            bf16=args.dtype == "bfloat16",
            fp16=False,
            use_cpu=True,
            gradient_checkpointing=args.trl_gradient_checkpointing,
            # run length, no logging backends, no saving, no eval
            max_steps=args.warmup + args.steps,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            log_completions=False,
            remove_unused_columns=False,
            dataloader_pin_memory=False,
            seed=args.seed,
        )
        assert config.generation_batch_size == total and config.steps_per_generation == config.gradient_accumulation_steps
        lora = LoraConfig(
            r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, bias="none",
            target_modules=list(TARGETS), task_type="CAUSAL_LM",
        )
        trainer = GRPOTrainer(
            model=model, reward_funcs=exact_match, args=config, train_dataset=dataset,
            processing_class=tokenizer, peft_config=lora, callbacks=[timer],
        )
        setup_s = time.perf_counter() - start
        load_peak, setup_rss = peak_rss_gb(), rss_gb()
        reset = reset_peak()
        contention = Contention()
        trainer.train()
        stalled = contention.fraction()
        train_peak = peak_rss_gb()
    if len(timer.times) != args.warmup + args.steps:
        raise RuntimeError(f"TRL ran {len(timer.times)} steps, expected {args.warmup + args.steps}")
    timed_logs = timer.logs[args.warmup :]
    return {
        **summary(timer.times, args.warmup),
        "setup_s": setup_s,
        "peak_rss_gb": max(load_peak, train_peak),
        "train_peak_rss_gb": train_peak if reset else None,
        "setup_rss_gb": setup_rss,
        "cpu_stall_fraction": stalled,
        "completion_tokens_mean": statistics.mean(log["completions/mean_length"] for log in timed_logs) if timed_logs else None,
        "reward_mean": statistics.mean(log["reward"] for log in timed_logs) if timed_logs else None,
        "threads": torch.get_num_threads(),
        "trl_version": trl.__version__,
    }


# parent -------------------------------------------------------------------------------------
CHILD_FLAGS = ["prompts", "group", "tokens", "temperature", "rank", "alpha", "lr", "micro_batch", "steps", "warmup",
               "dtype", "seed", "trl_gradient_checkpointing"]


def gb(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="G: completions per prompt")
    parser.add_argument("--tokens", type=int, default=24, help="max new tokens per completion")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--micro-batch", type=int, default=16, help="completions per forward/backward")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per arm before the timed ones")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trl-gradient-checkpointing", action="store_true",
                        help="TRL's default (on); off by default here because ours has none")
    parser.add_argument("--arm", choices=["ours", "trl"], help="(internal) run one arm and print its result line")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write no results files")
    parser.add_argument("--smoke", action="store_true",
                        help="2 prompts x G=2, 4 tokens, 1 step, no warm-up, to check the script; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.prompts = args.group = 2
        args.tokens, args.steps, args.warmup, args.no_write = 4, 1, 0, True
    total = args.prompts * args.group
    args.micro_batch = min(args.micro_batch, total)
    if args.steps < 1 or args.warmup < 0 or args.group < 2 or total % args.micro_batch:
        parser.error("need --steps >= 1, --warmup >= 0, --group >= 2 and prompts x group divisible by --micro-batch")

    if args.arm is not None:
        emit_result(run_ours(args) if args.arm == "ours" else run_trl(args))
        return

    argv = flags(args, CHILD_FLAGS)
    ours = run_arm("benchmarks.vs_trl", "ours", argv)
    theirs = run_arm("benchmarks.vs_trl", "trl", argv)

    metrics = {
        "step_s": round(ours["step_s"], 3),
        "trl_step_s": round(theirs["step_s"], 3),
        "peak_rss_gb": round(ours["peak_rss_gb"], 3),
        "trl_peak_rss_gb": round(theirs["peak_rss_gb"], 3),
        "speedup": round(theirs["step_s"] / ours["step_s"], 2),
        "memory_ratio": round(theirs["peak_rss_gb"] / ours["peak_rss_gb"], 2),
        "train_peak_rss_gb": ours["train_peak_rss_gb"] and round(ours["train_peak_rss_gb"], 3),
        "trl_train_peak_rss_gb": theirs["train_peak_rss_gb"] and round(theirs["train_peak_rss_gb"], 3),
        "step_s_min": round(ours["step_s_min"], 3),
        "trl_step_s_min": round(theirs["step_s_min"], 3),
        "step_s_all": ours["step_s_all"],
        "trl_step_s_all": theirs["step_s_all"],
        "setup_rss_gb": round(ours["setup_rss_gb"], 3),
        "trl_setup_rss_gb": round(theirs["setup_rss_gb"], 3),
        "cpu_stall_fraction": ours["cpu_stall_fraction"] and round(ours["cpu_stall_fraction"], 3),
        "trl_cpu_stall_fraction": theirs["cpu_stall_fraction"] and round(theirs["cpu_stall_fraction"], 3),
        "setup_s": round(ours["setup_s"], 2),
        "trl_setup_s": round(theirs["setup_s"], 2),
        "completion_tokens_mean": round(ours["completion_tokens_mean"], 2),
        "trl_completion_tokens_mean": theirs["completion_tokens_mean"] and round(theirs["completion_tokens_mean"], 2),
        "reward_mean": round(ours["reward_mean"], 3),
        "trl_reward_mean": theirs["reward_mean"] and round(theirs["reward_mean"], 3),
        "steps_with_update": ours["steps_with_update"],
        "loss_rows_mean": round(ours["loss_rows_mean"], 1),
        "trl_loss_rows_mean": total,
        "completions_per_step": total,
        "trl_version": theirs["trl_version"],
    }
    config = {**{k: v for k, v in vars(args).items() if k not in ("arm", "out", "no_write", "smoke")},
              "task": "arith(operands=4, train_operands=[2, 4]), train split", "network": [1],
              "trl": {"loss_type": "dapo", "scale_rewards": "group", "beta": 0.0, "num_iterations": 1,
                      "per_device_train_batch_size": args.micro_batch,
                      "gradient_accumulation_steps": total // args.micro_batch,
                      "lr_scheduler_type": "constant", "bf16": args.dtype == "bfloat16", "use_cpu": True,
                      "gradient_checkpointing": args.trl_gradient_checkpointing}}
    rows = [
        ("time per step (s, mean of timed)", f"{ours['step_s']:.2f}", f"{theirs['step_s']:.2f}"),
        ("time per step (s, min)", f"{ours['step_s_min']:.2f}", f"{theirs['step_s_min']:.2f}"),
        ("peak RSS, whole process (GB)", gb(ours["peak_rss_gb"]), gb(theirs["peak_rss_gb"])),
        ("peak RSS, training steps (GB)", gb(ours["train_peak_rss_gb"]), gb(theirs["train_peak_rss_gb"])),
        ("RSS after setup, before the steps (GB)", gb(ours["setup_rss_gb"]), gb(theirs["setup_rss_gb"])),
        ("setup: load + trainer (s)", f"{ours['setup_s']:.1f}", f"{theirs['setup_s']:.1f}"),
        ("CPU contention during the steps (PSI)", pct(ours["cpu_stall_fraction"]), pct(theirs["cpu_stall_fraction"])),
        ("mean completion tokens", f"{ours['completion_tokens_mean']:.1f}",
         "-" if theirs["completion_tokens_mean"] is None else f"{theirs['completion_tokens_mean']:.1f}"),
        ("completions in the loss pass (mean)", f"{ours['loss_rows_mean']:.1f}", str(total)),
        ("mean reward", f"{ours['reward_mean']:.3f}",
         "-" if theirs["reward_mean"] is None else f"{theirs['reward_mean']:.3f}"),
    ]
    figures = table(["", "neuromas Trainer", "TRL GRPOTrainer"], rows)
    markdown = (
        f"One training step of a single node (`[1]` network) on the embedded SmolLM2-135M-Instruct, {args.dtype}, CPU: "
        f"{args.prompts} arith prompts x G={args.group} = {total} completions of up to {args.tokens} tokens "
        f"(temperature {args.temperature}), LoRA r={args.rank} alpha={args.alpha:g} on q,k,v,o, AdamW lr {args.lr:g}, "
        f"no KL, one epoch, token-mean loss with group-std advantages (TRL {theirs['trl_version']}: `loss_type=dapo`, "
        f"`scale_rewards=group`, `beta=0`, {args.micro_batch} x {total // args.micro_batch} accumulation, "
        f"gradient checkpointing {'on' if args.trl_gradient_checkpointing else 'off'}). "
        f"Each arm in its own process; {args.warmup} warm-up + {args.steps} timed steps. "
        "See the docstring of `benchmarks/vs_trl.py` for every matched setting.\n\n"
        f"{figures}\n\n"
        f"Speed-up: **{metrics['speedup']}x** (TRL time / ours); TRL peak RSS / ours: **{metrics['memory_ratio']}x**."
    )
    notes = []
    busy = [f for f in (ours["cpu_stall_fraction"], theirs["cpu_stall_fraction"]) if f is not None]
    if busy and max(busy) > CONTENDED:
        notes.append(f"Warning: other processes competed for the CPUs during the timed steps (PSI: a task waited "
                     f"{pct(max(busy))} of the time): the times are not trustworthy; rerun on an idle machine.")
    if ours["steps_with_update"] < args.steps:
        notes.append(f"Warning: in {args.steps - ours['steps_with_update']} of {args.steps} timed steps every "
                     "group's rewards tied, so ours skipped the loss pass (TRL always runs it): those steps "
                     "flatter ours.")
    markdown += "".join("\n\n" + note for note in notes)
    print(figures)
    print(f"\nspeed-up {metrics['speedup']}x (TRL / ours), memory ratio {metrics['memory_ratio']}x (TRL / ours)")
    for note in notes:
        print(note)
    if args.no_write:
        print(json.dumps(metrics, indent=2))
        return
    write_results("vs_trl", config, metrics, markdown, args.out)


if __name__ == "__main__":
    main()
