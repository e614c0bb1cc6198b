"""The runs dashboard's HTTP API: run summaries (fronde.eval.runs, the same ones `fronde runs` prints), and the
curves, ledger, evaluations, scoreboard and model cards of one run, read safely from a runs dir.

    runs/<name>/ledger.json                  the cost ledger (fronde.train.ledger)
    runs/<name>/<stage>/metrics.jsonl        one record per logged step (fronde.train.metrics)
    runs/<name>/<stage>/model/MODEL_CARD.md  the stage's model card, when its model was published with one
    runs/<name>/eval/<model>/<task>.json     `fronde eval` results (its default --out for a run's model)

Names in URLs are checked against a strict pattern and must name a direct child of the runs dir (no `..`, no
symlink out), so a client can only read these files. The files may be written while they are read (a run that
trains): a half-written last line of metrics.jsonl is skipped, not an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from fronde.eval.errors import EvalError
from fronde.eval.references import load_references
from fronde.eval.results import primary_metric, read_results
from fronde.eval.runs import NAME, list_runs, read_ledger, stage_status, summarize_run
from fronde.eval.scoreboard import Scoreboard
from fronde.serve.protocol import error_body
from fronde.train.metrics import read_metrics

MAX_POINTS = 2000  # per curve; longer runs are thinned evenly (every val_loss kept)
MAX_LOAD_SNAPSHOTS = 120  # expert-load matrices sent for the heatmap's step slider
MAX_CARD_BYTES = 256 * 1024


@dataclass
class RunsConfig:
    """What the dashboard reads: the runs dir, plus reference models' results for the scoreboard."""

    runs_dir: Path
    reference_results: list[dict[str, Any]] = field(default_factory=list)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, runs_dir: Path, against: list[Path] | None = None, reference: Path | None = None) -> RunsConfig:
        """Reads the reference results once (they do not change while serving); raises EvalError on a bad path."""
        runs_dir = Path(runs_dir)
        if not runs_dir.is_dir():
            raise EvalError(f"{runs_dir}: no such runs directory")
        if (runs_dir / "ledger.json").is_file():
            raise EvalError(f"{runs_dir} is one run; give the directory that holds the runs ({runs_dir.parent})")
        return cls(runs_dir, read_results(against or []), load_references(reference))


class RunsError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def child(root: Path, name: str, what: str) -> Path:
    """root/name when `name` is a plain name of an existing directory directly inside root, else RunsError."""
    if not NAME.fullmatch(name):
        raise RunsError(400, f"{what} {name!r} is not a valid name (letters, digits, '.', '_', '-')")
    path = root / name
    if not path.is_dir() or path.resolve().parent != root.resolve():
        raise RunsError(404, f"no {what} {name!r}")
    return path


# -- reading one stage ---------------------------------------------------------------------------------------------
def read_records(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records with a step (a line being written is skipped: fronde.train.metrics.read_metrics)."""
    return [r for r in read_metrics(path) if isinstance(r.get("step"), int)]


def _thin(n: int, keep: int, also: Callable[[int], bool] = lambda i: False) -> list[int]:
    """Indices of about `keep` evenly spaced items out of n, always the last, plus those `also` wants."""
    if n <= keep:
        return list(range(n))
    stride = math.ceil(n / keep)
    return [i for i in range(n) if i % stride == 0 or i == n - 1 or also(i)]


def stage_metrics(stage_dir: Path, since: str | None = None, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Columns for the curves: steps and, per numeric metric, its value at each step (None where not logged).
    `version` changes whenever the file does; asked `since` the current one, only that is answered (polling)."""
    path = stage_dir / "metrics.jsonl"
    st = path.stat() if path.is_file() else None
    version = f"{st.st_mtime_ns}-{st.st_size}" if st else "none"
    if since == version:
        return {"stage": stage_dir.name, "version": version, "unchanged": True}
    records = read_records(path)
    kept = [records[i] for i in _thin(len(records), max_points, lambda i: "val_loss" in records[i])]
    keys: list[str] = []
    for r in kept:
        keys += [k for k, v in r.items() if k != "step" and k not in keys
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    series = {k: [_finite(r.get(k)) for r in kept] for k in keys}
    loads = [r for r in records if isinstance(r.get("expert_load"), list)]
    loads = [loads[i] for i in _thin(len(loads), MAX_LOAD_SNAPSHOTS)]
    status, reason = stage_status(stage_dir, time.time())
    return {"stage": stage_dir.name, "version": version, "status": status, "reason": reason,
            "records": len(records), "thinned": len(kept) < len(records), "steps": [r["step"] for r in kept],
            "series": series,
            "expert_load": {"steps": [r["step"] for r in loads], "loads": [r["expert_load"] for r in loads]}}


def _finite(v: Any) -> float | None:
    """JSON has no NaN or infinity; a diverged loss shows as a gap."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# -- reading one run ----------------------------------------------------------------------------------------------
def _result_view(r: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A result without its per-example outputs (they can be megabytes), plus the number a table shows."""
    key, value = primary_metric(r)
    path = Path(r.get("_path", ""))
    return {"model": r["model"].get("name"), "task": r.get("task"), "kind": r.get("kind"),
            "score": {"metric": key, "value": value}, "metrics": r.get("metrics", {}),
            "examples": (r.get("dataset") or {}).get("examples"), "settings": r.get("settings", {}),
            "speed": r.get("speed"), "label": r.get("label"), "created": r.get("created"),
            "file": str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else path.name}


def run_detail(cfg: RunsConfig, name: str) -> dict[str, Any]:
    """Everything the run page shows but the curves: stages, ledger, eval results, scoreboard, model cards."""
    run_dir = child(cfg.runs_dir, name, "run")
    summary = summarize_run(run_dir).as_dict()
    # a damaged result file is in summary["errors"] (fronde.eval.runs), not a failed page
    own = read_results([run_dir / "eval"], []) if (run_dir / "eval").is_dir() else []
    board = None
    if own:
        board = Scoreboard.from_results(own + cfg.reference_results, cfg.references).as_json()
        own_models = {r["model"]["name"] for r in own}
        for row in board["models"]:
            row["this_run"] = row["name"] in own_models
    cards = {}
    for stage in summary["stages"]:
        card = run_dir / stage["name"] / "model" / "MODEL_CARD.md"
        if card.is_file():
            cards[stage["name"]] = card.read_bytes()[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    return summary | {"ledger": read_ledger(run_dir),
                      "results": [_result_view(r, run_dir) for r in own],
                      "scoreboard": board, "model_cards": cards}


def runs_inside(runs_dir: Path) -> list[dict[str, Any]]:
    """The runs table: what `fronde runs` lists, less any run that is a symlink out of the runs dir."""
    root = runs_dir.resolve()
    return [r.as_dict() for r in list_runs(runs_dir) if (runs_dir / r.name).resolve().parent == root]


# -- HTTP ----------------------------------------------------------------------------------------------------------
def runs_router(cfg: RunsConfig) -> APIRouter:
    """GET /api/runs, /api/runs/{name}, /api/runs/{name}/metrics?stage=...&since=... (plain `def`s: file reads run
    in the thread pool, off the event loop that streams tokens)."""
    router = APIRouter(prefix="/api")

    def answer(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RunsError as e:
            code = "not_found" if e.status == 404 else "invalid_name"
            return JSONResponse(error_body(e.message, code=code), status_code=e.status)

    @router.get("/runs")
    def runs() -> Any:
        return answer(lambda: {"runs_dir": str(cfg.runs_dir), "runs": runs_inside(cfg.runs_dir)})

    @router.get("/runs/{name}")
    def run(name: str) -> Any:
        return answer(lambda: run_detail(cfg, name))

    @router.get("/runs/{name}/metrics")
    def metrics(name: str, stage: str, since: str | None = None,
                max_points: int = Query(MAX_POINTS, ge=10, le=100_000)) -> Any:
        return answer(lambda: stage_metrics(child(child(cfg.runs_dir, name, "run"), stage, "stage"), since,
                                            max_points))

    return router
