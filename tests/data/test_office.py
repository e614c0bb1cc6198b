"""Word, OpenDocument and PDF sources: real files written by python-docx, matplotlib's PDF backend and an ODF
package, read for their text with structure; damaged, encrypted-looking, scanned and bomb-sized files are dropped
and named, never a crash."""

from __future__ import annotations

import zipfile
from pathlib import Path

import matplotlib
import pytest

from fronde.data import office
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import collect_documents, iter_staged

matplotlib.use("Agg")


def _docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Travel policy", level=1)
    d.add_paragraph("Book trains rather than planes under four hours.")
    d.add_paragraph("Receipts within 30 days", style="List Bullet")
    d.add_paragraph("Economy class", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Item", "Ceiling"), ("Hotel", "120 EUR")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    d.add_heading("Approvals", level=2)
    d.add_paragraph("Your manager approves.")
    d.save(path)


ODT_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.3">
<office:body><office:text>
<text:h text:outline-level="1">Politique de déplacement</text:h>
<text:p>Préférez le train<text:s text:c="2"/>aux vols<text:note><text:note-body><text:p>sauf outre-mer</text:p>
</text:note-body></text:note> courts.</text:p>
<text:list><text:list-item><text:p>Justificatifs sous <text:span>30 jours</text:span></text:p></text:list-item>
<text:list-item><text:p>Classe économique</text:p></text:list-item></text:list>
<table:table><table:table-row><table:table-cell><text:p>Poste</text:p></table:table-cell>
<table:table-cell><text:p>Plafond</text:p></table:table-cell></table:table-row></table:table>
</office:text></office:body></office:document-content>"""


def _odt(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", ODT_CONTENT)
        z.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest:manifest xmlns:manifest='
                   '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>')


def _pdf(path: Path, lines: list[str]) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for page in (lines[:1], lines[1:]):
            fig = plt.figure(figsize=(8.27, 11.69))
            for i, line in enumerate(page):
                fig.text(0.1, 0.9 - 0.05 * i, line, fontsize=12)
            pdf.savefig(fig)
            plt.close(fig)


def test_word_opendocument_and_pdf_are_read_with_their_structure(tmp_path: Path):
    _docx(tmp_path / "policy.docx")
    assert office.docx_text((tmp_path / "policy.docx").read_bytes()) == (
        "# Travel policy\n\nBook trains rather than planes under four hours.\n- Receipts within 30 days\n"
        "- Economy class\nItem\tCeiling\nHotel\t120 EUR\n\n## Approvals\n\nYour manager approves.")
    _odt(tmp_path / "politique.odt")
    assert office.odt_text((tmp_path / "politique.odt").read_bytes()) == (
        "# Politique de déplacement\n\nPréférez le train  aux vols courts.\n- Justificatifs sous 30 jours\n"
        "- Classe économique\nPoste\tPlafond")
    _pdf(tmp_path / "memo.pdf", ["Expense memo", "Trains first.", "Receipts within 30 days."])
    assert office.pdf_text((tmp_path / "memo.pdf").read_bytes()) == (
        "Expense memo\n\nTrains first.\nReceipts within 30 days.")


def test_bad_documents_are_dropped_and_named(tmp_path: Path, monkeypatch):
    d = tmp_path / "docs"
    d.mkdir()
    _docx(d / "good.docx")
    _pdf(d / "scan.pdf", [""])  # pages without a text layer, as a scanner writes them
    (d / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    (d / "fake.docx").write_bytes(b"this is not a zip")
    with zipfile.ZipFile(d / "bomb.odt", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("content.xml", "<a>" + " " * 5_000_000 + "</a>")
    monkeypatch.setattr(office, "MAX_XML_BYTES", 1_000_000)
    c = collect_documents(DataConfig(sources=[SourceConfig(path=str(d))], val_fraction=0.0, near_dedup=False),
                          tmp_path / "work")
    texts = [r["text"] for r in iter_staged(c.staged("train"))]
    assert len(texts) == 1 and texts[0].startswith("# Travel policy")
    reasons = {Path(x["location"]).name: (x["kind"], x["reason"]) for x in c.problems}
    assert reasons["scan.pdf"] == ("empty", "no text layer (a scan? read it with OCR: ::ocr=fra, Tesseract's language "
                                            "codes)")
    assert reasons["broken.pdf"][0] == "broken_record" and "unreadable PDF" in reasons["broken.pdf"][1]
    assert reasons["fake.docx"] == ("broken_record", "docx: not a zip archive (File is not a zip file)")
    assert reasons["bomb.odt"][0] == "broken_record" and "inflate" in reasons["bomb.odt"][1]
    assert {f.format for f in c.files.values()} == {"docx", "pdf", "odt"}


@pytest.mark.parametrize("reader", [office.docx_text, office.odt_text])
def test_an_archive_without_its_document_says_so(tmp_path: Path, reader):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as z:
        z.writestr("other.xml", "<a/>")
    with pytest.raises(office.OfficeError, match="no .* in the archive"):
        reader((tmp_path / "x.zip").read_bytes())


def test_many_documents_are_read_by_several_processes_with_the_same_result(tmp_path: Path):
    """Past READ_AHEAD_MIN_FILES documents, worker processes read them a few files ahead: the same items in the same
    order as one process, drops included, and a max_documents limit stops the workers."""
    from fronde.data import sources

    d = tmp_path / "docs"
    d.mkdir()
    for i in range(sources.READ_AHEAD_MIN_FILES + 3):
        _pdf(d / f"memo{i:02d}.pdf", [f"Memo {i}", "Trains first.", f"Receipt {i * 7}."])
    (d / "memo05.pdf").write_bytes(b"%PDF-1.7 damaged")
    src = sources.resolve_sources(DataConfig(sources=[SourceConfig(path=str(d))]))[0]

    def items(workers: int, limit: int | None = None) -> list[tuple[str, str, str]]:
        src.config.max_documents = limit
        return [(Path(sf.path).name, type(it).__name__, getattr(it, "text", None) or getattr(it, "reason", ""))
                for sf, it in sources.iter_source(src, 1_000_000, workers)]

    one = items(1)
    assert len(one) == sources.READ_AHEAD_MIN_FILES + 3 and one[5][1] == "Drop" and one[0][2].startswith("Memo 0")
    assert items(2) == one
    assert items(2, limit=3) == one[:3]


def test_slides_in_presentation_order_and_books_in_reading_order(tmp_path: Path):
    """A deck written by python-pptx whose slides were reordered (files keep their names) reads in the order shown;
    an EPUB written by ebooklib reads its chapters in spine order, each as an HTML page."""
    import pptx
    from ebooklib import epub

    deck = pptx.Presentation()
    for title, bullet in (("Q3 results", "Revenue up 12%"), ("Hiring plan", "Two ML engineers")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = bullet
    ids = deck.slides._sldIdLst
    ids.insert(0, ids[1])  # show "Hiring plan" first: its file is still slide2.xml
    deck.save(tmp_path / "deck.pptx")
    assert office.pptx_text((tmp_path / "deck.pptx").read_bytes()) == (
        "Hiring plan\nTwo ML engineers\n\nQ3 results\nRevenue up 12%")

    book = epub.EpubBook()
    book.set_identifier("fronde-test")
    book.set_title("Le petit guide")
    book.set_language("fr")
    chapters = []
    for i, (title, body) in enumerate((("Départ", "Prenez le train."), ("Retour", "Gardez les justificatifs."))):
        ch = epub.EpubHtml(title=title, file_name=f"ch{i}.xhtml", lang="fr")
        ch.content = f"<html><body><h1>{title}</h1><p>{body}</p><script>x()</script></body></html>"
        book.add_item(ch)
        chapters.append(ch)
    book.spine = list(reversed(chapters))  # reading order is the spine's, not the files'
    book.add_item(epub.EpubNcx())
    epub.write_epub(str(tmp_path / "guide.epub"), book)
    assert office.epub_text((tmp_path / "guide.epub").read_bytes()) == (
        "# Retour\n\nGardez les justificatifs.\n\n# Départ\n\nPrenez le train.")


def test_a_pdfs_running_heads_and_footers_are_dropped_but_not_its_content(tmp_path: Path):
    """A line at the edge of at least half the pages, digits aside ("Page 3 of 6"), is the document's header or
    footer: dropped and counted; lines inside the pages (a listing's `}` on every page) and short documents stay."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    def write(path: Path, n: int) -> None:
        with PdfPages(path) as pdf:
            for i in range(n):
                fig = plt.figure(figsize=(8.27, 11.69))
                topic = ("travel", "expenses", "hiring", "security", "leave", "training")[i]
                for j, line in enumerate(["ACME Corp - Confidential", f"Our {topic} policy.", "}",
                                          f"Ask HR about {topic}.", f"Page {i + 1} of {n}"]):
                    fig.text(0.1, 0.9 - 0.05 * j, line, fontsize=12)
                pdf.savefig(fig)
                plt.close(fig)

    write(tmp_path / "long.pdf", 6)
    text, dropped = office.pdf_document((tmp_path / "long.pdf").read_bytes())
    assert dropped == 12 and "Confidential" not in text and "Page " not in text
    assert text.split("\n\n")[0] == "Our travel policy.\n}\nAsk HR about travel."
    write(tmp_path / "short.pdf", 3)
    text, dropped = office.pdf_document((tmp_path / "short.pdf").read_bytes())
    assert dropped == 0 and text.count("Confidential") == 3
    c = collect_documents(DataConfig(sources=[SourceConfig(path=str(tmp_path / "long.pdf"))], val_fraction=0.0),
                          tmp_path / "work")
    assert [f.manifest_entry().get("repeated_lines_dropped") for f in c.files.values()] == [12]


def test_an_opendocument_presentation_reads_as_its_slides_without_notes(tmp_path: Path):
    """A deck LibreOffice Impress wrote (tests/data/fixtures/make_legacy_office.py): titles, bullets, a text box and
    a table's cells, slide by slide; the speaker's note ("Note de l'orateur") left out, as for .pptx."""
    data = (Path(__file__).parent / "fixtures" / "bilan.odp").read_bytes()
    assert office.odp_text(data) == ("Bilan de l'année\nHausse des prêts de 12 %\nDeux nouveaux ateliers d'écriture"
                                     "\n\nPerspectives\nOuvrir le dimanche, dès l'été.\nAnnée\nLecteurs\n2026\n12 000")
    _odt(tmp_path / "text.odp")  # a text document named .odp
    with pytest.raises(office.OfficeError, match="no presentation body"):
        office.odp_text((tmp_path / "text.odp").read_bytes())
