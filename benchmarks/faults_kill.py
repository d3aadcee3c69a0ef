"""Parts 1 and 2 of `benchmarks/faults.py`: a real training run killed and resumed, damaged checkpoints.

The run is small and real: the embedded model in float32 (bit-reproducible on CPU), a [1]
network, a dense reward (so that every step updates), a checkpoint after every step. An
uninterrupted reference run comes first; every other run must end with exactly its adapters
(byte for byte) and its `metrics.jsonl` (every key but the `time/` ones, which are wall-clock).

Where a kill lands is chosen, not hoped for. The training process runs under a probe
(`python -m benchmarks.faults probe -- <neuromas args>`: the neuromas CLI with a few functions
wrapped) that writes a line when a phase starts and ends: rollout and update of each step, and
the points inside a save (adapters being written, trainer.pt being written, the rename that
publishes the directory, the pruning of older checkpoints). For the long phases (rollout,
update) this process sends SIGKILL at a random moment inside the phase; the short points inside
a save last milliseconds, so there the probe waits for the kill when it reaches the chosen
point. Either way the kill comes from this process, by the child's PID, and the phase log says
where it landed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT

ROWS = [{"input": f"Name {thing}.", "target": answer} for thing, answer in [
    ("a fruit", "apple"), ("a colour", "red"), ("an animal", "cat"), ("a country", "France"),
    ("a number", "7"), ("a planet", "Mars"), ("a tool", "hammer"), ("a city", "Paris")]]
REWARDS = '''\
import math


def length(completions, targets, inputs):
    """Dense: longer is better, so that groups rarely tie and every step updates."""
    return [min(len(c), 40) / 40 for c in completions]


def raises(completions, targets, inputs):
    raise ValueError("a bug in the user's reward")


def nan(completions, targets, inputs):
    return [math.nan for _ in completions]


def inf(completions, targets, inputs):
    return [math.inf for _ in completions]


def too_short(completions, targets, inputs):
    return [1.0] * (len(completions) - 1)


def too_long(completions, targets, inputs):
    return [1.0] * (len(completions) + 3)


def strings(completions, targets, inputs):
    return ["high" for _ in completions]


def none(completions, targets, inputs):
    return None


def scalar(completions, targets, inputs):
    return 1.0


def nested(completions, targets, inputs):
    return [[1.0] for _ in completions]


def dict_scores(completions, targets, inputs):
    return {"score": 1.0}


def no_kwargs(completions):
    return [0.0 for _ in completions]


def exits(completions, targets, inputs):
    raise SystemExit(7)


def recursion(completions, targets, inputs):
    return recursion(completions, targets, inputs)


def nan_in_training(completions, targets, inputs):
    """Fine on one answer (the evaluation before training), NaN on a training batch."""
    return [0.0] if len(completions) == 1 else [math.nan] * len(completions)


def short_in_training(completions, targets, inputs):
    """Fine on one answer (the evaluation before training), one score for a whole training batch."""
    return [0.0]
'''
BROKEN_MODULE = "def broken(:\n    pass\n"  # a reward module with a syntax error


def train_config(steps: int = 3) -> dict:
    return {
        "seed": 5,
        "model": {"dtype": "float32"},
        "network": {"layers": [1], "generation": {"max_new_tokens": 4}, "adapters": {"rank": 2}},
        "task": {"name": "jsonl", "path": "rows.jsonl", "reward": "faults_rewards:length", "train_size": 4,
                 "test_size": 2},
        "eval": {"limit": 2},
        "train": {"steps": steps, "batch_size": 2, "group_size": 2, "lr": 1e-3, "checkpoint_every": 1,
                  "keep_checkpoints": 2, "eval_every": 2},
    }


def workspace(root: Path, steps: int = 3) -> Path:
    """A folder with the task's rows, its reward module and the run's config.yaml."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "faults_rewards.py").write_text(REWARDS)
    (root / "faults_broken.py").write_text(BROKEN_MODULE)
    (root / "config.yaml").write_text(yaml.safe_dump(train_config(steps), sort_keys=False))
    return root


def child_env(root: Path) -> dict:
    """The environment of the processes under test: one thread, the workspace importable."""
    paths = [str(root), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}


def neuromas_cli(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromas.cli", *args], cwd=root, env=child_env(root),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# the probe: runs in the child ----------------------------------------------------------------
def probe_main(argv: list[str]) -> None:
    """`python -m benchmarks.faults probe -- ARGS`: the neuromas CLI with phase marks.

    $FAULTS_PHASES is the file the marks go to; $FAULTS_PAUSE (`point:step`, e.g.
    `ckpt-trainer.pt:3`) is where to wait to be killed.
    """
    import torch

    import neuromas.checkpoint as checkpoint
    import neuromas.files as files
    from neuromas.backends.hf import HFBackend
    from neuromas.cli import app
    from neuromas.rl.trainer import Trainer

    marks, pause = os.environ["FAULTS_PHASES"], os.environ.get("FAULTS_PAUSE", "")

    def mark(event: str) -> None:
        with open(marks, "a") as f:
            f.write(f"{time.monotonic():.6f} {event}\n")
        if pause and event == f"point {pause}":
            time.sleep(600)  # the parent kills this process here

    def timed(name, fn, step_of):
        def wrapper(self, *args, **kwargs):
            step = step_of(self, *args)
            mark(f"start {name}:{step}")
            out = fn(self, *args, **kwargs)
            mark(f"end {name}:{step}")
            return out
        return wrapper

    def where(path) -> str | None:
        """`ckpt-N` or `final` for a path inside a save's temporary directory."""
        for part in Path(path).parts:
            if part.startswith(".step-") and ".tmp-" in part:
                return f"ckpt:{int(part[6:12])}"
            if part.startswith(".final.tmp-"):
                return "final:0"
        return None

    Trainer.rollout = timed("rollout", Trainer.rollout, lambda self, step: step + 1)
    Trainer.update = timed("update", Trainer.update, lambda self, rows: self.step + 1)
    save_adapters, torch_save, replace, rmtree = HFBackend.save_adapters, torch.save, os.replace, shutil.rmtree

    def probed_save_adapters(self, directory):
        if (at := where(directory)) is not None:
            kind, step = at.split(":")
            mark(f"point {kind}-adapters:{step}")
        return save_adapters(self, directory)

    def probed_torch_save(obj, path, *args, **kwargs):
        if (at := where(path)) is not None and Path(path).name == "trainer.pt":
            mark(f"point ckpt-trainer.pt:{at.split(':')[1]}")
        return torch_save(obj, path, *args, **kwargs)

    def probed_replace(src, dst, *args, **kwargs):
        name = Path(src).name
        if name.startswith((".step-", ".final.")) and ".tmp-" in name:
            at = where(src)
            kind, step = at.split(":")
            mark(f"point {kind}-rename:{step}")
        return replace(src, dst, *args, **kwargs)

    def probed_rmtree(path, *args, **kwargs):
        if Path(path).parent.name == "checkpoints" and Path(path).name.startswith("step-"):
            newest = max(int(p.name[5:]) for p in Path(path).parent.iterdir() if p.name.startswith("step-"))
            mark(f"point ckpt-prune:{newest}")
        return rmtree(path, *args, **kwargs)

    HFBackend.save_adapters, torch.save, files.os.replace = probed_save_adapters, probed_torch_save, probed_replace
    checkpoint.shutil.rmtree = probed_rmtree
    app(argv, prog_name="neuromas")


# the parent ---------------------------------------------------------------------------------
def _fresh(run: Path, marks: Path | None = None) -> None:
    """Remove what an earlier, interrupted benchmark left under these names."""
    shutil.rmtree(run, ignore_errors=True)
    if marks is not None and marks.exists():
        marks.unlink()


def read_marks(path: Path) -> list[tuple[float, str]]:
    if not path.is_file():
        return []
    return [(float(t), event) for t, event in (line.split(" ", 1) for line in path.read_text().splitlines() if line)]


def landed(marks: list[tuple[float, str]]) -> str:
    """Where the process was when it died: the innermost phase started and not ended, else the
    last mark."""
    open_phases: list[str] = []
    for _, event in marks:
        kind, what = event.split(" ", 1)
        if kind == "start":
            open_phases.append(what)
        elif kind == "end" and what in open_phases:
            open_phases.remove(what)
    last = marks[-1][1] if marks else "start-up"
    if last.startswith("point "):
        return last.removeprefix("point ")
    return open_phases[-1] if open_phases else f"after {last}"


def start_probe(root: Path, run: str, marks: Path, pause: str = "", resume: bool = False) -> subprocess.Popen:
    args = ["train", "--resume", run, "-q"] if resume else ["train", "config.yaml", "--out", run, "-q"]
    env = {**child_env(root), "FAULTS_PHASES": str(marks), "FAULTS_PAUSE": pause}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.faults", "probe", "--", *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            stdin=subprocess.DEVNULL)


def wait_for_mark(process: subprocess.Popen, marks: Path, event: str, timeout: float = 900) -> float | None:
    """The time `event` was marked; None if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, seen in read_marks(marks):
            if seen == event:
                return t
        if process.poll() is not None:
            return None
        time.sleep(0.002)
    raise TimeoutError(f"{event} not reached in {timeout} s")


def fingerprint(run_dir: Path) -> tuple[dict[str, bytes], list[dict]]:
    """The final adapters' bytes and the logged metrics without wall-clock times."""
    adapters = {p.relative_to(run_dir).as_posix(): p.read_bytes()
                for p in sorted((run_dir / "final" / "adapters").rglob("*")) if p.is_file()}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").is_file() else []
    metrics = [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]
    return adapters, metrics


def phase_durations(marks: list[tuple[float, str]]) -> dict[str, float]:
    """Mean duration of each timed phase (rollout, update) in the reference run."""
    starts, durations = {}, {}
    for t, event in marks:
        kind, what = event.split(" ", 1)
        if kind == "start":
            starts[what] = t
        elif kind == "end":
            durations.setdefault(what.split(":")[0], []).append(t - starts.pop(what))
    return {name: sum(v) / len(v) for name, v in durations.items()}


def kill_plan(kills: int, steps: int, rng: random.Random) -> list[tuple[str, str]]:
    """(how, target) for each kill: `timed` at a phase start (`update:2`) or `pause` at a point."""
    kinds = ["rollout", "update", "checkpoint", "final"]
    plan = []
    for i in range(kills):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        if kind in ("rollout", "update"):
            plan.append(("timed", f"{kind}:{rng.randint(1, steps)}"))
        elif kind == "checkpoint":
            point = rng.choice(["adapters", "trainer.pt", "rename", "prune"])
            step = rng.randint(3 if point == "prune" else 1, steps)  # pruning starts once `keep` are there
            plan.append(("pause", f"ckpt-{point}:{step}"))
        else:
            plan.append(("pause", f"final-{rng.choice(['adapters', 'rename'])}:0"))
    return plan


def kill_and_resume(root: Path, kills: int, steps: int, seed: int) -> tuple[dict, list[list]]:
    """The reference run, `kills` runs killed with SIGKILL and resumed, and one each stopped
    with SIGTERM and with SIGINT (Ctrl-C) and resumed. Returns (metrics, table rows)."""
    ref_marks = root / "marks-ref.txt"
    if (root / "ref").exists() and not ref_marks.is_file():  # made by another part, without the phase marks
        shutil.rmtree(root / "ref")
    reference = start_probe(root, "ref", ref_marks)
    _, err = reference.communicate(timeout=1800)
    if reference.returncode != 0:
        raise SystemExit(f"the reference run failed:\n{err}")
    want = fingerprint(root / "ref")
    durations = phase_durations(read_marks(ref_marks))
    rng = random.Random(seed)
    rows, identical, resumed = [], 0, 0
    for i, (how, target) in enumerate(kill_plan(kills, steps, rng)):
        run, marks = f"kill-{i}", root / f"marks-kill-{i}.txt"
        _fresh(root / run, marks)
        pause = target if how == "pause" else ""
        process = start_probe(root, run, marks, pause=pause)
        started = wait_for_mark(process, marks, f"point {target}" if how == "pause" else f"start {target}")
        delay = 0.0
        if how == "timed" and started is not None:
            delay = rng.uniform(0.05, 0.9) * durations[target.split(":")[0]]
            time.sleep(max(0.0, started + delay - time.monotonic()))
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)  # the child we started, by its PID
        process.wait()
        where = landed(read_marks(marks)) if killed else "finished before the kill"
        done = neuromas_cli(root, "train", "--resume", run, "-q")
        same = done.returncode == 0 and fingerprint(root / run) == want
        resumed += done.returncode == 0
        identical += same
        rows.append([i + 1, "SIGKILL", target, f"{delay:.2f} s" if how == "timed" else "at the point", where,
                     done.returncode, "yes" if same else "NO"])
        print(f"kill {i + 1}: {target} -> landed in {where}; resume exit {done.returncode}; identical {same}",
              flush=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
    stops = stop_and_resume(root, want, durations, rows)
    metrics = {"kills": kills, "resumed": resumed, "identical": identical,
               "reference_step_s": round(durations.get("rollout", 0) + durations.get("update", 0), 2), **stops}
    return metrics, rows


def stop_and_resume(root: Path, want, durations: dict, rows: list) -> dict:
    """SIGTERM and SIGINT during an update: a clean stop that names the resume command, then --resume."""
    ok = same_total = 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        name, run, marks = signal.Signals(signum).name, f"stop-{signal.Signals(signum).name}", root / f"marks-{signum}.txt"
        _fresh(root / run, marks)
        process = start_probe(root, run, marks)
        started = wait_for_mark(process, marks, "start update:2")
        time.sleep(max(0.0, started + 0.3 * durations["update"] - time.monotonic()))
        os.kill(process.pid, signum)
        _, err = process.communicate(timeout=900)
        lines = [line for line in err.splitlines() if line.strip()]
        clean = (process.returncode == 128 + signum and any("--resume" in line for line in lines)
                 and "Traceback" not in err and (root / run / "checkpoints" / "step-000002" / "SHA256SUMS").is_file())
        done = neuromas_cli(root, "train", "--resume", run, "-q")
        same = done.returncode == 0 and fingerprint(root / run) == want
        ok += clean
        same_total += same
        rows.append([len(rows) + 1, name, "update:2", "30% in", f"exit {process.returncode}: {lines[-1][:90] if lines else ''}",
                     done.returncode, "yes" if same else "NO"])
        print(f"{name}: exit {process.returncode}, clean {clean}; resume identical {same}", flush=True)
    return {"signal_stops": 2, "signal_stops_clean": ok, "signal_stops_identical": same_total}


# part 2: damaged state ------------------------------------------------------------------------
def _flip_bit(path: Path, fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * fraction)] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_config(run: Path) -> None:
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.001", "lr: 0.002"))


def _edit_network(ckpt: Path) -> None:
    spec = ckpt / "network.yaml"
    spec.write_text(spec.read_text().replace("rank: 2", "rank: 4"))


def _torn_metrics(run: Path) -> None:
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "reward/mean": 0.')


def _damage_both(run: Path) -> None:
    for ckpt in sorted((run / "checkpoints").iterdir()):
        _truncate(ckpt / "trainer.pt")


def _newest(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


# (name, damage(run directory), expected: "fallback" = refused, resumed from the checkpoint before
# and identical; "stop" = one line, exit 2; "repaired" = resumed and identical, nothing refused)
CORRUPTIONS = [
    ("trainer.pt cut in half", lambda run: _truncate(_newest(run) / "trainer.pt"), "fallback"),
    ("trainer.pt one bit flipped", lambda run: _flip_bit(_newest(run) / "trainer.pt"), "fallback"),
    ("adapter weights one bit flipped",
     lambda run: _flip_bit(_newest(run) / "adapters/L1N1/adapter_model.safetensors"), "fallback"),
    ("optimizer state (trainer.pt) missing", lambda run: (_newest(run) / "trainer.pt").unlink(), "fallback"),
    ("adapter weights missing", lambda run: (_newest(run) / "adapters/L1N1/adapter_model.safetensors").unlink(),
     "fallback"),
    ("network.yaml edited in the checkpoint", lambda run: _edit_network(_newest(run)), "fallback"),
    ("SHA256SUMS deleted", lambda run: (_newest(run) / "SHA256SUMS").unlink(), "fallback"),
    ("every checkpoint damaged", _damage_both, "stop"),
    ("config.yaml edited after the start (train.lr)", _edit_config, "stop"),
    ("metrics.jsonl cut mid-line", _torn_metrics, "repaired"),
    ("results_before.json cut short", lambda run: _truncate(run / "results_before.json"), "repaired"),
]


def corrupt_and_resume(root: Path) -> tuple[dict, list[list]]:
    """Each damage applied to a copy of the finished reference run (its final/ and results
    removed, so that the resume must redo them), then `neuromas train --resume`."""
    want = fingerprint(root / "ref")
    rows, refused = [], 0
    for i, (name, damage, expected) in enumerate(CORRUPTIONS):
        run = root / f"corrupt-{i}"
        _fresh(run)
        shutil.copytree(root / "ref", run, symlinks=True)
        shutil.rmtree(run / "final")
        (run / "results.json").unlink()
        damage(run)
        done = neuromas_cli(root, "train", "--resume", run.name, "-q")
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("resuming ")]
        said = [line for line in lines if "refused" in line or "error" in line]
        if expected == "fallback":
            ok = done.returncode == 0 and len(said) == 1 and "refused" in said[0] and fingerprint(run) == want
        elif expected == "stop":
            ok = done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and not (run / "final").exists()
        else:
            ok = done.returncode == 0 and not said and fingerprint(run) == want
        refused += ok
        rows.append([name, expected, done.returncode, said[0][:150] if said else "(nothing said)", "yes" if ok else "NO"])
        print(f"corrupt: {name}: exit {done.returncode}, {'ok' if ok else 'NOT OK'}: {said[:1]}", flush=True)
        if "Traceback" in done.stderr:
            print(done.stderr[-3000:], file=sys.stderr)
    final_ok = _damaged_final(root)
    rows.append(["final/ adapter one bit flipped (Network.load)", "stop", "-", final_ok[1][:150],
                 "yes" if final_ok[0] else "NO"])
    return {"corrupt_cases": len(CORRUPTIONS) + 1, "corrupt_refused": refused + final_ok[0]}, rows


def _damaged_final(root: Path) -> tuple[bool, str]:
    """A finished run's final/ network with a flipped bit is refused before any model is loaded."""
    from neuromas.errors import NeuromasError
    from neuromas.network import Network

    run = root / "final-damaged"
    _fresh(run)
    shutil.copytree(root / "ref", run, symlinks=True)
    _flip_bit(run / "final" / "adapters" / "L1N1" / "adapter_model.safetensors")
    try:
        Network.load(run)
    except NeuromasError as error:
        return "checksum" in str(error), str(error)
    return False, "loaded without complaint"
