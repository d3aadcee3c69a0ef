"""Shared by every benchmark: peak memory and the results file format of DESIGN.md section 5.

Each benchmark writes `benchmarks/results/<name>.json`
(`{"benchmark", "commit", "date", "machine", "config", "metrics"}`) and a readable `<name>.md`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from neuromas.runner import peak_rss_gb  # noqa: F401 - re-exported for the benchmark scripts

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    import torch

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(name: str, config: dict, metrics: dict, markdown: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "commit": commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": config,
        "metrics": metrics,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(
        f"# {name}\n\ncommit {record['commit']}, {record['date']}, {record['machine']}\n\n{markdown}\n"
    )
    print(json.dumps(metrics, indent=2))
    return path
