"""Files damaged on the way (a partial download, a bad disk, a sync cut short) are counted and named drops, and the
run goes on: before, a corrupted .docx stopped `fronde data prepare` with a zlib traceback, and a truncated .gz with
click's bare "Aborted." (an EOFError)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from fronde.data import office, sources, spreadsheet
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.office import OfficeError
from fronde.data.pipeline import prepare

TEXT = "Bonjour à tous. Ce paragraphe est assez long pour remplir le fichier compressé. "


def _docx(path: Path) -> None:
    import docx

    d = docx.Document()
    for i in range(30):
        d.add_paragraph(f"{i}: {TEXT}")
    d.save(path)


def _damaged_member(data: bytes, member: str) -> bytes:
    """The archive with bytes flipped inside `member`'s deflated data (its headers intact)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 16
    out = bytearray(data)
    for i in range(start, min(start + 64, start + info.compress_size - 1)):
        out[i] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("fmt,member", [("docx", "word/document.xml"), ("xlsx", "xl/worksheets/sheet1.xml")])
def test_an_archive_whose_deflated_data_is_damaged_is_an_office_error(tmp_path: Path, fmt: str, member: str):
    path = tmp_path / f"a.{fmt}"
    if fmt == "docx":
        _docx(path)
    else:
        import openpyxl

        wb = openpyxl.Workbook()
        for i in range(200):
            wb.active.append([f"{i}: {TEXT}", i])
        wb.save(path)
    damaged = _damaged_member(path.read_bytes(), member)
    read = office.READERS.get(fmt) or spreadsheet.READERS[fmt]
    with pytest.raises(OfficeError, match=f"damaged archive: {member} does not inflate"):
        read(damaged)


def test_a_damaged_corpus_is_read_to_the_end_and_every_damage_named(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _docx(corpus / "ok.docx")
    (corpus / "damaged.docx").write_bytes(_damaged_member((corpus / "ok.docx").read_bytes(), "word/document.xml"))
    (corpus / "ok.docx").unlink()
    lines = [f"Ligne {i}. {TEXT}" for i in range(3000)]
    text_gz = gzip.compress("\n".join(lines).encode())
    (corpus / "cut.txt.gz").write_bytes(text_gz[: len(text_gz) // 2])
    records = gzip.compress("".join(json.dumps({"text": f"{i} {TEXT}"}) + "\n" for i in range(3000)).encode())
    (corpus / "cut.jsonl.gz").write_bytes(records[: len(records) // 2])
    text_bz2 = bz2.compress("\n".join(lines).encode())
    (corpus / "cut.md.bz2").write_bytes(text_bz2[: len(text_bz2) // 2])  # (bzip2 inflates whole blocks: none kept)
    (corpus / "sound.txt").write_text("Un fichier sain. " * 30)
    m = prepare(DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                           val_fraction=0.0), tmp_path / "out").manifest
    files = {Path(f["path"]).name: f for f in m["files"]}
    assert files["damaged.docx"]["kept"] == 0 and files["sound.txt"]["kept"] == 1
    assert files["cut.jsonl.gz"]["kept"] > 100  # the records before the cut
    assert files["cut.txt.gz"]["documents"] >= 1  # the text before the cut (one document: it is one file)
    problems = {Path(p["location"]).name: p["reason"] for p in m["problems"]["items"]
                if p["kind"] == "broken_record"}
    assert "does not inflate" in problems["damaged.docx"]
    for name, kind in (("cut.txt.gz", "gzip"), ("cut.jsonl.gz", "gzip"), ("cut.md.bz2", "bz2")):
        assert problems[name].startswith(f"{kind} data damaged or cut short"), (name, problems[name])
        assert problems[name].endswith("the text before the damage was kept")


def test_damaged_documents_read_by_worker_processes_are_named_too(tmp_path: Path):
    d = tmp_path / "docs"
    d.mkdir()
    _docx(d / "template.docx")
    data = (d / "template.docx").read_bytes()
    (d / "template.docx").unlink()
    for i in range(sources.READ_AHEAD_MIN_FILES + 2):
        (d / f"memo{i:02d}.docx.gz").write_bytes(gzip.compress(data)[: None if i != 4 else 3000])
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(d))]))[0]
    one = [(Path(sf.path).name, type(it).__name__) for sf, it in sources.iter_source(src, 1_000_000, 1)]
    two = [(Path(sf.path).name, type(it).__name__) for sf, it in sources.iter_source(src, 1_000_000, 2)]
    assert one == two and one[4] == ("memo04.docx.gz", "Drop") and one.count(("memo00.docx.gz", "Document")) == 1


def test_a_chat_or_task_file_cut_short_is_an_error_naming_it(tmp_path: Path):
    from fronde.data.errors import DataError
    from fronde.data.io import jsonl_rows

    row = json.dumps({"messages": [{"role": "user", "content": TEXT}, {"role": "assistant", "content": TEXT}]})
    data = gzip.compress(("".join(row + "\n" for _ in range(3000))).encode())
    (tmp_path / "chats.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"chats\.jsonl\.gz: gzip data damaged or cut short after line \d+ "):
        list(jsonl_rows(tmp_path / "chats.jsonl.gz", DataError))


def test_a_damaged_parquet_page_or_wikipedia_dump_is_named_not_raised(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = tmp_path / "c"
    corpus.mkdir()
    pq.write_table(pa.table({"text": [f"row {i} {TEXT}" for i in range(5000)]}), corpus / "t.parquet",
                   row_group_size=1000, compression="snappy")
    data = bytearray((corpus / "t.parquet").read_bytes())
    meta = pq.ParquetFile(corpus / "t.parquet").metadata
    page = meta.row_group(3).column(0).data_page_offset  # the 4th row group's data, its footer intact
    for i in range(page + 40, page + 200):
        data[i] ^= 0x5A
    (corpus / "t.parquet").write_bytes(bytes(data))
    wiki = bz2.compress(b"<mediawiki><page><title>A</title><ns>0</ns><revision><text>Du texte</text></revision>"
                        b"</page></mediawiki>" * 50)
    (corpus / "dump.xml.bz2").write_bytes(wiki[: len(wiki) // 2])
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(corpus))]))[0]
    items = [(Path(sf.path).name, it) for sf, it in sources.iter_source(src, 100_000, 1)]
    drops = {name: it.reason for name, it in items if it.__class__.__name__ == "Drop"}
    kept = sum(1 for name, it in items if name == "t.parquet" and it.__class__.__name__ == "Document")
    assert 2000 <= kept <= 3000  # the rows before the damaged group (batches of 1024 rows span groups)
    assert drops["t.parquet"].startswith(f"damaged Parquet data from row {kept} (")
    assert drops["dump.xml.bz2"].startswith("bz2 data damaged or cut short")
