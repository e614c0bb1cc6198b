"""Parquet and Arrow IPC files as record batches: one opening for the corpus reader (fronde.data.records), the
chat reader (fronde.data.chat_formats) and the evaluation files (fronde.eval).

Arrow IPC is what Hugging Face `datasets` keeps a dataset in: `save_to_disk` writes data-*.arrow files (beside
dataset_info.json and state.json, which are not data), and its cache holds one .arrow file per split. They are in
Arrow's streaming format; the random-access format (Feather v2) is read too. Files are memory-mapped and read a
batch at a time, so a dataset bigger than memory streams.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BATCH_ROWS = 1024


class ColumnarError(Exception):
    """The file is not Parquet / Arrow IPC that pyarrow can open; the message is pyarrow's."""


def open_batches(path: str, kind: str, pick: Any = None) -> tuple[list[str], Iterator[Any]]:
    """(column names, record batches) of a "parquet" or "arrow" file. `pick(names) -> column` chooses the one column
    to read from the schema before any data is (Parquet then decodes only that column)."""
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            return names, pf.iter_batches(batch_size=BATCH_ROWS, columns=[pick(names)] if pick is not None else None)
        source = pa.memory_map(path)
        try:
            stream = pa.ipc.open_stream(source)
            return stream.schema.names, iter(stream)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    except (pa.ArrowException, OSError) as e:  # ArrowInvalid for a file that is neither, OSError for a cut one
        raise ColumnarError(str(e)) from None


def rows(path: str, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, row as a dict) of a "parquet" or "arrow" file, a batch in memory at a time."""
    _, batches = open_batches(path, kind)
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            yield n, row


DATASETS_METADATA = ("dataset_info.json", "state.json", "dataset_dict.json")
_MAP_CACHE = re.compile(r"cache-[0-9a-f]+(?:_\d+_of_\d+)?\.arrow")


def datasets_skip(path: Path) -> str | None:
    """Why a file in a Hugging Face datasets folder is not read, or None: the metadata `save_to_disk` writes beside
    its data-*.arrow files (dataset_info.json, state.json; dataset_dict.json above a split's folders), and the
    cache-<fingerprint>.arrow files its cache holds for each .map()/.filter() (a processed copy, often of other
    columns: tokenised ids)."""
    if path.name in DATASETS_METADATA and (any(path.parent.glob("*.arrow")) or (
            path.name == "dataset_dict.json" and any(path.parent.glob("*/*.arrow")))):
        return "a Hugging Face datasets metadata file (the .arrow files beside it are read)"
    if _MAP_CACHE.fullmatch(path.name) and (path.parent / "dataset_info.json").is_file():
        return "a Hugging Face datasets .map() cache (a processed copy; the dataset's own .arrow files are read)"
    return None


def datasets_files(specs: list[str]) -> list[str]:
    """The paths a recipe names, each `datasets.save_to_disk` folder among them replaced by the data-*.arrow files it
    holds (a Dataset's, or a DatasetDict's split folders in order), so that the folder can be named and the lineage
    still hashes each file."""
    out: list[str] = []
    for spec in specs:
        p = Path(spec)
        found = (sorted(p.glob("*.arrow")) or sorted(p.glob("*/*.arrow"))) if p.is_dir() else []
        out += [str(f) for f in found if datasets_skip(f) is None] or [spec]
    return out


def datasets_licence(paths: Sequence[Path]) -> str | None:
    """The licence the dataset_info.json beside a source's .arrow files records (`datasets` keeps the Hub card's
    `license` there), when every file of the source is such a file and they agree on one; else None."""
    if any(p.suffix != ".arrow" for p in paths):
        return None
    found: set[str] = set()
    for folder in {p.parent for p in paths}:  # one dataset_info.json for all the shards beside it
        try:
            licence = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8")).get("license")
        except (OSError, ValueError, AttributeError):
            return None
        found.add(licence.strip() if isinstance(licence, str) else "")
    return found.pop() if len(found) == 1 and "" not in found else None
