"""Issue 18: does a jointly trained network beat a trained single agent? The task ladder and the campaign.

    python -m benchmarks.claims ladder                 # untrained greedy accuracy on the candidate tasks
    python -m benchmarks.claims pilot --tasks arith-3x2 --lrs 5e-4 1e-3   # short runs to fix a task's recipe
    python -m benchmarks.claims run --tasks arith-3x2 bbh-object_counting --seeds 0 1 2 [--commit]
    python -m benchmarks.claims report                 # statistics and plots of every finished run
    python -m benchmarks.claims ablate --tasks arith-sumprod-mix   # accuracy with messages blanked
    python -m benchmarks.claims run --smoke --tasks arith-4x1 --arms net21 single   # the machinery, end to end

Tasks are the configs under `configs/claims/` (one per task: its message length and training
recipe, shared by every arm). Arms differ only in the network (`ARMS`):

    single          [1], one rank-24 LoRA: the 3-node networks' trainable parameters
    single-compute  the same, trained 3x the steps: about the networks' rollout tokens (3 calls a pass)
    net21           [2, 1], rank 8 per node, every node sees the whole input (the paper's setting)
    net21-slices    [2, 1], first-layer node i sees part i of the input, the readout the input too
    net21-msgs      [2, 1] with slices, the readout sees only the two messages (input_to_all: false):
                    the network must combine its parts
    neuromas3       [1, 1, 1], rank 8 per node (the paper's NeuroMAS-3)

Levers (issue 18 item 9), run when asked for by name:

    net21-tree       net21 with tree rollouts (train.branching [G/2, 4] over 2G passes: the calls of G
                     independent passes), each node judged against its own siblings
    net21-msgs-tree  net21-msgs with tree rollouts
    net21-msgs-tree8 net21-msgs with 8 readouts of each first-layer pair (branching [G/4, 8], 2G passes
                     for 20 calls an input at G 8): a larger group over the same messages, for a
                     readout whose combining earns a reward of ~0.03 (claims_combine "sampled")
    net31-msgs-tree8 the same with three first-layer nodes of rank 6 (four nodes, the single agent's
                     parameters) and 22 calls an input: parts of two numbers on six-number sums
    net321-msgs-tree8 three parts in a binary tree [3, 2, 1] of rank-4 nodes (explicit edges: L2N1
                     adds parts 1-2, L2N2 relays part 3, the readout adds two), branching [2, 1, 8]
    net21-answers-tree8 net21-msgs-tree8 with every node told the answer format (network.answer_format:
                     all): each message is asked to end in "Answer: <n>", one rule to read parts by
    net21-slices-tree8 net21-msgs-tree8 with the readout also reading the question: where the
                     parts are another operation than the combining step ("(9*4)+(6*7)?"), only
                     the question says how to combine what the messages hold
    net21-question-tree8 net21-msgs-tree8 with the readout also reading the question without its
                     data (input_to_all: question): told what to do with the numbers it reads
    net21-question-answers-tree8 net21-question-tree8 with every node told the answer format
    net421-question-tree8 four parts reduced in a binary tree [4, 2, 1] of rank-3 nodes (21 of the
                     single agent's 24): each middle node adds two parts under its half's question,
                     the readout adds the two sums under the whole question (input_to_all: question)
    net21-grown      [1, 1] for half the steps, then its first layer widened to 2 with fade-in
    net21-readout-lr net21 with the readout's learning rate twice the task's (train.readout_lr)
    net2221-grown-tree8 claim (b): net21-msgs-tree8 for the task's steps S, then deepened to [2, 2, 1]
                     for S/2 and to [2, 2, 2, 1] for S/2 (fade-in over S/8; trees of the new shape throughout);
                     each inserted layer one-to-one (fan_in 1), its nodes relays of the layer below
    net221-msgs-tree8, net2221-msgs-tree8  the grown shapes from scratch (middle layers one-to-one), 1.5 S
                     and 2 S steps
    net2221-grownskip-tree8, net221-skip-tree8, net2221-skip-tree8  the same, each deepening keeping the
                     old reads as skip edges (the readout still reads the first layer), and the shapes
                     from scratch with the same skip edges

The slices arms run only on tasks that split (`split_input`). Every (task, arm, seed) is one
`neuromas run` directory, `runs/claims/<task>/<arm>/seed<k>`, run in a child process; a run
started but not finished (no results.json) is continued with `neuromas run --resume` from its
newest checkpoint, a finished one is reused. A started run keeps the steps it started with;
`--extend` lets finished runs train on to a larger `--steps` (from their last checkpoint). After
each finished run the report is recomputed from all finished runs: `benchmarks/results/claims.{json,md,png}`,
`claims_goal.png`, the arms that meet issue 18's goal against the single agents (`goal`), and
`claims_growth.png`, claim (b)'s grown arms against their shapes from scratch.
Run directories (checkpoints and all) are not committed; what the report reads from each finished
run is, in `benchmarks/results/claims_runs/` (`finished_runs`), so a session that starts on a fresh
checkout keeps every run finished before it and trains only the missing ones.

Statistics (DESIGN.md section 5): answers are paired by example id and seeds by seed number;
an arm's accuracy is the mean over seeds with a 95% bootstrap interval resampling seeds and
questions; the network-minus-single difference gets the same paired bootstrap. Untrained arms
(each run's evaluation before training; the same for every seed, since a LoRA starts as the
identity) get a Wilson interval. The division of labour (item 6) is read from traces: how often
the readout answers what a first-layer node answered, how often the first-layer nodes agree,
and on split tasks how often every part was solved and whether the readout combined them.

The ladder runs each candidate's untrained `[1]` and `[2, 1]` (and on split tasks the two
slices arms) with `train.steps=0`, one run directory each under `runs/claims/ladder/`, and
writes `benchmarks/results/claims_ladder.{json,md}`.

Every model job runs in a child process with `--threads` threads (OMP_NUM_THREADS, default 1).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from benchmarks.common import (
    RESULTS,
    ROOT,
    machine,
    neuromas,
    pyplot,
    run_child,
    run_or_reuse,
    set_args,
    smoke_runs,
    write_results,
)
from neuromas.config import NetworkConfig
from neuromas.configfile import load_config
from neuromas.files import atomic_write
from neuromas.plan import plan_deepen
from neuromas.rl.metrics import read_metrics
from neuromas.trace import read_traces

CONFIGS = ROOT / "configs" / "claims"


def repo_relative(path: Path) -> str:
    """A path as the results files record it: relative to the repository, never this machine's."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
RUNS = ROOT / "runs" / "claims"
ARCHIVE = RESULTS / "claims_runs"
N_BOOT = 10_000


# ---- tasks and arms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    splits: bool = False  # the task cuts its input into parts (`split_input`): the slices arms apply
    additive: bool = False  # the parts' answers add up to the whole answer (sums, counts)
    binary: bool = False  # two possible answers: a constant answer scores about half
    question: bool = False  # the input's question separates from its data (Task.question): the question arms apply


TASKS: dict[str, TaskInfo] = {
    "arith-2x2": TaskInfo(),
    "arith-3x2": TaskInfo(splits=True, additive=True),
    "arith-4x1": TaskInfo(splits=True, additive=True),
    "arith-3x1-mix": TaskInfo(splits=True, additive=True),  # trained on 2-3 numbers
    "arith-4x1-mix": TaskInfo(splits=True, additive=True),  # trained on 2-4 numbers
    "arith-4x2": TaskInfo(splits=True, additive=True),
    "arith-4x2-mix": TaskInfo(splits=True, additive=True, question=True),  # trained on 2-4 numbers
    "arith-4teens-mix": TaskInfo(splits=True, additive=True),  # four numbers of 10-19, trained on 2-4 numbers
    "arith-6x1-mix": TaskInfo(splits=True, additive=True),  # trained on 2-6 numbers
    "arith-sumprod-mix": TaskInfo(splits=True, additive=True, question=True),  # (a*b)+(c*d), trained on 2-4 numbers
    "arith-sumprod6-mix": TaskInfo(splits=True, additive=True),  # the same of 2-6: sums up to 72
    "arith-sumprod5-flat-mix": TaskInfo(splits=True, additive=True),  # a*b+c*d of 1-5, no parentheses
    "arith-diffsum-mix": TaskInfo(splits=True, additive=True),  # (a-b)+(c-d) >= 0, trained on 2-4 numbers
    "arith-diffsum1-mix": TaskInfo(splits=True, additive=True),  # the same with no part below 1: copying is never right
    "arith-diffsum1-34": TaskInfo(splits=True, additive=True),  # the same of 1-9, trained on 3-4 numbers only
    "arith-diffsum-unshown": TaskInfo(splits=True, additive=True),  # the same, no answer among the question's numbers
    "arith-diffsum-unshown-mix": TaskInfo(splits=True, additive=True),  # the same trained on 2-4 numbers
    "lookup-16": TaskInfo(splits=True),  # one part holds the answer: the readout combines by choosing
    "lookup-32": TaskInfo(splits=True),
    "lookup2-16-mix": TaskInfo(splits=True, additive=True, question=True),  # the sum of two keys, one in each half; trained on 2-16 lines
    "lookup4-8-mix": TaskInfo(splits=True, additive=True, question=True),  # the sum of four 1-digit keys, two in each half; trained on 2-4 keys
    "lookup4-8-mix48": TaskInfo(splits=True, additive=True, question=True),  # the same with 48-token messages
    "lookup4-8-len48": TaskInfo(splits=True, additive=True, question=True),  # the same test, trained on four keys in 4-8 lines
    "lookup4-8-both48": TaskInfo(splits=True, additive=True, question=True),  # the same test, trained on 2-4 keys in 4-8 lines
    "story-4-mix": TaskInfo(splits=True, additive=True, question=True),  # four 1-9 counts in sentences, trained on 2-4 people
    "digitsum-4-mix": TaskInfo(splits=True, additive=True),  # the digit sum of 4-digit numbers, trained on 2-4 digits
    "bbh-object_counting": TaskInfo(splits=True, additive=True),
    "bbh-object_counting-mix": TaskInfo(splits=True, additive=True),  # trained on runs of 1 to all items
    "bbh-word_sorting": TaskInfo(splits=True),
    "bbh-boolean_expressions": TaskInfo(binary=True),
    "bbh-dyck_languages": TaskInfo(),
    "bbh-multistep_arithmetic_two": TaskInfo(),
    "gsm8k": TaskInfo(),
}


@dataclass(frozen=True)
class Arm:
    layers: tuple[int, ...]
    rank: int
    slices: str | None = None  # None: every node sees the input; "input": slices, readout sees the input; "msgs": not;
    #                            "question": slices, the readout sees the question without its data
    steps_factor: float = 1  # x the task's steps: the equal-compute single agent (and its eval_every), claim (b)'s shapes
    network: bool = True
    tree: bool = False  # tree rollouts (train.branching) at the calls per input of G independent passes
    readout_branch: int = 4  # with tree: readout samples of each first-layer sample
    grown: bool = False  # trained as [1, 1] for half the steps, then widened to `layers` with fade-in (grow.py)
    readout_lr_factor: float | None = None  # the readout's learning rate, x the task's (train.readout_lr)
    edges: tuple[str, ...] = ()  # explicit edges (network.edges) instead of dense layers
    algorithm: str = "reinforce"  # train.algorithm: "collm-cc" is the CoLLM-CC baseline (issue 22)
    answer_format: str = "readout"  # network.answer_format: "all" tells every node the task's answer format
    deepened: tuple[float, ...] = ()  # claim (b): starts without these layers after layer 1 and inserts one
    #                                   (its width in `layers`) after each fraction of the task's steps, with fade-in
    relay: bool = False  # middle layers one-to-one (connect: sparse, fan_in 1): node i reads node i below it
    keep_edges: bool = False  # claim (b): each deepening keeps the old reads as skip edges (DeepenOp.keep_edges);
    #                           a shape from scratch gets the skip edges its growth would have left

    def total_steps(self, steps: int) -> int:
        return round(steps * self.steps_factor)

    def branching(self, depth: int, group_size: int) -> list[int]:
        """train.branching of a `depth`-layer shape: G/4 first-layer samples (2G passes), one sample of
        each middle layer per sample above it, `readout_branch` readouts of each."""
        return [2 * group_size // self.readout_branch, *[1] * (depth - 2), self.readout_branch]

    def _layers(self, widths) -> str:
        """network.layers of `widths`, its middle layers one-to-one where the arm relays."""
        if not self.relay:
            return str(list(widths))
        middle = [f"{{width: {w}, connect: sparse, fan_in: 1}}" for w in widths[1:-1]]
        return f"[{', '.join([str(widths[0]), *middle, str(widths[-1])])}]"

    def grown_skip(self) -> list[str]:
        """The skip edges of `layers` grown from [first, readout] by one-to-one deepenings after layer
        1 that keep their edges (the claim (b) growth), so a shape from scratch has the grown graph."""
        config = NetworkConfig(layers=[self.layers[0], self.layers[-1]])
        for width in reversed(self.layers[1:-1]):  # each growth inserts right after layer 1
            config = plan_deepen(config, 1, width, 1 if self.relay else None, keep_edges=True).config
        return config.skip

    def overrides(self, steps: int, eval_every: int, group_size: int, lr: float | None = None) -> list[str]:
        """`--set`s of this arm, for a task whose recipe trains `steps` steps with G = `group_size`
        (and learning rate `lr`, which only an arm with a readout learning rate of its own needs).

        A tree arm samples G / 2 first-layer pairs per input and 4 readouts of each: 2G passes for
        2 x G/2 + 2G = 3G calls, what G independent passes of a 3-node network cost. Layers between
        the first and the readout sample once per sample above them (factor 1: they share its
        advantage), so the readout keeps its group over the same messages."""
        evals = eval_every if self.network else round(eval_every * self.steps_factor)  # a single agent: 8 evaluations
        sets = [f"network.layers={self._layers(self.layers)}", f"network.adapters.rank={self.rank}",
                f"train.steps={self.total_steps(steps)}", f"train.eval_every={evals}"]
        if self.deepened:  # claim (b): [2, 1] -> [2, 2, 1] -> [2, 2, 2, 1], each grown shape's tree from its growth on
            start = [self.layers[0], *self.layers[1 + len(self.deepened):]]
            sets[0] = f"network.layers={self._layers(start)}"
            stages = []
            fan_in = ", fan_in: 1" if self.relay else ""
            keep = ", keep_edges: true" if self.keep_edges else ""
            for k, fraction in enumerate(self.deepened):
                stages.append(f"{{at_step: {round(steps * fraction)}, deepen: [{{after_layer: 1, width: "
                              f"{self.layers[1 + k]}{fan_in}{keep}}}], ramp_steps: {max(1, steps // 8)}, "
                              f"branching: {self.branching(len(start) + k + 1, group_size)}}}")
            sets.append(f"train.growth=[{', '.join(stages)}]")
        elif self.keep_edges:  # from scratch: the graph of the grown run's last shape
            sets.append(f"network.skip={self.grown_skip()}")
        if self.grown:  # the first layer widened once the [1, 1] network has trained half the steps
            half = self.total_steps(steps) // 2
            sets[0] = f"network.layers={[1] * len(self.layers)}"
            sets.append(f"train.growth=[{{at_step: {half}, widen: [{{layer: 1, width: {self.layers[0]}}}], "
                        f"ramp_steps: {max(1, half // 4)}}}]")
        if self.tree:
            branching = self.branching(len(self.layers) - len(self.deepened), group_size)  # the first shape's
            sets += [f"train.group_size={2 * group_size}", f"train.branching={branching}"]
        else:
            sets.append(f"train.group_size={group_size}")
        if self.slices:
            sets.append("network.input_slices=true")
        if self.slices == "msgs":
            sets.append("network.input_to_all=false")
        if self.slices == "question":
            sets.append("network.input_to_all=question")
        if self.edges:
            sets.append(f"network.edges={list(self.edges)}")
        if self.answer_format != "readout":
            sets.append(f"network.answer_format={self.answer_format}")
        if self.algorithm != "reinforce":
            sets.append(f"train.algorithm={self.algorithm}")
        if self.readout_lr_factor is not None:
            if lr is None:
                raise ValueError("an arm with readout_lr_factor needs the task's learning rate")
            sets.append(f"train.readout_lr={lr * self.readout_lr_factor:g}")
        return sets


ARMS: dict[str, Arm] = {
    "net21": Arm((2, 1), 8),
    "net21-slices": Arm((2, 1), 8, slices="input"),
    "net21-msgs": Arm((2, 1), 8, slices="msgs"),
    "net21-tree": Arm((2, 1), 8, tree=True),
    "net21-msgs-tree": Arm((2, 1), 8, slices="msgs", tree=True),
    "net21-msgs-tree8": Arm((2, 1), 8, slices="msgs", tree=True, readout_branch=8),
    # Three parts where two would each be too hard (arith-6x1-mix: a node's part of three numbers was
    # right on ~20% at step 70 of net21-msgs-tree8, of two on ~70% untrained); rank 6 keeps the four
    # nodes at the single agent's parameters.
    "net31-msgs-tree8": Arm((3, 1), 6, slices="msgs", tree=True, readout_branch=8),
    # The same three parts as a binary tree, so that every node adds at most two numbers (net31's
    # readout, adding three partial sums, never did): L2N1 adds parts 1 and 2, L2N2 relays part 3.
    "net321-msgs-tree8": Arm((3, 2, 1), 4, slices="msgs", tree=True, readout_branch=8,
                             edges=("L1N1->L2N1", "L1N2->L2N1", "L1N3->L2N2", "L2N1->L3N1", "L2N2->L3N1")),
    # Every node told the answer format, each message asked to end in "Answer: <n>" (arith-diffsum1-mix: the
    # readout learned to add each message's first number from the mix's one-number parts, wrong on
    # "9 - 7 = 2."; adding what follows "Answer:" is right on both kinds of part).
    "net21-answers-tree8": Arm((2, 1), 8, slices="msgs", tree=True, readout_branch=8, answer_format="all"),
    # The readout reads the question beside the two messages (arith-sumprod-mix: messages-only, the
    # readout added two correct products on at most 1 of ~100 questions in 70 steps).
    "net21-slices-tree8": Arm((2, 1), 8, slices="input", tree=True, readout_branch=8),
    # The readout reads the question without its data beside the two messages (lookup2-16-mix: the
    # messages-only readout, not told to add, copied one number with a training reward of exactly 0 for
    # 28 steps; with the whole input it can answer alone).
    "net21-question-tree8": Arm((2, 1), 8, slices="question", tree=True, readout_branch=8),
    # The same with every node told the answer format (arith-sumprod-mix seed 0: 40.6% at step 10, then
    # 5.5% at step 50, once the first-layer nodes wrote prose where a product had been, "1*6 is a
    # multi-character string ...", as they did for the mix's one-number parts, "What is 7?", where the
    # readout reads the number alone; a message that ends in "Answer: 6" carries its part either way).
    "net21-question-answers-tree8": Arm((2, 1), 8, slices="question", tree=True, readout_branch=8,
                                        answer_format="all"),
    # Four parts in a binary tree where every node's step is one an untrained node does (lookup4-8-mix:
    # a part of two keys -- find both, add them -- was right on 0.8%): each first-layer node finds one
    # key's number in its quarter, L2N1 and L2N2 add two of them, the readout adds the two sums; the
    # later layers read the question without its data, so they are told what to do with the numbers.
    # Rank 3: seven nodes at 21 of the single agent's 24.
    "net421-question-tree8": Arm((4, 2, 1), 3, slices="question", tree=True, readout_branch=8,
                                 edges=("L1N1->L2N1", "L1N2->L2N1", "L1N3->L2N2", "L1N4->L2N2",
                                        "L2N1->L3N1", "L2N2->L3N1")),
    # net21-msgs trained by CoLLM-CC (issue 22): the critic values what each layer saw, so the readout's
    # advantage is taken against its messages -- the credit that net21-msgs-tree8's readout groups give.
    # G independent passes of 3 calls: the calls of the tree arms, plus the critic's forward and backward.
    "net21-msgs-collm": Arm((2, 1), 8, slices="msgs", algorithm="collm-cc"),
    "net21-grown": Arm((2, 1), 8, grown=True),
    # Claim (b), issue 18 item 10: net21-msgs-tree8 (3 nodes) trained the task's steps S, deepened to
    # [2, 2, 1] (5) for S/2 more, then to [2, 2, 2, 1] (7) for S/2 more; each new layer is inserted after
    # layer 1 with clones of the first layer's adapters and fades in over S/8 steps; the rollouts are trees
    # of the grown shape from the growth on. Against the same shapes trained from scratch, 1.5 S and 2 S steps.
    # The inserted layers are one-to-one (relay): dense, each clone read both partial sums and relayed one, and
    # the grown network fell from 23.4% to 7.8-10.9% (arith-4x1-mix seed 0, docs/claims-record.md).
    "net2221-grown-tree8": Arm((2, 2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=2,
                               deepened=(1.0, 1.5), relay=True),
    "net221-msgs-tree8": Arm((2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=1.5,
                             relay=True),
    "net2221-msgs-tree8": Arm((2, 2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=2,
                              relay=True),
    # The same growth keeping every old edge (DeepenOp.keep_edges): the readout still reads the first layer
    # by skip edges beside the relays, so the parts it learned to add stay in its prompt. The one-to-one
    # relays alone lost them (23.4% -> 15.6% -> 5.5%, seed 0): a relay handed "8 + 3 = 11" writes about it.
    # The shapes from scratch get the same skip edges.
    "net2221-grownskip-tree8": Arm((2, 2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=2,
                                   deepened=(1.0, 1.5), relay=True, keep_edges=True),
    "net221-skip-tree8": Arm((2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=1.5,
                             relay=True, keep_edges=True),
    "net2221-skip-tree8": Arm((2, 2, 2, 1), 8, slices="msgs", tree=True, readout_branch=8, steps_factor=2,
                              relay=True, keep_edges=True),
    # Twice the readout's learning rate: at one learning rate a LoRA step grows with the rank (about
    # sqrt(rank) at the start, up to rank once aligned), so the rank-8 readout steps 1.7-3x less far
    # than the rank-24 single agent that solves the same task alone.
    "net21-readout-lr": Arm((2, 1), 8, readout_lr_factor=2.0),
    "neuromas3": Arm((1, 1, 1), 8),
    "single": Arm((1,), 24, network=False),
    "single-compute": Arm((1,), 24, steps_factor=3, network=False),
}
# The campaign's tasks, as the ladder picked them from measured numbers (claims_ladder.md): the
# default of run, pilot and report (the ladder's default is every task).
CAMPAIGN = ("arith-4x1", "arith-2x2", "bbh-object_counting")
SINGLES = ("single", "single-compute")
# Claim (b) (issue 18 item 10): a grown network against the same shapes from scratch; rank 8 per node as
# the network it grows from, so they are compared with each other, not with the single agent
GROWTH_DESIGNS = (("net2221-grown-tree8", "net221-msgs-tree8", "net2221-msgs-tree8"),  # the grown run, then
                  ("net2221-grownskip-tree8", "net221-skip-tree8", "net2221-skip-tree8"))  # its shapes from scratch
GROWTH_ARMS = tuple(arm for design in GROWTH_DESIGNS for arm in design)
LEVERS = tuple(a for a, arm in ARMS.items() if arm.tree or arm.grown or arm.readout_lr_factor)  # issue 18 item 9: tried one at a time
OTHER_ALGORITHMS = tuple(a for a, arm in ARMS.items() if arm.algorithm != "reinforce")  # baselines, asked for by name
MAX_CONSTANT = 0.3  # a task where one answer scores this much is not picked (pick)
# Issue 18's goal, per task: a trained network at least 5 points above the single agent at equal
# trainable parameters with the 95% CI of the paired difference above zero, and not below the single
# agent at equal compute (its mean difference there at least zero), over at least 3 seeds.
GOAL_POINTS = 0.05
GOAL_SEEDS = 3
LADDER_ARMS = ("single", "net21", "net21-slices", "net21-msgs")
# Message budgets checked against another (the ladder's second table): does the budget cut answers?
BUDGET_CHECKS = {"arith-2x2": 16, "bbh-object_counting": 96, "lookup2-16-mix": 48}


def task_arms(task: str, arms: list[str]) -> list[str]:
    """The arms that apply to a task: the slices arms only where the input splits, the question
    arms only where its question separates from its data."""
    return [a for a in arms if (not ARMS[a].slices or TASKS[task].splits)
            and (ARMS[a].slices != "question" or TASKS[task].question)]


# ---- run directories -----------------------------------------------------------------------------


def ensure_run(run_dir: Path, config: Path, overrides: list[str]) -> bool:
    """Make `run_dir` a finished `neuromas run` (common.run_or_reuse: reuse it when finished, resume
    it when started, else start it in a child process). True if it ran now."""
    if (run_dir / "results.json").is_file():
        return False
    command = ["run", str(config), "--out", str(run_dir), *set_args(overrides), "--quiet"]
    run_or_reuse(run_dir, run_dir.name, lambda: neuromas(*command))
    return True


def has_checkpoint(run_dir: Path) -> bool:
    return any((p / "trainer.pt").is_file() for p in (run_dir / "checkpoints").glob("step-*"))


def extend_run(run_dir: Path, steps: int) -> bool:
    """Let a finished run train on to `steps`: raise its saved train.steps and drop its results so
    that `--resume` continues from its last checkpoint. False where there is nothing to extend.

    The results and the ablation of the step it was extended from are kept beside it under that
    step's name: the ablation is recomputed for the final network once the run finishes again."""
    path = run_dir / "config.yaml"
    if not (run_dir / "results.json").is_file() or not has_checkpoint(run_dir):
        return False
    config = yaml.safe_load(path.read_text())
    if config["train"]["steps"] >= steps:
        return False
    done = config["train"]["steps"]
    config["train"]["steps"] = steps
    atomic_write(path, yaml.safe_dump(config, sort_keys=False))
    (run_dir / "results.json").rename(run_dir / f"results_step-{done}.json")
    if (run_dir / ABLATION).is_file():
        (run_dir / ABLATION).rename(run_dir / f"ablation_step-{done}.json")
    if (run_dir / "traces_after.jsonl").is_file():  # the step's answers, to pair it with another arm at that step
        shutil.copyfile(run_dir / "traces_after.jsonl", run_dir / f"traces_step-{done:06d}.jsonl")
    return True


# ---- statistics (pure numpy; tests/test_claims.py checks them by hand) --------------------------


def bootstrap_mean(matrix: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a (seeds x questions) matrix and a 95% percentile interval from a two-way bootstrap:
    each replicate draws seeds with replacement and, independently, questions with replacement
    (the same questions for every seed: the answers are paired by question), and takes the mean of
    the drawn cells. Drawing with replacement is a multinomial count per seed and per question, so
    a replicate's mean is w_seeds @ M @ w_questions, computed for all replicates at once.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"expected a non-empty (seeds x questions) matrix, got shape {matrix.shape}")
    n_seeds, n_questions = matrix.shape
    rng = np.random.default_rng(seed)
    w_seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot) / n_seeds
    w_questions = rng.multinomial(n_questions, np.full(n_questions, 1 / n_questions), size=n_boot) / n_questions
    replicates = np.einsum("bs,sq,bq->b", w_seeds, matrix, w_questions)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(matrix.mean()), float(low), float(high)


def correctness(runs: dict[int, dict[str, float]], seeds: list[int], ids: list[str]) -> np.ndarray:
    """(seeds x questions) rewards, rows in `seeds` order, columns in `ids` order."""
    return np.array([[runs[s][i] for i in ids] for s in seeds], dtype=float)


def paired(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> tuple[list[int], list[str], np.ndarray]:
    """Two arms' rewards by seed and example id, paired: (shared seeds, shared ids, a - b matrix)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return [], [], np.zeros((0, 0))
    ids = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
    return seeds, ids, correctness(a, seeds, ids) - correctness(b, seeds, ids)


def diff_summary(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> dict | None:
    """a minus b: mean difference with its paired two-way bootstrap CI, and per seed."""
    seeds, ids, diff = paired(a, b)
    if not seeds or not ids:
        return None
    mean, low, high = bootstrap_mean(diff)
    return {"mean": round(mean, 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
            "per_seed": [round(float(row.mean()), 4) for row in diff], "seeds": seeds, "n": len(ids)}


def arm_accuracy(rewards: dict[int, dict[str, float]]) -> dict:
    """Mean accuracy over seeds with the two-way bootstrap CI, and each seed's accuracy."""
    seeds = sorted(rewards)
    ids = sorted(set.intersection(*(set(rewards[s]) for s in seeds)))
    matrix = correctness(rewards, seeds, ids)
    mean, low, high = bootstrap_mean(matrix)
    return {"acc": round(mean, 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
            "per_seed": [round(float(row.mean()), 4) for row in matrix], "seeds": seeds, "n": len(ids)}


def wilson(correct: float, n: int) -> tuple[float, float]:
    from neuromas.eval import (
        wilson_interval,  # imports the network (and torch): only when needed
    )

    return wilson_interval(round(correct), n)


# ---- the division of labour (item 6) -----------------------------------------------------------


def first_layer(trace: dict) -> list[str]:
    return sorted(node for node in trace["messages"] if node.startswith("L1N"))


def division_of_labour(traces: list[dict], task, info: TaskInfo, slices: bool, examples: dict | None = None,
                       n_examples: int = 3, topology=None) -> dict:
    """What a network's nodes did, from greedy traces (one per question).

    A node's answer is its message as the task's parser reads it (numbers: the "Answer:" line's
    number, else the last number). Fractions of questions:
      readout_copies     the readout's answer equals some first-layer node's answer
      first_layer_agree  all first-layer nodes give the same (parsed) answer
      node_right         per first-layer node: its answer is the whole task's target
      parts_right        (slices, where the task knows each part's answer) every part solved (a part
                         whose answer is None has none to give: lookup's parts without the key)
      right_given_parts  of those, how often the readout's answer is right (it combined them)
      parts_stated       (slices, numeric parts) every part solved as the message states it: the first
                         number after its first "=" ("5*8 = 40\n\nThe 5*8 is the number of bytes ..."
                         states 40; the parser reads its last number), else the parsed answer
      parts_sum_right    (slices, additive tasks) the first-layer answers add up to the target
      readout_is_sum     (slices, additive tasks) the readout answers the sum of the first layer's
    plus `examples`: what each node wrote on the first `n_examples` questions. Given the `topology`
    of a network deeper than two layers, on an additive task with slices, also per node past the
    first layer (`later_nodes`): `adds`, its answer is the sum of the answers it reads, and for
    nodes below the readout `right`, its answer is the sum of the parts under it (the numbers a
    reduction tree would pass up); and `right_given_inputs`, the readout right when every node it
    reads was right. Where a deep tree stops, the first-layer figures alone cannot say.
    """
    if not traces or len(first_layer(traces[0])) == 0 or len(traces[0]["messages"]) < 2:
        return {}
    nodes = first_layer(traces[0])
    width = len(nodes)
    counts = {"readout_copies": 0, "first_layer_agree": 0, "parts_right": 0, "parts_known": 0,
              "right_given_parts": 0, "parts_stated": 0, "parts_numeric": 0,
              "parts_sum_right": 0, "readout_is_sum": 0,
              "inputs_right": 0, "right_given_inputs": 0}
    node_right = dict.fromkeys(nodes, 0)
    deep = bool(slices and info.additive and topology is not None and len(topology.layers) > 2)
    later = {}  # in layer order, the readout last
    if deep:
        later = {node.id: {"right": 0, "adds": 0} for node in topology.nodes
                 if node.layer > 0 and node.id != topology.readout}
        later[topology.readout] = {"right": 0, "adds": 0}
    for trace in traces:
        example = (examples or {}).get(trace["example_id"])
        answers = [task.extract(trace["messages"][n]["text"], example) for n in nodes]
        readout = trace.get("prediction")
        target = task.normalize(trace["target"])
        counts["readout_copies"] += readout is not None and readout in answers
        counts["first_layer_agree"] += width > 1 and answers[0] is not None and len(set(answers)) == 1
        for node, answer in zip(nodes, answers):
            node_right[node] += answer == target
        if not slices or example is None:
            continue
        part_targets = task.part_targets(example, width)
        if part_targets is not None:
            counts["parts_known"] += 1
            # a part whose target is None has nothing to solve (lookup: the key is elsewhere)
            targets = [None if t is None else task.normalize(t) for t in part_targets]
            solved = any(t is not None for t in targets) and all(t is None or a == t for a, t in zip(answers, targets))
            counts["parts_right"] += solved
            counts["right_given_parts"] += solved and (trace.get("reward") or 0) > 0
            if all(t is None or _is_int(t) for t in targets):
                counts["parts_numeric"] += 1
                stated = [_stated(trace["messages"][n]["text"], a) for n, a in zip(nodes, answers)]
                counts["parts_stated"] += (any(t is not None for t in targets)
                                           and all(t is None or s == t for s, t in zip(stated, targets)))
        if info.additive and all(_is_int(a) for a in answers):
            total = str(sum(int(a) for a in answers))
            counts["parts_sum_right"] += total == target
            counts["readout_is_sum"] += readout == total
        if deep and part_targets is not None:
            _count_reduction(trace, task, example, dict(zip(nodes, part_targets)), dict(zip(nodes, answers)),
                             topology, later, counts)
    n = len(traces)
    out = {"n": n, "readout_copies": counts["readout_copies"] / n,
           "first_layer_agree": counts["first_layer_agree"] / n if width > 1 else None,
           "node_right": {node: right / n for node, right in node_right.items()}}
    if slices and counts["parts_known"]:
        out["parts_right"] = counts["parts_right"] / counts["parts_known"]
        out["right_given_parts"] = (counts["right_given_parts"] / counts["parts_right"]
                                    if counts["parts_right"] else None)
        if counts["parts_numeric"]:
            out["parts_stated"] = counts["parts_stated"] / counts["parts_numeric"]
    if slices and info.additive:
        out["parts_sum_right"] = counts["parts_sum_right"] / n
        out["readout_is_sum"] = counts["readout_is_sum"] / n
    if later and counts["parts_known"]:
        out["later_nodes"] = {node: {"right": None if node == topology.readout else c["right"] / counts["parts_known"],
                                     "adds": c["adds"] / counts["parts_known"]} for node, c in later.items()}
        out["right_given_inputs"] = (counts["right_given_inputs"] / counts["inputs_right"]
                                     if counts["inputs_right"] else None)
    out["examples"] = [{"input": t["input"], "target": t["target"],
                        **{node: _short(msg["text"]) for node, msg in t["messages"].items()}}
                       for t in traces[:n_examples]]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _count_reduction(trace: dict, task, example, parts: dict, first_answers: dict, topology, later: dict,
                     counts: dict) -> None:
    """One question's contribution to `later_nodes` and `right_given_inputs` (see division_of_labour)."""
    answer = first_answers | {node: task.extract(trace["messages"][node]["text"], example) for node in later}
    expected = dict(parts)  # lookup: None where the part holds no key
    for node in later:  # layer order: a node's sources are settled before it
        reads = topology.node(node).reads
        known = [expected[source] for source in reads if expected[source] is not None]
        expected[node] = sum(int(t) for t in known) if known else None
        sources = [answer[source] for source in reads]
        later[node]["adds"] += (all(_is_int(a) for a in sources)
                                and answer[node] == str(sum(int(a) for a in sources)))
        later[node]["right"] += expected[node] is not None and answer[node] == str(expected[node])
    inputs_right = all(expected[source] is None or answer[source] == str(expected[source])
                       for source in topology.node(topology.readout).reads)
    counts["inputs_right"] += inputs_right
    counts["right_given_inputs"] += inputs_right and (trace.get("reward") or 0) > 0


def _later_nodes(per_seed: list[dict]) -> str:
    """`later_nodes` as "L2N1 25/84, L3N1 -/2" (right / adds %, means over seeds); empty for two layers."""
    nodes = per_seed[0].get("later_nodes") or {}

    def mean(node, key):
        values = [d["later_nodes"][node][key] for d in per_seed if d.get("later_nodes")]
        return None if None in values else float(np.mean(values))

    return ", ".join(f"{node} {_pct(mean(node, 'right')) or '-'}/{_pct(mean(node, 'adds'))}" for node in nodes)


STATED = re.compile(r"=\s*(-?\d+)")


def _stated(text: str, parsed: str | None) -> str | None:
    """The number a message states as its result: the first after an "=", else what the parser read."""
    match = STATED.search(text)
    return match.group(1) if match else parsed


def _is_int(text: str | None) -> bool:
    return text is not None and text.lstrip("-").isdigit()


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_run_task(run_dir: Path):
    """The config of a run (as it saved it), its task and the task's examples by id."""
    config = load_config(run_dir / "config.yaml")
    return (config, *task_of(config))


def task_of(config):
    """A run config's task and its examples by id."""
    from neuromas import tasks

    task = tasks.load(config.task.name, **config.task.params)
    return task, {ex.id: ex for split in ("test", "train") for ex in task.examples(split)}


def topology_of(config):
    """A run's network as built (who reads whom)."""
    from neuromas.topology import Topology

    return Topology.from_config(config.network)


def rewards_of(traces: list[dict]) -> dict[str, float]:
    return {t["example_id"]: float(t.get("reward") or 0.0) for t in traces}


def best_constant(traces: list[dict], task) -> float:
    """Accuracy of always giving the most common target: what a policy collapsed to one answer scores."""
    counts: dict[str, int] = {}
    for t in traces:
        key = task.normalize(t["target"])
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values()) / len(traces) if traces else 0.0


def any_line_right(traces: list[dict], task, examples: dict) -> float:
    """A parsing check: the share of readout messages of which some line, read alone (and again
    without a leading "Label:"), parses to the target. An upper bound on what a more forgiving
    parser could score; far above the accuracy, the parser would be the problem."""
    right = 0
    for t in traces:
        example, target = examples.get(t["example_id"]), task.normalize(t["target"])
        lines = [line for line in t["answer"].splitlines() if line.strip()]
        variants = lines + [line.split(":", 1)[1] for line in lines if ":" in line[:20]]
        right += any(task.extract(v, example) == target for v in variants)
    return right / max(len(traces), 1)


def truncated(traces: list[dict]) -> float:
    """Share of messages the token budget cut off."""
    messages = [m for t in traces for m in t["messages"].values()]
    return sum(not m.get("finished", True) for m in messages) / max(len(messages), 1)


# ---- what the readout reads (item 6): its accuracy with messages blanked ---------------------------

DIVISION_VERSION = 2  # of `division_of_labour`'s measures; 2: parts_stated. Archived runs below it are remeasured
ABLATION = "ablation.json"  # in a finished network run's directory; archived with the run


def blank_sets(topology) -> dict[str, frozenset[str]]:
    """The intact network, each node but the readout blanked alone, and all of them at once."""
    hidden = [node.id for node in topology.nodes if not node.is_readout]
    return {"intact": frozenset(), **{node: frozenset({node}) for node in hidden}, "messages": frozenset(hidden)}


def write_ablation(run_dir: Path) -> dict[str, float]:
    """Greedy accuracy of a finished network run's final network on its test questions, intact and
    with messages blanked (`report.stats.blanked_accuracy`), into `run_dir/ablation.json`.

    Why: where the readout also reads the question (`net21-slices-tree8`), the traces cannot say
    whether it adds what the messages hold or solves the question alone; the accuracy with every
    message blanked can. "intact" repeats the run's final evaluation, a check that the network was
    loaded as it was trained."""
    import neuromas as nm
    from neuromas.report.stats import blanked_accuracy

    config, task, _ = load_run_task(run_dir)
    net = nm.Network.load(run_dir)
    examples = task.examples(config.eval.split)[: config.eval.limit]
    acc = blanked_accuracy(net, task, examples, blank_sets(net.topology), config.eval.batch_size)
    result = {name: round(value, 4) for name, value in acc.items()} | {"n": len(examples)}
    atomic_write(run_dir / ABLATION, json.dumps(result, indent=2) + "\n")
    return result


def ensure_ablation(run_dir: Path) -> None:
    """`write_ablation` of a finished network run, in a child process (a model job, like a run)."""
    if (run_dir / "results.json").is_file() and not (run_dir / ABLATION).is_file():
        print(f"{repo_relative(run_dir)}: accuracy with messages blanked", flush=True)
        run_child([sys.executable, "-m", "benchmarks.claims", "ablate-run", str(run_dir)], cwd=ROOT)


# ---- the ladder ----------------------------------------------------------------------------------


def ladder_cell(task: str, arm: str, runs: Path, tokens: int | None = None) -> dict:
    """One untrained greedy evaluation (its own run directory, reused once finished); `tokens`
    overrides the task's message budget."""
    run_dir = runs / "ladder" / task / (arm if tokens is None else f"{arm}-tokens{tokens}")
    a = ARMS[arm]
    sets = a.overrides(steps=0, eval_every=0, group_size=2)  # steps 0: evaluate only
    sets += [] if tokens is None else [f"network.generation.max_new_tokens={tokens}"]
    started = time.perf_counter()
    ran = ensure_run(run_dir, CONFIGS / f"{task}.yaml", sets)
    results = json.loads((run_dir / "results.json").read_text())
    traces = read_traces(run_dir / "traces.jsonl")
    config, task_obj, examples = load_run_task(run_dir)
    e = results["eval"]
    cell = {"acc": round(e["acc"], 4), "ci_low": round(e["ci_low"], 4), "ci_high": round(e["ci_high"], 4),
            "n": e["n"], "calls_per_q": e["calls_per_q"], "tokens_per_q": round(e["tokens_per_q"], 1),
            "max_new_tokens": config.network.generation.max_new_tokens, "truncated": round(truncated(traces), 4),
            "seconds": round(e["seconds"], 1), "dtype": results.get("model_dtype"),
            "best_constant": round(best_constant(traces, task_obj), 4),
            "any_line_right": round(any_line_right(traces, task_obj, examples), 4)}
    if a.network:
        cell["division"] = division_of_labour(traces, task_obj, TASKS[task], bool(a.slices), examples,
                                              topology=topology_of(config))
    if ran:
        print(f"  {task} {arm}: {100 * cell['acc']:.1f}% in {time.perf_counter() - started:.0f}s", flush=True)
    return cell


def pick(ladder: dict, low: float = 0.10, high: float = 0.50) -> tuple[list[str], list[str]]:
    """Apply item 1's criteria to measured numbers: (picked tasks, one line of reasoning per task).

    In the window: the untrained single node between `low` and `high`, and no constant answer
    scoring `MAX_CONSTANT` or more (a two-answer task: about half; RL finds such an answer and
    stays there, BBH Navigate's lesson in DESIGN.md). Picked: those, nearest the middle of the
    window first, at most four; if fewer than three, tasks whose 95% CI reaches the window ("~10%"),
    nearest first; then, if none of the picks is one, a task that is not arithmetic and one that
    splits, from the same two groups.
    """
    inside, near, why = [], [], {}
    for task, cells in ladder.items():
        single, info = cells["single"], TASKS[task]
        acc, constant = single["acc"], single.get("best_constant")
        kind = ("splits" if info.splits else "does not split") + (", arithmetic" if task.startswith("arith") else "")
        head = f"`{task}`: single {100 * acc:.1f}%"
        head += f" (best constant {100 * constant:.1f}%)" if constant is not None else ""
        if info.binary or (constant is not None and constant >= MAX_CONSTANT):
            why[task] = (head + ", but " + ("two possible answers" if info.binary else "one answer is common")
                         + (f" (always answering the commonest scores {100 * constant:.1f}%)"
                            if constant is not None else "")
                         + ": RL can win by collapsing to it")
        elif low <= acc <= high:
            inside.append(task)
            why[task] = f"{head}, inside the window ({kind})"
        elif single.get("ci_high", acc) >= low and single.get("ci_low", acc) <= high:
            near.append(task)
            why[task] = f"{head}, outside {100 * low:.0f}-{100 * high:.0f}% but its 95% CI reaches it ({kind})"
        else:
            why[task] = f"{head}, outside {100 * low:.0f}-{100 * high:.0f}%"
    inside.sort(key=lambda t: abs(ladder[t]["single"]["acc"] - (low + high) / 2))
    near.sort(key=lambda t: min(abs(ladder[t]["single"]["acc"] - low), abs(ladder[t]["single"]["acc"] - high)))
    picked = inside[:4]
    if len(picked) < 3:
        picked += near[:3 - len(picked)]
    for need in (lambda t: not t.startswith("arith"), lambda t: TASKS[t].splits):
        if not any(need(t) for t in picked):
            extra = next((t for t in inside + near if need(t) and t not in picked), None)
            if extra:
                picked = picked[:3] + [extra]
    lines = [f"{why[t]}: " + ("**picked**" if t in picked else "not picked") for t in ladder]
    if len(picked) < 3:
        lines.append(f"Only {len(picked)} task(s) meet the criteria.")
    return picked, lines


def ladder_markdown(ladder: dict, picked: list[str], reasons: list[str], budgets: dict | None = None) -> str:
    rows = ["| task | arm | tokens | acc % | 95% CI | any line % | best constant % | calls/q | tokens/q | cut off % | "
            "parts right % | parts add up % | readout copies % | readout = sum % | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def pct(value):
        return "" if value is None else f"{100 * value:.1f}"

    for task, cells in ladder.items():
        for arm, c in cells.items():
            d = c.get("division", {})
            rows.append(
                f"| {task} | {arm} | {c['max_new_tokens']} | {100 * c['acc']:.1f} | [{100 * c['ci_low']:.1f}, "
                f"{100 * c['ci_high']:.1f}] | {pct(c.get('any_line_right'))} | {pct(c.get('best_constant'))} "
                f"| {c['calls_per_q']:g} | {c['tokens_per_q']:.1f} | {pct(c['truncated'])} "
                f"| {pct(d.get('parts_right'))} | {pct(d.get('parts_sum_right'))} | {pct(d.get('readout_copies'))} "
                f"| {pct(d.get('readout_is_sum'))} | {c['seconds']:.0f} |")
    dtypes = sorted({str(c.get("dtype")) for cells in ladder.values() for c in cells.values()})
    text = [
        f"Untrained greedy accuracy, embedded SmolLM2-135M-Instruct ({', '.join(dtypes)}), one model job at a "
        "time with 1 thread. n = 128 questions of each task's test split (configs/claims/<task>.yaml: "
        "arith's fixed split; BBH a seeded 128 of its 250 rows; GSM8K a seeded 128 of its test file). "
        "`tokens` is every node's message budget, `cut off` the share of messages it cut, `any line` a parsing "
        "check (some line of the answer, read alone or without a leading \"Label:\", is right: an upper bound "
        "for a more forgiving parser), `best constant` the "
        "accuracy of always giving the test split's most common answer (where a policy that collapses to one "
        "answer lands). Arms: `single` [1]; "
        "`net21` [2, 1], every node sees the input; `net21-slices` first-layer node i sees part i, the "
        "readout the input too; `net21-msgs` the same, the readout only the messages.",
        "", *rows, "",
        "Division of labour on the untrained networks (a node's answer is its message as the task's parser "
        "reads it: for numbers the \"Answer:\" number, else the last number): `parts right` every "
        "first-layer node solved its own part (tasks that know each part's answer: arith, word_sorting); "
        "`parts add up` the first-layer answers add up to the target (sums and counts); `readout copies` the "
        "readout's answer is one first-layer node's; `readout = sum` it is the sum of theirs.",
        *budget_markdown(ladder, budgets or {}),
        "", "## Picked for the campaign", "",
        "Criteria (issue 18, item 1): the untrained single node between 10% and 50%, at least three tasks, at "
        "least one not arithmetic, one that splits into independent parts. " +
        (f"Picked: {', '.join(f'`{t}`' for t in picked)}." if picked else "No task meets them."),
        "", *[f"- {line}" for line in reasons], *constant_warning(ladder, picked),
    ]
    return "\n".join(text) + "\n"


def constant_warning(ladder: dict, picked: list[str]) -> list[str]:
    """Picked tasks where one constant answer scores about what the untrained model does."""
    close = [t for t in picked if ladder[t]["single"].get("best_constant", 0) >= 0.75 * ladder[t]["single"]["acc"]]
    if not close:
        return []
    return ["", f"On {', '.join(f'`{t}`' for t in close)} always giving the commonest answer scores about what the "
            "untrained model does: a trained arm's gain means it learned the task only when it rises well above "
            "that level (claims.md lists what each node writes)."]


def budget_markdown(ladder: dict, budgets: dict) -> list[str]:
    """The budget check: each checked task's single and [2, 1] at its budget and at another one."""
    if not budgets:
        return []
    rows = ["", "Message budget check: the same untrained evaluations with another budget.", "",
            "| task | arm | tokens | acc % | 95% CI | cut off % | tokens/q |", "|---|---|---|---|---|---|---|"]
    for task, by_arm in budgets.items():
        for arm, longer in by_arm.items():
            for c in (ladder.get(task, {}).get(arm), longer):
                if c:
                    rows.append(f"| {task} | {arm} | {c['max_new_tokens']} | {100 * c['acc']:.1f} | "
                                f"[{100 * c['ci_low']:.1f}, {100 * c['ci_high']:.1f}] | {100 * c['truncated']:.1f} "
                                f"| {c['tokens_per_q']:.1f} |")
    return rows


def cmd_ladder(args) -> None:
    """Measure the ladder of `args.tasks`, keeping the other tasks' cells of the results file (a
    task added later is measured alone, without rerunning the rest)."""
    path = RESULTS / "claims_ladder.json"
    kept = json.loads(path.read_text())["metrics"] if path.is_file() else {}
    ladder: dict = {t: cells for t, cells in kept.get("ladder", {}).items() if t not in args.tasks}
    budgets: dict = {t: cells for t, cells in kept.get("budget_checks", {}).items() if t not in args.tasks}
    cells = [(task, arm, None) for task in args.tasks for arm in task_arms(task, list(LADDER_ARMS))]
    cells += [(task, arm, tokens) for task, tokens in BUDGET_CHECKS.items() if task in args.tasks
              for arm in ("single", "net21")]
    for task, arm, tokens in cells:
        cell = ladder_cell(task, arm, args.runs, tokens)
        if tokens is None:
            ladder.setdefault(task, {})[arm] = cell
        else:
            budgets.setdefault(task, {})[arm] = cell
        picked, reasons = pick(ladder)
        config = {"configs": [f"configs/claims/{t}.yaml" for t in ladder], "greedy": True,
                  "threads": args.threads, "runs": repo_relative(args.runs / "ladder"), "budget_checks": BUDGET_CHECKS}
        write_results("claims_ladder", config, {"ladder": ladder, "budget_checks": budgets, "picked": picked},
                      ladder_markdown(ladder, picked, reasons, budgets))


# ---- the campaign: reading runs ----------------------------------------------------------------


def read_run(run_dir: Path, info: TaskInfo, slices: bool) -> dict:
    """One finished (task, arm, seed) run: rewards by question before and after, cost, curves, nodes."""
    results = json.loads((run_dir / "results.json").read_text())
    before = read_traces(run_dir / "traces_before.jsonl")
    after = read_traces(run_dir / "traces_after.jsonl")
    steps = read_metrics(run_dir)
    tokens = np.cumsum([m.get("tokens/total", 0.0) for m in steps]).tolist()
    curve = [(0, 0.0, results["before"]["acc"])]
    curve += [(m["step"], tokens[i], m["eval/acc"]) for i, m in enumerate(steps) if "eval/acc" in m]
    curve.append((results["train"]["steps"], tokens[-1] if tokens else 0.0, results["after"]["acc"]))
    run = {"before": results["before"], "after": results["after"], "steps": results["train"]["steps"],
           "train_s": round(sum(m.get("time/step_s", 0.0) for m in steps), 1),
           "rollout_tokens": tokens[-1] if tokens else 0.0, "dtype": results.get("model_dtype"),
           "environment": results.get("environment"),
           "rewards_before": rewards_of(before), "rewards_after": rewards_of(after), "curve": curve,
           "rewards_by_step": {str(int(p.stem.split("-")[1])): rewards_of(read_traces(p))
                               for p in sorted(run_dir.glob("traces_step-*.jsonl"))}}
    if len(after[0]["messages"]) > 1:
        config, task, examples = load_run_task(run_dir)
        run["division"] = division_of_labour(after, task, info, slices, examples, topology=topology_of(config))
        run["division_version"] = DIVISION_VERSION
    if (run_dir / ABLATION).is_file():
        run["ablation"] = json.loads((run_dir / ABLATION).read_text())
    return run


def finished_runs(runs: Path, tasks: list[str], arms: list[str], archive: Path | None = None) -> dict:
    """{task: {arm: {seed: run}}} for every finished run under `runs` or kept in `archive`.

    Run directories hold checkpoints and are not committed, so a later session's checkout may
    start without them: every finished run is also kept, as what `read_run` reads from it, in the
    committed archive (`benchmarks/results/claims_runs/<task>/<arm>/seed<k>.json`, beside its
    final traces gzipped). A run directory is read again whenever it is there (a run extended
    since replaces its archived self); the archive stands in for the ones that are gone.
    """
    archive = ARCHIVE if archive is None else archive
    found: dict = {}
    for task in tasks:
        for arm in task_arms(task, arms):
            by_seed = found.setdefault(task, {}).setdefault(arm, {})
            for path in sorted((archive / task / arm).glob("seed*.json")):
                if path.stem[4:].isdigit():
                    by_seed[int(path.stem[4:])] = remeasured(task, arm, int(path.stem[4:]), path)
            for run_dir in sorted((runs / task / arm).glob("seed*")):
                if (run_dir / "results.json").is_file() and run_dir.name[4:].isdigit():
                    run = read_run(run_dir, TASKS[task], bool(ARMS[arm].slices))
                    by_seed[int(run_dir.name[4:])] = run
                    archive_run(run_dir, run, archive / task / arm / f"{run_dir.name}.json")
            if not by_seed:
                del found[task][arm]
        if not found[task]:
            del found[task]
    return found


def remeasured(task: str, arm: str, seed: int, path: Path) -> dict:
    """An archived run, its division of labour measured again from its kept final traces where it
    was archived before the current measures existed (`division_version` below DIVISION_VERSION).

    Its run directory, which `read_run` measures from, is gone, but the traces and the config it
    ran under (the task's and the arm's `--set`s) are not. Left as archived: a growing arm (its
    final graph is not its config's first one) and a task that now draws other questions under the
    same ids. Measured once: the archive is rewritten."""
    run = json.loads(path.read_text())
    spec, traces_path = ARMS[arm], path.with_suffix(".traces.jsonl.gz")
    if ("division" not in run or run.get("division_version", 1) >= DIVISION_VERSION or spec.grown
            or spec.deepened or not traces_path.is_file()):
        return run
    steps, eval_every, group_size, lr = task_recipe(task)
    config = load_config(CONFIGS / f"{task}.yaml", [f"seed={seed}", *spec.overrides(steps, eval_every, group_size, lr)])
    loaded, examples = task_of(config)
    with gzip.open(traces_path, "rt", encoding="utf-8") as file:
        after = [json.loads(line) for line in file if line.strip()]
    if any(examples.get(t["example_id"]) is None or examples[t["example_id"]].input != t["input"] for t in after):
        return run  # the task draws other questions since (its config says why): the parts would not match
    run["division"] = division_of_labour(after, loaded, TASKS[task], bool(spec.slices), examples,
                                         topology=topology_of(config))
    run["division_version"] = DIVISION_VERSION
    atomic_write(path, json.dumps(run, sort_keys=True) + "\n")
    return run


def archive_run(run_dir: Path, run: dict, path: Path) -> None:
    """Keep a finished run's reading (and its final greedy traces, gzipped) where git keeps it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json.loads(json.dumps(run)), sort_keys=True) + "\n")  # tuples as lists
    traces = (run_dir / "traces_after.jsonl").read_bytes()
    with gzip.GzipFile(path.with_suffix(".traces.jsonl.gz"), "wb", mtime=0) as out:
        out.write(traces)


def archived(task: str, arm: str, seed: int, archive: Path | None = None, steps: int = 0) -> bool:
    """A run finished in an earlier session with at least `steps` steps (a shorter one is run
    again from its start when more steps are asked: its checkpoints were not kept)."""
    path = (ARCHIVE if archive is None else archive) / task / arm / f"seed{seed}.json"
    return path.is_file() and json.loads(path.read_text())["steps"] >= steps


def _steps_text(steps: int | list[int]) -> str:
    return ", ".join(map(str, steps)) if isinstance(steps, list) else str(steps)


def _steps(per_seed: list[int]) -> int | list[int]:
    """An arm's steps; per seed while some of its seeds have been extended and others not yet."""
    return per_seed[0] if len(set(per_seed)) == 1 else per_seed


def summarize(found: dict) -> dict:
    """claims.json's metrics: per task, each arm trained and untrained, and the paired differences."""
    metrics: dict = {}
    for task, by_arm in found.items():
        out = metrics.setdefault(task, {})
        for arm, by_seed in by_arm.items():
            seeds = sorted(by_seed)
            runs = [by_seed[s] for s in seeds]
            out[arm] = {**arm_accuracy({s: by_seed[s]["rewards_after"] for s in seeds}),
                        "steps": _steps([r["steps"] for r in runs]), "calls_per_q": runs[0]["after"]["calls_per_q"],
                        "tokens_per_q": round(float(np.mean([r["after"]["tokens_per_q"] for r in runs])), 1),
                        "train_s": round(float(np.mean([r["train_s"] for r in runs])), 1),
                        "rollout_tokens": round(float(np.mean([r["rollout_tokens"] for r in runs]))),
                        "dtype": runs[0]["dtype"],
                        "curves": {str(s): by_seed[s]["curve"] for s in seeds}}
            if "division" in runs[0]:
                out[arm]["division"] = {str(s): by_seed[s]["division"] for s in seeds}
            if any("ablation" in r for r in runs):
                out[arm]["ablation"] = {str(s): by_seed[s]["ablation"] for s in seeds if "ablation" in by_seed[s]}
            first = runs[0]["before"]
            low, high = wilson(first["correct"], first["n"])
            out[f"untrained-{arm}"] = {"acc": round(first["acc"], 4), "ci_low": round(low, 4),
                                       "ci_high": round(high, 4),
                                       "per_seed": [round(r["before"]["acc"], 4) for r in runs], "seeds": seeds,
                                       "steps": 0, "calls_per_q": first["calls_per_q"],
                                       "tokens_per_q": round(first["tokens_per_q"], 1), "train_s": 0.0}
        diffs = {}
        for arm in by_arm:
            if not ARMS[arm].network or arm in GROWTH_ARMS:
                continue
            diffs[arm] = {f"vs_{single}": budget_diff(by_arm[arm], by_arm[single], ARMS[single].steps_factor)
                          for single in SINGLES if single in by_arm}
        if diffs:
            out["diffs"] = diffs
        growth = growth_comparison(by_arm)
        if growth:
            out["growth"] = growth
        headline = diffs.get("net21", {})
        for single in SINGLES:
            if headline.get(f"vs_{single}"):
                out[f"diff_vs_{single.replace('-', '_')}"] = headline[f"vs_{single}"]
    return metrics


def rewards_at(run: dict, steps: int) -> dict[str, float] | None:
    """A run's greedy rewards by question after `steps` training steps: its final evaluation's, or
    the periodic one's at that step (None where the run has neither)."""
    if run["steps"] == steps:
        return run["rewards_after"]
    return run.get("rewards_by_step", {}).get(str(steps))


def budget_diff(network: dict[int, dict], single: dict[int, dict], factor: int) -> dict | None:
    """Network minus single agent, each seed's network paired with the same seed's single agent at
    the same budget: `factor` x the network's steps (3x for the equal-compute single agent).

    A single agent trained on past that budget is read at its evaluation of that step; where the
    step was not evaluated (a run extended before its answers were kept at every evaluation), its
    last step stands in, and `single_steps` says so per seed: the report marks those pairs."""
    matched, used = {}, {}
    for seed in sorted(set(network) & set(single)):
        budget = network[seed]["steps"] * factor
        at_budget = rewards_at(single[seed], budget)
        matched[seed] = at_budget if at_budget is not None else single[seed]["rewards_after"]
        used[seed] = budget if at_budget is not None else single[seed]["steps"]
    summary = diff_summary({s: network[s]["rewards_after"] for s in network}, matched)
    if summary is not None:
        summary["single_steps"] = [used[s] for s in summary["seeds"]]
        summary["network_steps"] = [network[s]["steps"] for s in summary["seeds"]]
    return summary


def growth_comparison(by_arm: dict) -> list[dict]:
    """Claim (b): the grown run read at the end of each grown stage against the same shape trained
    from scratch, paired by seed and question, at equal steps (the scratch run's end) and at equal
    rollout tokens (the scratch run's last evaluation whose rollout tokens do not exceed the grown
    run's at that step: growing costs fewer tokens, since the smaller shapes come first)."""
    rows = []
    for grown_arm, *scratch_arms in GROWTH_DESIGNS:
        rows += _growth_rows(by_arm, grown_arm, scratch_arms)
    return rows


def _growth_rows(by_arm: dict, grown_arm: str, scratch_arms: list[str]) -> list[dict]:
    grown = by_arm.get(grown_arm, {})
    rows = []
    for scratch_arm in scratch_arms:
        scratch = by_arm.get(scratch_arm, {})
        at_steps, at_tokens, grown_at, tokens_step = {}, {}, {}, {}
        for seed in sorted(set(grown) & set(scratch)):
            step = scratch[seed]["steps"]
            rewards = rewards_at(grown[seed], step)
            if rewards is None:  # the grown run has not reached that stage yet
                continue
            grown_at[seed] = rewards
            at_steps[seed] = scratch[seed]["rewards_after"]
            budget = next(tokens for s, tokens, _ in grown[seed]["curve"] if s == step)
            readable = [(s, tokens) for s, tokens, _ in scratch[seed]["curve"]
                        if tokens <= budget and (s == 0 or rewards_at(scratch[seed], s) is not None)]
            tokens_step[seed] = max(readable)[0]
            at_tokens[seed] = (rewards_at(scratch[seed], tokens_step[seed]) if tokens_step[seed]
                               else scratch[seed]["rewards_before"])
        if grown_at:
            rows.append({"grown_arm": grown_arm, "scratch": scratch_arm, "layers": list(ARMS[scratch_arm].layers),
                         "steps": scratch[next(iter(grown_at))]["steps"], "grown": arm_accuracy(grown_at),
                         "scratch_at_steps": arm_accuracy(at_steps), "scratch_at_tokens": arm_accuracy(at_tokens),
                         "scratch_tokens_steps": [tokens_step[s] for s in sorted(tokens_step)],
                         "diff_at_steps": diff_summary(grown_at, at_steps),
                         "diff_at_tokens": diff_summary(grown_at, at_tokens)})
    return rows


# ---- the campaign: writing the report --------------------------------------------------------------


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _ci(d: dict, mean: str = "acc") -> str:
    return f"{100 * d[mean]:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]" if mean == "mean" else \
        f"{100 * d[mean]:.1f} [{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}]"


def _per_seed_diffs(summary: dict, factor: int) -> str:
    """Each seed's difference; a pair not at equal budget says at which steps each side was read."""
    cells = []
    for value, net, single in zip(summary["per_seed"], summary["network_steps"], summary["single_steps"]):
        cells.append(f"{100 * value:+.1f}" + (f" ({net} vs {single} steps)" if single != net * factor else ""))
    return ", ".join(cells)


def goal(metrics: dict) -> list[dict]:
    """Every network arm with the seeds to judge it, and whether it meets issue 18's goal (GOAL_POINTS)."""
    rows = []
    for task, t in metrics.items():
        for arm, d in t.get("diffs", {}).items():
            params, compute = d.get("vs_single"), d.get("vs_single-compute")
            if not params or len(params["seeds"]) < GOAL_SEEDS:
                continue
            met = (params["mean"] >= GOAL_POINTS and params["ci_low"] > 0
                   and compute is not None and len(compute["seeds"]) >= GOAL_SEEDS and compute["mean"] >= 0)
            rows.append({"task": task, "arm": arm, "met": met, "vs_single": params, "vs_single_compute": compute})
    return rows


def goal_markdown(metrics: dict) -> list[str]:
    rows = goal(metrics)
    met = sorted({r["task"] for r in rows if r["met"]})
    lines = ["## The goal", "",
             f"Issue 18: on at least two tasks, a trained network at least {100 * GOAL_POINTS:.0f} points above the "
             "single agent at equal trainable parameters with the 95% CI of the paired difference above zero, and "
             "not below the single agent at equal compute (mean difference at least zero); every network arm with "
             f"at least {GOAL_SEEDS} seeds. Met on {len(met)} task(s)" + (f": {', '.join(met)}." if met else "."), "",
             "| task | network | acc % | vs single | vs single-compute | goal |", "|---|---|---|---|---|---|"]
    for r in rows:
        compute = _ci(r["vs_single_compute"], "mean") if r["vs_single_compute"] else "not run"
        lines.append(f"| {r['task']} | {r['arm']} | {_ci(metrics[r['task']][r['arm']])} "
                     f"| {_ci(r['vs_single'], 'mean')} | {compute} | {'**met**' if r['met'] else 'not met'} |")
    return lines + [""]


def report_markdown(metrics: dict) -> str:
    dtypes = sorted({str(m["dtype"]) for t in metrics.values() for m in t.values()
                     if isinstance(m, dict) and "dtype" in m})
    lines = [
        f"Embedded SmolLM2-135M-Instruct ({', '.join(dtypes) or 'dtype unknown'}), greedy evaluation on each task's "
        "fixed test questions (configs/claims/). `acc` is the mean over seeds; its 95% CI is a bootstrap resampling "
        "seeds and questions; untrained rows (each run's evaluation before training) have a Wilson CI. `train s` is "
        "the mean training time per run (steps only, without evaluations).", "",
        *goal_markdown(metrics), "## Every arm", "",
        "| task | arm | acc % [95% CI] | per seed | steps | calls/q | tokens/q | rollout tokens | train s |",
        "|---|---|---|---|---|---|---|---|---|"]
    for task, t in metrics.items():
        for arm, m in t.items():
            if arm.startswith("diff") or arm in ("diffs", "growth"):
                continue
            per_seed = ", ".join(_pct(a) for a in m["per_seed"])
            lines.append(f"| {task} | {arm} | {_ci(m)} | {per_seed} | {_steps_text(m['steps'])} | {m['calls_per_q']:g} "
                         f"| {m['tokens_per_q']:.1f} | {m.get('rollout_tokens', '')} | {m['train_s']:.0f} |")
    lines += ["", "Network minus single agent, in accuracy points, paired by question and seed (mean over seeds "
              "and questions, 95% CI from a bootstrap resampling both); `single` has the networks' trainable "
              "parameters, `single-compute` about their rollout tokens (3x the steps). Each network is paired "
              "with the single agent at its budget (a single agent trained longer is read at its evaluation of "
              "that step); a seed whose single agent has no evaluation there is paired with its last step, and "
              "its cell says at which steps each side was read.", "",
              "| task | network | vs single | per seed | vs single-compute | per seed |", "|---|---|---|---|---|---|"]
    for task, t in metrics.items():
        for arm, d in t.get("diffs", {}).items():
            cells = []
            for single in SINGLES:
                s = d.get(f"vs_{single}")
                cells += [_ci(s, "mean"), _per_seed_diffs(s, ARMS[single].steps_factor)] if s else ["", ""]
            lines.append(f"| {task} | {arm} | " + " | ".join(cells) + " |")
    lines += ["", "## What the nodes learned", "",
              "Means over seeds of the trained networks' final greedy traces: `copies` the readout's answer is a "
              "first-layer node's (its parsed answer: for numbers the \"Answer:\" number, else the last number); "
              "`agree` the first-layer nodes give one answer; `node right` each first-layer node's answer is the "
              "task's; with slices, `parts right` every part solved, `stated` every part solved as its message "
              "states it (the first number after an \"=\": \"5*8 = 40. The 5*8 is the number of bytes ...\" is "
              "40 there and 8 to the parser; blank where a run archived before it was measured could not be "
              "measured again from its traces: a growing arm, a task that draws other questions since), `right | parts` "
              "the readout right when the parts were, `readout = sum` the readout answers the sum of the parts' "
              "answers. Deeper trees (with slices, additive tasks): `later nodes` each node past the first layer "
              "as right / adds %, right being the sum of the parts under it and adds the sum of the answers it "
              "reads, and `right | inputs` the readout right when every node it reads was.", "",
              "| task | arm | copies % | agree % | node right % | parts right % | stated % | right given parts % "
              "| readout = sum % | later nodes right / adds % | right given inputs % |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    examples = []
    for task, t in metrics.items():
        for arm, m in t.items():
            if not isinstance(m, dict) or "division" not in m:
                continue
            per_seed = [d for d in m["division"].values() if d]
            if not per_seed:
                continue

            def mean(key, per_seed=per_seed):
                values = [d[key] for d in per_seed if d.get(key) is not None]
                return float(np.mean(values)) if values else None

            # every seed or none: a mean over the seeds still in run directories would pick seeds
            stated = _pct(mean("parts_stated")) if all("parts_stated" in d for d in per_seed) else ""
            node_right = ", ".join(f"{node} {_pct(float(np.mean([d['node_right'][node] for d in per_seed])))}"
                                   for node in per_seed[0]["node_right"])
            lines.append(f"| {task} | {arm} | {_pct(mean('readout_copies'))} | {_pct(mean('first_layer_agree'))} "
                         f"| {node_right} | {_pct(mean('parts_right'))} | {stated} "
                         f"| {_pct(mean('right_given_parts'))} "
                         f"| {_pct(mean('readout_is_sum'))} | {_later_nodes(per_seed)} "
                         f"| {_pct(mean('right_given_inputs'))} |")
            seed, first = next(iter(m["division"].items()))
            examples.append(f"**{task} / {arm}, seed {seed}**\n")
            for ex in first.get("examples", []):
                examples.append(f"- input `{_short(ex['input'], 100)}` (target `{ex['target']}`)")
                examples += [f"  - {node}: `{text}`" for node, text in ex.items() if node not in ("input", "target")]
            examples.append("")
    lines += growth_markdown(metrics)
    lines += ablation_markdown(metrics)
    lines += ["", "What each node wrote on the first three questions:", "", *examples,
              "Learning curves (greedy accuracy on the test questions against steps and against rollout tokens): "
              "`claims.png`."]
    return "\n".join(lines) + "\n"


def growth_markdown(metrics: dict) -> list[str]:
    """Claim (b)'s table (`growth_comparison`), where its runs have finished."""
    rows = [(task, row) for task, t in metrics.items() for row in t.get("growth", [])]
    if not rows:
        return []
    lines = ["", "## Claim (b): grown against the same shape from scratch", "",
             "The grown arm (net21-msgs-tree8 for the task's steps, deepened to [2, 2, 1] and then to [2, 2, 2, 1], "
             "half as many steps each; `net2221-grown-tree8` inserts one-to-one relays, `net2221-grownskip-tree8` "
             "also keeps the old reads as skip edges) read at the end of each grown stage, against that shape trained "
             "from scratch at equal steps (its end) and at equal rollout tokens (its last evaluation within the grown "
             "run's tokens, at the step given per seed); differences in points, paired by seed and question.", "",
             "| task | grown arm | shape | steps | grown % [95% CI] | scratch, equal steps % | grown - scratch | scratch, "
             "equal tokens % (steps) | grown - scratch |", "|---|---|---|---|---|---|---|---|---|"]
    for task, row in rows:
        lines.append(f"| {task} | {row['grown_arm']} | {row['layers']} | {row['steps']} | {_ci(row['grown'])} "
                     f"| {_ci(row['scratch_at_steps'])} "
                     f"| {_ci(row['diff_at_steps'], 'mean')} | {_ci(row['scratch_at_tokens'])} "
                     f"({', '.join(map(str, row['scratch_tokens_steps']))}) | {_ci(row['diff_at_tokens'], 'mean')} |")
    return lines


def ablation_markdown(metrics: dict) -> list[str]:
    """The trained networks' accuracy with messages blanked (`write_ablation`), mean over seeds."""
    rows = []
    for task, t in metrics.items():
        for arm, m in t.items():
            by_seed = m.get("ablation") if isinstance(m, dict) else None
            if not by_seed:
                continue
            names = list(next(iter(by_seed.values())))
            means = {name: float(np.mean([a[name] for a in by_seed.values()])) for name in names if name != "n"}
            blanked = ", ".join(f"{name} {_pct(value)}" for name, value in means.items() if name not in ("intact", "messages"))
            rows.append(f"| {task} | {arm} | {', '.join(by_seed)} | {_pct(means['intact'])} | {blanked} "
                        f"| {_pct(means['messages'])} |")
    if not rows:
        return []
    return ["", "Greedy accuracy of the trained networks on the test questions with messages blanked (their "
            "readers see \"(empty)\"), mean over the seeds listed: does the readout answer from the messages "
            "or alone? `intact` is the final evaluation again.", "",
            "| task | arm | seeds | intact % | one node blanked % | every message blanked % |", "|---|---|---|---|---|---|",
            *rows]


def mean_curve(curves: list[np.ndarray]) -> np.ndarray:
    """The seeds' mean (step, rollout tokens, accuracy) at each step every seed was evaluated at: a
    seed may miss an evaluation (a run stopped between its step and its evaluation), and a mean by
    position would then average different steps."""
    steps = sorted(set.intersection(*({float(step) for step in c[:, 0]} for c in curves)))
    return np.array([np.mean([c[c[:, 0] == step][0] for c in curves], axis=0) for step in steps])


def _draw_arm(row_axes, curves_by_seed: dict, colour: str, label: str, marker: str = "o", scale: float = 1.0) -> None:
    """An arm's seeds faint and their mean bold, against steps (left axes) and rollout tokens (right)."""
    curves = [np.array(c, dtype=float) for c in curves_by_seed.values()]
    mean = mean_curve(curves)
    for x, ax in enumerate(row_axes):
        for c in curves:
            ax.plot(c[:, x], scale * c[:, 2], color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(mean[:, x], scale * mean[:, 2], color=colour, marker=marker, markersize=3, label=label)


def plot(metrics: dict, path: Path) -> None:
    """One row per task: accuracy against steps and against rollout tokens, every arm (mean and seeds)."""
    plt = pyplot()
    tasks = [t for t in metrics if any("curves" in m for m in metrics[t].values() if isinstance(m, dict))]
    if not tasks:
        return
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 4 * len(tasks)), squeeze=False)
    colours = dict(zip(ARMS, itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])))  # more arms than colours
    for row, task in enumerate(tasks):
        for arm in ARMS:
            m = metrics[task].get(arm)
            if not m:
                continue
            _draw_arm(axes[row], m["curves"], colours[arm], f"{arm} ({len(m['curves'])} seeds)")
        axes[row][0].set(title=f"{task}: greedy test accuracy", xlabel="training step", ylabel="accuracy")
        axes[row][1].set(title=f"{task}: against rollout tokens", xlabel="generated rollout tokens", ylabel="accuracy")
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_goal(metrics: dict, path: Path) -> None:
    """The networks that meet the goal beside the single agents they beat, one row per task: what
    README "Does it work?" shows (claims.png has every arm of every task)."""
    plt = pyplot()
    rows = [r for r in goal(metrics) if r["met"]]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.6 * len(rows)), squeeze=False)
    styles = {"network": ("tab:blue", "o"), "single": ("tab:red", "s"), "single-compute": ("tab:orange", "^")}
    for row, r in enumerate(rows):
        for role, arm in (("network", r["arm"]), *((single, single) for single in SINGLES)):
            m = metrics[r["task"]].get(arm)
            if not m:
                continue
            colour, marker = styles[role]
            _draw_arm(axes[row], m["curves"], colour, f"{arm}, mean of {len(m['curves'])} seeds", marker, scale=100)
        axes[row][0].set(title=f"{r['task']}: greedy test accuracy", xlabel="training step", ylabel="accuracy %")
        axes[row][1].set(title=f"{r['task']}: against rollout tokens", xlabel="generated rollout tokens",
                         ylabel="accuracy %")
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_growth(metrics: dict, path: Path) -> None:
    """Claim (b), one row per task and grown design: the grown arm against its shapes trained from
    scratch, by step (the growths marked) and by rollout tokens."""
    plt = pyplot()
    rows = [(task, design) for task in metrics for design in GROWTH_DESIGNS
            if isinstance(metrics[task].get(design[0]), dict) and "curves" in metrics[task][design[0]]]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.6 * len(rows)), squeeze=False)
    styles = (("tab:blue", "o"), ("tab:red", "s"), ("tab:orange", "^"))
    for row, (task, design) in enumerate(rows):
        for arm, (colour, marker) in zip(design, styles):
            m = metrics[task].get(arm)
            if isinstance(m, dict) and "curves" in m:
                label = f"{arm} {list(ARMS[arm].layers)}{', grown' if ARMS[arm].deepened else ''}, mean of {len(m['curves'])} seeds"
                _draw_arm(axes[row], m["curves"], colour, label, marker, scale=100)
        grown = ARMS[design[0]]
        task_steps = metrics[task][design[0]]["steps"] / grown.steps_factor
        for fraction in grown.deepened:
            axes[row][0].axvline(fraction * task_steps, color="grey", linestyle=":", linewidth=1)
        axes[row][0].set(title=f"{task}: grown vs from scratch (dotted: a growth)", xlabel="training step",
                         ylabel="accuracy %")
        axes[row][1].set(title=f"{task}: against rollout tokens", xlabel="generated rollout tokens", ylabel="accuracy %")
        axes[row][1].xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(runs: Path, config: dict, smoke: bool = False) -> dict:
    """Recompute the report from every finished run of every task and arm (not only those of the
    command at hand: two campaign lanes write the same report) into benchmarks/results/claims.{json,md,png}
    and claims_goal.png, claims_growth.png;
    a smoke test prints it and draws the plot (and keeps its archive) in its temporary runs folder instead."""
    metrics = summarize(finished_runs(runs, list(TASKS), list(ARMS), runs / "archive" if smoke else ARCHIVE))
    write_results("claims", config, metrics, report_markdown(metrics), write=not smoke)
    plot(metrics, runs / "claims.png" if smoke else RESULTS / "claims.png")
    plot_goal(metrics, runs / "claims_goal.png" if smoke else RESULTS / "claims_goal.png")
    plot_growth(metrics, runs / "claims_growth.png" if smoke else RESULTS / "claims_growth.png")
    return metrics


def commit_results(message: str) -> None:
    """Commit the claims results files and the runs' archive only (explicit paths; whatever else is
    staged stays out)."""
    paths = [str(p.relative_to(ROOT)) for p in (RESULTS / "claims.json", RESULTS / "claims.md", RESULTS / "claims.png",
                                                RESULTS / "claims_goal.png", RESULTS / "claims_growth.png", ARCHIVE)
             if p.exists()]
    for attempt in range(5):  # two campaign lanes (or a person) may hold the index lock for a moment
        added = subprocess.run(["git", "add", *paths], cwd=ROOT, capture_output=True, text=True)
        if added.returncode == 0:
            subprocess.run(["git", "commit", "-m", message, "--", *paths], cwd=ROOT, check=False)
            return
        time.sleep(2 + 5 * attempt)
    print(f"claims: could not commit the results ({added.stderr.strip()}); they are written, commit them by hand",
          flush=True)


# ---- the campaign: commands ------------------------------------------------------------------------


def task_recipe(task: str) -> tuple[int, int, int, float]:
    """(train.steps, train.eval_every, train.group_size, train.lr) of a task's config."""
    config = load_config(CONFIGS / f"{task}.yaml")
    return config.train.steps, config.train.eval_every, config.train.group_size, config.train.lr


# --smoke: 2 steps (one periodic evaluation, a checkpoint each), 4 test questions, tiny batches
SMOKE = ["eval.limit=4", "train.eval_limit=4", "train.batch_size=2", "network.generation.max_new_tokens=8",
         "train.checkpoint_every=1"]


def smoke_group_size(arm: Arm) -> int:
    """The smallest G of a smoke run: 2, or for a tree arm the G whose tree has one first-layer
    sample (2G passes, all read by `readout_branch` readouts): at G 2 a tree8 arm would have none."""
    return max(2, arm.readout_branch // 2) if arm.tree else 2


def cmd_run(args) -> None:
    with smoke_runs(args):
        config = {"tasks": args.tasks, "arms": args.arms, "seeds": args.seeds, "steps": args.steps,
                  "threads": args.threads, "runs": repo_relative(args.runs)}
        for seed in args.seeds:  # seed-major: one seed of every (task, arm) before a second of any
            for task in args.tasks:
                steps, eval_every, group_size, lr = task_recipe(task)
                if args.smoke:
                    steps, eval_every = 2, 1
                steps = args.steps or steps
                for arm in task_arms(task, args.arms):
                    group = smoke_group_size(ARMS[arm]) if args.smoke else group_size
                    run_one(args, task, arm, seed, (steps, eval_every, group, lr), config)
        if args.smoke:
            smoke_resume(args)
        write_report(args.runs, config, smoke=args.smoke)


def run_one(args, task: str, arm: str, seed: int, recipe: tuple[int, int, int, float], config: dict) -> None:
    """One (task, arm, seed) with the task's (steps, eval_every, G, lr): started, resumed or reused;
    then the report is recomputed (and committed)."""
    steps, eval_every, group_size, lr = recipe
    run_dir = args.runs / task / arm / f"seed{seed}"
    total = ARMS[arm].total_steps(steps)
    if args.extend and extend_run(run_dir, total):
        print(f"{task} {arm} seed {seed}: extending to {total} steps", flush=True)
    overrides = [f"seed={seed}", *ARMS[arm].overrides(steps, eval_every, group_size, lr), *(SMOKE if args.smoke else [])]
    started = time.perf_counter()
    if not (run_dir / "results.json").is_file() and not has_checkpoint(run_dir) and archived(
            task, arm, seed, args.runs / "archive" if args.smoke else None, total):
        print(f"{task} {arm} seed {seed}: finished in an earlier session (archived), reused", flush=True)
        return
    if not ensure_run(run_dir, CONFIGS / f"{task}.yaml", overrides):
        print(f"{task} {arm} seed {seed}: finished before, reused", flush=True)
        return
    print(f"{task} {arm} seed {seed}: finished in {time.perf_counter() - started:.0f}s", flush=True)
    if ARMS[arm].network:
        ensure_ablation(run_dir)
    if not args.smoke:
        write_report(args.runs, config)
        if args.commit:
            commit_results(f"claims: {task} {arm} seed {seed} finished ({total} steps)")


def smoke_resume(args) -> None:
    """The smoke test's second half: extend one finished run by a step and continue it with --resume."""
    task, arm, seed = args.tasks[0], task_arms(args.tasks[0], args.arms)[0], args.seeds[0]
    run_dir = args.runs / task / arm / f"seed{seed}"
    steps = json.loads((run_dir / "results.json").read_text())["train"]["steps"]
    if not extend_run(run_dir, steps + 1):
        raise SystemExit(f"smoke: {run_dir} could not be extended")
    ensure_run(run_dir, CONFIGS / f"{task}.yaml", [])
    done = json.loads((run_dir / "results.json").read_text())["train"]
    if done["steps"] != steps + 1 or not done["resumed"]:
        raise SystemExit(f"smoke: {run_dir} did not resume from step {steps}: {done}")
    print(f"smoke: {run_dir} resumed from step {steps} to {done['steps']}", flush=True)


def cmd_ablate(args) -> None:
    """Accuracy with messages blanked for finished network runs that do not have it yet (runs
    finished since the ablation was added get it as they finish), then the report again."""
    for task in args.tasks:
        for arm in task_arms(task, [a for a in args.arms if ARMS[a].network]):
            for seed in args.seeds:
                ensure_ablation(args.runs / task / arm / f"seed{seed}")
    write_report(args.runs, {"runs": repo_relative(args.runs)})
    if args.commit:
        commit_results(f"claims: accuracy with messages blanked ({', '.join(args.tasks)})")


def cmd_ablate_run(args) -> None:
    print(json.dumps(write_ablation(args.run_dir)), flush=True)


def cmd_report(args) -> None:
    write_report(args.runs, {"runs": repo_relative(args.runs)})


def cmd_pilot(args) -> None:
    """Short runs per (lr, G) of the [2, 1] network and the single agent, seed 0: the training reward
    early and late, tied groups, time and tokens per step. Chosen on training reward only (the test
    questions stay unseen); set the pick in configs/claims/<task>.yaml before the campaign.

    Results are merged into the earlier claims_pilot.json by (task, run name), so a pilot of one task
    keeps the others' rows; each row names the CPU it ran on (its seconds compare only within a CPU)."""
    runs = args.runs.parent / "claims-pilot"
    earlier = RESULTS / "claims_pilot.json"
    table = json.loads(earlier.read_text())["metrics"]["runs"] if earlier.is_file() else {}
    for task in args.tasks:
        for lr in args.lrs:
            for group in args.group_sizes:
                for arm in args.pilot_arms:
                    name = f"{arm}-lr{lr:g}-g{group}"
                    run_dir = runs / task / name / "seed0"
                    overrides = ["seed=0", *ARMS[arm].overrides(args.steps, 0, group, lr), f"train.lr={lr}",
                                 f"eval.limit={args.eval_limit}"]
                    ensure_run(run_dir, CONFIGS / f"{task}.yaml", overrides)
                    steps = read_metrics(run_dir)
                    k = min(3, len(steps))
                    table.setdefault(task, {})[name] = {
                        "lr": lr, "group_size": group, "arm": arm, "steps": len(steps),
                        "reward_first": round(float(np.mean([m["reward/mean"] for m in steps[:k]])), 4),
                        "reward_last": round(float(np.mean([m["reward/mean"] for m in steps[-k:]])), 4),
                        "tied_first": round(float(np.mean([m["reward/tied_fraction"] for m in steps[:k]])), 4),
                        "step_s": round(float(np.mean([m["time/step_s"] for m in steps])), 1),
                        "tokens_per_step": round(float(np.mean([m["tokens/total"] for m in steps]))),
                        "cpu": cpu_name(),
                    }
                    config = {"steps": args.steps, "lrs": args.lrs, "group_sizes": args.group_sizes}
                    write_results("claims_pilot", config, {"runs": table, "recommended": recommend(table)},
                                  pilot_markdown(table))


def cpu_name() -> str:
    """This machine's CPU model, short ("AMD EPYC", "Intel Xeon"): pilot rows from several sessions sit in one table."""
    model = machine().split(", ")[2]
    return " ".join(w for w in model.replace("(R)", "").split() if w not in {"Processor", "CPU"})[:40]


def recommend(table: dict) -> dict:
    """Per task, the (lr, G) whose training reward rose most, averaged over the arms."""
    picks = {}
    for task, results in table.items():
        gains: dict = {}
        for r in results.values():
            gains.setdefault((r["lr"], r["group_size"]), []).append(r["reward_last"] - r["reward_first"])
        (lr, group), gain = max(gains.items(), key=lambda item: np.mean(item[1]))
        picks[task] = {"lr": lr, "group_size": group, "reward_gain": round(float(np.mean(gain)), 4)}
    return picks


def pilot_markdown(table: dict) -> str:
    picks = recommend(table)
    rows = [f"| {task} | {r['arm']} | {r['lr']:g} | {r['group_size']} | {r['reward_first']:.3f} | "
            f"{r['reward_last']:.3f} | {r['tied_first']:.2f} | {r['step_s']} | {r['tokens_per_step']} | "
            f"{r.get('cpu', 'AMD EPYC')} |" for task, results in table.items() for r in results.values()]
    return "\n".join([
        "Short training runs (seed 0) to fix each task's recipe before the campaign: the mean training reward "
        "of the first and last three steps, the share of tied groups at the start (no signal), seconds and "
        "rollout tokens per step (1 thread, beside one other job; seconds compare only within one CPU). "
        "Chosen on training reward, never on the test questions.", "",
        "| task | arm | lr | G | reward first | reward last | tied first | s/step | tokens/step | cpu |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        *[f"- `{t}`: lr {p['lr']:g}, G {p['group_size']} (reward +{p['reward_gain']:.3f})" for t, p in picks.items()],
    ]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs", type=Path, default=RUNS, help="where the run directories go")
    common.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each model job")
    ladder = sub.add_parser("ladder", parents=[common], help="untrained greedy accuracy of the candidate tasks")
    ladder.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    run = sub.add_parser("run", parents=[common], help="the campaign: every (task, arm, seed), resumable")
    sub.add_parser("report", parents=[common], help="statistics and plots of every finished run")
    run.add_argument("--arms", nargs="+", default=[a for a in ARMS if a not in LEVERS + OTHER_ALGORITHMS],
                     choices=list(ARMS), help=f"default: every arm but the levers of item 9 and the other algorithms "
                                              f"({', '.join(LEVERS + OTHER_ALGORITHMS)}), asked for by name")
    ablate = sub.add_parser("ablate", parents=[common], help="the trained networks' accuracy with messages blanked")
    ablate.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ablate.add_argument("--arms", nargs="+", default=[a for a in ARMS if ARMS[a].network], choices=list(ARMS))
    ablate.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ablate.add_argument("--commit", action="store_true", help="commit the claims results afterwards")
    ablate_run = sub.add_parser("ablate-run", parents=[common], help="(the child process of ablate) one run directory")
    ablate_run.add_argument("run_dir", type=Path)
    pilot = sub.add_parser("pilot", parents=[common], help="short runs to choose lr and G per task")
    for p in (run, pilot):
        p.add_argument("--tasks", nargs="+", default=list(CAMPAIGN), choices=list(TASKS))
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--steps", type=int, default=None, help="network steps (default: the task config's); "
                     "single-compute trains steps_factor times as many")
    run.add_argument("--extend", action="store_true", help="continue finished runs that have fewer steps than asked")
    run.add_argument("--commit", action="store_true", help="commit the claims results after each finished run")
    run.add_argument("--smoke", action="store_true", help="2 steps, 4 questions, under a temporary directory, "
                     "then one run extended and resumed; writes no results")
    pilot.add_argument("--lrs", nargs="+", type=float, default=[5e-4, 1e-3])
    pilot.add_argument("--group-sizes", nargs="+", type=int, default=[8])
    pilot.add_argument("--steps", type=int, default=10)
    pilot.add_argument("--eval-limit", type=int, default=32, help="questions of the before/after evaluations")
    pilot.add_argument("--pilot-arms", nargs="+", default=["net21", "single"], choices=list(ARMS))
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)  # every child's threads
    {"ladder": cmd_ladder, "run": cmd_run, "report": cmd_report, "pilot": cmd_pilot, "ablate": cmd_ablate,
     "ablate-run": cmd_ablate_run}[args.command](args)


if __name__ == "__main__":
    main()
