"""Zip and tar archives as sources (fronde.data.archives): each member read as the file it is, named
`archive!member` with its own sha256, what is not read listed as skipped with the reason."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from fronde.data import archives, sources
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from tests.data.conftest import prepared_texts

FRA = "L'été dernier, la bibliothèque a accueilli douze mille lecteurs ; les élèves ont préféré les contes."


def _docx(text: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _export_zip(path: Path) -> dict[str, bytes]:
    """A document system's export, as a team receives it."""
    members = {
        "export/rapport.docx": _docx("Rapport : " + FRA),
        "export/notes/ancienne.txt": ("Note de 1998. " + FRA).encode("cp1252"),
        "export/chats.jsonl.gz": gzip.compress(json.dumps({"text": "JSONL : " + FRA}, ensure_ascii=False).encode()),
        "export/scan.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "export/old-backup.zip": b"PK\x05\x06" + bytes(18),
        "export/tool.exe": b"MZ" + bytes(100),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("export/empty-dir/", b"")
    return members


def test_a_zip_export_and_a_tarball_are_read_member_by_member(tmp_path: Path):
    corpus = tmp_path / "handed-over"
    corpus.mkdir()
    zipped = _export_zip(corpus / "export.zip")
    with tarfile.open(corpus / "lab.tar.gz", "w:gz") as tar:
        for name, text in (("lab/readme.md", "# Corpus du labo\n\n" + FRA),
                           ("lab/table.csv", f'id,text\n1,"CSV : {FRA}"\n')):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("lab/latest.md")
        link.type, link.linkname = tarfile.SYMTYPE, "readme.md"
        tar.addfile(link)
    m = prepare(DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                           val_fraction=0.0), tmp_path / "out").manifest
    files = {f["path"].split("handed-over/")[1]: f for f in m["files"]}
    assert set(files) == {"export.zip!export/rapport.docx", "export.zip!export/notes/ancienne.txt",
                          "export.zip!export/chats.jsonl.gz", "lab.tar.gz!lab/readme.md", "lab.tar.gz!lab/table.csv"}
    docx = files["export.zip!export/rapport.docx"]
    assert docx["format"] == "docx" and docx["member"] == "export/rapport.docx"
    assert docx["archive"].endswith("export.zip") and docx["compressed"] == "zip"
    assert docx["sha256"] == hashlib.sha256(zipped["export/rapport.docx"]).hexdigest()  # the extracted file's
    assert files["export.zip!export/notes/ancienne.txt"]["encoding"] == "cp1252"
    assert all(f["kept"] == 1 for f in files.values())
    skipped = {s["path"].split("handed-over/")[1]: s["reason"] for s in m["sources"][0]["skipped"]}
    assert skipped == {"export.zip!export/scan.png": "an image: read it with OCR (::ocr=fra, Tesseract's language "
                                                     "codes)",
                       "export.zip!export/old-backup.zip": "an archive inside an archive: extract it first",
                       "export.zip!export/tool.exe": "unsupported extension '.exe'",
                       "lab.tar.gz!lab/latest.md": "a link or special file in the archive"}
    texts = prepared_texts(tmp_path / "out")
    for text in ("Rapport : " + FRA, "Note de 1998. " + FRA, "JSONL : " + FRA, "CSV : " + FRA):
        assert text in texts, text
    assert any(t.startswith("# Corpus du labo") for t in texts)


def test_a_damaged_member_or_one_too_big_is_skipped_and_the_rest_read(tmp_path: Path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    with zipfile.ZipFile(corpus / "a.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("good.txt", "Un bon fichier. " * 20)
        z.writestr("bad.txt", "Un fichier abîmé. " * 20)
        z.writestr("big.txt", "x" * 5000)
    data = bytearray((corpus / "a.zip").read_bytes())
    at = data.index("Un fichier abîmé".encode())
    data[at:at + 4] = b"XXXX"  # stored bytes no longer match the member's CRC
    (corpus / "a.zip").write_bytes(bytes(data))
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 4096)
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(corpus))]))[0]
    assert [Path(f.path).name for f in src.files] == ["a.zip!good.txt"]
    reasons = dict((Path(p).name, r) for p, r in src.skipped)
    assert reasons["a.zip!bad.txt"].startswith("damaged member") and "CRC" in reasons["a.zip!bad.txt"]
    assert reasons["a.zip!big.txt"].startswith("inflates to 5,000 bytes (over 4,096")


def test_many_documents_in_a_zip_read_by_worker_processes_give_the_same_items(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as z:
        for i in range(sources.READ_AHEAD_MIN_FILES + 2):
            z.writestr(f"memo{i:02d}.docx", _docx(f"Mémo {i} : {FRA}"))
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(tmp_path / "docs.zip"))]))[0]
    one = [(Path(sf.path).name, getattr(it, "text", "")) for sf, it in sources.iter_source(src, 100_000, 1)]
    assert one == [(f"docs.zip!memo{i:02d}.docx", f"Mémo {i} : {FRA}") for i in range(len(one))] and len(one) == 10
    assert [(Path(sf.path).name, getattr(it, "text", "")) for sf, it in sources.iter_source(src, 100_000, 2)] == one


def test_a_tarball_of_documents_read_by_worker_processes_and_a_cut_archive_named(tmp_path: Path):
    """A forked worker opens the tar itself: reading through the parent's open file would move the parent's offset."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    with tarfile.open(corpus / "docs.tar.gz", "w:gz") as tar:
        for i in range(sources.READ_AHEAD_MIN_FILES + 2):
            data = _docx(f"Mémo {i} : {FRA}")
            info = tarfile.TarInfo(f"memo{i:02d}.docx")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole = (corpus / "docs.tar.gz").read_bytes()
    (corpus / "cut.zip").write_bytes(_zip_bytes()[:100])
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(corpus))]))[0]
    assert dict((Path(p).name, r) for p, r in src.skipped)["cut.zip"].startswith("unreadable archive (BadZipFile")
    one = [(Path(sf.path).name, getattr(it, "text", "")) for sf, it in sources.iter_source(src, 100_000, 1)]
    assert one == [(f"docs.tar.gz!memo{i:02d}.docx", f"Mémo {i} : {FRA}") for i in range(10)]
    assert [(Path(sf.path).name, getattr(it, "text", "")) for sf, it in sources.iter_source(src, 100_000, 2)] == one
    assert (corpus / "docs.tar.gz").read_bytes() == whole


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "du texte " * 100)
    return buf.getvalue()
