"""Benchmarks run each `neuromas` command as a child process (benchmarks/common.py, `run_child`):
stopping a benchmark must stop its child at a clean point, not leave it running alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
def stop(signum, frame):
    time.sleep(0.5)  # a clean stop takes a moment: the parent must wait for it
    (out / "stopped").write_text("clean")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
(out / "pid").write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def test_a_sigterm_to_the_benchmark_stops_its_child_cleanly_and_fails(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys; from benchmarks.common import run_child; "
         f"run_child([sys.executable, '-c', {CHILD!r}, {str(tmp_path)!r}])"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists():
        assert parent.poll() is None and time.monotonic() < deadline, parent.stderr.read()
        time.sleep(0.05)
    time.sleep(0.2)  # the pid file is written after the child's handler is set; give the parent's its moment too
    child = int((tmp_path / "pid").read_text())
    try:
        parent.send_signal(signal.SIGTERM)
        status = parent.wait(timeout=30)
        assert (tmp_path / "stopped").exists(), "the child got the SIGTERM and finished its clean stop"
        stderr = parent.stderr.read()
        assert status == 128 + signal.SIGTERM, "the benchmark ends as its stop signal says"
        assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr, stderr
        assert not Path(f"/proc/{child}").exists(), "no child left running"
    finally:
        if Path(f"/proc/{child}").exists():  # the test's own child, ended by its PID if the check failed
            os.kill(child, signal.SIGKILL)
