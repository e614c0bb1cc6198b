"""Evaluation: any model measured the same way, and the scoreboard that puts them side by side.

A layer above fronde.data/tasks/model/train/infer (never importing serve or cli):

- `load_eval_model(spec | endpoint=..., model=...)`: one interface over fronde dirs (the engine), transformers dirs,
  GGUF files and OpenAI-compatible endpoints (fronde.eval.models);
- `run_plan(model, EvalPlan(...), out_dir)`: generative tasks with their verifiers (accuracy, pass@k), gsm-symbolic's
  originals with an honest label, multiple choice by log-likelihood, loss and bits per byte; one result JSON per
  model x evaluation (fronde.eval.results);
- `Scoreboard.from_results(...)`: the markdown table and PNG plots (fronde.eval.scoreboard, fronde.eval.plots);
- `write_report(run_dir)`: runs/<name>/report.md (fronde.eval.report).
"""

from fronde.eval.errors import EvalError
from fronde.eval.generative import GenerationSettings, evaluate_generative
from fronde.eval.models import EvalModel, ModelDescription, Speed, load_eval_model
from fronde.eval.passk import pass_at_k
from fronde.eval.results import read_results, write_result
from fronde.eval.run import EvalPlan, run_plan

__all__ = [
    "EvalError",
    "EvalModel",
    "EvalPlan",
    "GenerationSettings",
    "ModelDescription",
    "Speed",
    "evaluate_generative",
    "load_eval_model",
    "pass_at_k",
    "read_results",
    "run_plan",
    "write_result",
]
