"""Rollout throughput: the layer-batched forward pass vs one `generate` per node per sample.

A [4, 2, 1] network samples G passes of a batch of arithmetic questions (temperature 1, the
training setting of 8 inputs x 8 samples). The naive way runs the same network, with the same
prompt construction, by calling transformers' `model.generate` once per node per sample, layer
by layer. Both run in this process, one after the other, on the same model; the figure is
generated tokens per second. A naive call costs the same whatever the batch, so the naive way is
timed on the first `--naive-inputs` inputs (all their samples) to keep the script short.

MFU (benchmarks/flops.py): the useful FLOPs of each way's messages (each distinct message once,
no adapters: the network here is untrained) over its time x this machine's matmul peak in the
dtype used, measured in the same run (`mfu_rollout`, `naive_mfu_rollout`).

    python -m benchmarks.rollout [--inputs 8] [--samples 8] [--tokens 48] [--naive-inputs 2]
    python -m benchmarks.rollout --smoke     # 2 inputs x 2 samples, 4 tokens, to check the script; writes nothing
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import peak_rss_gb, table, write_results
from benchmarks.flops import ModelShape, matmul_peak, mfu, rollout_flops
from neuromas import tasks
from neuromas.config import ModelConfig
from neuromas.network import Network
from neuromas.prompts import node_prompt


def naive_rollout(net: Network, inputs: list[str], samples: int, tokens: int,
                  answer_format: str) -> list[tuple[None, list[int], list[int]]]:
    """One `model.generate` call per node per sample; returns each message's (None, prompt ids,
    generated ids up to and with its stop token)."""
    backend = net.backend
    model, tokenizer = backend.model, backend.tokenizer
    stop = backend.stop_ids.tolist()
    generated = []
    for text in inputs:
        for _ in range(samples):
            messages: dict[str, str] = {}
            for node_id, node in net.named_nodes():
                chat = node_prompt(node, net.topology, text, {s: messages[s] for s in node.reads}, answer_format)
                ids = torch.tensor([backend.encode(chat)])
                out = model.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=True,
                    temperature=1.0, top_p=1.0, top_k=0, pad_token_id=tokenizer.pad_token_id,
                )
                produced = out[0, ids.shape[1] :].tolist()
                new = [t for t in produced if t not in stop]
                ended = next((k for k, t in enumerate(produced) if t in stop), len(produced) - 1)
                generated.append((None, ids[0].tolist(), produced[: ended + 1]))
                messages[node_id] = tokenizer.decode(new, skip_special_tokens=True)
    return generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--naive-inputs", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--peak-size", type=int, default=None, help="side of the square GEMM that measures the peak")
    parser.add_argument("--smoke", action="store_true", help="2 inputs x 2 samples, 4 tokens; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.inputs, args.samples, args.naive_inputs, args.tokens = 2, 2, 1, 4
        args.peak_size = args.peak_size or 512

    task = tasks.load("arith", operands=4, digits=1)
    inputs = [e.input for e in task.examples("test")[: args.inputs]]
    config = {"layers": [4, 2, 1], "generation": {"max_new_tokens": args.tokens, "temperature": 1.0}}
    net = Network(config, model=ModelConfig(dtype=args.dtype), seed=0)
    torch.manual_seed(0)
    net([inputs[0]], num_samples=1)  # warm-up: load the model, first-call allocations

    start = time.perf_counter()
    traces = net(inputs, num_samples=args.samples, task=task)
    batched_s = time.perf_counter() - start
    batched_tokens = sum(t.tokens for t in traces)

    start = time.perf_counter()
    naive_messages = naive_rollout(net, inputs[: args.naive_inputs], args.samples, args.tokens, task.answer_format)
    naive_s = time.perf_counter() - start
    naive_tokens = sum(len([t for t in c if t not in net.backend.stop_ids.tolist()]) for _, _, c in naive_messages)

    shape, peak = ModelShape.from_config(net.backend.model.config), matmul_peak(args.dtype, size=args.peak_size)
    messages = {id(m): m for t in traces for m in t.messages.values()}.values()
    flops = rollout_flops(shape, [(None, m.prompt_ids, m.token_ids) for m in messages])
    naive_flops = rollout_flops(shape, naive_messages)

    metrics = {
        "tokens_per_s": round(batched_tokens / batched_s, 1),
        "naive_tokens_per_s": round(naive_tokens / naive_s, 1),
        "speedup_vs_naive": round((batched_tokens / batched_s) / (naive_tokens / naive_s), 2),
        "peak_rss_gb": round(peak_rss_gb(), 3),
        "mfu_rollout": round(mfu(flops, batched_s, peak), 4),
        "naive_mfu_rollout": round(mfu(naive_flops, naive_s, peak), 4),
        f"peak_gflops_{args.dtype}": round(peak / 1e9, 1),
        "gflop_rollout": round(flops / 1e9, 1),
        "batched_seconds": round(batched_s, 2),
        "naive_seconds": round(naive_s, 2),
        "batched_tokens": batched_tokens,
        "naive_tokens": naive_tokens,
        "llm_calls": len(inputs) * args.samples * net.calls_per_pass,
        "naive_llm_calls": args.naive_inputs * args.samples * net.calls_per_pass,
    }
    markdown = (
        f"[4, 2, 1] network, {args.inputs} inputs x {args.samples} samples = "
        f"{metrics['llm_calls']} LLM calls (naive: the first {args.naive_inputs} inputs, {metrics['naive_llm_calls']} calls), "
        f"up to {args.tokens} tokens each, temperature 1, {args.dtype}.\n\n"
        + table(["way", "tokens", "seconds", "tokens/s", "MFU"], [
            ["batched (one generation per layer)", batched_tokens, f"{batched_s:.1f}", metrics["tokens_per_s"],
             metrics["mfu_rollout"]],
            ["naive (one `generate` per node per sample)", naive_tokens, f"{naive_s:.1f}", metrics["naive_tokens_per_s"],
             metrics["naive_mfu_rollout"]],
        ])
        + f"\n\nSpeed-up: **{metrics['speedup_vs_naive']}x**; peak RSS {metrics['peak_rss_gb']} GB; MFU against "
        f"{peak / 1e9:.0f} GFLOP/s ({args.dtype} GEMM, measured here)."
    )
    write_results("rollout", vars(args), metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
