"""E-mail: a team's mailbox exports (`.mbox` from Thunderbird, Google Takeout or Apple Mail; `.eml`, one message)
as training documents.

A support inbox, a mailing list or a project's correspondence is text a team owns and a model should know. Each
message becomes one document: its subject line, then the text a reader sees: the `text/plain` part, else the visible
text of the `text/html` part (fronde.data.markup), each decoded in the charset it declares (fronde.data.encoding
when that is missing or unknown). Left out, as e-mail corpora are cleaned for training (Enron's, the Pile's):
- headers other than the subject: addresses, names and routing are personal data and no language;
- attachments (counted in the file's manifest entry; a Word or PDF attachment worth reading is better saved as a
  file of the corpus);
- a reply's quoted text: `>` lines with the `On ..., X wrote:` line above them, and everything below Outlook's
  `-----Original Message-----` or its `From:`/`Sent:` block: it is the earlier message, a document of its own
  when the mailbox holds it;
- the signature below a `-- ` line (RFC 3676). (Quotes and signatures: `reply_lines_dropped` in the manifest.)
PII scrubbing then applies to the rest as to every user source.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import BinaryIO

from fronde.data.encoding import decode
from fronde.data.markup import html_text

# The line a mail client writes above the text it quotes, in the languages teams write in most.
_ATTRIBUTION = re.compile(r"^\s*(On\b.{0,300}\bwrote|Le\b.{0,300}\ba écrit|Am\b.{0,300}\bschrieb.{0,200}|"
                          r"El\b.{0,300}\bescribió|Il\b.{0,300}\bha scritto|Op\b.{0,300}\bschreef.{0,200})\s*:\s*$")
# Where Outlook's quoted original starts (it quotes below, without `>`).
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Message d'origine|Ursprüngliche Nachricht|Mensaje original|"
                       r"Messaggio originale)\s*-{2,}\s*$", re.I)
_OUTLOOK_HEADER = re.compile(r"^\s*(From|De|Von|Da)\s*:", re.I)
_OUTLOOK_SENT = re.compile(r"^\s*(Sent|Date|Envoyé|Gesendet|Enviado|Inviato)\s*:", re.I)


@dataclass
class MailText:
    text: str  # subject, blank line, body ("" when the message has no text)
    attachments: int = 0
    reply_lines: int = 0  # quoted earlier messages and signature lines dropped


def strip_reply(body: str) -> tuple[str, int]:
    """The message's own text without quoted earlier messages and signature, and how many non-blank lines that
    dropped."""
    lines = body.split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == "-- " or (line.rstrip() == "--" and i >= len(lines) - 15):  # the signature separator
            break
        if _ORIGINAL.match(line) or (_OUTLOOK_HEADER.match(line)
                                     and any(_OUTLOOK_SENT.match(x) for x in lines[i + 1 : i + 4])):
            break  # Outlook's quoted original, to the end
        if line.lstrip().startswith(">") or (_ATTRIBUTION.match(line) and _quote_follows(lines, i)):
            continue
        kept.append(line)
    while kept and not kept[-1].strip("_ \t"):
        kept.pop()  # blank lines, and the underline Outlook draws above its From:/Sent: block
    text = "\n".join(kept).strip()
    return text, sum(1 for line in lines if line.strip()) - sum(1 for line in kept if line.strip())


def _quote_follows(lines: list[str], i: int) -> bool:
    """Whether line `i` (an attribution) is followed, past blank lines, by a quoted `>` line (or by nothing)."""
    following = next((line for line in lines[i + 1 :] if line.strip()), None)
    return following is None or following.lstrip().startswith(">")


def _part_text(part: EmailMessage) -> str:
    """A text part's content in its declared charset; bytes decoded as fronde decodes files when the charset is
    missing, unknown or wrong."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True) or b""
        return decode(payload)[0]


def message_text(msg: EmailMessage) -> MailText:
    """What a message says: its subject and its own text, without headers, attachments, quotes and signature."""
    plain = html = None
    attachments = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if part.get_content_disposition() == "attachment" or not ctype.startswith("text/"):
            attachments += 1
        elif ctype == "text/plain" and plain is None:
            plain = _part_text(part)
        elif ctype == "text/html" and html is None:
            html = _part_text(part)
    body = plain if plain is not None and plain.strip() else html_text(html, with_title=False)[0] if html else ""
    body, dropped = strip_reply(body.replace("\r\n", "\n"))
    subject = " ".join(str(msg.get("subject", "") or "").split())
    text = f"{subject}\n\n{body}" if subject and body.strip() else body
    return MailText(text if body.strip() else "", attachments, dropped)


def read_eml(f: BinaryIO) -> MailText:
    return message_text(email.message_from_binary_file(f, policy=policy.default))  # type: ignore[arg-type]


def iter_mbox(f: BinaryIO) -> Iterator[MailText]:
    """The messages of an mbox stream, in order, one in memory at a time (a mailbox may be bigger than memory; and
    read-only, where the standard library's `mailbox.mbox` opens the file for writing). A line starting `From `
    begins a message, as for `mailbox.mbox`; `>From ` lines are the escaped body lines of mboxrd."""
    lines: list[bytes] = []
    for line in f:
        if line.startswith(b"From ") and lines:
            yield _mbox_message(lines)
            lines = []
        lines.append(line)
    if lines:
        yield _mbox_message(lines)


def _mbox_message(lines: list[bytes]) -> MailText:
    body = b"".join(line[1:] if line.startswith(b">From ") else line for line in lines[1:])  # after the From_ line
    return message_text(email.message_from_bytes(body, policy=policy.default))  # type: ignore[arg-type]
