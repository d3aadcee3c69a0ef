"""Untrained networks vs a single node: greedy accuracy with 95% CI, calls and tokens per question.

Runs the bundled configs `configs/{arith,navigate}-{2x1,neuromas3,single}.yaml` (arith: four
one-digit operands, fixed 128-question test split; navigate: BBH Navigate, fixed held-out 100)
in one process on the embedded model and writes `benchmarks/results/untrained.json`.

    python -m benchmarks.untrained
    python -m benchmarks.untrained --smoke     # 2 questions, 4-token messages, to check the script; writes nothing
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, arm_config, peak_rss_gb, table, write_results
from neuromas.configfile import load_config
from neuromas.runner import run_eval

ARMS = ("net21", "neuromas3", "single")  # in the order of the table
TASKS = ("arith", "navigate")
SMOKE = ["eval.limit=2", "network.generation.max_new_tokens=4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 questions, 4-token messages; writes nothing")
    args = parser.parse_args()
    metrics: dict[str, dict] = {}
    rows = []
    for task in TASKS:
        metrics[task] = {}
        for arm in ARMS:
            config = load_config(arm_config(task, arm), SMOKE if args.smoke else None)
            with tempfile.TemporaryDirectory() as run_dir:
                result = run_eval(config, Path(run_dir), progress=False)
            print(f"{task:9s} {arm:10s} {result.line()}", flush=True)
            metrics[task][arm] = {
                "acc": round(result.acc, 4),
                "ci_low": round(result.ci_low, 4),
                "ci_high": round(result.ci_high, 4),
                "n": result.n,
                "calls_per_q": result.calls_per_q,
                "tokens_per_q": round(result.tokens_per_q, 1),
                "prompt_tokens_per_q": round(result.prompt_tokens_per_q, 1),
                "seconds": round(result.seconds, 1),
            }
            rows.append([task, f"{arm} {[layer.width for layer in config.network.layers]}", f"{100 * result.acc:.1f}",
                         f"[{100 * result.ci_low:.1f}, {100 * result.ci_high:.1f}]", result.n, f"{result.calls_per_q:g}",
                         f"{result.tokens_per_q:.1f}", f"{result.seconds:.0f}"])
    metrics["peak_rss_gb"] = round(peak_rss_gb(), 3)
    markdown = (
        "Untrained (greedy) on the embedded SmolLM2-135M-Instruct, bf16.\n\n"
        + table(["task", "network", "acc %", "95% CI", "n", "calls/q", "tokens/q", "seconds"], rows)
    )
    configs = [str(arm_config(task, arm).relative_to(ROOT)) for task in TASKS for arm in ARMS]
    write_results("untrained", {"configs": configs}, metrics, markdown, write=not args.smoke)


if __name__ == "__main__":
    main()
