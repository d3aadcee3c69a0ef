"""The fast parts of `benchmarks/faults.py` (issue 21): damaged checkpoints refused, bad input
answered in one line with exit status 2, a clean stop on SIGTERM, the server's body limits,
hostile programs contained by the sandbox. The kill -9 / resume runs, the slow fuzz cases and
the server under load stay in the benchmark."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from benchmarks.faults_input import cases, judge, write_files
from typer.testing import CliRunner

from neuromas.checkpoint import RUN_CONFIG, _writing, newest_intact_checkpoint
from neuromas.cli import app
from neuromas.errors import NeuromasError
from neuromas.files import atomic_directory, verify_checksums, write_checksums
from neuromas.rl.metrics import MetricsLog, read_metrics
from neuromas.rl.trainer import StopSignals
from neuromas.tasks.jsonl import check_scores


# checksums and damaged checkpoints ---------------------------------------------------------------
def fake_checkpoint(run, step: int, config: str = "train: {lr: 0.001}\n"):
    """A checkpoint's files (no model needed: the checks look at files only)."""
    directory = run / "checkpoints" / f"step-{step:06d}"
    (directory / "adapters" / "L1N1").mkdir(parents=True)
    (directory / "network.yaml").write_text("network: {}\nmodel: {}\n")
    (directory / "trainer.pt").write_bytes(os.urandom(4096))
    (directory / "adapters" / "L1N1" / "adapter_model.safetensors").write_bytes(os.urandom(2048))
    (directory / RUN_CONFIG).write_text(config)
    write_checksums(directory)
    return directory


def test_checksums_find_a_cut_a_flipped_bit_a_missing_file(tmp_path):
    ckpt = fake_checkpoint(tmp_path, 1)
    assert verify_checksums(ckpt, ("trainer.pt",)) is None
    data = bytearray((ckpt / "trainer.pt").read_bytes())
    data[100] ^= 1
    (ckpt / "trainer.pt").write_bytes(bytes(data))
    assert "trainer.pt does not match its checksum" in verify_checksums(ckpt)
    (ckpt / "trainer.pt").unlink()
    assert verify_checksums(ckpt) == "trainer.pt is missing"
    (ckpt / "SHA256SUMS").unlink()
    assert verify_checksums(ckpt).startswith("no checksums")


@pytest.mark.parametrize("damage", ["truncate", "flip adapter", "delete optimizer", "delete checksums"])
def test_resume_refuses_a_damaged_checkpoint_in_one_line_and_falls_back(tmp_path, caplog, damage):
    older, newer = fake_checkpoint(tmp_path, 1), fake_checkpoint(tmp_path, 2)
    target = {"truncate": newer / "trainer.pt", "flip adapter": newer / "adapters/L1N1/adapter_model.safetensors",
              "delete optimizer": newer / "trainer.pt", "delete checksums": newer / "SHA256SUMS"}[damage]
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip adapter":
        target.write_bytes(bytes([target.read_bytes()[0] ^ 1]) + target.read_bytes()[1:])
    else:
        target.unlink()
    with caplog.at_level(logging.WARNING, logger="neuromas"):
        assert newest_intact_checkpoint(tmp_path, "train: {lr: 0.001}\n") == older
    assert len(caplog.records) == 1
    assert "step-000002 refused" in caplog.messages[0] and "resuming from step-000001" in caplog.messages[0]


def test_resume_stops_when_no_checkpoint_is_intact_or_the_config_was_edited(tmp_path):
    for step in (1, 2):
        (fake_checkpoint(tmp_path, step) / "trainer.pt").write_bytes(b"cut")
    with pytest.raises(NeuromasError, match="no intact checkpoint.*step-000002: trainer.pt does not match"):
        newest_intact_checkpoint(tmp_path, "train: {lr: 0.001}\n")
    with pytest.raises(NeuromasError, match=r"edited after the run started \(train.lr: 0.001 when the run started, "
                                            r"0.002 now\)"):
        newest_intact_checkpoint(tmp_path, "train: {lr: 0.002}\n")


def test_checkpoints_without_checksums_from_older_runs_are_still_used(tmp_path, caplog):
    ckpt = fake_checkpoint(tmp_path, 3)
    (ckpt / "SHA256SUMS").unlink()
    with caplog.at_level(logging.WARNING, logger="neuromas"):
        assert newest_intact_checkpoint(tmp_path) == ckpt
    assert "no checksums" in caplog.messages[0]


def test_a_full_disk_is_one_line_and_leaves_no_temporary_directory(tmp_path):
    final = tmp_path / "checkpoints" / "step-000001"
    with pytest.raises(NeuromasError, match="cannot write .*No space left on device"):
        with _writing(final), atomic_directory(final) as tmp:
            (tmp / "trainer.pt").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_a_metrics_line_cut_by_a_crash_is_dropped_on_resume(tmp_path):
    log = MetricsLog(tmp_path)
    log.write(1, {"reward/mean": 0.5})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "reward/mea')
    MetricsLog(tmp_path).truncate_after(1)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "reward/mean": 0.5}\n'
    assert [m["step"] for m in read_metrics(tmp_path)] == [1]


# a clean stop ------------------------------------------------------------------------------------
def test_the_first_sigterm_asks_to_stop_the_second_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or a handler an earlier test's library left (Ray's)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM  # still running: the step under way finishes
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == before  # restored


# bad input ---------------------------------------------------------------------------------------
SLOW = ("huge", "long key list", "deep")  # seconds each to parse: the benchmark runs them (and every case; here every second)
FAST_CASES = [c for c in cases(model=False)[::2] if not c.name.startswith(tuple("YAML: " + s for s in SLOW))
              and not (c.kind == "cli" and c.argv[:1] == ["serve"])]  # a serve that starts would not return


def test_there_are_over_200_bad_inputs():
    assert len(cases(model=True)) >= 200 and len(FAST_CASES) >= 100


def _run_cases_in_this_process(folder: str) -> list[dict]:
    """Every fast case through the CLI in-process (CliRunner), each in a folder of its own; run in a
    child process by the test below, so that what a case leaves behind (a loaded model, a thread,
    a signal handler) cannot reach other tests."""
    from pathlib import Path

    verdicts = []
    for k, case in enumerate(FAST_CASES):
        where = Path(folder) / f"case{k}"
        where.mkdir()
        write_files(where, case.files)
        os.chdir(where)
        sys.path.insert(0, str(where))  # the reward modules
        for name in [m for m in sys.modules if m.startswith("faults_")]:
            del sys.modules[name]
        result = CliRunner().invoke(app, case.argv)
        sys.path.remove(str(where))
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        verdict = judge(result.exit_code, result.stdout, result.stderr + ("Traceback (most recent call last)" if crashed else ""))
        if not verdict["ok"]:
            verdicts.append({"case": case.name, "verdict": str(verdict), "output": result.output[-500:]})
    return verdicts


def test_bad_input_gets_one_line_and_exit_status_2(tmp_path):
    import json
    import subprocess

    code = ("import json, sys; sys.path[:0] = ['tests', '.']; import test_faults; "
            f"print(json.dumps(test_faults._run_cases_in_this_process({str(tmp_path)!r})))")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                           cwd=Path(__file__).resolve().parent.parent)
    assert child.returncode == 0, child.stderr[-2000:]
    failures = json.loads(child.stdout.strip().splitlines()[-1])
    assert failures == [], failures[:5]


@pytest.mark.parametrize("scores", [[float("nan"), 1.0], [1.0], [1.0, 2.0, 3.0], ["high", "low"], None, 1.0,
                                    {"a": 1.0}, [[1.0], [1.0]], "ab", [float("inf"), 0.0]])
def test_a_reward_function_returning_nonsense_is_named(scores):
    with pytest.raises(NeuromasError, match="reward function 'm:f' returned .* a list of 2 finite numbers"):
        check_scores(scores, 2, "m:f")
    assert check_scores((x for x in [1, 0.5]), 2, "m:f") == [1.0, 0.5]


# the server's limits -----------------------------------------------------------------------------
def test_the_server_refuses_big_bodies_and_wrong_content_types_before_reading_them():
    pytest.importorskip("fastapi")
    import asyncio

    from benchmarks.faults_serve import chat, http

    from neuromas.localserver import ThreadedServer
    from neuromas.serve import ServeSettings, create_app

    app_ = create_app(None, None, ServeSettings(model_id="faults", max_body_bytes=1000))  # never reaches the net
    with ThreadedServer(app_) as server:
        def status(*args, **kwargs) -> int:
            return asyncio.run(http(server.port, "POST", "/v1/chat/completions", *args, **kwargs))[0]

        assert status(chat("9" * 5000)) == 413
        assert status(chat("9" * 5000), chunked=True) in (413, 0)
        assert status(chat("hi"), {"Content-Type": "text/plain"}) == 415
        assert status(b"[" * 900) == 400
        assert status(chat("hi", model="other")) == 404  # what is left goes through as before
        assert asyncio.run(http(server.port, "GET", "/health"))[0] == 200


# the sandbox -------------------------------------------------------------------------------------
def test_hostile_programs_are_contained(tmp_path, monkeypatch):
    from benchmarks.faults_sandbox import grade_all

    from neuromas.tasks.sandbox import isolation

    if "--pid" not in isolation():
        pytest.skip("no PID and mount namespaces here (unshare -rn --pid --mount-proc fails)")
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAULTS_SECRET", "s3cr3t-" + os.urandom(8).hex())
    results = grade_all(tmp_path, only=("fork", "read", "write", "the parent", "spawn", "signals", "network"))[:-1]
    assert len(results) == 7
    assert all(r["contained"] for r in results), [r for r in results if not r["contained"]]
