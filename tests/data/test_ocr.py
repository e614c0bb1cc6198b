"""Scanned PDFs and image files read with Tesseract (`ocr=fra` on a source; fronde.data.ocr). The scans are rendered
here: French text drawn with a real font into an image, saved as an image-only PDF page by Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
from PIL import Image, ImageDraw, ImageFont

from fronde.data import ocr
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.manifest import extraction_counts
from fronde.data.pipeline import collect_documents, iter_staged, prepare
from fronde.train.lineage import data_entry
from fronde.train.model_card import data_section

LINES = ["Procès-verbal de la séance du 3 mars 1921.", "Le conseil municipal, réuni en session ordinaire,",
         "a délibéré sur l'éclairage public de la commune."]
needs_tesseract = pytest.mark.skipif("fra" not in ocr.installed_languages(),
                                     reason="needs Tesseract's French model: apt-get install tesseract-ocr-fra")


def _scan(lines: list[str]) -> Image.Image:
    """A page as a 300 dpi scanner gives it: dark print on white, one image."""
    font = ImageFont.truetype(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data/fonts/ttf/DejaVuSerif.ttf"),
                              40)
    page = Image.new("L", (2480, 300 + 80 * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((150, 150 + 80 * i), line, font=font, fill=0)
    return page


def _collect(tmp_path: Path, spec: str):
    config = DataConfig(sources=[SourceConfig.parse_spec(spec)], val_fraction=0.0, min_doc_chars=5)
    return collect_documents(config, tmp_path / "work")


@needs_tesseract
def test_a_scanned_pdf_and_a_scanned_image_are_read_with_ocr(tmp_path: Path):
    archive = tmp_path / "archive"
    archive.mkdir()
    _scan(LINES).save(archive / "pv-1921.pdf", "PDF", resolution=300)
    _scan(["Registre des naissances, année 1898."]).save(archive / "registre.png")
    c = _collect(tmp_path, f"{archive}::ocr=fra")
    texts = [r["text"] for r in iter_staged(c.staged("train"))]
    assert [" ".join(t.split()) for t in texts] == [" ".join(LINES), "Registre des naissances, année 1898."]
    assert c.files[str(archive / "pv-1921.pdf")].extra == {"ocr_pages": 1}
    assert c.files[str(archive / "registre.png")].format == "image"
    assert extraction_counts([f.manifest_entry() for f in c.files.values()]) == "pages and images read by OCR 2"
    prepare(DataConfig(sources=[SourceConfig.parse_spec(f"{archive}::ocr=fra")], vocab_size=512, val_fraction=0.0,
                       min_doc_chars=5), tmp_path / "out")
    card = data_section([{"data": [data_entry(tmp_path / "out")]}])
    assert "2 scanned pages or images were read by OCR (Tesseract): their text may hold recognition errors." in card


def test_without_ocr_a_scan_is_named_and_an_image_left_out(tmp_path: Path):
    archive = tmp_path / "archive"
    archive.mkdir()
    _scan(LINES).save(archive / "pv-1921.pdf", "PDF", resolution=300)
    _scan(LINES[:1]).save(archive / "page.jpg")
    (archive / "notes.txt").write_text("Des notes tapées, lisibles sans OCR.")
    config = DataConfig(sources=[SourceConfig(path=str(archive))], val_fraction=0.0, min_doc_chars=5)
    from fronde.data.sources import resolve_sources

    [src] = resolve_sources(config)
    assert [Path(f.path).name for f in src.files] == ["notes.txt", "pv-1921.pdf"]
    assert src.skipped == [(str(archive / "page.jpg"), "an image: read it with OCR (::ocr=fra, Tesseract's language "
                                                        "codes)")]
    c = collect_documents(config, tmp_path / "work")
    assert [(p["kind"], p["reason"]) for p in c.problems] == [
        ("empty", "no text layer (a scan? read it with OCR: ::ocr=fra, Tesseract's language codes)")]


def test_a_missing_model_or_a_bad_code_is_said_before_reading(tmp_path: Path, monkeypatch):
    with pytest.raises(DataError, match="not a list of Tesseract language codes"):
        SourceConfig.parse_spec("scans/::ocr=French!")
    monkeypatch.setattr(ocr, "installed_languages", lambda: frozenset({"eng", "osd"}))
    monkeypatch.setattr(ocr.shutil, "which", lambda name: "/usr/bin/tesseract")
    with pytest.raises(DataError, match=r"ocr=fra\+chi_sim: Tesseract has no model for fra, chi_sim \(it has eng, "
                                        r"osd\): sudo apt-get install tesseract-ocr-fra tesseract-ocr-chi-sim"):
        _collect(tmp_path, f"{tmp_path}::ocr=fra+chi_sim")
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match=r"ocr=fra needs Tesseract: sudo apt-get install tesseract-ocr "
                                        r"tesseract-ocr-fra"):
        _collect(tmp_path, f"{tmp_path}::ocr=fra")


@needs_tesseract
def test_an_image_tesseract_cannot_read_is_a_broken_record(tmp_path: Path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image after all")
    (tmp_path / "scans" / "notes.txt").write_text("Des notes tapées, lisibles sans OCR.")
    c = _collect(tmp_path, f"{tmp_path / 'scans'}::ocr=fra")
    [problem] = c.problems
    assert problem["kind"] == "broken_record" and problem["reason"].startswith("image: Tesseract failed: ")
