"""Untrained networks vs a single node: greedy accuracy with 95% CI, calls and tokens per question.

Runs the bundled configs `configs/{arith,navigate}-{2x1,neuromas3,single}.yaml` (arith: four
one-digit operands, fixed 128-question test split; navigate: BBH Navigate, fixed held-out 100)
in one process on the embedded model and writes `benchmarks/results/untrained.json`.

    python benchmarks/untrained.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import peak_rss_gb, write_results  # noqa: E402

from neuromas.config import load_config  # noqa: E402
from neuromas.runner import run_eval  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ARMS = {"net21": "2x1", "neuromas3": "neuromas3", "single": "single"}


def main() -> None:
    metrics: dict[str, dict] = {}
    rows = []
    for task in ("arith", "navigate"):
        metrics[task] = {}
        for arm, suffix in ARMS.items():
            config = load_config(CONFIGS / f"{task}-{suffix}.yaml")
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
            rows.append(
                f"| {task} | {arm} {[l.width for l in config.network.layers]} | {100 * result.acc:.1f} "
                f"| [{100 * result.ci_low:.1f}, {100 * result.ci_high:.1f}] | {result.n} | {result.calls_per_q:g} "
                f"| {result.tokens_per_q:.1f} | {result.seconds:.0f} |"
            )
    metrics["peak_rss_gb"] = round(peak_rss_gb(), 3)
    markdown = (
        "Untrained (greedy) on the embedded SmolLM2-135M-Instruct, bf16.\n\n"
        "| task | network | acc % | 95% CI | n | calls/q | tokens/q | seconds |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    write_results("untrained", {"configs": [f"configs/{t}-{s}.yaml" for t in ("arith", "navigate") for s in ARMS.values()]}, metrics, markdown)


if __name__ == "__main__":
    main()
