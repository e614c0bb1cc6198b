"""metrics.jsonl after a kill: a line cut short must neither stop a resume nor the readers (report, plots,
dashboard), and the resumed stage logs that step again."""

from __future__ import annotations

import json

from fronde.train.metrics import MetricsLog, read_metrics


def _torn(path):
    records = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.9}, {"step": 3, "loss": 1.8}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 4, "loss": 1.')  # killed mid-write
    return records


def test_readers_skip_the_line_a_kill_cut_short(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = _torn(path)
    assert read_metrics(path) == records
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_resume_keeps_the_checkpointed_steps_and_drops_the_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = _torn(path)
    log = MetricsLog(path, resume_from_step=2)  # the checkpoint was at step 2
    log.write({"step": 3, "loss": 1.7})
    log.close()
    assert read_metrics(path) == records[:2] + [{"step": 3, "loss": 1.7}]
    assert path.read_text().count("\n") == 3  # every line whole
