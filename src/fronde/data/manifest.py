"""`manifest.json`: what went into a prepared data directory, and the accounting that must add up.

The manifest is written last, atomically: a directory without one (or whose shards do not match it)
is never trusted. Its accounting identity, checked before it is written and by `check_accounting`:

    documents.in == documents.train + documents.val + sum(documents.dropped.values())
    sum(file.documents) == documents.in  and  sum(file.kept) == train + val
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fronde.data.documents import DROP_KINDS
from fronde.data.errors import DataError
from fronde.data.io import sha256_file
from fronde.data.progress import NullReporter, Reporter

MANIFEST = "manifest.json"
FORMAT = "fronde-data/1"
MAX_PROBLEMS = 10_000  # drops named individually (file:line); counts are always complete


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory} has no {MANIFEST}: it is not a prepared data directory "
                        f"(or its preparation did not finish); run `fronde data prepare --out {directory}`")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e}); re-run `fronde data prepare`") from None
    if m.get("format") != FORMAT:
        raise DataError(f"{path} has format {m.get('format')!r}, expected {FORMAT!r}")
    return m


def check_accounting(m: dict[str, Any]) -> None:
    """Raise DataError unless every document read is either kept or counted as one kind of drop."""
    d = m["documents"]
    dropped = d["dropped"]
    if set(dropped) != set(DROP_KINDS):
        raise DataError(f"manifest drop kinds {sorted(dropped)} != {sorted(DROP_KINDS)}")
    kept = d["train"] + d["val"]
    if d["kept"] != kept or d["in"] != kept + sum(dropped.values()):
        raise DataError(f"manifest does not add up: in={d['in']} kept={d['kept']} (train {d['train']} + "
                        f"val {d['val']}) dropped={dropped}")
    files_in = sum(f["documents"] for f in m["files"])
    files_kept = sum(f["kept"] for f in m["files"])
    if files_in != d["in"] or files_kept != kept:
        raise DataError(f"per-file counts ({files_in} in, {files_kept} kept) disagree with the totals "
                        f"({d['in']} in, {kept} kept)")
    for split in ("train", "val"):
        s = m["splits"].get(split)
        if s is not None:
            copies = d.get("upsampled", 0) if split == "train" else 0  # a weighted source's extra copies
            if s["documents"] != d[split] + copies:
                raise DataError(f"split {split}: {s['documents']} documents in shards, {d[split] + copies} counted")
            if s["tokens"] != sum(sh["tokens"] for sh in s["shards"]):
                raise DataError(f"split {split}: token total disagrees with its shards")
    problems = m["problems"]
    if len(problems["items"]) > MAX_PROBLEMS or problems["total"] < len(problems["items"]):
        raise DataError("manifest problem list is inconsistent")


def outputs_intact(directory: str | Path, m: dict[str, Any]) -> bool:
    """Cheap check that every file the manifest lists exists with its recorded size."""
    d = Path(directory)
    for split in m["splits"].values():
        for sh in split["shards"]:
            p = d / sh["file"]
            if not p.is_file() or p.stat().st_size != sh["bytes"] or not (d / sh["index"]).is_file():
                return False
    tok_dir = d / m["tokenizer"]["dir"]
    return all((tok_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))


def verify_outputs(directory: str | Path, m: dict[str, Any], progress: Reporter | None = None) -> list[str]:
    """Every shard and index hashed against the sha256 the manifest records, and the tokenizer against its own
    digest: what to run after copying a data directory to the machine that trains (an interrupted rsync, a disk
    that flipped bits). Returns the problems, empty when everything matches. Reads every byte once."""
    from fronde.data.tokenizer import Tokenizer

    d = Path(directory)
    progress = progress or NullReporter()
    files = [(d / sh[name], sh.get(digest)) for split in m["splits"].values() for sh in split["shards"]
             for name, digest in (("file", "sha256"), ("index", "index_sha256"))]
    problems = [f"{path}: missing" for path, _ in files if not path.is_file()]
    present = [(path, digest) for path, digest in files if path.is_file()]
    progress.start("verify", total=sum(path.stat().st_size for path, _ in present))
    for path, digest in present:
        found = sha256_file(path, read=progress.advance)
        if digest is not None and found != digest:
            problems.append(f"{path}: sha256 {found[:16]}… but the manifest records {digest[:16]}…")
    progress.done()
    try:
        tok = Tokenizer.load(d / m["tokenizer"]["dir"])
    except (DataError, OSError, ValueError) as e:
        problems.append(f"{d / m['tokenizer']['dir']}: cannot be read ({e})")
    else:
        if tok.sha256 != m["tokenizer"]["sha256"]:
            problems.append(f"{d / m['tokenizer']['dir']}: not the tokenizer the shards were made with")
    return problems


def _skipped_files(sources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A row for the files a source's walk did not read (an unsupported extension, a datasets metadata file...),
    by reason; the manifest lists them (`sources[].skipped`)."""
    n = sum(s.get("skipped_files", 0) for s in sources)
    if not n:
        return []
    top = Counter(item["reason"] for s in sources for item in s.get("skipped", [])).most_common(5)
    rest = n - sum(count for _, count in top)  # other reasons, and files past the manifest's list
    # reasons are sentences ("unreadable archive (...); extract it..."): the count goes first, and only when
    # there is more than one reason
    if len(top) == 1 and not rest:
        why = top[0][0]
    else:
        why = "; ".join(f"{count:,} × {reason}" for reason, count in top) + (f"; {rest:,} × other" if rest else "")
    folders = any(item["path"].endswith("/") for s in sources for item in s.get("skipped", []))
    what = "files and folders" if folders else "file" if n == 1 else "files"
    return [("not read", f"{n:,} {what}: {why}"
             + " (the manifest's sources[].skipped names them)")]


def summary_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Human-readable (label, value) pairs for `fronde data inspect`."""
    d = m["documents"]
    rows = [
        ("created", f"{m['created']} by fronde {m['fronde_version']}"),
        ("sources", "; ".join(f"{s['name']} ({s['licence']}, {s['files']} files, pii {'on' if s['pii'] else 'off'})"
                              for s in m["sources"])),
        ("input", f"{len(m['files'])} files, {sum(f['bytes'] for f in m['files']):,} bytes" + _formats(m["files"])),
        *_skipped_files(m["sources"]),
        ("documents", f"{d['in']:,} in = {d['train']:,} train + {d['val']:,} val + "
                      f"{sum(d['dropped'].values()):,} dropped"),
        ("dropped", ", ".join(f"{k} {v:,}" for k, v in d["dropped"].items())),
        *([("near-dedup", f"{d['near_dedup_unjudged']:,} kept documents too short for a MinHash signature "
                          "(fewer than 8 distinct shingles), checked for exact copies only")]
          if d.get("near_dedup_unjudged") else []),
        ("repaired", f"{d['bad_utf8']:,} documents with bytes invalid in their encoding (replaced); "
                     f"{m['cleaning']['control_chars_removed']:,} control chars removed; "
                     f"{m['cleaning']['nfc_normalized']:,} documents NFC-normalised"),
        ("encodings", encodings_used(m["files"]) or "all UTF-8"),
        ("extraction", extraction_counts(m["files"]) or "nothing left out of files"),
        ("PII replaced", (", ".join(f"{k} {v:,}" for k, v in m["pii"]["replacements"].items()) or "none")
         + _kept_shared(m["pii"])),
        ("tokenizer", f"vocab {m['tokenizer']['vocab_size']:,}{_short_of(m['tokenizer'])}, {m['tokenizer']['dtype']}, "
                      f"sha256 {m['tokenizer']['sha256'][:16]}…, "
                      f"{m['tokenizer']['compression']['bytes_per_token']:.3f} bytes/token on "
                      f"{m['tokenizer']['compression']['split']}" + _by_language(m['tokenizer'].get("languages"))),
    ]
    if shares := mixture(m["sources"]):
        rows.append(("mixture", ", ".join(f"{name} {share:.1%} (weight {weight:g})" for name, share, weight in shares)
                     + f" of the train text; {d.get('upsampled', 0):,} extra copies"))
    for s in m["sources"]:
        if s.get("lang"):
            kept = "all" if s["lang"] == ["*"] else ", ".join(s["lang"])
            rows.append((f"languages {s['name']}", f"kept {kept}; identified: {languages_found(s) or 'no documents'}"))
    if guard := m.get("decontamination"):
        rows.append(("decontaminated", ", ".join(f"{name} ({n} texts)" if n else f"{name} (no text of 8+ words: "
                                                 "nothing to guard)" for name, n in guard["test_sets"].items())
                     + f"; {d['dropped'].get('contaminated', 0):,} documents shared a passage with them"))
    for name, s in m["splits"].items():
        rows.append((f"split {name}", f"{s['documents']:,} documents, {s['tokens']:,} tokens, "
                                      f"{len(s['shards'])} shard(s)"))
    if m["problems"]["total"]:
        rows.append(("problems", f"{m['problems']['total']:,} named in manifest.json (first: "
                                 f"{m['problems']['items'][0]['location']}: {m['problems']['items'][0]['reason']})"))
    return rows


def mixture(sources: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(name, share of the train text, weight) per source when any source is weighted; [] otherwise."""
    if all(s.get("weight", 1.0) == 1.0 for s in sources):
        return []
    total = sum(s.get("train_bytes") or 0 for s in sources) or 1
    return [(s["name"], (s.get("train_bytes") or 0) / total, s.get("weight", 1.0)) for s in sources]


_HOW = {"bom": "byte-order mark", "declared": "source option", "self": "its declaration", "guessed": "guessed",
        "fallback": "no better guess", "zero-bytes": "UTF-16's zero bytes, no byte-order mark"}


def encodings_used(files: list[dict[str, Any]]) -> str:
    """The files not read as plain UTF-8, by encoding and what decided it (and the language a guess read), e.g.
    `cp1252 3 (guessed: fra 2, deu 1), utf-16 1 (byte-order mark)`."""
    found: dict[tuple[str, str], Counter[str]] = {}
    for f in files:
        if "encoding" in f:
            found.setdefault((f["encoding"], f["encoding_from"]), Counter())[f.get("encoding_language") or ""] += 1
    parts = []
    for (name, how), langs in sorted(found.items(), key=lambda kv: -kv[1].total()):
        detail = ", ".join(f"{lang} {n}" for lang, n in langs.most_common() if lang)
        parts.append(f"{name} {langs.total()} ({_HOW.get(how, how)}{': ' + detail if detail else ''})")
    return ", ".join(parts)


# what readers leave out of (or read into) a file, summed over files: (manifest key, words for the summary)
_EXTRACTION = (("repeated_lines_dropped", "repeated header/footer lines dropped"),
               ("reply_lines_dropped", "quoted reply and signature lines dropped"),
               ("attachments_skipped", "mail attachments skipped"), ("ocr_pages", "pages and images read by OCR"),
               ("ocr_pages_unreadable", "scanned pages OCR could not decode"))


def extraction_counts(files: list[dict[str, Any]]) -> str:
    """What the readers left out of files or read by OCR, summed, e.g. `repeated header/footer lines dropped 40,
    pages read by OCR 12` ("" when nothing)."""
    totals = {key: sum(f.get(key, 0) for f in files) for key, _ in _EXTRACTION}
    return ", ".join(f"{words} {totals[key]:,}" for key, words in _EXTRACTION if totals[key])


def languages_found(source: dict[str, Any]) -> str:
    """`fra 980, eng 12, und 3`: the languages identified in a source's documents ("" when none were)."""
    return ", ".join(f"{k} {v:,}" for k, v in (source.get("languages") or {}).items())


def _by_language(languages: dict[str, dict[str, float]] | None) -> str:
    if not languages:
        return ""
    return "; by language on val: " + ", ".join(f"{k} {v['bytes_per_token']:.2f}" for k, v in languages.items())


def _formats(files: list[dict[str, Any]]) -> str:
    """Files and kept documents by format, when a corpus mixes them (PDFs whose text layer is empty show here)."""
    by: dict[str, list[int]] = {}
    for f in files:
        n = by.setdefault(f["format"], [0, 0, 0])
        n[0], n[1], n[2] = n[0] + 1, n[1] + f["documents"], n[2] + f["kept"]
    if len(by) < 2:
        return ""
    return "; " + ", ".join(f"{fmt} {n[0]:,} ({n[2]:,} of {n[1]:,} documents kept)" for fmt, n in sorted(by.items()))


def _short_of(tok: dict[str, Any]) -> str:
    """A trained vocabulary smaller than asked: the corpus has too few distinct pairs to merge."""
    asked = tok.get("requested_vocab_size")
    return f" ({asked:,} asked: the corpus is too small for more merges)" if asked and asked > tok["vocab_size"] else ""


def _kept_shared(pii: dict[str, Any]) -> str:
    """The shared addresses scrubbing left in place (manifests older than the rule have none)."""
    kept = {k: v for k, v in pii.get("kept_shared", {}).items() if v}
    return f"; kept (shared addresses: loopback, documentation, example domains) " \
           f"{', '.join(f'{k} {v:,}' for k, v in kept.items())}" if kept else ""
