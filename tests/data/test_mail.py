"""Mailbox exports (.mbox, .eml): a document a message, without headers, attachments, quotes or signatures."""

from __future__ import annotations

import gzip
import mailbox
from email.message import EmailMessage
from pathlib import Path

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.mail import strip_reply
from fronde.data.manifest import extraction_counts
from fronde.data.pipeline import collect_documents, iter_staged


def _message(subject: str, body: str, html: str | None = None, attachment: bytes | None = None,
             charset: str = "utf-8") -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Zoé Martin <zoe@acme.fr>", "support@acme.fr", subject
    m.set_content(body, charset=charset)
    if html is not None:
        m.add_alternative(html, subtype="html")
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="pdf", filename="facture.pdf")
    return m


def _mbox(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.mbox(str(path))
    for m in messages:
        box.add(m)
    box.close()
    return path


MESSAGES = [
    _message("Commande en retard", "Bonjour,\n\nMa commande 1234 n'est pas arrivée.\n\nCordialement,\n-- \n"
             "Zoé Martin\nACME, service achats", attachment=b"%PDF-1.4 a bill"),
    _message("Re: Commande en retard", "Elle part demain, désolé du délai.\n\nLe 3 mars 2024 à 10:00, Zoé a écrit :\n"
             "> Bonjour,\n> Ma commande 1234 n'est pas arrivée.", charset="iso-8859-1"),
    _message("Newsletter", "", html="<html><body><h1>Nouveautés</h1><p>Le catalogue d'été est en ligne.</p>"
             "<script>track()</script></body></html>"),
]


def _collect(tmp_path: Path, *paths: Path):
    config = DataConfig(sources=[SourceConfig(path=str(p)) for p in paths], val_fraction=0.0, min_doc_chars=5)
    c = collect_documents(config, tmp_path / "work")
    return c, [r["text"] for r in iter_staged(c.staged("train"))]


def test_a_mailbox_gives_each_message_its_own_text(tmp_path: Path):
    scan = EmailMessage()
    scan["Subject"] = "scan"
    scan.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="scan.png")
    box = _mbox(tmp_path / "support.mbox", MESSAGES + [scan])
    c, texts = _collect(tmp_path, box)
    assert texts == [
        "Commande en retard\n\nBonjour,\n\nMa commande 1234 n'est pas arrivée.\n\nCordialement,",
        "Re: Commande en retard\n\nElle part demain, désolé du délai.",  # (sent in ISO-8859-1)
        "Newsletter\n\n# Nouveautés\n\nLe catalogue d'été est en ligne.",  # the HTML part's visible text
    ]
    assert not any("zoe@acme.fr" in t or "Zoé Martin" in t for t in texts)  # headers and signature left out
    f = c.files[str(box)]
    assert (f.format, f.documents, f.kept) == ("mbox", 4, 3)
    # the bill and the scan; the signature (its separator and 2 lines), the attribution and 2 quoted lines
    assert f.extra == {"attachments_skipped": 2, "reply_lines_dropped": 3 + 3}
    assert [(p["location"], p["kind"]) for p in c.problems] == [(f"{box}:message4", "empty")]
    files = [f.manifest_entry() for f in c.files.values()]
    assert extraction_counts(files) == "quoted reply and signature lines dropped 6, mail attachments skipped 2"


def test_eml_and_gzipped_mbox(tmp_path: Path):
    (tmp_path / "one.eml").write_bytes(bytes(MESSAGES[1]))
    (tmp_path / "plain").mkdir()
    packed = tmp_path / "archive.mbox.gz"
    schedule = _message("Planning", "Merci.\nFrom now on we ship on Mondays.")  # escaped `>From ` in the file
    packed.write_bytes(gzip.compress(_mbox(tmp_path / "plain" / "a.mbox", MESSAGES[:1] + [schedule]).read_bytes()))
    assert b"\n>From now on" in gzip.decompress(packed.read_bytes())
    c, texts = _collect(tmp_path, packed, tmp_path / "one.eml")
    assert texts == [MESSAGES[0]["Subject"] + "\n\nBonjour,\n\nMa commande 1234 n'est pas arrivée.\n\nCordialement,",
                     "Planning\n\nMerci.\nFrom now on we ship on Mondays.",
                     "Re: Commande en retard\n\nElle part demain, désolé du délai."]
    assert c.files[str(tmp_path / "one.eml")].format == "eml"


def test_what_a_reply_quotes_is_left_out():
    bottom = "The build is green again.\n\nOn Mon, 1 Jan 2024 at 10:00, Alice <a@x.org> wrote:\n> Is it fixed?\n" \
             "> -- \n> Alice\n\n-- \nBob, ACME"
    assert strip_reply(bottom) == ("The build is green again.", 6)  # the attribution, 3 quoted, 2 of signature
    inline = "Am 3. März 2024 um 10:00 schrieb Jörg <j@x.de>:\n> Frage 1?\nAntwort 1.\n> Frage 2?\nAntwort 2."
    assert strip_reply(inline) == ("Antwort 1.\nAntwort 2.", 3)
    outlook = "Merci, c'est réglé.\n\n-----Message d'origine-----\nDe : Zoé\nEnvoyé : lundi\nLe serveur est en panne."
    assert strip_reply(outlook) == ("Merci, c'est réglé.", 4)
    header_block = "Done.\n\n" + "_" * 32 + "\nFrom: Alice\nSent: Monday\nTo: Bob\nSubject: task\nPlease do it."
    assert strip_reply(header_block) == ("Done.", 6)
    sections = "Part one.\n" + "_" * 32 + "\nPart two."  # an underline alone is the message's own
    assert strip_reply(sections)[0] == sections
    # a line that only looks like an attribution, with no quote after it, is the message's own text
    own = "On Monday the team wrote: a plan.\nIt holds."
    assert strip_reply(own)[0] == own
