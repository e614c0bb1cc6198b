"""Word, PowerPoint and Excel 97-2003 files (.doc, .ppt, .xls) are read as their text (fronde.data.legacy_office),
from real files LibreOffice wrote (tests/data/fixtures/make_legacy_office.py), and what else such names hold is told
by its content."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import olefile
import pytest

from fronde.data import legacy_office
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.office import OfficeError
from fronde.data.pipeline import prepare
from tests.data.conftest import prepared_texts

FIXTURES = Path(__file__).parent / "fixtures"
RAPPORT = ("Rapport annuel\nL'été dernier, la bibliothèque a accueilli 12 000 lecteurs ; les élèves ont préféré les "
           "contes.\nVoir le site de la ville pour le détail.\nService\tBudget (€)\nMédiathèque\t450 000\n"
           "Fin du rapport, œuvre collective.")
RUSSE = "Вчера мы ходили в театр, а потом долго гуляли по набережной и пили чай.\nЭто второй абзац: Ёлка и café."
BILAN = ("Bilan de l'année\nHausse des prêts de 12 %\nDeux nouveaux ateliers d'écriture\nPerspectives\n"
         "Ouvrir le dimanche, dès l'été.\nAnnée\nLecteurs\n2026\n12 000")


def test_word_97_main_text_without_field_codes_footnotes_headers_or_footers():
    assert legacy_office.doc_text((FIXTURES / "rapport.doc").read_bytes()) == RAPPORT
    assert legacy_office.doc_text((FIXTURES / "russe.doc").read_bytes()) == RUSSE


def _streams(name: str) -> tuple[bytes, bytes]:
    ole = olefile.OleFileIO((FIXTURES / name).read_bytes())
    word = ole.openstream("WordDocument").read()
    flags = struct.unpack_from("<H", word, 0x0A)[0]
    return word, ole.openstream("1Table" if flags & 0x0200 else "0Table").read()


def test_word_pieces_in_8_bits_and_utf16_as_word_itself_writes_them():
    """Word stores Western text as 8-bit "compressed" pieces and an edited file as many pieces; LibreOffice writes
    one UTF-16 piece. The same document with its text cut into a UTF-16 piece and an 8-bit one reads the same."""
    word, table = _streams("rapport.doc")
    fib_clx = 154 + 8 * legacy_office.FC_CLX  # FibRgFcLcb97's fcClx/lcbClx in a Word 97 FIB
    fc_clx, lcb_clx = struct.unpack_from("<II", word, fib_clx)
    (first, last, fc, eight_bit), = legacy_office._pieces(table, fc_clx, lcb_clx)
    assert (first, eight_bit) == (0, False)
    whole = word[fc:fc + 2 * last].decode("utf-16-le")
    cut = 100
    word = bytearray(word)
    at = len(word)
    word += whole[cut:].encode("cp1252")  # the rest of the text, 8-bit, at the end of the stream
    pcd = struct.pack("<HIH", 0, fc, 0) + struct.pack("<HIH", 0, (2 * at) | 0x40000000, 0)
    plc = struct.pack("<3I", 0, cut, last) + pcd
    clx = bytes([0x02]) + struct.pack("<I", len(plc)) + plc
    new_table = table + clx
    struct.pack_into("<II", word, fib_clx, len(table), len(clx))
    assert legacy_office.word_text(bytes(word), new_table) == RAPPORT


def test_powerpoint_97_slides_without_notes_or_master_prompts():
    assert legacy_office.ppt_text(gzip.decompress((FIXTURES / "bilan.ppt.gz").read_bytes())) == BILAN


def test_excel_97_cells_as_written():
    assert legacy_office.xls_sheets((FIXTURES / "faq.xls").read_bytes()) == [
        ("FAQ", [(1, ["Question", "Answer", "Views", "Updated", "Public"]),
                 (2, ["Comment renouveler ma carte ?", "En ligne, ou à l'accueil de la médiathèque.", "152",
                      "2026-03-01", "TRUE"]),
                 (3, ["Peut-on emprunter des jeux ?", "Oui, trois jeux par carte pendant trois semaines.", "87.5",
                      "2025-11-30 14:30:00", "FALSE"]),
                 (5, ["Où se garer ?", "Parking Saint-Marc, gratuit le dimanche.", "", "", "TRUE"])]),
        ("Notes", [(1, ["Mémo", "Ne pas publier les horaires d'été avant mai."])])]


def test_broken_and_unreadable_files_say_why():
    with pytest.raises(OfficeError, match="not an OLE compound file"):
        legacy_office.doc_text(b"just text")
    with pytest.raises(OfficeError, match="no 'WordDocument' stream"):
        legacy_office.doc_text((FIXTURES / "faq.xls").read_bytes())
    with pytest.raises(OfficeError, match="no 'PowerPoint Document' stream"):
        legacy_office.ppt_text((FIXTURES / "rapport.doc").read_bytes())
    with pytest.raises(OfficeError, match="no 'Workbook' stream"):
        legacy_office.xls_sheets((FIXTURES / "rapport.doc").read_bytes())
    with pytest.raises(OfficeError, match="broken OLE compound file|unreadable Excel 97-2003 workbook"):
        legacy_office.xls_sheets((FIXTURES / "faq.xls").read_bytes()[:3000])
    word, table = _streams("rapport.doc")
    encrypted = bytearray(word)
    struct.pack_into("<H", encrypted, 0x0A, struct.unpack_from("<H", word, 0x0A)[0] | 0x0100)
    with pytest.raises(OfficeError, match="encrypted"):
        legacy_office.word_text(bytes(encrypted), table)
    word95 = bytearray(word)
    struct.pack_into("<H", word95, 2, 100)  # nFib: Word 97 and later write 193 or more, Word 6/95 under 101
    with pytest.raises(OfficeError, match="Word 6/95 file.*save it as .docx"):
        legacy_office.word_text(bytes(word95), table)


def test_an_old_archive_goes_through_prepare(tmp_path: Path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("rapport.doc", "russe.doc", "bilan.ppt.gz", "bilan.odp"):
        shutil.copy(FIXTURES / name, archive / name)
    (archive / "LISEZMOI.doc").write_text("Ce fichier est du texte brut, nommé .doc comme autrefois.\n")
    (archive / "lettre.doc").write_bytes(rb"{\rtf1\ansi\ansicpg1252 Lettre de l'\'e9t\'e9, en RTF.\par}")
    (archive / "export.xls").write_text("<html><body><table><tr><td>Demande</td><td>Réponse rapide à "
                                        "l'usager</td></tr></table></body></html>", encoding="utf-8")
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    shutil.copy(FIXTURES / "faq.xls", sheets / "faq.xls")
    config = DataConfig(sources=[SourceConfig(path=str(archive)),
                                 SourceConfig(path=str(sheets), text_field="answer")],
                        vocab_size=512, near_dedup=False, val_fraction=0.0)
    m = prepare(config, tmp_path / "out").manifest
    formats = {Path(f["path"]).name: f["format"] for f in m["files"]}
    assert formats == {"rapport.doc": "doc", "russe.doc": "doc", "bilan.ppt.gz": "ppt", "bilan.odp": "odp",
                       "LISEZMOI.doc": "text",
                       "lettre.doc": "rtf", "export.xls": "html", "faq.xls": "xls"}
    assert sum(m["documents"]["dropped"].values()) == 0
    texts = prepared_texts(tmp_path / "out")
    for text in (RAPPORT, RUSSE, BILAN, "Lettre de l'été, en RTF.", "En ligne, ou à l'accueil de la médiathèque.",
                 "Parking Saint-Marc, gratuit le dimanche."):
        assert text in texts, text
    assert "Ce fichier est du texte brut, nommé .doc comme autrefois.\n" in texts
    assert any("Réponse rapide à l'usager" in t for t in texts)


def test_truncated_and_corrupted_files_are_errors_not_crashes():
    """Bytes cut or flipped anywhere: a clear OfficeError (a `broken_record` drop), never another exception, a hang
    or the memory filled (xlrd's own compound-file reader loops on a broken sector chain: olefile reads them)."""
    import random

    rng = random.Random(0)
    for name, read in (("rapport.doc", legacy_office.doc_text), ("faq.xls", legacy_office.xls_sheets),
                       ("bilan.ppt.gz", legacy_office.ppt_text)):
        data = (FIXTURES / name).read_bytes()
        data = gzip.decompress(data) if name.endswith(".gz") else data
        for trial in range(40):
            b = bytearray(data[:rng.randrange(len(data))] if trial % 2 else data)
            for _ in range(0 if trial % 2 else rng.randrange(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            try:
                read(bytes(b))
            except OfficeError:
                pass
