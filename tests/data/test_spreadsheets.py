"""Excel and OpenDocument workbooks: a document a row from the text column, or a sheet as tab-separated lines
(fronde.data.spreadsheet, records.read_spreadsheet). The .xlsx files are written by openpyxl; the .ods file as
LibreOffice writes one (repeated empty cells and rows to the sheet's edge)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.pipeline import collect_documents, iter_staged
from fronde.data.spreadsheet import ods_sheets, xlsx_sheets

FAQ = [("Où est ma commande ?", "Suivez-la depuis votre espace client, rubrique Commandes.", "Zoé"),
       ("Puis-je la retourner ?", "Oui, sous 30 jours, dans son emballage d'origine.", "Marc"),
       ("Livrez-vous en Belgique ?", "", "Zoé")]


def _xlsx(path: Path) -> Path:
    import openpyxl
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    wb = openpyxl.Workbook()
    faq = wb.active
    faq.title = "FAQ"
    faq.append(["Question", "Text", "Owner"])
    for row in FAQ:
        faq.append(list(row))
    faq.append(["Garantie ?", CellRichText("Deux ans, ", TextBlock(InlineFont(b=True), "pièces et main-d'œuvre"),
                                           "."), 42])
    notes = wb.create_sheet("Notes")
    notes.append(["Semaine", "Tickets", "Remarque"])
    notes.append([1, 120, "Pic après les soldes"])
    notes["E9"] = "Cellule isolée"
    wb.create_sheet("Vide")
    wb.save(path)
    return path


_ODS_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 office:version="1.3"><office:body><office:spreadsheet>
<table:table table:name="Glossaire">
<table:table-column table:number-columns-repeated="3"/>
<table:table-row><table:table-cell office:value-type="string"><text:p>Terme</text:p></table:table-cell>
<table:table-cell office:value-type="string"><text:p>Texte</text:p></table:table-cell>
<table:table-cell table:number-columns-repeated="1022"/></table:table-row>
<table:table-row><table:table-cell office:value-type="string"><text:p>MoE</text:p></table:table-cell>
<table:table-cell office:value-type="string"><text:p>Mélange d'<text:span>experts</text:span> :</text:p>
<text:p>seuls<text:s text:c="2"/>quelques-uns calculent.</text:p></table:table-cell>
<table:table-cell table:number-columns-repeated="1022"/></table:table-row>
<table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="1024"/>
</table:table-row>
<table:table-row><table:table-cell office:value-type="string"><text:p>MLA</text:p></table:table-cell>
<table:table-cell office:value-type="string" table:number-columns-spanned="2"><text:p>Attention latente.</text:p>
</table:table-cell><table:covered-table-cell/><table:table-cell table:number-columns-repeated="1021"/></table:table-row>
<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/>
</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"""


def _ods(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")  # first and stored, as ODF asks
        z.writestr("content.xml", _ODS_CONTENT, compress_type=zipfile.ZIP_DEFLATED)
    return path


def test_an_excel_workbook_gives_a_document_a_row_and_its_other_sheets_as_text(tmp_path: Path):
    book = _xlsx(tmp_path / "support.xlsx")
    sheets = dict(xlsx_sheets(book.read_bytes()))
    assert list(sheets) == ["FAQ", "Notes", "Vide"] and sheets["Vide"] == []
    assert sheets["FAQ"][0] == (1, ["Question", "Text", "Owner"]) and sheets["FAQ"][3] == (4, [FAQ[2][0], "", "Zoé"])
    assert sheets["FAQ"][4] == (5, ["Garantie ?", "Deux ans, pièces et main-d'œuvre.", "42"])  # rich text, a number
    assert sheets["Notes"][2] == (9, ["", "", "", "", "Cellule isolée"])  # by reference: E9
    config = DataConfig(sources=[SourceConfig(path=str(book))], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    texts = [r["text"] for r in iter_staged(c.staged("train"))]
    assert texts == [FAQ[0][1], FAQ[1][1], "Deux ans, pièces et main-d'œuvre.",
                     "Semaine\tTickets\tRemarque\n1\t120\tPic après les soldes\n\t\t\t\tCellule isolée"]
    f = c.files[str(book)]
    assert (f.format, f.documents, f.kept) == ("xlsx", 5, 4) and f.extra == {"columns": {"FAQ": "Text"}}
    assert [(p["location"], p["kind"]) for p in c.problems] == [(f"{book}:FAQ!4", "empty")]


def test_a_named_column_leaves_other_sheets_out_and_is_an_error_when_no_sheet_has_it(tmp_path: Path):
    book = _xlsx(tmp_path / "support.xlsx")
    config = DataConfig(sources=[SourceConfig(path=str(book), text_field="question")], val_fraction=0.0,
                        min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    assert [r["text"] for r in iter_staged(c.staged("train"))] == [q for q, _, _ in FAQ] + ["Garantie ?"]
    assert c.files[str(book)].extra == {"columns": {"FAQ": "Question"}, "sheets_without_column": ["Notes"]}
    with pytest.raises(DataError, match=r"support\.xlsx: no sheet has a column 'body' in its header row; the first "
                                        r"has 'Question', 'Text', 'Owner' \(set text_field, e\.g\. --text-field "
                                        r"Question\)"):
        collect_documents(DataConfig(sources=[SourceConfig(path=str(book), text_field="body")], val_fraction=0.0),
                          tmp_path / "work2")


def test_an_opendocument_spreadsheet_as_libreoffice_writes_it(tmp_path: Path):
    book = _ods(tmp_path / "glossaire.ods")
    [(name, rows)] = ods_sheets(book.read_bytes())
    assert name == "Glossaire" and rows == [
        (1, ["Terme", "Texte"]),
        (2, ["MoE", "Mélange d'experts :\nseuls  quelques-uns calculent."]),
        (5, ["MLA", "Attention latente."]),  # (two empty rows repeated before it; the covered cell is empty)
    ]
    config = DataConfig(sources=[SourceConfig(path=str(book))], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")  # no `text` column: the sheet as text
    assert [r["text"] for r in iter_staged(c.staged("train"))] == [
        "Terme\tTexte\nMoE\tMélange d'experts :\nseuls  quelques-uns calculent.\nMLA\tAttention latente."]
    config = DataConfig(sources=[SourceConfig.parse_spec(f"{book}::text_field=texte")], val_fraction=0.0,
                        min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work2")  # a row each, from the column named (ignoring case)
    assert [r["text"] for r in iter_staged(c.staged("train"))] == [rows[1][1][1], "Attention latente."]
    assert c.files[str(book)].format == "ods" and c.files[str(book)].extra == {"columns": {"Glossaire": "Texte"}}


def test_a_damaged_workbook_is_dropped_and_named(tmp_path: Path):
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "ok.txt").write_text("Une note lisible, assez longue pour rester.")
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path))], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    assert [(Path(p["location"]).name, p["kind"], p["reason"].split(" (")[0]) for p in c.problems] == [
        ("broken.xlsx", "broken_record", "xlsx: not a zip archive")]
