"""The mixed-adapter LoRA forward: rows grouped by adapter as slices (ours) against PEFT's gather/scatter.

Every row of a layer's batch may use another node's adapter; PEFT's `adapter_names` path gathers
each adapter's rows with an index list and scatters the LoRA output back. The hf backend's rows
come grouped by adapter, so `neuromas.backends.lora._sliced_mixed_batch_forward` takes a slice
of the batch and adds in place: the same arithmetic, fewer operators. Two measurements in this
one process, alternating the two forwards:

- operators per model forward (torch.profiler, aten operators that are not views): a count, the
  same on any machine; on a GPU each is about one kernel launch;
- a `[2, 2, 1]` network's sampled rollout on `--inputs` arithmetic questions x 8 samples, 24
  tokens: seconds per rollout, and whether both forwards sampled the same tokens.

    python -m benchmarks.lora_forward [--rounds 3]
    python -m benchmarks.lora_forward --smoke     # 1 input x 2 samples, 4 tokens, 1 round; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import time

from torch.profiler import ProfilerActivity, profile

from benchmarks.common import peak_rss_gb, table, write_results
from neuromas import tasks
from neuromas.backends import lora
from neuromas.network import Network

VIEWS = {"aten::view", "aten::as_strided", "aten::t", "aten::transpose", "aten::reshape", "aten::expand",
         "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::permute", "aten::_unsafe_view",
         "aten::empty", "aten::detach", "aten::alias", "aten::split", "aten::narrow", "aten::resolve_conj",
         "aten::resolve_neg", "aten::lift_fresh", "aten::empty_strided", "aten::result_type", "aten::_reshape_alias"}
FORWARDS = ("peft", "sliced")


def use(net: Network, forward: str) -> None:
    lora.use_sliced_forward(net.backend.model, enabled=forward == "sliced")


def operators_per_forward(net: Network, examples, samples: int, task) -> float:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        net(examples, num_samples=samples, task=task, seed=2)
    events = prof.key_averages()
    forwards = sum(e.count for e in events if e.key == "aten::embedding")  # one per model forward
    operators = sum(e.count for e in events if e.key.startswith("aten::") and e.key not in VIEWS)
    return operators / max(forwards, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    samples, tokens = (2, 4) if args.smoke else (8, 24)
    if args.smoke:
        args.rounds, args.inputs = 1, 1
    arith = tasks.load("arith", operands=2, digits=2)
    examples = arith.examples("train")[: args.inputs]
    net = Network({"layers": [2, 2, 1], "generation": {"max_new_tokens": tokens, "temperature": 1.0}}).attach_adapters()
    net.train()
    net(examples[:1], num_samples=1, task=arith, seed=1)  # warm-up
    operators, seconds, token_ids = {}, {f: [] for f in FORWARDS}, {}
    for forward in FORWARDS:
        use(net, forward)
        operators[forward] = operators_per_forward(net, examples[:1], 2, arith)
    for _ in range(args.rounds):
        for forward in FORWARDS:
            use(net, forward)
            start = time.perf_counter()
            traces = net(examples, num_samples=samples, task=arith, seed=2)
            seconds[forward].append(time.perf_counter() - start)
            token_ids[forward] = [m.token_ids for t in traces for m in t.messages.values()]
    use(net, "sliced")
    median = {f: statistics.median(seconds[f]) for f in FORWARDS}
    metrics = {
        "operators_per_forward_peft": round(operators["peft"]),
        "operators_per_forward_sliced": round(operators["sliced"]),
        "rollout_s_peft": round(median["peft"], 2),
        "rollout_s_sliced": round(median["sliced"], 2),
        "speedup": round(median["peft"] / median["sliced"], 3),
        "same_tokens": token_ids["peft"] == token_ids["sliced"],
        "peak_rss_gb": round(peak_rss_gb(), 3),
    }
    rows = [[f, round(operators[f]), f"{median[f]:.2f}", ", ".join(f"{s:.2f}" for s in seconds[f])] for f in FORWARDS]
    markdown = (f"`[2, 2, 1]` rollout, {args.inputs} questions x {samples} samples, {tokens} tokens; medians of "
                f"{args.rounds} alternating rounds; same tokens sampled: {metrics['same_tokens']}.\n\n"
                + table(["forward", "operators / model forward", "rollout s (median)", "rounds"], rows))
    write_results("lora_forward", vars(args), metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
