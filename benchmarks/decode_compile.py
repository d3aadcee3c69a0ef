"""Is a decode step overhead that `torch.compile` removes, or memory traffic that nothing removes?

Issue 20 asks for a decode loop closer to the machine's peak. A decode step reads every weight
and every row's whole KV cache to compute one token per row, so on a CPU memory bandwidth sets a
floor beside the matmul peak's (64 rows in float32 here: ~40 ms of reading, ~48 ms of matmuls at
the peak). This script measures, on the embedded model without adapters, the decode steps of one
batch (rows x prompt tokens prefilled, then `--tokens` greedy steps):

    dynamic        transformers' `DynamicCache` (grows with `torch.cat` every step), eager
    in-place       ours (`backends/kvcache.InPlaceCache`: one buffer, written in place), eager
    static         transformers' `StaticCache` (preallocated, attends over its whole length), eager
    static+compile the same under `torch.compile(model.forward, dynamic=False)`, the way
                   transformers documents compiled decoding (compile time reported apart)

and, in the same process, the memory read bandwidth (summing 1 GiB, best of 3), from which the
floor of a step: (weight bytes + KV-cache bytes of all rows) / bandwidth. Tokens of every arm
are compared with `dynamic`'s (greedy, so they match unless rounding differs).

    python -m benchmarks.decode_compile [--dtypes bfloat16 float32] [--rows 64] [--prompt 250] [--tokens 12]
    python -m benchmarks.decode_compile --smoke     # 4 rows, 16 prompt tokens, 2 steps, float32; writes nothing
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import DynamicCache, StaticCache

from benchmarks.common import peak_rss_gb, table, write_results
from neuromas.backends.hf import HFBackend
from neuromas.backends.kvcache import InPlaceCache
from neuromas.config import ModelConfig

ARMS = ["dynamic", "in-place", "static", "static+compile"]


def read_bandwidth_gbs(megabytes: int = 1024) -> float:
    """Bytes per second read by summing a tensor far larger than any cache, best of 3."""
    source = torch.ones(megabytes * 2**20 // 4)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        source.sum()
        best = min(best, time.perf_counter() - start)
    return source.numel() * 4 / best / 1e9


def decode_s(backend: HFBackend, forward, cache, ids: torch.Tensor, tokens: int) -> tuple[float, torch.Tensor]:
    """Seconds for `tokens` greedy decode steps after prefilling `ids` (prefill not timed), and the tokens."""
    rows, prompt = ids.shape
    with torch.inference_mode():
        out = backend.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{backend._cache_arg: cache})
        token = out.logits[:, -1].argmax(-1)
        written = [token]
        start = time.perf_counter()
        for i in range(tokens):
            out = forward(input_ids=token[:, None], position_ids=torch.full((rows, 1), prompt + i),
                          cache_position=torch.tensor([prompt + i]), use_cache=True, **{backend._cache_arg: cache})
            token = out.logits[:, -1].argmax(-1)
            written.append(token)
        return time.perf_counter() - start, torch.stack(written, 1)


def measure(dtype: str, rows: int, prompt: int, tokens: int, repeats: int) -> dict:
    """Every arm in this process, one dtype: ms per step (best of `repeats`), token agreement, compile s."""
    backend = HFBackend.from_config(ModelConfig(dtype=dtype))
    model = backend.model
    ids = torch.randint(100, 10_000, (rows, prompt), generator=torch.Generator().manual_seed(0))
    capacity = prompt + tokens + 1
    caches = {
        "dynamic": lambda: DynamicCache(config=model.config),
        "in-place": lambda: InPlaceCache(model.config, capacity=capacity),
        "static": lambda: StaticCache(config=model.config, max_cache_len=capacity),
    }
    figures: dict = {}
    reference = None
    for arm in ARMS:
        forward, make = model.forward, caches["static" if arm == "static+compile" else arm]
        if arm == "static+compile":
            forward = torch.compile(model.forward, dynamic=False)
            start = time.perf_counter()
            decode_s(backend, forward, make(), ids, tokens)  # compiles
            figures["compile_s"] = round(time.perf_counter() - start, 1)
        runs = [decode_s(backend, forward, make(), ids, tokens) for _ in range(repeats)]
        seconds, written = min(r[0] for r in runs), runs[0][1]
        reference = written if reference is None else reference
        figures[arm] = {"ms_per_step": round(1000 * seconds / tokens, 1),
                        "tokens_equal": round((written == reference).float().mean().item(), 3)}

    config = model.config
    element = torch.finfo(model.dtype).bits // 8
    weight_bytes = sum(p.numel() for p in model.parameters()) * element
    kv_bytes = rows * (prompt + tokens / 2) * config.num_hidden_layers * 2 * config.num_key_value_heads * (
        config.hidden_size // config.num_attention_heads) * element
    bandwidth = read_bandwidth_gbs()
    figures["bandwidth_gbs"] = round(bandwidth, 1)
    figures["floor_ms_per_step"] = round(1000 * (weight_bytes + kv_bytes) / (bandwidth * 1e9), 1)
    figures["mb_read_per_step"] = round((weight_bytes + kv_bytes) / 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", choices=["bfloat16", "float32"], default=["bfloat16", "float32"])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=250)
    parser.add_argument("--tokens", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="4 rows, 16 prompt tokens, 2 steps, float32; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.dtypes, args.rows, args.prompt, args.tokens, args.repeats = ["float32"], 4, 16, 2, 1

    metrics = {dtype: measure(dtype, args.rows, args.prompt, args.tokens, args.repeats) for dtype in args.dtypes}
    metrics["threads"], metrics["peak_rss_gb"] = torch.get_num_threads(), round(peak_rss_gb(), 3)
    rows = [[dtype, *(f"{metrics[dtype][arm]['ms_per_step']} ({metrics[dtype][arm]['tokens_equal']:.3f})" for arm in ARMS),
             metrics[dtype]["compile_s"], metrics[dtype]["mb_read_per_step"], metrics[dtype]["bandwidth_gbs"],
             metrics[dtype]["floor_ms_per_step"]] for dtype in args.dtypes]
    markdown = (
        f"The embedded model without adapters, {args.rows} rows x {args.prompt} prompt tokens prefilled, then "
        f"{args.tokens} greedy decode steps; ms per step, best of {args.repeats}, {torch.get_num_threads()} threads "
        "(in brackets: share of tokens equal to `dynamic`'s). Floor: the bytes a step must read (all weights, "
        "every row's KV cache) over the read bandwidth measured here (summing 1 GiB).\n\n"
        + table(["dtype", *(f"{arm} ms" for arm in ARMS), "compile s", "MB read/step", "read GB/s",
                 "floor ms"], rows)
    )
    write_results("decode_compile", vars(args), metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
