"""The per-step log of a run: a resumed run redoes the steps after its checkpoint, so what was
logged for them before must go, from the JSONL and from TensorBoard, or curves count them twice."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from neuromas.rl.metrics import MetricsLog, read_metrics


def test_truncate_after_drops_later_steps_from_jsonl_and_tensorboard(tmp_path):
    log = MetricsLog(tmp_path)
    for step in (1, 2, 3):
        log.write(step, {"reward/mean": float(step)})
    log.close()

    resumed = MetricsLog(tmp_path)  # a new process, resuming from the checkpoint of step 1
    resumed.truncate_after(1)
    assert [m["step"] for m in read_metrics(tmp_path)] == [1]
    resumed.write(2, {"reward/mean": 20.0})
    resumed.close()

    assert [(m["step"], m["reward/mean"]) for m in read_metrics(tmp_path)] == [(1, 1.0), (2, 20.0)]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(1, 1.0), (2, 20.0)]


def test_truncate_after_zero_starts_the_log_over(tmp_path):
    log = MetricsLog(tmp_path)
    log.write(1, {"loss/policy": 0.5})
    log.close()
    log = MetricsLog(tmp_path)
    log.truncate_after(0)
    assert read_metrics(tmp_path) == []


def test_read_metrics_keeps_the_last_line_of_a_step_logged_twice(tmp_path):
    """Logs written before truncate_after existed hold a restarted run's steps twice."""
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "tokens/total": 100}\n{"step": 1, "tokens/total": 7}\n{"step": 2, "tokens/total": 9}\n\n')
    assert [(m["step"], m["tokens/total"]) for m in read_metrics(tmp_path)] == [(1, 7), (2, 9)]
    assert read_metrics(tmp_path / "missing") == []
