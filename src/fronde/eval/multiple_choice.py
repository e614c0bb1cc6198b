"""Multiple choice by log-likelihood, for the ARC/MMLU-style sets a team has, one JSON object per line:

    {"question": "Which gas do plants take in?", "choices": ["Oxygen", "Carbon dioxide", "Helium"], "answer": 1}
    {"id": "q2", "question": "2 + 2 =", "choices": ["3", "4"], "answer": "4"}

`answer` is the index of the right choice (0-based) or its exact text; `id` is optional. Each choice is scored as
the continuation " <choice>" of the plain-text prompt "Question: <question>\nAnswer:" (no chat template, as
lm-evaluation-harness does): `acc` takes the highest log-likelihood, `acc_norm` the highest log-likelihood per
character of the choice (lm-evaluation-harness's acc_norm), which stops long answers from losing for their length.
Ties go to the earlier choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fronde.data.progress import NullReporter, Reporter
from fronde.eval import shards
from fronde.data.io import jsonl_rows
from fronde.eval.errors import EvalError
from fronde.eval.models import EvalModel
from fronde.eval.results import dataset_hash
from fronde.train.distributed import DistContext

PROMPT = "Question: {question}\nAnswer:"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: list[str]
    answer: int


def read_questions(path: Path, n: int | None = None) -> list[Question]:
    """The first n questions of a JSONL file; a bad line stops with file:line and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"--mc {path}: no such file")
    out: list[Question] = []
    for i, row in jsonl_rows(path, EvalError):
        out.append(_parse(row, f"{path}:{i}"))
        if n is not None and len(out) >= n:
            break
    if not out:
        raise EvalError(f"--mc {path}: no questions in the file")
    return out


def _parse(row: Any, where: str) -> Question:
    if not isinstance(row, dict):
        raise EvalError(f"{where}: expected an object with question, choices, answer")
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise EvalError(f"{where}: \"question\" must be a non-empty string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise EvalError(f"{where}: \"choices\" must be a list of at least two non-empty strings")
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise EvalError(f"{where}: \"answer\" must be a choice index (0-based) or the text of a choice")
    if isinstance(answer, str):
        if answer not in choices:
            raise EvalError(f"{where}: \"answer\" {answer!r} is not one of the choices {choices}")
        answer = choices.index(answer)
    if not 0 <= answer < len(choices):
        raise EvalError(f"{where}: \"answer\" index {answer} is out of range for {len(choices)} choices")
    return Question(str(row.get("id", where.rsplit("/", 1)[-1])), question, choices, answer)


def evaluate_mc(model: EvalModel, questions: list[Question], progress: Reporter | None = None, title: str = "mc",
                ctx: DistContext | None = None) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(metrics, dataset, per-question rows): acc and acc_norm in percent; under torchrun (`ctx`) each
    process scores its share."""
    progress = progress or NullReporter()
    mine = shards.span(len(questions), ctx)
    progress.start(shards.title(title, ctx), total=len(mine))
    rows = []
    for q in questions[mine.start:mine.stop]:
        context = PROMPT.format(question=q.question)
        scores = [model.loglikelihood(context, " " + c)[0] for c in q.choices]
        pick = max(range(len(scores)), key=lambda i: (scores[i], -i))
        pick_norm = max(range(len(scores)), key=lambda i: (scores[i] / len(q.choices[i]), -i))
        rows.append({"id": q.id, "loglikelihoods": scores, "pick": pick, "pick_norm": pick_norm, "answer": q.answer})
        progress.advance()
    progress.done()
    rows = shards.gather(rows, ctx)
    acc = sum(r["pick"] == r["answer"] for r in rows)
    norm = sum(r["pick_norm"] == r["answer"] for r in rows)
    metrics = {"acc": 100 * acc / len(questions), "acc_norm": 100 * norm / len(questions)}
    dataset = {"examples": len(questions),
               "hash": dataset_hash([q.id, q.question, q.choices, q.answer] for q in questions)}
    return metrics, dataset, rows
