"""Decode attention in bfloat16 on CPU: transformers' SDPA against ours (query heads packed).

Without a mask transformers runs a one-token query with `enable_gqa=True`, which torch's CPU
kernel does slowly in bfloat16; a bf16 model on CPU packs the query heads onto the key/value
heads instead (`neuromas.models._packed_decode_sdpa`).
Two measurements, each alternating the two implementations in this one process, so that the
ratio holds on a noisy machine even where the absolute figures do not:

- the kernel alone: one decode step's attention (batch 128, 9 query heads over 3 KV heads,
  150 cached tokens, head size 64, no mask: a `[2, 1]` layer's 8 x G 8 rows on the embedded model);
- a rollout: a `[2, 1]` network on 8 arithmetic questions x 8 samples, 24 tokens at temperature
  0.7 (the claims recipe), generated tokens per second.

    python -m benchmarks.decode_attention [--rounds 3]
    python -m benchmarks.decode_attention --smoke     # 2 inputs x 2 samples, 4 tokens; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from benchmarks.common import peak_rss_gb, table, write_results
from neuromas import tasks
from neuromas.config import ModelConfig
from neuromas.models import PACKED_DECODE_SDPA, _packed_decode_sdpa
from neuromas.network import Network

IMPLEMENTATIONS = {"sdpa": sdpa_attention_forward, PACKED_DECODE_SDPA: _packed_decode_sdpa}


def kernel_ms(rounds: int, repeats: int = 20) -> dict[str, list[float]]:
    """Milliseconds per decode-step attention call, per implementation, one figure per round."""
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    q = torch.randn(128, 9, 1, 64).bfloat16()
    k, v = torch.randn(128, 3, 150, 64).bfloat16(), torch.randn(128, 3, 150, 64).bfloat16()
    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for _ in range(rounds):
        for name, attention in IMPLEMENTATIONS.items():
            attention(module, q, k, v, None, scaling=0.125)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                attention(module, q, k, v, None, scaling=0.125)
            times[name].append((time.perf_counter() - start) / repeats * 1000)
    return times


def rollout_tokens_per_s(rounds: int, inputs: int, samples: int, tokens: int) -> dict[str, list[float]]:
    """Generated tokens per second of a `[2, 1]` rollout, per implementation, one figure per round."""
    task = tasks.load("arith", operands=4, digits=1)
    questions = [e.input for e in task.examples("test")[:inputs]]
    config = {"layers": [2, 1], "generation": {"max_new_tokens": tokens, "temperature": 0.7}}
    net = Network(config, model=ModelConfig(dtype="bfloat16"), seed=0)
    model = net.backend.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under PEFT's wrapper
    net([questions[0]], num_samples=1)  # warm-up: first-call allocations
    speed: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for _ in range(rounds):
        for name in IMPLEMENTATIONS:
            base.set_attn_implementation(name)
            start = time.perf_counter()
            traces = net(questions, num_samples=samples, task=task)
            speed[name].append(sum(t.tokens for t in traces) / (time.perf_counter() - start))
    base.set_attn_implementation(PACKED_DECODE_SDPA)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--smoke", action="store_true", help="2 inputs x 2 samples, 4 tokens, 1 round; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.inputs, args.samples, args.tokens = 1, 2, 2, 4

    kernel = kernel_ms(args.rounds)
    rollout = rollout_tokens_per_s(args.rounds, args.inputs, args.samples, args.tokens)
    ours, theirs = PACKED_DECODE_SDPA, "sdpa"
    metrics = {
        "kernel_ms_sdpa": [round(x, 2) for x in kernel[theirs]],
        "kernel_ms_packed_decode": [round(x, 2) for x in kernel[ours]],
        "kernel_speedup": round(statistics.median(kernel[theirs]) / statistics.median(kernel[ours]), 2),
        "rollout_tokens_per_s_sdpa": [round(x, 1) for x in rollout[theirs]],
        "rollout_tokens_per_s_packed_decode": [round(x, 1) for x in rollout[ours]],
        "rollout_speedup": round(statistics.median(rollout[ours]) / statistics.median(rollout[theirs]), 2),
        "threads": torch.get_num_threads(),
        "peak_rss_gb": round(peak_rss_gb(), 3),
    }
    markdown = (
        f"bfloat16 on CPU, {torch.get_num_threads()} thread(s), {args.rounds} alternating rounds. Kernel: one decode "
        f"step's attention, batch 128, 9 query heads over 3 KV heads, 150 cached tokens, no mask. Rollout: a [2, 1] network, "
        f"{args.inputs} questions x {args.samples} samples, up to {args.tokens} tokens at temperature 0.7.\n\n"
        + table(["decode attention", "kernel ms (per round)", "rollout tokens/s (per round)"], [
            ["transformers' SDPA in bf16", ", ".join(f"{x:.1f}" for x in kernel[theirs]),
             ", ".join(f"{x:.1f}" for x in rollout[theirs])],
            ["SDPA with the query heads packed (ours)", ", ".join(f"{x:.1f}" for x in kernel[ours]),
             ", ".join(f"{x:.1f}" for x in rollout[ours])],
        ])
        + f"\n\nMedian speed-up: kernel **{metrics['kernel_speedup']}x**, rollout **{metrics['rollout_speedup']}x**."
    )
    write_results("decode_attention", vars(args), metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
