"""Joint RL of every node from one shared terminal reward.

One step, top to bottom (`Trainer.train_step`): rollouts (G sampled passes of the whole network
per input), rewards (the task scores the readout's answer), advantages (reward minus the mean of
the same input's G passes), loss (every token every node wrote, weighted by its pass's
advantage; each row runs through its own node's adapter, so each node's gradient reaches only
its own parameters), backward / clip / step, log. Groups are one input's G passes by
construction: `Network.forward` returns traces grouped by input. `train.algorithm: collm-cc`
replaces the group baseline by a learned centralised critic's value (rl/critic.py, the CoLLM-CC
baseline); nothing else in the step changes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neuromas.backends.hf import token_logprobs
from neuromas.backends.vllm import VLLMBackend
from neuromas.checkpoint import (
    load_checkpoint,
    newest_intact_checkpoint,
    save_checkpoint,
    save_network,
    saved_network_config,
)
from neuromas.config import EvalConfig, TrainConfig
from neuromas.errors import NeuromasError
from neuromas.eval import EvalResult, evaluate
from neuromas.grow import apply
from neuromas.network import Network
from neuromas.plan import plan_stage
from neuromas.progress import Progress
from neuromas.rl.critic import CentralCritic, layer_of
from neuromas.rl.grpo import group_advantages, kl_loss, loss_weights, policy_loss, tied_fraction, tree_advantages
from neuromas.rl.metrics import MetricsLog, read_growths
from neuromas.seeds import derive_seed
from neuromas.tasks.base import Example, Task
from neuromas.trace import Trace, write_traces


@dataclass
class Rows:
    """A step's messages flattened: one row per (pass, node) that wrote at least one token."""

    prompts: list[list[int]]
    completions: list[list[int]]
    adapters: list[str]
    temperatures: list[float]
    advantages: torch.Tensor  # (R,)

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, idx: list[int]) -> Rows:
        return Rows(
            [self.prompts[i] for i in idx], [self.completions[i] for i in idx], [self.adapters[i] for i in idx],
            [self.temperatures[i] for i in idx], self.advantages[idx],
        )


@dataclass
class Batch:
    """A step's scored rollouts: rewards (B, G) and the rows the loss runs on."""

    rewards: torch.Tensor
    rows: Rows
    metrics: dict[str, float] = field(default_factory=dict)  # what making the advantages logged (collm-cc)


@contextlib.contextmanager
def update_kernels(device: torch.device | str | None = None, dtype: torch.dtype | None = None):
    """The kernels the update runs on: torch's deterministic ones, so a run is a function of its
    config and seed, and attention on the math kernel where that is deterministic or faster.

    The backward of the prompt-sharing copy in `token_logprobs` (indexing a KV cache by a list
    of rows) accumulates with `index_put_`, whose CPU kernel adds in thread order: two runs of
    one config drew the same samples at step 1 and parted in the last bits of the gradient, then
    in their samples a few steps on. The deterministic kernel cost nothing measurable here
    (3 steps of a [2, 1] network: 120 s of updates either way). `warn_only`: an op without a
    deterministic kernel (some CUDA ones) warns instead of stopping the run.

    Attention runs on its math kernel on a CUDA `device`: under `warn_only` the fused kernels'
    backward stays non-deterministic (the H200 check warned "cuDNN Attention defaults to a
    non-deterministic algorithm"), and the math kernel's is deterministic; at our sequence lengths
    (a few hundred tokens) the attention matrix it materializes is small. On the CPU in bf16 or
    fp16 it is faster: the update's queries are short (a row's suffix and completion over a
    shared prefix), where the CPU flash kernel's backward cost ten times its forward; an update
    of a [2, 1] step took 7.4 s instead of 9.8 s in bf16 (`benchmarks/train_speed.py`, README).
    In float32 the flash kernel stays (the math one took 1.06x longer there).
    """
    device = torch.device(device) if device is not None else None
    math_attention = device is not None and (
        device.type == "cuda" or (device.type == "cpu" and dtype in (torch.bfloat16, torch.float16))
    )
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with contextlib.ExitStack() as stack:
            if math_attention:
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


class TrainingStopped(NeuromasError):
    """SIGINT or SIGTERM stopped training at a clean point (after a step, its checkpoint saved)."""

    def __init__(self, message: str, signum: int, run_dir: Path | None = None):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for a process ended by a signal
        self.run_dir = run_dir  # where the checkpoint is; the CLI names the command that resumes it


class StopSignals:
    """While training: the first SIGINT (Ctrl-C) or SIGTERM asks to stop after the current step;
    a second one stops at once (KeyboardInterrupt). Checkpoints are atomic either way: this only
    spares the work of the step under way. Only in the main thread (where Python runs handlers)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        logging.getLogger("neuromas").warning(
            "%s: stopping after this step (again to stop at once)", signal.Signals(signum).name)


class Trainer:
    """Trains a network's adapters on a task; `train()` runs `config.steps` steps."""

    def __init__(
        self,
        net: Network,
        task: Task,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        eval_config: EvalConfig | None = None,
        progress: bool = True,
        rollout_backend: VLLMBackend | None = None,
        rollout_workers=None,
    ):
        """`eval_config`: the run's held-out evaluation (split, batch size, limit), which the
        periodic evaluations (`train.eval_every`) follow; `train.eval_limit` overrides its limit.
        `rollout_backend`: with `train.rollout_backend: vllm`, an engine to sample with instead of
        building one (one vLLM engine holds most of a GPU's memory, so a process that trains
        several networks, as benchmarks/gpu_check.py does, shares one).
        `rollout_workers`: with `train.rollout_workers` > 0, the Ray workers that sample the
        rollouts (`distributed.RolloutWorkers`: `sync(net, version)`, `backend(net, version)`)."""
        self.task, self.config = task, config or TrainConfig()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.eval_config = eval_config or EvalConfig()
        self.progress = progress
        self.examples = task.examples("train")
        if not self.examples:
            raise NeuromasError(f"task {task.name} has no training examples; raise its train_size")
        self.rollout_backend = None  # None: the network samples with its own backend
        if self.config.rollout_workers and rollout_workers is None:
            raise NeuromasError(f"train.rollout_workers {self.config.rollout_workers} samples on Ray workers: pass "
                                "rollout_workers=distributed.RolloutWorkers(...) (the CLI: --ray local or ADDRESS)")
        self.rollout_workers = rollout_workers
        if self.config.rollout_backend == "vllm":  # before the adapters: a missing GPU fails first
            self.rollout_backend = rollout_backend or VLLMBackend.from_config(
                net.model_config, max_lora_rank=net.config.adapters.rank)
        net.attach_adapters()
        unknown = [n for n in self.config.freeze if n not in net.adapters]
        if unknown:
            raise NeuromasError(f"train.freeze: {unknown[0]} is not a node of this network ({', '.join(net.adapters)})")
        self._bind(net)
        # train.algorithm: collm-cc: a centralised critic of its own (rl/critic.py) makes the advantages
        self.critic = (CentralCritic(net, self.config.critic_lr or self.config.lr, self.config.micro_batch_rows)
                       if self.config.algorithm == "collm-cc" else None)
        self.step = 0
        self.bad_steps = 0
        self.stages_done = 0  # growth stages of the schedule applied so far
        self.log = MetricsLog(self.run_dir) if self.run_dir is not None else None
        # the run's config as it started: checkpoints keep it, so a resume refuses an edited one
        config_file = self.run_dir / "config.yaml" if self.run_dir is not None else None
        self.run_config = config_file.read_text(encoding="utf-8") if config_file and config_file.is_file() else None
        self.history: list[dict] = []
        self.growths: list[dict] = []  # what each scheduled growth did (also growth.jsonl in the run directory)

    def _bind(self, net: Network) -> None:
        """Train `net`: its unfrozen adapters, with a fresh optimizer (also after a growth)."""
        frozen = {net.adapters[n] for n in self.config.freeze if n in net.adapters}
        shared = [a for n, a in net.adapters.items() if a in frozen and n not in self.config.freeze]
        if shared:
            raise NeuromasError(f"train.freeze: adapter {shared[0]} is shared with unfrozen nodes; use sharing: node")
        self.net = net
        self.trainable = {a for a in net.adapters.values() if a not in frozen}
        for name in set(net.adapters.values()):
            for param in net.backend.adapter_parameters(name):
                param.requires_grad_(name in self.trainable)
        self.params = [p for name in sorted(self.trainable) for p in net.backend.adapter_parameters(name)]
        self.optimizer = torch.optim.AdamW(self._param_groups(net), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)

    def _param_groups(self, net: Network) -> list[dict]:
        """One group at `train.lr`, or with `train.readout_lr` the readout's adapter in a group of
        its own; `lr_scale` is each group's learning rate over `train.lr` (the schedule scales both)."""
        c = self.config
        readout = net.adapters[net.topology.readout]
        if c.readout_lr is None or readout not in self.trainable:
            return [{"params": self.params, "lr_scale": 1.0}]
        if sum(a == readout for a in net.adapters.values()) > 1:
            raise NeuromasError(f"train.readout_lr: the readout shares adapter {readout} with other nodes; "
                                "set network.adapters.sharing to node or layer, or unset train.readout_lr")
        others = [p for name in sorted(self.trainable - {readout}) for p in net.backend.adapter_parameters(name)]
        groups = [{"params": list(net.backend.adapter_parameters(readout)), "lr_scale": c.readout_lr / c.lr}]
        return ([{"params": others, "lr_scale": 1.0}] if others else []) + groups

    @property
    def branching(self) -> list[int] | None:
        """The rollout tree of the network as it is now: the last growth's, else `train.branching`
        (also while a growth fades in: each first-layer sample's subtree runs one form, Network.forward)."""
        if self.stages_done:
            return self.config.growth[self.stages_done - 1].branching
        return self.config.branching

    def grow_if_due(self) -> bool:
        """Apply the schedule's next growth when its step has come (`train.growth`, grow.py).

        The grown network gets a fresh optimizer: Adam's moments belong to the parent's
        parameters, and a renamed or cloned adapter is a new parameter to the optimizer.
        """
        stages = self.config.growth
        if self.stages_done >= len(stages) or stages[self.stages_done].at_step != self.step:
            return False
        stage = stages[self.stages_done]
        parent, plan = self.net.config, plan_stage(self.net.config, stage)
        self._bind(apply(self.net, plan, stage.init, stage.ramp_steps))
        self.stages_done += 1
        # From the next step on, `node/<id>/...` keys name the grown network's nodes: the record
        # says which parent node each renamed id was.
        record = {"step": self.step + 1, **plan.record(parent, stage.init), "init": stage.init,
                  "ramp_steps": stage.ramp_steps}
        self.growths.append(record)
        if self.log is not None:
            self.log.write_growth(record)
        return True

    def _synced_rollout_backend(self):
        """The vLLM rollout backend or the Ray rollout workers, running the adapters as they are
        now (None: the network's own backend)."""
        if self.rollout_workers is not None:  # version: the steps done, which the workers must hold to sample
            self.rollout_workers.sync(self.net, self.step)
            return self.rollout_workers.backend(self.net, self.step)
        if self.rollout_backend is None:
            return None
        root = self.run_dir if self.run_dir is not None else Path(tempfile.gettempdir()) / f"neuromas-{os.getpid()}"
        save_network(self.net, root / "rollout-adapters")
        self.rollout_backend.load_adapters(root / "rollout-adapters" / "adapters")
        return self.rollout_backend

    def batch_examples(self, step: int) -> list[Example]:
        """Inputs of a step: epochs over a seeded shuffle of the train split (resumable by step)."""
        size, n = self.config.batch_size, len(self.examples)
        orders: dict[int, list[int]] = {}  # epoch -> its shuffle (a batch spans at most a few)
        picked = []
        for position in range(step * size, (step + 1) * size):
            epoch, index = divmod(position, n)
            if epoch not in orders:
                orders[epoch] = list(range(n))
                random.Random(derive_seed(self.net.seed, "train-order", epoch)).shuffle(orders[epoch])
            picked.append(self.examples[orders[epoch][index]])
        return picked

    def train_step(self) -> dict[str, float]:
        c, net = self.config, self.net
        start = time.perf_counter()

        # 1. rollouts: G sampled passes of the whole network per input, grouped by input
        traces = self.rollout(self.step)
        rollout_s = time.perf_counter() - start

        # 2. rewards (one terminal reward per pass, shared by every node of the pass) and
        # 3. advantages (reward minus the mean of the same input's G passes), one row per message
        batch = self.score(traces)

        # 4. loss over every token every trainable node wrote, backward, clip, step
        # (a NaN reward is not "no signal": it must reach the non-finite guard in `update`)
        has_signal = len(batch.rows) > 0 and (bool((batch.rows.advantages != 0).any()) or c.kl_coef > 0)
        if has_signal:
            metrics = self.update(batch.rows)
        else:  # every group tied (or nothing trainable wrote): no gradient to follow
            metrics = {"loss/policy": 0.0, "loss/kl": 0.0, "kl/mean": 0.0, "grad/norm": 0.0}

        # 5. log (and move a grown network's fade-in along: grow.py)
        self.step += 1
        if net.growth is not None:
            metrics["growth/alpha"] = net.growth.alpha
            net.growth.done_steps += 1
            if net.growth.alpha >= 1.0:  # faded in: the parent form is no longer needed
                net.growth = None
        metrics.update(
            {
                "reward/mean": batch.rewards.mean().item(),
                "reward/std": batch.rewards.std(unbiased=False).item(),
                "reward/tied_fraction": tied_fraction(batch.rewards),
                "lr": learning_rate(self.config, self.step - 1),
                "tokens/total": float(generated_tokens(traces)),
                "time/rollout_s": rollout_s,
                "time/step_s": time.perf_counter() - start,
            }
        )
        metrics.update(node_statistics(traces))
        metrics.update(batch.metrics)
        return metrics

    def rollout(self, step: int) -> list[Trace]:
        """The step's sampled passes: G per input, grouped by input, seeded by (run seed, step) only."""
        self.net.train()
        examples = self.batch_examples(step)
        seed = derive_seed(self.net.seed, "rollout", step)
        return self.net(examples, num_samples=self.config.group_size, task=self.task, seed=seed,
                        backend=self._synced_rollout_backend(), branching=self.branching)

    def score(self, traces: list[Trace]) -> Batch:
        """Rewards of a step's passes, their group advantages, and the rows the loss runs on."""
        c = self.config
        rewards = torch.tensor([t.reward for t in traces], dtype=torch.float32).view(-1, c.group_size)  # (B, G)
        metrics = {}
        if self.critic is not None:  # collm-cc: the reward minus the critic's value of what the message's layer saw
            with self._update_kernels():
                per_layer, metrics = self.critic.step(traces, rewards.flatten(), c.std_normalize, c.max_grad_norm)
            per_message = {(p, node): per_layer[(p, layer_of(node))] for p, t in enumerate(traces) for node in t.messages}
        elif self.branching is None:  # the group baseline: one advantage per pass, shared by its messages
            advantages = group_advantages(rewards, std_normalize=c.std_normalize).flatten()  # (B * G,)
            per_message = {(p, node): advantages[p].item() for p, t in enumerate(traces) for node in t.messages}
        else:  # a tree: each layer's samples against their siblings
            layers = [a.flatten() for a in tree_advantages(rewards, self.branching, std_normalize=c.std_normalize)]
            per_message = {(p, node): layers[self.net.topology.node(node).layer][p].item()
                           for p, t in enumerate(traces) for node in t.messages}
        keep_pass = torch.ones(len(traces), dtype=torch.bool)
        if c.drop_tied_groups:
            keep_pass = (rewards.max(1).values != rewards.min(1).values).repeat_interleave(c.group_size)
        return Batch(rewards, self._rows(traces, per_message, keep_pass), metrics)

    def _rows(self, traces: list[Trace], advantages: dict[tuple[int, str], float], keep_pass: torch.Tensor) -> Rows:
        """One row per message a trainable node wrote, with its advantage; a message several passes
        share (a tree's upstream sample) is one row."""
        prompts, completions, adapters, temperatures, row_adv = [], [], [], [], []
        seen: set[int] = set()
        for p, trace in enumerate(traces):
            if not keep_pass[p]:
                continue
            for node_id, message in trace.messages.items():
                adapter = self.net.adapters[node_id]
                if adapter not in self.trainable or not message.token_ids or id(message) in seen:
                    continue
                seen.add(id(message))
                node = self.net.topology.node(node_id)
                prompts.append(message.prompt_ids)
                completions.append(message.token_ids)  # the stop token included: stopping is learned
                adapters.append(adapter)
                temperatures.append(node.generation.temperature)
                row_adv.append(advantages[(p, node_id)])
        return Rows(prompts, completions, adapters, temperatures, torch.tensor(row_adv, dtype=torch.float32))

    def update(self, rows: Rows) -> dict[str, float]:
        """Backward, clip and step, `epochs` times over the same rows (PPO's ratios when more)."""
        c = self.config
        old = self._fixed_logprobs(rows, adapters=True) if c.epochs > 1 else None  # the policy that sampled
        ref = self._fixed_logprobs(rows, adapters=False) if c.kl_coef > 0 else None  # the base model
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step) * group.get("lr_scale", 1.0)  # older checkpoints: none
        totals = {"loss/policy": 0.0, "loss/kl": 0.0, "kl/mean": 0.0, "grad/norm": 0.0, "update/skipped": 0.0,
                  "update/rows": float(len(self._needed(rows)))}
        for _ in range(c.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            losses = self.backward(rows, old, ref)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm or float("inf"))
            if not losses["finite"] or not torch.isfinite(grad_norm):
                self._bad_step()
                totals["update/skipped"] = 1.0
                self.optimizer.zero_grad(set_to_none=True)
                continue
            self.bad_steps = 0
            self.optimizer.step()
            totals["grad/norm"] = grad_norm.item()
            for key in ("loss/policy", "loss/kl", "kl/mean"):
                totals[key] += losses[key] / c.epochs
        return totals

    def backward(self, rows: Rows, old: list | None = None, ref: list | None = None) -> dict:
        """Accumulate the gradient of the batch's loss into the adapters, micro-batch by micro-batch.

        The loss is `grpo.policy_loss` (+ `kl_coef` x `grpo.kl_loss`) with weights computed once
        for the whole batch, so micro-batches add up to the loss of the batch exactly. `old` and
        `ref`: per micro-batch log-probs of the sampling policy (PPO) and of the base model (KL).
        Stops at the first non-finite loss (`finite` False), before it reaches a gradient.
        """
        with self._update_kernels():
            return self._backward(rows, old, ref)

    def _update_kernels(self) -> contextlib.AbstractContextManager:
        backend = self.net.backend
        return update_kernels(getattr(backend, "device", None), getattr(getattr(backend, "model", None), "dtype", None))

    def _backward(self, rows: Rows, old: list | None, ref: list | None) -> dict:
        c, backend = self.config, self.net.backend
        lengths = torch.tensor([len(x) for x in rows.completions])
        mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).float()  # (R, T)
        weights_all = loss_weights(mask, c.loss_aggregation)  # (R, T)
        losses = {"loss/policy": 0.0, "loss/kl": 0.0, "kl/mean": 0.0, "finite": True}
        for k, idx in enumerate(self._chunks(rows)):
            part = rows.select(idx)
            logprobs, _ = token_logprobs(backend, part.prompts, part.completions, part.adapters, part.temperatures)
            # the rows' advantages and weights are built on the CPU; the log-probs are where the model is
            weights = weights_all[idx, : logprobs.shape[1]].to(logprobs.device)
            sampled = old[k] if old is not None else logprobs.detach()
            loss = policy_loss(logprobs, sampled, part.advantages.to(logprobs.device), weights, c.clip_eps)
            losses["loss/policy"] += loss.item()
            if ref is not None:
                kl = kl_loss(logprobs, ref[k], weights)
                loss = loss + c.kl_coef * kl
                losses["loss/kl"] += c.kl_coef * kl.item()
                losses["kl/mean"] += kl.item()
            if not torch.isfinite(loss):
                losses["finite"] = False
                break
            loss.backward()
        return losses

    def _needed(self, rows: Rows) -> list[int]:
        """Rows the loss must run. A row whose advantage is 0 (its group tied) adds exactly nothing
        to the policy gradient, clipped or not, so without a KL term it is not run at all; its
        tokens still count in the weights, so the loss keeps the scale of the mean over every token."""
        return [i for i in range(len(rows)) if self.config.kl_coef > 0 or rows.advantages[i] != 0]

    def _chunks(self, rows: Rows) -> list[list[int]]:
        """Micro-batches of the needed rows, rows of one node and one input side by side, so that
        `token_logprobs` runs a prompt they share once per chunk."""
        needed = sorted(self._needed(rows), key=lambda i: (rows.adapters[i], rows.prompts[i]))
        size = self.config.micro_batch_rows
        return [needed[i : i + size] for i in range(0, len(needed), size)]

    @torch.no_grad()
    def _fixed_logprobs(self, rows: Rows, adapters: bool) -> list[torch.Tensor]:
        """Per micro-batch log-probs under the adapters as they are now, or under the base model,
        on the kernels the update's own forward runs on."""
        out = []
        with self._update_kernels():
            for idx in self._chunks(rows):
                part = rows.select(idx)
                names = part.adapters if adapters else [None] * len(idx)
                out.append(token_logprobs(self.net.backend, part.prompts, part.completions, names, part.temperatures)[0])
        return out

    def _bad_step(self) -> None:
        self.bad_steps += 1
        if self.bad_steps >= self.config.max_bad_steps:
            raise NeuromasError(
                f"step {self.step}: non-finite loss or gradient {self.bad_steps} times in a row; "
                f"lower train.lr or set train.max_grad_norm"
            )

    def evaluate(self, limit: int | None = None) -> EvalResult:
        """Greedy accuracy on the run's eval split (`limit`, else `train.eval_limit`, else `eval.limit`)."""
        e = self.eval_config
        limit = limit or self.config.eval_limit or e.limit
        return evaluate(self.net, self.task, e.split, limit, e.batch_size, progress=False)

    def train(self) -> list[dict]:
        """Run the remaining steps with periodic evaluation, logging and checkpoints."""
        c = self.config
        with Progress("train step", c.steps, self.progress, completed=self.step) as bar, StopSignals() as stop:
            while self.step < c.steps:
                grew = self.grow_if_due()
                metrics = self.train_step()
                if grew:
                    metrics["growth/calls_per_pass"] = float(self.net.calls_per_pass)
                if c.eval_every and self.step % c.eval_every == 0 and self.step < c.steps:
                    result = self.evaluate()
                    if self.run_dir is not None:  # what the network answered, e.g. right before a growth
                        write_traces(result.traces, self.run_dir / f"traces_step-{self.step:06d}.jsonl")
                    metrics.update({"eval/acc": result.acc, "eval/ci_low": result.ci_low, "eval/ci_high": result.ci_high})
                metrics["step"] = self.step
                self.history.append(metrics)
                if self.log is not None:
                    self.log.write(self.step, metrics)
                    if self.step % c.checkpoint_every == 0 or self.step == c.steps or stop.signum is not None:
                        save_checkpoint(self.run_dir, self.step, self.net, self.state_dict(), c.keep_checkpoints,
                                        self.run_config)
                bar.update(self.step, human_line(metrics))
                if stop.signum is not None and self.step < c.steps:
                    self._stop(stop.signum)
        if self.log is not None:
            self.log.close()
        return self.history

    def _stop(self, signum: int) -> None:
        if self.log is not None:
            self.log.close()
        name = signal.Signals(signum).name
        if self.run_dir is None:
            raise TrainingStopped(f"{name}: training stopped after step {self.step} of {self.config.steps}", signum)
        raise TrainingStopped(f"{name}: training stopped after step {self.step} of {self.config.steps}, its checkpoint "
                              "saved", signum, self.run_dir)

    # checkpoint state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "bad_steps": self.bad_steps,
            "stages_done": self.stages_done,
            "config": self.config.model_dump(mode="json"),
            **({"critic": self.critic.state_dict()} if self.critic is not None else {}),
        }

    def resume(self) -> bool:
        """Continue from the newest intact checkpoint in the run directory, if there is one
        (newer damaged ones are refused, each in one logged line: checkpoint.py)."""
        found = newest_intact_checkpoint(self.run_dir, self.run_config) if self.run_dir is not None else None
        if found is None:
            if self.log is not None:
                self.log.truncate_after(0)  # stopped before its first checkpoint: every logged step is redone
            return False
        saved = saved_network_config(found)
        if saved != self.net.config:  # the run grew before this checkpoint: rebuild that shape
            net = Network(saved, model=self.net.model_config, backend=self.net.base_backend, seed=self.net.seed)
            self._bind(net.attach_adapters())
        state = load_checkpoint(found, self.net)
        self.optimizer.load_state_dict(state["optimizer"])
        self.bad_steps = state["bad_steps"]
        self.stages_done = state.get("stages_done", 0)
        if self.critic is not None and "critic" in state:
            self.critic.load_state_dict(state["critic"])
        self.step = state["step"]
        if self.log is not None:
            self.log.truncate_after(self.step)  # steps logged after the checkpoint are redone
            self.growths = read_growths(self.run_dir)
        return True


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of a (0-based) step: a pure function of the step, so resuming needs no
    scheduler state and a step without an update still advances the schedule."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / (config.warmup_steps + 1)
    if config.lr_schedule == "constant" or config.steps <= config.warmup_steps:
        return config.lr
    progress = min((step - config.warmup_steps) / (config.steps - config.warmup_steps), 1.0)
    factor = 1 - progress if config.lr_schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * factor


def generated_tokens(traces: list[Trace]) -> int:
    """Tokens the step's rollout generated: a message shared by several passes (a tree's) counts once."""
    return sum(m.num_tokens for m in {id(m): m for t in traces for m in t.messages.values()}.values())


def node_statistics(traces: list[Trace]) -> dict[str, float]:
    """Per node: mean message length and mean negative log-prob per token (an entropy estimate)."""
    stats: dict[str, float] = {}
    ids = dict.fromkeys(node_id for t in traces for node_id in t.messages)  # a grown net's new nodes may sit out
    for node_id in ids:
        messages = list({id(t.messages[node_id]): t.messages[node_id] for t in traces if node_id in t.messages}.values())
        tokens = sum(len(m.token_ids) for m in messages)
        stats[f"node/{node_id}/tokens"] = tokens / len(messages)
        stats[f"node/{node_id}/entropy"] = -sum(sum(m.logprobs) for m in messages) / max(tokens, 1)
    return stats


def human_line(metrics: dict[str, float]) -> str:
    """A step in one line: mean sampled reward, share of tied groups (no signal), loss, gradient
    norm, tokens generated in the rollouts, seconds; and the held-out accuracy when measured."""
    line = (f"reward {metrics['reward/mean']:.3f} tied {metrics['reward/tied_fraction']:.2f} "
            f"loss {metrics['loss/policy']:+.4f} |g| {metrics['grad/norm']:.3f} "
            f"{metrics['tokens/total']:.0f} tokens {metrics['time/step_s']:.0f}s")
    if "eval/acc" in metrics:
        line += f" eval {100 * metrics['eval/acc']:.1f}%"
    return line
