"""Word 97-2003 (.doc), PowerPoint 97-2003 (.ppt) and Excel 97-2003 (.xls) files -> their text.

Twenty years of a company's or an administration's archives are in these binary formats: procedures, minutes,
reports and decks written before 2007, and what tools still export "for compatibility". They are OLE compound files
(a small file system of streams), opened with olefile; the text is read as the format's specification says
([MS-DOC], [MS-PPT]) and as antiword, catdoc and Apache Tika read it:

- `.doc`: the main document's characters, found through the piece table (the CLX in the table stream), each piece
  8-bit (Windows-1252) or UTF-16; paragraph marks as newlines, table cells as tab-separated rows, a field's shown
  result without its instruction (`HYPERLINK "..."`), objects' anchor characters dropped. Headers, footers,
  footnotes and comments, stored after the main text, are left out as the .docx reader leaves footnotes out.
  Headings are not marked (that needs the paragraph styles' binary properties). Word 6/95 files (before the piece
  table) and encrypted files are errors that say what to do.
- `.ppt`: the text atoms of the slides in stored order (titles, bullets, text boxes, tables), without the master
  slides' placeholder prompts and the notes pages.
- `.xls`: each sheet's cells, read with xlrd (as pandas reads .xls); numbers as written (`3`, not `3.0`), dates
  as ISO dates, booleans as TRUE/FALSE; the sheets then go through the spreadsheet rules (fronde.data.spreadsheet).
"""

from __future__ import annotations

import io
import struct
from datetime import datetime

from fronde.data.office import OfficeError

MAX_STREAM_BYTES = 256 << 20  # as office.MAX_XML_BYTES: past any real document
WORD_IDENT = 0xA5EC
FC_CLX = 33  # the CLX's (fc, lcb) pair in FibRgFcLcb97
# [MS-DOC] 2.8.x: characters that mark structure or anchor objects, not text
_DOC_CHARS = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x1e": "-", "\x1f": None, "\x01": None,
                            "\x02": None, "\x05": None, "\x08": None})
PPT_CONTAINER = 0xF
PPT_TEXT_CHARS, PPT_TEXT_BYTES = 0x0FA0, 0x0FA8
PPT_SKIPPED = {0x03F8: "main master", 0x03F0: "notes", 0x0FD9: "heading (header/footer) atom container"}


def _ole(data: bytes):
    import olefile

    if not olefile.isOleFile(data=data):
        raise OfficeError("not an OLE compound file (Office 97-2003); if it is a newer file, rename it .docx/.xlsx/"
                          ".pptx")
    try:
        return olefile.OleFileIO(data)
    except Exception as e:  # olefile raises OSError and its own errors for broken files
        raise OfficeError(f"broken OLE compound file: {e}") from None


def _stream(ole, name: str) -> bytes:
    if not ole.exists(name):
        what = {"WordDocument": "Word", "PowerPoint Document": "PowerPoint"}.get(name, "Excel")
        raise OfficeError(f"no {name!r} stream (not {'an' if what == 'Excel' else 'a'} {what} file?)")
    try:
        if ole.get_size(name) > MAX_STREAM_BYTES:
            raise OfficeError(f"the {name!r} stream holds {ole.get_size(name):,} bytes (over {MAX_STREAM_BYTES:,})")
        return ole.openstream(name).read()
    except (OSError, TypeError, ValueError) as e:  # olefile's errors for a broken directory or sector chain
        raise OfficeError(f"broken OLE compound file: {e}") from None


def _pieces(table: bytes, fc_clx: int, lcb_clx: int) -> list[tuple[int, int, int, bool]]:
    """The piece table: (first CP, last CP, file offset, 8-bit) of each piece of the document's text."""
    clx, i = table[fc_clx:fc_clx + lcb_clx], 0
    while i + 3 <= len(clx) and clx[i] == 0x01:  # Prc: formatting of pieces, skipped
        i += 3 + struct.unpack_from("<H", clx, i + 1)[0]
    if i + 5 > len(clx) or clx[i] != 0x02:
        raise OfficeError("no piece table in the table stream")
    lcb = struct.unpack_from("<I", clx, i + 1)[0]
    plc = clx[i + 5:i + 5 + lcb]
    n = (len(plc) - 4) // 12
    cps = struct.unpack_from(f"<{n + 1}I", plc, 0)
    out = []
    for k in range(n):
        fc = struct.unpack_from("<I", plc, 4 * (n + 1) + 8 * k + 2)[0]
        compressed = bool(fc & 0x40000000)
        out.append((cps[k], cps[k + 1], (fc & 0x3FFFFFFF) // 2 if compressed else fc & 0x3FFFFFFF, compressed))
    return out


def _fields(text: str) -> str:
    """A field (0x13 instruction 0x14 result 0x15, nested) as its shown result, its instruction left out."""
    if "\x13" not in text:
        return text
    out, stack = [], []  # stack: for each open field, whether its instruction is still being read
    for ch in text:
        if ch == "\x13":
            stack.append(True)
        elif ch == "\x14" and stack:
            stack[-1] = False
        elif ch == "\x15" and stack:
            stack.pop()
        elif not any(stack):
            out.append(ch)
    return "".join(out)


def doc_text(data: bytes) -> str:
    """A Word 97-2003 document's main text (see the module's rules)."""
    ole = _ole(data)
    word = _stream(ole, "WordDocument")
    flags = struct.unpack_from("<H", word, 0x0A)[0] if len(word) > 0x0C else 0
    table = _stream(ole, "1Table" if flags & 0x0200 else "0Table")
    try:
        return word_text(word, table)
    except (struct.error, IndexError) as e:  # a count or offset pointing past its stream
        raise OfficeError(f"damaged Word file ({e})") from None


def word_text(word: bytes, table: bytes) -> str:
    """The main text of a Word document from its WordDocument and table streams."""
    if len(word) < 0x01A2 + 8 or struct.unpack_from("<H", word, 0)[0] != WORD_IDENT:
        raise OfficeError("the WordDocument stream does not start with a Word file information block")
    nfib, flags = struct.unpack_from("<H", word, 2)[0], struct.unpack_from("<H", word, 0x0A)[0]
    if nfib < 101:
        raise OfficeError(f"a Word 6/95 file (format {nfib}): open it in Word or LibreOffice and save it as .docx")
    if flags & 0x0100:
        raise OfficeError("encrypted (password-protected): save an unprotected copy")
    csw = struct.unpack_from("<H", word, 32)[0]
    at = 34 + 2 * csw
    cslw = struct.unpack_from("<H", word, at)[0]
    ccp_text = struct.unpack_from("<i", word, at + 2 + 12)[0]  # FibRgLw97.ccpText
    fclcb = at + 2 + 4 * cslw + 2
    fc_clx, lcb_clx = struct.unpack_from("<II", word, fclcb + 8 * FC_CLX)
    chars: list[str] = []
    for first, last, fc, eight_bit in _pieces(table, fc_clx, lcb_clx):
        if first >= ccp_text:
            break  # headers, footnotes, comments and text boxes come after the main text
        count = min(last, ccp_text) - first
        raw = word[fc:fc + count] if eight_bit else word[fc:fc + 2 * count]
        chars.append(raw.decode("cp1252", "replace") if eight_bit else raw.decode("utf-16-le", "replace"))
    text = _fields("".join(chars))
    text = text.replace("\x07\x07", "\n").replace("\x07", "\t")  # a cell's end, then the row's end
    return "\n".join(line.rstrip("\t ") for line in text.translate(_DOC_CHARS).split("\n")).strip()


def _ppt_atoms(stream: bytes, start: int, end: int, out: list[str]) -> None:
    i = start
    while i + 8 <= end:
        ver_inst, kind, size = struct.unpack_from("<HHI", stream, i)
        body, i = i + 8, i + 8 + size
        if i > end:
            break  # a record cut short: the file was truncated
        if ver_inst & 0xF == PPT_CONTAINER:
            if kind not in PPT_SKIPPED:
                _ppt_atoms(stream, body, i, out)
        elif kind == PPT_TEXT_CHARS:
            out.append(stream[body:i].decode("utf-16-le", "replace"))
        elif kind == PPT_TEXT_BYTES:
            out.append(stream[body:i].decode("latin-1"))


def ppt_text(data: bytes) -> str:
    """A PowerPoint 97-2003 deck's slide text (see the module's rules); a paragraph a line."""
    stream = _stream(_ole(data), "PowerPoint Document")
    atoms: list[str] = []
    try:
        _ppt_atoms(stream, 0, len(stream), atoms)
    except RecursionError:  # containers nested thousands deep: no deck is
        raise OfficeError("damaged PowerPoint file (records nested too deep)") from None
    paragraphs = (p.strip() for atom in atoms for p in atom.replace("\x0b", "\r").split("\r"))
    return "\n".join(p for p in paragraphs if p)


def _xls_cell(cell, datemode: int) -> str:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_TEXT:
        return cell.value
    if cell.ctype == xlrd.XL_CELL_NUMBER:
        return str(int(cell.value)) if float(cell.value).is_integer() else repr(cell.value)
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            when: datetime = xlrd.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return repr(cell.value)
        return when.date().isoformat() if when.time() == datetime.min.time() else when.isoformat(sep=" ")
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if cell.value else "FALSE"
    return ""  # empty, blank, error


def xls_sheets(data: bytes) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """An Excel 97-2003 workbook's sheets as fronde.data.spreadsheet's: (name, [(row number, cells)]), non-empty
    rows only."""
    import xlrd

    ole = _ole(data)  # olefile, not xlrd's own reader: that one loops (and fills the memory) on a broken chain
    workbook = _stream(ole, "Book" if ole.exists("Book") and not ole.exists("Workbook") else "Workbook")  # (Excel 95)
    sheets = []
    try:
        book = xlrd.open_workbook(file_contents=workbook, logfile=io.StringIO())
        for sheet in book.sheets():
            rows = []
            for r in range(sheet.nrows):
                cells = [_xls_cell(c, book.datemode) for c in sheet.row(r)]
                while cells and not cells[-1].strip():
                    cells.pop()
                if cells:
                    rows.append((r + 1, cells))
            sheets.append((sheet.name, rows))
    except Exception as e:  # xlrd.XLRDError, struct and index errors of a broken file
        raise OfficeError(f"unreadable Excel 97-2003 workbook: {e}") from None
    return sheets
