"""CSV and TSV exports: one document a row from the text column (fronde.data.tables, sources.read_csv)."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from pathlib import Path

import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.pipeline import collect_documents, iter_staged
from fronde.data.tables import find_column, separator

TICKETS = [["id", "date", "Text", "agent"],
           ["1", "2024-01-02", "Bonjour, ma commande n'est pas arrivée ; pouvez-vous vérifier ?", "Zoé"],
           ["2", "2024-01-03", "Le produit est cassé.\nJe veux un remboursement, merci.", "Marc"],
           ["3", "2024-01-04", "", "Marc"],
           ["4", "2024-01-05"],
           ["5", "2024-01-06", "Très bon service, livraison rapide et soignée.", "Zoé"]]


def _csv(rows: list[list[str]], sep: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


def _collect(tmp_path: Path, *specs: str, **cfg):
    config = DataConfig(sources=[SourceConfig.parse_spec(s) for s in specs], val_fraction=0.0, min_doc_chars=5, **cfg)
    c = collect_documents(config, tmp_path / "work")
    return c, [r.get("text") for r in iter_staged(c.staged("train"))]


def test_an_excel_export_in_the_machines_code_page_gives_a_document_a_row(tmp_path: Path):
    d = tmp_path / "exports"
    d.mkdir()
    (d / "tickets.csv").write_bytes(_csv(TICKETS, ";").encode("cp1252"))  # Excel's "CSV" on a French Windows
    (d / "zz-utf8.csv").write_bytes(codecs.BOM_UTF8 + _csv(TICKETS[:2] + [["9", "x", "Livraison en retard de "
                                                                                "trois jours.", "Léa"]], ",").encode())
    c, texts = _collect(tmp_path, str(d))
    assert texts[:3] == [TICKETS[1][2], TICKETS[2][2], TICKETS[5][2]]  # the text column only, newline kept
    assert texts[3:] == ["Livraison en retard de trois jours."] and c.dropped["duplicate"] == 1  # its first row
    f = c.files[str(d / "tickets.csv")]
    assert (f.format, f.documents, f.kept) == ("csv", 5, 3)  # (one empty cell, one short row)
    assert f.extra["column"] == "Text" and f.extra["encoding"] == "cp1252" and f.extra["encoding_from"] == "guessed"
    assert c.files[str(d / "zz-utf8.csv")].extra["encoding"] == "utf-8-sig"  # Excel's "CSV UTF-8"
    problems = {p["location"]: (p["kind"], p["reason"]) for p in c.problems}
    assert problems[f"{d / 'tickets.csv'}:5"] == ("empty", "empty field")  # row 3 ends on line 5 (row 2 has 2)
    assert problems[f"{d / 'tickets.csv'}:6"] == ("missing_field", "2 fields: no column 'Text' (field 3)")


def test_tsv_gzip_long_cells_and_malformed_rows(tmp_path: Path):
    long = "Un très long avis. " * 10_000  # 190 KB in one cell: past the csv module's 128 KB default
    rows = [["text", "label"], ["Une critique assez longue pour rester ici.", "pos"], [long, "neg"]]
    with gzip.open(tmp_path / "reviews.tsv.gz", "wt", encoding="utf-8", newline="") as f:
        f.write(_csv(rows, "\t"))
    pad = _csv([["text"]] + [[f"Ligne numéro {i} d'un fichier assez long."] for i in range(300)], ",")
    (tmp_path / "broken.csv").write_text(pad + '"a stray"quote\r\n' + "La suite est lue.\r\n" + '"never closed\r\n'
                                         + "a line swallowed\r\n", encoding="utf-8")
    c, texts = _collect(tmp_path, str(tmp_path / "reviews.tsv.gz"), str(tmp_path / "broken.csv"),
                        max_doc_chars=100_000)
    assert texts[0] == rows[1][0] and "".join(texts[1:3]) == long  # cut into pieces, nothing lost
    assert texts[-1] == "La suite est lue." and len(texts) == 3 + 300 + 1
    assert [(p["location"].rsplit(":", 1)[1], p["kind"], p["reason"]) for p in c.problems] == [
        ("302", "broken_record", "malformed CSV row (line 302): ',' expected after '\"'"),
        ("305", "broken_record", "malformed CSV row (lines 304-305): unexpected end of data")]


def test_a_table_without_the_column_is_text_unless_a_column_was_named(tmp_path: Path):
    (tmp_path / "scores.csv").write_text("model,score\nfronde-tiny,0.84\nsmollm2,0.41\n")
    c, texts = _collect(tmp_path, str(tmp_path / "scores.csv"))
    assert texts == ["model,score\nfronde-tiny,0.84\nsmollm2,0.41\n"]
    assert c.files[str(tmp_path / "scores.csv")].extra["read_as"] == "text: no 'text' column"
    with pytest.raises(DataError, match=r"scores\.csv: no column 'body' in its header; columns: 'model', 'score' "
                                        r"\(set text_field, e\.g\. --text-field model\)"):
        _collect(tmp_path / "named", f"{tmp_path / 'scores.csv'}::text_field=body")
    c, texts = _collect(tmp_path / "model", f"{tmp_path / 'scores.csv'}::text_field=MODEL")
    assert texts == ["fronde-tiny", "smollm2"]


def test_separator_and_column_rules():
    assert separator("id;date;Text;agent\r\n", tsv=False) == ";" and separator("a,b;c,d", tsv=False) == ","
    assert separator("text\tlabel", tsv=False) == "\t" and separator("text|label", tsv=False) == "|"
    assert separator("text", tsv=False) == "," and separator("a,b", tsv=True) == "\t"
    assert find_column(["id", "Text "], "text") == 1 and find_column(["text", "Text"], "Text") == 1
    assert find_column(["id"], "text") is None


def test_chat_tables_for_sft_faq_sheets_and_csv_exports(tmp_path: Path):
    import openpyxl

    from fronde.data.chat_formats import iter_rows, row_chat

    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["just", "notes"])  # no chat column: not read
    faq = wb.create_sheet("FAQ")
    faq.append(["Question", "Answer", "Owner"])
    faq.append(["Où est ma commande ?", "Dans votre espace client, rubrique Commandes.", "Zoé"])
    wb.save(tmp_path / "faq.xlsx")
    rows = list(iter_rows(tmp_path / "faq.xlsx"))
    assert rows == [("faq.xlsx:FAQ!2", {"prompt": "Où est ma commande ?", "completion":
                                        "Dans votre espace client, rubrique Commandes.", "owner": "Zoé"})]
    messages, _, fmt = row_chat(rows[0][1])
    assert fmt == "prompt-completion" and [m["role"] for m in messages] == ["user", "assistant"]
    old_faq = list(iter_rows(Path(__file__).parent / "fixtures" / "faq.xls"))  # Excel 97-2003, LibreOffice wrote it
    assert [(loc, row["prompt"]) for loc, row in old_faq] == [
        ("faq.xls:FAQ!2", "Comment renouveler ma carte ?"), ("faq.xls:FAQ!3", "Peut-on emprunter des jeux ?"),
        ("faq.xls:FAQ!5", "Où se garer ?")]
    alpaca = _csv([["Instruction", "Input", "Output"], ["Traduis", "cat", "chat"]], ";")
    (tmp_path / "alpaca.csv").write_bytes(alpaca.encode("cp1252"))
    assert list(iter_rows(tmp_path / "alpaca.csv")) == [("alpaca.csv:2", {"instruction": "Traduis", "input": "cat",
                                                                           "output": "chat"})]
    (tmp_path / "plain.csv").write_text("id,body\n1,hello\n")
    with pytest.raises(DataError, match=r"plain\.csv: no header row names a chat column .* the first has 'id', "
                                        r"'body'"):
        list(iter_rows(tmp_path / "plain.csv"))
    (tmp_path / "bad.csv").write_text('prompt,completion\n"a"b,c\n')
    with pytest.raises(DataError, match=r"bad\.csv:2: malformed CSV row \(line 2\)"):
        list(iter_rows(tmp_path / "bad.csv"))
