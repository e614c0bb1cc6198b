"""Multiple choice by log-likelihood, for the ARC/MMLU-style sets a team has, one JSON object per line (or a
Parquet file of such rows, as the Hugging Face Hub serves MMLU and ARC):

    {"question": "Which gas do plants take in?", "choices": ["Oxygen", "Carbon dioxide", "Helium"], "answer": 1}
    {"id": "q2", "question": "2 + 2 =", "choices": ["3", "4"], "answer": "4"}
    {"id": "arc1", "question": "...", "choices": {"text": ["...", "..."], "label": ["A", "B"]}, "answerKey": "B"}

`answer` (or ARC's `answerKey`) is the index of the right choice (0-based), its exact text, or its label (ARC's
`label` list, else A, B, C... in order, as MMLU's letters); `id` is optional. Each choice is scored as
the continuation " <choice>" of the plain-text prompt "Question: <question>\nAnswer:" (no chat template, as
lm-evaluation-harness does): `acc` takes the highest log-likelihood, `acc_norm` the highest log-likelihood per
character of the choice (lm-evaluation-harness's acc_norm), which stops long answers from losing for their length.
Ties go to the earlier choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fronde.data.progress import NullReporter, Reporter
from fronde.eval import shards
from fronde.data import columnar
from fronde.data.columnar import ColumnarError
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
    """The first n questions of a JSONL or Parquet file; a bad row stops with file:line (row) and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"--mc {path}: no such file")
    out: list[Question] = []
    for where, row in _rows(path):
        out.append(_parse(row, where))
        if n is not None and len(out) >= n:
            break
    if not out:
        raise EvalError(f"--mc {path}: no questions in the file")
    return out


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix.lower() != ".parquet":
        for i, row in jsonl_rows(path, EvalError):
            yield f"{path}:{i}", row
        return
    try:
        for n, row in columnar.rows(str(path), "parquet"):
            yield f"{path} row {n}", row
    except ColumnarError as e:
        raise EvalError(f"--mc {path}: not a readable Parquet file ({e})") from None


def _parse(row: Any, where: str) -> Question:
    if not isinstance(row, dict):
        raise EvalError(f"{where}: expected an object with question, choices, answer")
    question, choices = row.get("question"), row.get("choices")
    answer = row.get("answer", row.get("answerKey"))
    labels = [chr(ord("A") + i) for i in range(len(choices))] if isinstance(choices, list) else []
    if isinstance(choices, dict) and isinstance(choices.get("text"), list):  # ARC on the Hub: text and labels
        choices, labels = choices["text"], choices.get("label") or labels
    if not isinstance(question, str) or not question.strip():
        raise EvalError(f"{where}: \"question\" must be a non-empty string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise EvalError(f"{where}: \"choices\" must be a list of at least two non-empty strings")
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise EvalError(f"{where}: \"answer\" must be a choice index (0-based), the text of a choice or its label")
    if isinstance(answer, str):
        if answer in choices:
            answer = choices.index(answer)
        elif answer in labels:
            answer = labels.index(answer)
        else:
            raise EvalError(f"{where}: \"answer\" {answer!r} is neither one of the choices {choices} nor one of "
                            f"their labels {labels}")
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
