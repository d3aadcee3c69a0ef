"""One flat dict of namespaced scalars per step, to JSONL and TensorBoard.

Keys: `reward/mean`, `reward/std`, `reward/tied_fraction` (groups whose G rewards all tie:
no learning signal), `loss/policy`, `loss/kl`, `kl/mean`, `grad/norm`, `update/skipped`
(non-finite loss or gradient), `update/rows` (messages the update ran: those with a non-zero
advantage, or all with a KL term), `lr`, `tokens/total` (generated in the step's rollouts),
`time/rollout_s`, `time/step_s`, `node/<id>/tokens` (mean message length),
`node/<id>/entropy` (mean negative log-prob per sampled token; a grown network's new nodes
average over the passes they ran in), `growth/alpha` (while a grown network fades in: the
share of passes that run the grown form, grow.py), `growth/calls_per_pass` (on the step a
scheduled growth happened: the grown network's size), on evaluation steps
`eval/acc`, `eval/ci_low`, `eval/ci_high`, and with `train.algorithm: collm-cc` (rl/critic.py)
`critic/value_loss` (mean squared error of the values against the rewards, before the critic's
update), `critic/value_mean`, `critic/advantage_mean` (before whitening), `critic/grad_norm`.

A growth also gets a line in `growth.jsonl`: `step` (the first step of the grown network, the
one with `growth/calls_per_pass`), `widths` ([before, after]), `renamed` (parent id -> new id of
every node a deepening moved down: from `step` on, `node/L3N1/...` is what `node/L2N1/...` was),
`new` (each new node -> the node its adapter was cloned from, or null), `init`, `ramp_steps`.
"""

from __future__ import annotations

import json
from pathlib import Path

from neuromas.files import atomic_write


class MetricsLog:
    def __init__(self, run_dir: Path):
        self.path = run_dir / "metrics.jsonl"
        self.growth_path = run_dir / "growth.jsonl"
        self.tb_dir = run_dir / "tensorboard"
        self._writer = None
        self._purge_step: int | None = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tb_dir), purge_step=self._purge_step)
        return self._writer

    def write(self, step: int, metrics: dict[str, float]) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"step": step, **metrics}) + "\n")
        for key, value in metrics.items():
            if key != "step":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def write_growth(self, record: dict) -> None:
        """One line of `growth.jsonl` (see above)."""
        with open(self.growth_path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop what was logged after `step` (a resumed run redoes those steps): the JSONL lines,
        and in TensorBoard (SummaryWriter's purge_step) the events from step + 1 on."""
        self._purge_step = step + 1
        for path in (self.path, self.growth_path):
            if path.is_file():
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                kept = [line for line in lines if (record := _parse(line)) is not None and record["step"] <= step]
                atomic_write(path, "".join(line + "\n" for line in kept))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics(run_dir: str | Path) -> list[dict]:
    """A run's steps in order, one record per step. Where a step was logged twice (a run resumed
    before `truncate_after` existed, or restarted without a checkpoint) the later line is the step
    that counted."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for record in _records(path):
        by_step[record["step"]] = record  # the later line of a redone step wins
    return sorted(by_step.values(), key=lambda record: record["step"])


def _records(path: Path) -> list[dict]:
    """A JSONL log's records. A line cut short by a crash mid-append (only ever the last one, but
    anything unreadable is treated alike) is skipped: its step is redone on resume."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [record for line in lines if (record := _parse(line)) is not None]


def _parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def read_growths(run_dir: str | Path) -> list[dict]:
    """A run's `growth.jsonl` records, in order."""
    path = Path(run_dir) / "growth.jsonl"
    return _records(path) if path.is_file() else []
