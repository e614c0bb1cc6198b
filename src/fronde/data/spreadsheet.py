"""Excel (.xlsx) and OpenDocument (.ods) workbooks -> their sheets' cells, read with the standard library (and
Excel 97-2003's .xls with xlrd, in fronde.data.legacy_office).

Teams keep text in spreadsheets too: FAQ lists, product catalogues, ticket exports, translation memories. As for CSV
files (fronde.data.tables), a sheet whose header row has the `text_field` column gives a document a row; a sheet
without it gives one document of its rows as tab-separated lines. Both formats are zip archives of XML, read with
the size caps of fronde.data.office: for .xlsx the workbook's sheet list, its shared strings (rich-text runs joined,
Japanese phonetic guides left out) and each sheet's cells by reference (`B7`); for .ods the `table:table` elements,
with their repeated rows and columns expanded (empty ones, which LibreOffice repeats to the sheet's edge, are not).
A cell's value is its text as stored: a formula gives its last computed value, a number its digits.
"""

from __future__ import annotations

import posixpath
from xml.etree import ElementTree as ET

from fronde.data.legacy_office import xls_sheets
from fronde.data.office import OFFICE, TABLE, TEXT, OfficeError, members, odt_inline, xml_member

S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
MAX_REPEAT = 1000  # a non-empty row or cell repeated more than this is a formatting artefact, not data

Sheet = tuple[str, list[tuple[int, list[str]]]]  # (name, [(row number, cells)]) with only non-empty rows


def _column(ref: str) -> int:
    """`AB12` -> 27 (0-based column of a cell reference)."""
    n = 0
    for ch in ref:
        if not ch.isalpha():
            break
        n = n * 26 + ord(ch.upper()) - 64
    return n - 1


def _rich_text(si: ET.Element) -> str:
    """A shared or inline string: its text, or its rich-text runs joined (phonetic guides, `rPh`, left out)."""
    parts = []
    for child in si:
        if child.tag == f"{S}t":
            parts.append(child.text or "")
        elif child.tag == f"{S}r":
            parts.extend(t.text or "" for t in child.iter(f"{S}t"))
    return "".join(parts)


def _cell(c: ET.Element, shared: list[str]) -> str:
    kind, v = c.get("t"), c.find(f"{S}v")
    if kind == "inlineStr":
        inline = c.find(f"{S}is")
        return _rich_text(inline) if inline is not None else ""
    if v is None or v.text is None:
        return ""
    if kind == "s":
        try:
            return shared[int(v.text)]
        except (ValueError, IndexError):
            raise OfficeError(f"cell {c.get('r')} names shared string {v.text!r}, which does not exist") from None
    if kind == "b":
        return "TRUE" if v.text == "1" else "FALSE"
    return v.text


def xlsx_sheets(data: bytes) -> list[Sheet]:
    names = members(data)
    workbook = xml_member(data, "xl/workbook.xml")
    targets = {r.get("Id"): r.get("Target", "") for r in
               xml_member(data, "xl/_rels/workbook.xml.rels").iter(f"{PKG}Relationship")}
    shared = [_rich_text(si) for si in xml_member(data, "xl/sharedStrings.xml").iter(f"{S}si")] \
        if "xl/sharedStrings.xml" in names else []
    sheets: list[Sheet] = []
    for sheet in workbook.iter(f"{S}sheet"):
        target = targets.get(sheet.get(f"{REL}id"), "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        rows = []
        for row in xml_member(data, path).iter(f"{S}row"):
            cells: dict[int, str] = {}
            for i, c in enumerate(row.iter(f"{S}c")):
                value = _cell(c, shared)
                if value.strip():
                    cells[_column(c.get("r", "")) if c.get("r") else i] = value
            if cells:
                number = int(row.get("r") or (rows[-1][0] + 1 if rows else 1))
                rows.append((number, [cells.get(k, "") for k in range(max(cells) + 1)]))
        sheets.append((sheet.get("name") or path, rows))
    return sheets


def ods_sheets(data: bytes) -> list[Sheet]:
    body = xml_member(data, "content.xml").find(f"{OFFICE}body/{OFFICE}spreadsheet")
    if body is None:
        raise OfficeError("content.xml has no spreadsheet body")
    sheets: list[Sheet] = []
    for table in body.iter(f"{TABLE}table"):
        rows, number = [], 0
        for row in table.iter(f"{TABLE}table-row"):
            cells: list[str] = []
            for c in row:
                if c.tag not in (f"{TABLE}table-cell", f"{TABLE}covered-table-cell"):
                    continue
                value = "\n".join(odt_inline(p) for p in c.iter(f"{TEXT}p"))
                repeat = int(c.get(f"{TABLE}number-columns-repeated", "1"))
                cells.extend([value] * (min(repeat, MAX_REPEAT) if value.strip() else repeat))
            while cells and not cells[-1].strip():
                cells.pop()  # LibreOffice repeats the empty cells to the sheet's edge
            repeat = int(row.get(f"{TABLE}number-rows-repeated", "1"))
            for _ in range(min(repeat, MAX_REPEAT) if cells else 0):
                number += 1
                rows.append((number, cells))
            number += 0 if cells else repeat
        sheets.append((table.get(f"{TABLE}name") or f"Sheet{len(sheets) + 1}", rows))
    return sheets


READERS = {"xlsx": xlsx_sheets, "ods": ods_sheets, "xls": xls_sheets}
