"""kill -9 mid-run, then --resume: the run continues from its last checkpoint with the same state."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from neuromas.network import Network

FIXTURES = Path(__file__).parent / "fixtures"
ENV = {**os.environ, "PYTHONPATH": str(FIXTURES)}  # where the custom reward module lives

CONFIG = {
    "seed": 3,
    "network": {"layers": [1], "generation": {"max_new_tokens": 4}, "adapters": {"rank": 2}},
    "task": {"name": "jsonl", "path": str(FIXTURES / "custom.jsonl"), "reward": "custom_rewards:length_score",
             "train_size": 6, "test_size": 4},
    "eval": {"limit": 2},
    "train": {"steps": 5, "batch_size": 2, "group_size": 2, "lr": 1e-3, "checkpoint_every": 2, "keep_checkpoints": 2,
              "eval_every": 2},
}


def cli(*args):
    return [sys.executable, "-m", "neuromas.cli", *args]


def logged_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_kill_and_resume_continues_the_same_run(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    run_dir = tmp_path / "run"
    process = subprocess.Popen(cli("train", "c.yaml", "--out", "run", "-q"), cwd=tmp_path, env=ENV, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while 3 not in logged_steps(run_dir):  # step 3 is logged after checkpoint step-2 is complete
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline, "training did not reach step 3"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert (checkpoint / "trainer.pt").is_file() and not (run_dir / "final").exists()
    saved = torch.load(checkpoint / "trainer.pt", weights_only=False)
    assert saved["step"] == 2 and saved["config"]["steps"] == 5

    resumed = subprocess.run(cli("train", "--resume", "run", "-q"), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert logged_steps(run_dir) == [1, 2, 3, 4, 5]  # steps after the checkpoint are redone, once
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train"]["resumed"] and results["train"]["steps"] == 5
    environment = results["environment"]  # what else the numbers depend on: the CPU and the versions
    assert environment["cpu"] and environment["peft"] and environment["torch_threads"] >= 1
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["steps"] == 5
    last = torch.load(run_dir / "checkpoints" / "step-000005" / "trainer.pt", weights_only=False)
    # Adam's step counter continued from the checkpoint (5), it did not restart (3)
    assert last["optimizer"]["state"] and all(int(s["step"]) == 5 for s in last["optimizer"]["state"].values())
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000004", "step-000005"]
    # every periodic evaluation left its traces (step 2's before the kill, step 4's after the resume), whole
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {m["step"]: m["eval/acc"] for m in logged if "eval/acc" in m}
    assert sorted(evals) == [2, 4] and not list(run_dir.glob("*.tmp"))
    for step, acc in evals.items():
        traces = [json.loads(line) for line in (run_dir / f"traces_step-{step:06d}.jsonl").read_text().splitlines()]
        assert len(traces) == 2 and sum(t["reward"] for t in traces) / 2 == pytest.approx(acc)

    net = Network.load(run_dir)  # the final trained network, adapters included
    assert net.adapters == {"L1N1": "L1N1"}
    trained = {n: p for n, p in net.named_parameters() if "lora_B" in n}
    assert trained and any(p.abs().sum() > 0 for p in trained.values())
