"""RTF documents as WordPad and Word write them: the text a reader sees, in the code pages they declare."""

from __future__ import annotations

from pathlib import Path

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import collect_documents, iter_staged
from fronde.data.rtf import rtf_text

WORDPAD = rb"""{\rtf1\ansi\ansicpg1252\deff0\nouicompat\deflang1036{\fonttbl{\f0\fnil\fcharset0 Calibri;}
{\f1\fnil\fcharset204 Calibri;}}
{\colortbl ;\red0\green0\blue255;}
{\*\generator Riched20 10.0.19041}\viewkind4\uc1 
\pard\sa200\sl276\slmult1\b\f0\fs22\lang12 Proc\'e8s-verbal\b0\par
Le caf\'e9 est tr\'e8s chaud \endash\~c\rquote est l\rquote\'9cuvre de Zo\u233?.\par
{\field{\*\fldinst{HYPERLINK "https://example.org"}}{\fldrslt{\ul\cf1 le site}}}\f0\fs22\par
\lang1049\f1\'cf\'f0\'e8\'e2\'e5\'f2\f0\lang12\par
{\pict{\*\picprop}\wmetafile8\picw26\pich26 0100090000035000}
\trowd\cellx1000\cellx2000 A1\cell B1\cell\row
{\footer\pard Page 1\par}
}
"""


def test_wordpad_french_with_a_russian_font_a_link_a_table_and_a_footer():
    assert rtf_text(WORDPAD) == ("Procès-verbal\nLe café est très chaud –\u00a0c’est l’œuvre de Zoé.\nle site\n"
                                 "Привет\nA1\tB1")


def test_unicode_escapes_fallbacks_binary_data_and_double_byte_code_pages():
    word = (rb"{\rtf1\ansi\ansicpg1252\uc1 Emoji \u-10179?\u-8704? ok.\par"
            rb"\uc2 deux \u8364\'80\'80 euros\par\uc0 rien \u8230  fin\par"
            rb"{\*\datastore 0105000002000000}{\object\objemb{\*\objdata \bin6 }{x}{ }}apr\'e8s\par}")
    assert rtf_text(word) == "Emoji 😀 ok.\ndeux € euros\nrien … fin\naprès"  # (a control word eats one space)
    japanese = rb"{\rtf1\ansi\ansicpg932 {\fonttbl{\f0\fcharset128 MS Mincho;}}\f0 \'82\'a0\'82\'a2\'82\'a4\par}"
    assert rtf_text(japanese) == "あいう"


def test_rtf_files_in_a_corpus_and_a_broken_one(tmp_path: Path):
    (tmp_path / "pv.rtf").write_bytes(WORDPAD)
    (tmp_path / "fake.rtf").write_bytes(b"plain text pretending")
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path))], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    assert [r["text"] for r in iter_staged(c.staged("train"))] == [rtf_text(WORDPAD)]
    assert [(Path(p["location"]).name, p["kind"], p["reason"]) for p in c.problems] == [
        ("fake.rtf", "broken_record", "rtf: no {\\rtf header")]
    assert c.files[str(tmp_path / "pv.rtf")].format == "rtf"
