"""Which models were trained on a file: the question an erasure request (GDPR article 17), a licence withdrawal or a
leaked document puts to a team.

A file is matched by content (sha256), so a copy, a renamed or a moved file matches too; an archive is asked about
member by member. Every published model's
`fronde.json` carries its whole ancestry, and each record names its data: prepared data dirs by their manifest
(which lists every file with its sha256 and how many of its documents were kept), and post-training files (chat
files, prompt files, task files) with their sha256. A model is affected when any record of its ancestry used the
file: an SFT or RL model made from a pretrained model inherits that model's pretraining data. When a data dir is
gone and its record does not list the files, the answer for that model is "cannot tell", never "no".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fronde.data.archives import archive_kind, member_path, members
from fronde.data.io import sha256_file
from fronde.data.manifest import MANIFEST
from fronde.train.lineage import LINEAGE, ancestry, read_lineage

# Where a post-training file sits in a record's `inputs`, and what to call it.
INPUT_KINDS = {"chat_files": "chat file", "prompt_files": "distillation prompt file", "tasks": "task file",
               "text": "text replayed in SFT from", "teacher": "distillation teacher"}


@dataclass
class Use:
    model: str  # the affected model dir
    by: str  # run / stage of the record that used the file (the model's own, or an ancestor's)
    file: str  # the file as that record knew it (its path then)
    how: str  # pretraining data (with documents kept), chat file, ...


@dataclass
class Unknown:
    model: str
    reason: str


def published_models(runs_dir: Path) -> list[Path]:
    """Every published model dir under a runs dir: runs/<run>/<stage>/model, and the model dirs kept beside the runs
    (runs/<name> with a fronde.json: a merged LoRA adapter, a copy), which inherit their parents' data; or those of
    one run dir, or a model dir itself."""
    if (runs_dir / LINEAGE).is_file():
        return [runs_dir]
    run_dirs = [runs_dir] if (runs_dir / "ledger.json").is_file() else sorted(p for p in runs_dir.iterdir()
                                                                              if p.is_dir())
    return [m.parent for run in run_dirs
            for m in ([run / LINEAGE] if (run / LINEAGE).is_file() else sorted(run.glob(f"*/model/{LINEAGE}")))]


def _label(record: dict[str, Any]) -> str:
    return f"{(record.get('run') or {}).get('name', '?')} / {record.get('stage', '?')}"


def _entries(value: Any, kind: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, entry) for every file entry ({path, sha256}) and data entry ({path, manifest_sha256}) in `value`."""
    if isinstance(value, dict):
        if "manifest_sha256" in value or ("sha256" in value and "path" in value):
            yield kind, value
            return
        for key, child in value.items():
            yield from _entries(child, INPUT_KINDS.get(key, kind))
    elif isinstance(value, list):
        for child in value:
            yield from _entries(child, kind)


def _manifest_files(entry: dict[str, Any], cache: dict[tuple[str, str], list[dict[str, Any]] | None]
                    ) -> list[dict[str, Any]] | None:
    """The file list of the manifest a data entry names, when that manifest is still there unchanged. Read once per
    query: every stage of a run (and SFT's replayed text) names the same pretraining data."""
    key = (entry["path"], entry["manifest_sha256"])
    if key not in cache:
        path = Path(entry["path"]) / MANIFEST
        fresh = path.is_file() and sha256_file(path) == entry["manifest_sha256"]
        cache[key] = json.loads(path.read_text(encoding="utf-8"))["files"] if fresh else None
    return cache[key]


def _data_uses(entry: dict[str, Any], digests: dict[str, str], label: str,
               cache: dict[tuple[str, str], list[dict[str, Any]] | None]) -> tuple[list[tuple[str, str]], str | None]:
    """(file, how) for the wanted files in a data dir, or a reason the dir cannot tell."""
    files = _manifest_files(entry, cache)
    if files is not None:
        return [(f["path"], f"{label} {entry['path']}: " + (f"{f['kept']} of {f['documents']} documents kept"
                                                             if f["kept"] else
                                                             f"read, but none of its {f['documents']} documents "
                                                             "kept (duplicates, empty)"))
                for f in files if f.get("sha256") in digests], None
    listed = [s.get("file_sha256") for s in entry.get("sources", [])]
    if entry.get("sources") and all(isinstance(x, dict) for x in listed):  # small sources list their files
        return [(path, f"{label} {entry['path']}") for files in listed for path, sha in files.items()
                if sha in digests], None
    state = "changed since" if (Path(entry["path"]) / MANIFEST).is_file() else "gone"
    return [], f"data dir {entry['path']} is {state} and fronde.json does not list its files"


def _digests(files: list[Path]) -> dict[str, str]:
    """{sha256: file} of the files asked about, and of every member of those that are zip or tar archives (data is
    handed over, and withdrawn, as archives; fronde reads their members as files: fronde.data.archives)."""
    digests = {}
    for f in files:
        digests[sha256_file(f)] = str(f)
        if (kind := archive_kind(f.name)) is not None:
            listed = members(str(f), kind, lambda _: None)  # (an unreadable archive: DataError, its path named)
            digests.update({sha: member_path(str(f), name) for name, _, sha, why in listed if why is None})
    return digests


def trained_on(files: list[Path], models: list[Path]) -> tuple[dict[str, str], list[Use], list[Unknown]]:
    """({sha256: file}, the uses of those files by the models, the models that cannot tell)."""
    digests = _digests(files)
    uses: list[Use] = []
    unknown: list[Unknown] = []
    manifests: dict[tuple[str, str], list[dict[str, Any]] | None] = {}
    for model in models:
        record = read_lineage(model)
        if record is None:
            unknown.append(Unknown(str(model), f"no readable {LINEAGE}"))
            continue
        reasons: list[str] = []
        for rec in ancestry(record):
            for kind, entry in _entries({"data": rec.get("data") or [], "inputs": rec.get("inputs") or {}}):
                if "manifest_sha256" in entry:
                    found, reason = _data_uses(entry, digests, kind or "pretraining data", manifests)
                    reasons += [reason] if reason else []
                    uses += [Use(str(model), _label(rec), path, how) for path, how in found]
                elif entry.get("sha256") in digests:
                    uses.append(Use(str(model), _label(rec), entry["path"], kind or "input file"))
        if reasons and not any(u.model == str(model) for u in uses):
            unknown.append(Unknown(str(model), "; ".join(dict.fromkeys(reasons))))
    return digests, uses, unknown


def as_json(digests: dict[str, str], uses: list[Use], unknown: list[Unknown]) -> dict[str, Any]:
    return {"files": [{"path": p, "sha256": d} for d, p in digests.items()],
            "uses": [asdict(u) for u in uses], "cannot_tell": [asdict(u) for u in unknown]}
