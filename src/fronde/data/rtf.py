"""Rich Text Format (.rtf) -> its text: WordPad's default format, and what legal, medical and public-sector tools
still export.

RTF is text with markup: groups `{...}`, control words (`\\par`, `\\b0`), escaped bytes (`\\'e9`) in the code page the
document declares (`\\ansicpg1252`), Unicode characters (`\\u8217?`, followed by a fallback the reader skips). Read
as plain text, a file is mostly font tables and formatting codes; read here, as striprtf and pandoc read it, the
text a reader sees: paragraphs and line breaks as newlines, table cells separated by tabs, typographic quotes and
dashes as characters; left out are the destinations that hold no body text (font, colour and style tables, document
info, pictures and embedded objects, headers and footers, footnotes, field instructions such as a hyperlink's
target, and every `{\\*\\...}` destination a reader may ignore), and `\\binN` binary data.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|[\r\n]+|[^\\{}\r\n]+")
_SKIP = {
    "fonttbl", "colortbl", "stylesheet", "info", "pict", "object", "objdata", "header", "headerl", "headerr",
    "headerf", "footer", "footerl", "footerr", "footerf", "footnote", "fldinst", "themedata", "colorschememapping",
    "datastore", "latentstyles", "listtable", "listoverridetable", "rsidtbl", "generator", "xmlnstbl", "mmathPr",
    "filetbl", "revtbl", "pgdsctbl", "bkmkstart", "bkmkend", "nonshppict", "shppict", "blipuid", "annotation",
    "atnid", "atnauthor", "comment", "private", "userprops", "docvar", "template", "passwordhash", "wgrffmtfilter",
}
_CHARS = {"par": "\n", "sect": "\n\n", "page": "\n\n", "line": "\n", "tab": "\t", "cell": "\t", "row": "\n",
          "emdash": "—", "endash": "–", "emspace": " ", "enspace": " ", "qmspace": " ", "bullet": "•",
          "lquote": "‘", "rquote": "’", "ldblquote": "“", "rdblquote": "”", "zwj": "\u200d", "zwnj": "\u200c"}
_SYMBOLS = {b"\\": "\\", b"{": "{", b"}": "}", b"~": "\u00a0", b"_": "\u2011", b"-": "", b"\n": "\n", b"\r": "\n"}


class RtfError(ValueError):
    """Not an RTF document; the message says why."""


_CHARSETS = {0: "cp1252", 128: "cp932", 129: "cp949", 134: "cp936", 136: "cp950", 161: "cp1253", 162: "cp1254",
             163: "cp1258", 177: "cp1255", 178: "cp1256", 186: "cp1257", 204: "cp1251", 222: "cp874", 238: "cp1250"}


def _codepage(name: str, default: str) -> str:
    try:
        "".encode(name)
        return name
    except LookupError:
        return default


def rtf_text(data: bytes) -> str:
    """The visible text of an RTF document (see the module's docstring for what is left out). Escaped bytes are
    decoded in the code page of their font's charset (`\\fcharset204`: Cyrillic), else the document's."""
    if not data.lstrip()[:6].startswith(b"{\\rtf"):
        raise RtfError("no {\\rtf header")
    document = "cp1252"
    fonts: dict[int, str] = {}  # font number -> code page, from the font table
    out: list[str] = []
    pending = bytearray()  # \'hh bytes, decoded together (a double-byte code page spreads a character over two)
    # group state: skipping (not body text), \uc fallback length, code page, inside the font table
    stack: list[tuple[bool, int, str | None, bool]] = []
    skip, uc, codepage, fonttbl = False, 1, None, False
    fallback, star, font = 0, False, None
    pos = 0

    def flush() -> None:
        if pending:
            out.append(bytes(pending).decode(codepage or document, errors="replace"))
            pending.clear()

    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if m is None:  # a lone backslash at the end
            break
        pos = m.end()
        word, arg, hexbyte, symbol, brace = m.groups()
        if hexbyte is None:
            flush()
        if brace == b"{":
            stack.append((skip, uc, codepage, fonttbl))
            star = False
        elif brace == b"}":
            skip, uc, codepage, fonttbl = stack.pop() if stack else (skip, uc, codepage, fonttbl)
            fallback = 0
        elif word is not None:
            name, n = word.decode("ascii"), int(arg) if arg else None
            if name == "bin" and n:  # raw binary data: never text, and it may hold braces
                pos += n
            elif fonttbl:  # reading the font table: which code page each font's bytes are in
                if name == "f" and n is not None:
                    font = n
                elif name == "fcharset" and n in _CHARSETS and font is not None:
                    fonts[font] = _CHARSETS[n]
            elif name == "fonttbl":
                skip = fonttbl = True
            elif star or name in _SKIP:
                skip = True
            elif name == "ansicpg" and n:
                document = _codepage(f"cp{n}", "cp1252")
            elif name == "f" and n is not None:
                codepage = fonts.get(n)
            elif name == "uc" and n is not None:
                uc = n
            elif name == "u" and n is not None:
                if not skip:
                    out.append(chr(n % 65536))
                fallback = uc
            elif not skip and name in _CHARS:
                out.append(_CHARS[name])
            star = False
        elif hexbyte is not None:
            if fallback:
                fallback -= 1
            elif not skip:
                pending.append(int(hexbyte, 16))
        elif symbol is not None:
            if symbol == b"*":
                star = True
            elif fallback:
                fallback -= 1
            elif not skip and symbol in _SYMBOLS:
                out.append(_SYMBOLS[symbol])
        elif m.group(0)[:1] not in (b"\r", b"\n"):  # raw text (the file's own line breaks are not text)
            text = m.group(0)
            if fallback:
                cut = min(fallback, len(text))
                fallback, text = fallback - cut, text[cut:]
            if not skip and text:
                out.append(text.decode(codepage or document, errors="replace"))
    flush()
    text = "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # \\u pairs past U+FFFF
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"\t+\n", "\n", text)).strip()
