"""A stage started again over an earlier run of it: refused unless the user says to continue it or to start over.

Without this a second `fronde pretrain` with the same run name (the `--resume` forgotten after a crash) trained
from step 0 over the first run: its checkpoints rotated in among the old ones by name (a new step-000200 sorts
before an old step-009000, so keep_last deleted the new one at once, and `latest` named a missing directory), and
the stage then published the *old* run's newest checkpoint under the new run's lineage. HF's example scripts refuse
a non-empty output directory without `--overwrite_output_dir` for the same reason. So: `--resume` continues,
`--restart` clears the earlier run's training outputs (checkpoints, model, metrics, plots; caches such as a teacher's
answers stay) and trains from step 0, and a new `run.name` starts beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fronde.train.checkpoint import candidates
from fronde.train.recipe import RecipeError
from fronde.train.stage_lock import held_by_live_process, read_lock

OUTPUTS = ("checkpoints", "model", "model.tmp", "metrics.jsonl", "plots", "tensorboard")


def earlier_run(stage_dir: Path) -> str | None:
    """What an earlier run of the stage left in `stage_dir` ("checkpoints up to step 300, a published model"), or
    None when there is nothing a fresh start would overwrite."""
    found = []
    steps = [int(p.name.removeprefix("step-")) for p in candidates(stage_dir / "checkpoints")]
    if steps:
        found.append(f"checkpoints up to step {max(steps)}")
    if (stage_dir / "model" / "config.json").is_file():
        found.append("a published model")
    return ", ".join(found) or None


def check_fresh_start(stage_dir: Path, stage: str, resume: bool, restart: bool) -> None:
    """Before a stage trains: with --restart clear the earlier run, without --resume or --restart refuse to train
    over one."""
    if resume and restart:
        raise RecipeError("--resume continues the earlier run and --restart starts over: pass one of them")
    if resume:
        return
    earlier = earlier_run(stage_dir)
    if earlier is None:
        return
    if not restart:
        raise RecipeError(f"{stage_dir} holds an earlier {stage} run ({earlier}): pass --resume to continue it, "
                          f"--restart to train it again from step 0 (its checkpoints, metrics, plots and model are "
                          "replaced), or --set run.name=NEW to train a new run beside it")
    lock = read_lock(stage_dir)
    if lock is not None and held_by_live_process(lock):  # never clear a run under the process still training it
        raise RecipeError(f"{stage_dir} is being trained by process {lock['pid']}; stop it before --restart")
    for name in OUTPUTS:
        path = stage_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
