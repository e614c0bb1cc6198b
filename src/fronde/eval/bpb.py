"""Language-modelling loss and bits per byte on held-out text.

    loss = total nats / tokens                       (depends on the tokenizer)
    bpb  = total nats / (ln 2 x UTF-8 bytes)         (does not: models with different tokenizers compare)

Texts come from a prepared data dir's val split (its documents decoded back to text with the data's tokenizer, so
any model can be scored on them, not only one sharing the tokenizer), a .jsonl file (a "text" field per line), or
any other text file (one document). Every token of a document is scored after the model's start token (for an
endpoint, the first token has no logprob and is left out of the nats, not of the bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fronde.data.columnar import ColumnarError, open_batches
from fronde.data.errors import DataError
from fronde.data.manifest import MANIFEST, read_manifest
from fronde.data.progress import NullReporter, Reporter
from fronde.data.shards import open_split
from fronde.data.tokenizer import Tokenizer
from fronde.eval import shards
from fronde.data.io import jsonl_rows
from fronde.eval.errors import EvalError
from fronde.eval.models import EvalModel
from fronde.eval.results import dataset_hash
from fronde.train.distributed import DistContext


@dataclass(frozen=True)
class Document:
    id: str
    text: str


def read_documents(source: Path, n: int | None = None) -> list[Document]:
    """The first n documents of a data dir's val split, a JSONL file's "text" fields, or a whole text file."""
    source = Path(source)
    if source.is_dir():
        if not (source / MANIFEST).is_file():
            raise EvalError(f"--bpb {source}: a directory must be a prepared data dir (with {MANIFEST}); "
                            "or pass a .txt/.jsonl file")
        return _val_documents(source, n)
    if not source.is_file():
        raise EvalError(f"--bpb {source}: no such file or directory")
    if source.suffix == ".jsonl":
        docs = []
        for i, row in jsonl_rows(source, EvalError):
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"]:
                raise EvalError(f"{source}:{i}: each line needs a non-empty \"text\" string")
            docs.append(Document(str(row.get("id", f"{source.name}:{i}")), row["text"]))
            if n is not None and len(docs) >= n:
                break
        return docs
    if source.suffix.lower() == ".parquet":
        return _parquet_documents(source, n)
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EvalError(f"--bpb {source}: not UTF-8 text (byte {e.start}); give a text file, a .jsonl or a .parquet "
                        "with a \"text\" column, or a prepared data dir") from None
    if not text:
        raise EvalError(f"--bpb {source}: the file is empty")
    return [Document(source.name, text)]


def _parquet_documents(source: Path, n: int | None) -> list[Document]:
    """The "text" column of a Parquet file (wikitext and other corpora as the Hugging Face Hub serves them). Empty
    rows, which such files hold (wikitext's blank lines), are passed over: they have no byte and no token to score,
    so the figures are the same."""
    try:
        names, batches = open_batches(str(source), "parquet", pick=lambda names: "text" if "text" in names
                                      else names[0])
        if "text" not in names:
            raise EvalError(f"--bpb {source}: no \"text\" column (columns: {', '.join(names[:12])})")
        docs: list[Document] = []
        row = 0
        for batch in batches:
            for text in batch.column(0).to_pylist():
                row += 1
                if isinstance(text, str) and text:
                    docs.append(Document(f"{source.name} row {row}", text))
                if n is not None and len(docs) >= n:
                    return docs
    except ColumnarError as e:
        raise EvalError(f"--bpb {source}: not a readable Parquet file ({e})") from None
    if not docs:
        raise EvalError(f"--bpb {source}: no text in the \"text\" column")
    return docs


def _val_documents(data_dir: Path, n: int | None) -> list[Document]:
    try:
        manifest = read_manifest(data_dir)
        tok = Tokenizer.load(data_dir / manifest["tokenizer"]["dir"])
        shards = open_split(data_dir, "val", manifest)
    except DataError as e:
        raise EvalError(f"--bpb {data_dir}: {e}") from None
    docs: list[Document] = []
    for shard in shards:
        for d in range(shard.n_docs):
            ids = [int(t) for t in shard.tokens[shard.offsets[d]:shard.offsets[d + 1]]]
            text = tok.decode([t for t in ids if t not in tok.special_ids])
            if text:
                docs.append(Document(f"{shard.path.name}:{d}", text))
            if n is not None and len(docs) >= n:
                return docs
    if not docs:
        raise EvalError(f"--bpb {data_dir}: the val split holds no documents (prepare with --val-fraction > 0)")
    return docs


def evaluate_bpb(model: EvalModel, docs: list[Document], progress: Reporter | None = None, title: str = "bpb",
                 ctx: DistContext | None = None) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(metrics, dataset, per-document rows) for the documents; under torchrun (`ctx`) each process
    scores its share."""
    progress = progress or NullReporter()
    mine = shards.span(len(docs), ctx)
    progress.start(shards.title(title, ctx), total=len(mine))
    rows = []
    for doc in docs[mine.start:mine.stop]:
        logprob, count = model.loglikelihood_rolling(doc.text)
        rows.append({"id": doc.id, "nats": -logprob, "tokens": count, "bytes": len(doc.text.encode("utf-8"))})
        progress.advance()
    progress.done()
    rows = shards.gather(rows, ctx)
    nats, tokens, nbytes = 0.0, 0, 0
    for row in rows:  # summed in document order: the figures do not depend on the process count
        nats, tokens, nbytes = nats + row["nats"], tokens + row["tokens"], nbytes + row["bytes"]
    if not tokens or not math.isfinite(nats):
        raise EvalError(f"{title}: no finite log-likelihood over {len(docs)} documents")
    metrics = {"loss": nats / tokens, "bpb": nats / (math.log(2) * nbytes), "tokens": tokens, "bytes": nbytes,
               "documents": len(docs)}
    dataset = {"examples": len(docs), "hash": dataset_hash([d.id, d.text] for d in docs)}
    return metrics, dataset, rows
