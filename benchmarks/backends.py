"""Backends on one [2, 1] network: hf in-process, openai against llama.cpp's server, and Ray.

The same network (two first-layer nodes and a readout, greedy, `--tokens` per message) answers
the same `--questions` arithmetic questions (the quickstart's task: sums of two 2-digit numbers)
three ways, one after the other, never two at once:

- `hf`: transformers in this process, one batched generation per layer (all torch threads);
- `openai`: the openai backend against `python -m llama_cpp.server` on the same embedded GGUF
  (started here, same thread count), `--concurrency` requests in flight;
- `ray`: evaluation sharded over a local Ray with `--workers` workers, one thread each, each
  holding its own hf backend (model loading excluded from the time, as for `hf`).

Figures: questions/s and generated tokens/s, and how often the final answers agree with `hf`.
llama.cpp computes on the quantized weights and hf on their dequantized float copy, so their
answers may differ; hf and Ray must agree.

    python -m benchmarks.backends [--questions 32] [--tokens 24] [--concurrency 4] [--workers 2]
    python -m benchmarks.backends --smoke     # 2 questions, 4 tokens, to check the script; writes nothing
"""

from __future__ import annotations

import argparse
import os
import tempfile

from benchmarks.common import pair_by_id, table, write_results
from neuromas.config import ModelConfig, ServerConfig
from neuromas.configfile import parse_config
from neuromas.eval import EvalResult, evaluate
from neuromas.localserver import llama_cpp_server
from neuromas.network import Network
from neuromas.runner import load_task


def figures(result: EvalResult, reference: EvalResult | None = None) -> dict:
    tokens = result.tokens_per_q * result.n
    out = {"questions": result.n, "seconds": round(result.seconds, 2), "questions_per_s": round(result.n / result.seconds, 3),
           "tokens_per_s": round(tokens / result.seconds, 1), "tokens_per_q": round(result.tokens_per_q, 1),
           "acc": result.acc}
    if reference is not None:
        same = sum(a.answer == b.answer for a, b in pair_by_id(result.traces, reference.traces))
        out["answers_equal_hf"] = round(same / result.n, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="2 questions, 4 tokens, 2 in flight; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.questions, args.tokens, args.concurrency = 2, 4, 2
    config = parse_config({
        "network": {"layers": [2, 1], "generation": {"max_new_tokens": args.tokens}},
        "task": {"name": "arith", "operands": 2, "digits": 2},
        "eval": {"limit": args.questions, "batch_size": args.questions},
    })
    task, n = load_task(config), args.questions
    warm = task.examples("test")[n : n + 2]

    net = Network.from_config(config)
    evaluate(net, task, "train", limit=2, progress=False)  # warm-up (first-call allocations)
    hf = evaluate(net, task, limit=n, batch_size=n, progress=False)
    dtype = str(next(net.backend.model.parameters()).dtype).removeprefix("torch.")
    print("hf:", hf.line())
    del net

    log = os.path.join(tempfile.mkdtemp(), "llama-server.log")
    with llama_cpp_server(threads=os.cpu_count() or 2, log=log) as url:
        server = ServerConfig(base_url=url, max_concurrency=args.concurrency)
        remote = Network(config.network, model=ModelConfig(backend="openai", server=server)).eval()
        remote(warm, task=task)
        served = evaluate(remote, task, limit=n, batch_size=n, progress=False)
    print("openai (llama.cpp):", served.line())

    from neuromas.distributed import evaluate_on_ray

    per_worker = config.model_copy(update={"eval": config.eval.model_copy(update={"batch_size": max(n // args.workers, 1)})})
    results, info = evaluate_on_ray(per_worker, "local", args.workers)
    sharded = results[None]
    print(f"ray ({info['workers']} workers):", sharded.line())

    metrics = {
        "hf": figures(hf),
        "openai_llamacpp": figures(served, hf),
        f"ray_{info['workers']}_workers": figures(sharded, hf),
    }
    metrics["openai_vs_hf_throughput"] = round(metrics["openai_llamacpp"]["questions_per_s"] / metrics["hf"]["questions_per_s"], 3)
    metrics["ray_vs_single_process"] = round(metrics[f"ray_{info['workers']}_workers"]["questions_per_s"] / metrics["hf"]["questions_per_s"], 3)
    rows = [[name, m["questions_per_s"], m["tokens_per_s"], m["tokens_per_q"], f"{100 * m['acc']:.1f}",
             f"{m.get('answers_equal_hf', 1.0) * 100:.0f}"] for name, m in metrics.items() if isinstance(m, dict)]
    header = ["backend", "questions/s", "tokens/s", "tokens/q", "acc %", "answers equal to hf %"]
    markdown = (
        f"[2, 1] network, greedy, {args.tokens}-token messages, {n} questions (two 2-digit numbers), "
        f"hf in {dtype}; openai: llama.cpp server, {args.concurrency} requests in flight; "
        f"ray: {info['workers']} local workers, 1 thread each, batches of {max(n // args.workers, 1)}.\n\n"
        f"{table(header, rows)}\n\nopenai/hf throughput: {metrics['openai_vs_hf_throughput']}x; "
        f"ray/single process: {metrics['ray_vs_single_process']}x\n"
    )
    write_results("backends", vars(args) | {"hf_dtype": dtype}, metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
