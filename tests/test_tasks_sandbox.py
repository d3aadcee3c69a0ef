"""The HumanEval sandbox: real programs, real limits, and a host left unharmed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import neuromas.tasks as tasks
from neuromas.tasks import humaneval
from neuromas.tasks.sandbox import network_isolation, run_program, run_programs

FIXTURE_DATA = Path(__file__).parent / "fixtures" / "data"
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that records whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)

    def connected() -> bool:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            return False
        conn.close()
        return True

    yield server.getsockname()[1], connected
    server.close()


def _sandbox_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("neuromas-sbx-*")}


def test_a_correct_program_passes_and_its_directory_is_removed(tmp_path, monkeypatch):
    # a temporary directory of this test's own: another xdist worker's sandboxes come and go in the shared one
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run_program("assert sum([1, 2, 3]) == 6\nprint('ok')")
    assert result.passed and result.status == "passed"
    assert _sandbox_dirs() == set()


@pytest.mark.parametrize("code", ["assert 1 == 2", "def f(:\n", "raise SystemExit(3)"])
def test_failing_programs_fail(code):
    result = run_program(code)
    assert not result.passed and result.status == "failed"


def test_exiting_zero_before_the_end_does_not_pass():
    result = run_program("import sys\nsys.exit(0)\nassert False")
    assert not result.passed and "exited before the end" in result.stderr_tail


def test_infinite_loop_times_out_within_the_limit():
    start = time.monotonic()
    result = run_program("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 3.0


def test_shell_escape_is_blocked_and_leaves_no_marker(tmp_path):
    marker = tmp_path / "marker"
    attempts = [
        f"import os\nos.system('touch {marker}')",
        f"import subprocess\nsubprocess.run(['touch', '{marker}'])",
        f"import posix\nposix.system('touch {marker}')",
        f"import importlib, os\nimportlib.reload(os)\nos.system('touch {marker}')",
        "import os\nos.fork()",
        "import os\nos.kill(os.getppid(), 9)",
    ]
    for code in attempts:
        result = run_program(code)
        assert result.status == "failed", code
        assert "PermissionError" in result.stderr_tail, code
    assert not marker.exists()


def test_huge_allocation_fails_cleanly():
    result = run_program("x = bytearray(8 * 1024**3)\nprint(len(x))")  # limit: 1 GiB
    assert result.status == "failed"
    assert "MemoryError" in result.stderr_tail
    assert result.seconds < 5


def test_endless_output_is_capped_by_the_file_size_limit():
    result = run_program("while True:\n    print('x' * 4096)", timeout_s=5.0)
    assert result.status == "failed" and "File too large" in result.stderr_tail


def test_network_connection_fails(listener):
    port, connected = listener
    result = run_program(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "s.sendall(b'hello')")
    assert result.status == "failed"
    assert not connected()


def test_network_namespace_alone_blocks_loopback(listener):
    """The outer layer, without the guard preamble: a plain child under `unshare`."""
    prefix = network_isolation()
    if not prefix:
        pytest.skip("unshare cannot create a network namespace on this machine")
    port, connected = listener
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
    child = subprocess.run([*prefix, sys.executable, "-I", "-c", code], capture_output=True,
                           text=True, timeout=30)
    assert child.returncode != 0
    assert "unreachable" in child.stderr or "refused" in child.stderr
    assert not connected()


def test_host_is_unharmed_after_hostile_programs(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("still here")
    cwd = os.getcwd()
    run_programs([f"import shutil\nshutil.rmtree('{tmp_path}')",
                  f"import os\nos.remove('{keep}')",
                  "import os\nos.chdir('/')",
                  "import os\nos.killpg(0, 9)"])
    assert keep.read_text() == "still here"
    assert os.getcwd() == cwd
    assert os.system("true") == 0  # the guard patched the child's os, not ours
    assert run_program("x = 1").passed


def test_run_programs_keeps_order():
    results = run_programs(["x = 1", "assert False", "while True: pass", "y = 2"], timeout_s=1.0)
    assert [r.status for r in results] == ["passed", "failed", "timeout", "passed"]


# ---- code extraction -------------------------------------------------------------------------


@pytest.mark.parametrize("reply, expected", [
    ("```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x"),
    ("Here:\n```py\ndef f(x):\n    return 1\n```\nand better:\n```python\ndef f(x):\n"
     "    return 2\n```", "def f(x):\n    return 2"),                      # last defining block
    ("```\nimport math\n```\n```python\nprint(1)\n```", "import math"),     # none define: first
    ("```python\ndef f(x):\n    return x", "def f(x):\n    return x"),     # cut off, unclosed
    ("Sure! Here it is:\ndef f(x):\n    return x\n", "def f(x):\n    return x\n"),  # prose
    ("    return x\n", "    return x\n"),                                 # a bare body
    ("```json\n{}\n```", "```json\n{}\n```"),                               # not python: raw
])
def test_extract_code(reply, expected):
    assert humaneval.extract_code(reply, "f") == expected


def _fixture_humaneval():
    task = tasks.load("humaneval", test_size=3, timeout_s=1.0, data_dir=str(FIXTURE_DATA))
    return task, {ex.id: ex for ex in task.examples("test")}


def test_humaneval_canonical_bodies_full_functions_and_wrong_answers():
    task, by_id = _fixture_humaneval()
    assert "```python" in task.answer_format
    add, cyclic = by_id["HumanEval/53"], by_id["HumanEval/38"]
    full_add = "```python\ndef add(x: int, y: int):\n    return x + y\n```"
    # Needs encode_cyclic from the prompt: the prompt is put in front of a full function too.
    full_decode = ("```python\ndef decode_cyclic(s: str):\n"
                   "    return encode_cyclic(encode_cyclic(s))\n```")
    replies = [add.meta["canonical_solution"], full_add, "```python\ndef add(x, y):\n"
               "    return x - y\n```", "", cyclic.meta["canonical_solution"], full_decode]
    examples = [add, add, add, add, cyclic, cyclic]
    assert task.reward(replies, examples) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    results = task.grade(["while True: pass", "   "], [add, add])
    assert [r.status for r in results] == ["timeout", "failed"]


@pytest.mark.skipif(not (REAL_DATA / "humaneval").is_dir(), reason=f"no data at {REAL_DATA}")
def test_all_164_canonical_solutions_pass():
    task = tasks.load("humaneval", test_size=164, train_size=0, data_dir=str(REAL_DATA))
    examples = task.examples("test")
    start = time.monotonic()
    results = task.grade([ex.meta["canonical_solution"] for ex in examples], examples)
    failures = [(ex.id, r.status, r.stderr_tail[-300:]) for ex, r in zip(examples, results)
                if not r.passed]
    assert failures == []
    assert time.monotonic() - start < 60
