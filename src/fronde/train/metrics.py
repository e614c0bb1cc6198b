"""Per-step metrics: runs/<name>/<stage>/metrics.jsonl (one JSON object per line), optionally TensorBoard too.

Metric names are stable: step, loss, val_loss, lr, grad_norm, tokens_per_s, mfu, tokens, mtp_loss, balance_loss,
expert_load_imbalance, expert_load (per MoE layer, fraction of routed tokens per expert).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fronde.data.io import atomic_write_text
from fronde.train.recipe import RecipeError


class MetricsLog:
    def __init__(self, path: Path, tensorboard: bool = False, resume_from_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_from_step is not None and path.is_file():
            self._truncate_after(resume_from_step)  # steps logged after the checkpoint will be logged again
        elif resume_from_step is None and path.is_file():
            path.unlink()
        self._file = path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RecipeError("log.tensorboard = true needs the tensorboard package: pip install tensorboard") from None
            self._tb = SummaryWriter(str(path.parent / "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        """Keep the records up to the checkpoint's step. A line cut short by a kill is a step after the
        checkpoint (a step is logged before it is checkpointed): it goes with the rest."""
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            record = _parse(line)
            if record is not None and record.get("step", 0) <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """A metrics.jsonl's records. A line that does not parse is skipped: the one a running stage is writing, or
    one a kill cut short (the stage logs it again when it resumes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [record for record in map(_parse, text.splitlines()) if record is not None]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
