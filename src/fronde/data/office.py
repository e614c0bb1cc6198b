"""Word (.docx), OpenDocument (.odt), PowerPoint (.pptx), EPUB, PDF and RTF files -> their text, as training
documents (their 97-2003 forms, .doc and .ppt, in fronde.data.legacy_office).

A company's or a lab's own text is mostly in these: procedures, reports, contracts, slide decks, theses, books.
fronde reads:

- `.docx` and `.odt`: zip archives of XML, read with the standard library. Paragraphs in document order, headings as
  `#` lines and list items as `- ` lines (Markdown, as for HTML pages), table rows as tab-separated cells; deleted
  tracked changes and footnotes left out.
- `.pptx` and `.odp`: each slide's paragraphs (titles, bullets, text boxes, tables) in presentation order, notes
  left out; `.epub`: the book's XHTML documents in reading order, each read as an HTML page.
- `.rtf`: the text a reader sees (fronde.data.rtf).
- `.pdf`: the text layer, page by page, with pypdf, without the running heads and footers repeated at the edges
  of the pages ("ACME - Confidential", "Page 3 of 12"). A scanned page has none: with a source's `ocr`, it is read
  from its image (fronde.data.ocr); without, a scanned PDF is dropped as `empty` and named. An encrypted PDF opens
  when its user password is empty, as most "protected" PDFs are, and is dropped as `broken_record` otherwise.

Archive members are read with a size cap, so a zip bomb stops with an error instead of filling the memory.
"""

from __future__ import annotations

import io
import logging
import math
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote
from xml.etree import ElementTree as ET

from fronde.data.ocr import OcrError, page_image, read_image
from fronde.data.rtf import RtfError, rtf_text

OCR_BELOW_CHARS = 20  # a page with less text than this in its text layer is a scan (a stamp, a page number)
MAX_XML_BYTES = 256 << 20  # a 256 MB document.xml is ~100M characters of text: far past any real document
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_DIGITS = re.compile(r"\d+")
_HEADING_STYLE = re.compile(r"(?i)^(heading|titre|berschrift|titolo|ttulo)\s*([1-9])$")
_BLANKS = re.compile(r"\n{3,}")


class OfficeError(ValueError):
    """A file that cannot be read as what its name says; the message says why."""


# What zipfile raises for a damaged archive (a file cut short or with flipped bytes, as partial downloads and bad
# disks leave them): a bad header, deflate data that does not inflate (zlib.error), a member that ends early, an
# undecodable member name, an encrypted member (RuntimeError), an unknown compression method.
_BROKEN_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, RuntimeError, NotImplementedError,
               OSError, ValueError)


def _member(data: bytes, name: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = z.getinfo(name)
            if info.file_size > MAX_XML_BYTES:
                raise OfficeError(f"{name} would inflate to {info.file_size:,} bytes (over {MAX_XML_BYTES:,})")
            with z.open(info) as f:
                out = f.read(MAX_XML_BYTES + 1)
    except KeyError:
        raise OfficeError(f"no {name} in the archive") from None
    except zipfile.BadZipFile as e:
        raise OfficeError(f"not a zip archive ({e})") from None
    except _BROKEN_ZIP as e:
        raise OfficeError(f"damaged archive: {name} does not inflate ({type(e).__name__}: {e})") from None
    if len(out) > MAX_XML_BYTES:
        raise OfficeError(f"{name} inflates past {MAX_XML_BYTES:,} bytes")
    return out


def members(data: bytes) -> set[str]:
    """The names of the archive's members."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return set(z.namelist())
    except zipfile.BadZipFile as e:
        raise OfficeError(f"not a zip archive ({e})") from None
    except _BROKEN_ZIP as e:
        raise OfficeError(f"damaged archive ({type(e).__name__}: {e})") from None


def xml_member(data: bytes, name: str) -> ET.Element:
    try:
        return ET.fromstring(_member(data, name))
    except ET.ParseError as e:
        raise OfficeError(f"{name} is not well-formed XML ({e})") from None


def _join(lines: list[str]) -> str:
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


def _document(data: bytes, member: str, body_path: str, blocks: Callable[[ET.Element, list[str]], None],
              missing: str) -> str:
    body = xml_member(data, member).find(body_path)
    if body is None:
        raise OfficeError(f"{member} has {missing}")
    out: list[str] = []
    blocks(body, out)
    return _join(out)


# --- Word ---------------------------------------------------------------------------------------------------------
def _docx_runs(p: ET.Element) -> str:
    parts = []
    for el in p.iter():
        if el.tag == f"{W}t":
            parts.append(el.text or "")
        elif el.tag == f"{W}tab":
            parts.append("\t")
        elif el.tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
    return "".join(parts).strip()


def _docx_prefix(p: ET.Element) -> str:
    ppr = p.find(f"{W}pPr")
    if ppr is None:
        return ""
    style = ppr.find(f"{W}pStyle")
    name = style.get(f"{W}val", "") if style is not None else ""
    if name.lower() == "title":
        return "# "
    if m := _HEADING_STYLE.match(name):
        return "#" * int(m.group(2)) + " "
    listed = ppr.find(f"{W}numPr") is not None or name.lower().startswith("list")  # "List Bullet" numbers by style
    return "- " if listed else ""


def _docx_blocks(parent: ET.Element, out: list[str]) -> None:
    for el in parent:
        if el.tag == f"{W}p":
            text = _docx_runs(el)
            if text:
                prefix = _docx_prefix(el)
                out.append(prefix + text)
                if prefix.startswith("#"):
                    out.append("")
        elif el.tag == f"{W}tbl":
            for row in el.iter(f"{W}tr"):
                cells = [" ".join(t for p in tc.iter(f"{W}p") if (t := _docx_runs(p))) for tc in row.iter(f"{W}tc")]
                if any(cells):
                    out.append("\t".join(cells))
            out.append("")
        elif el.tag == f"{W}sdt":  # a content control: its paragraphs are in sdtContent
            for content in el.iter(f"{W}sdtContent"):
                _docx_blocks(content, out)


def docx_text(data: bytes) -> str:
    return _document(data, "word/document.xml", f"{W}body", _docx_blocks, "no body")


# --- OpenDocument -------------------------------------------------------------------------------------------------
def odt_inline(el: ET.Element) -> str:
    parts = [el.text or ""]
    for child in el:
        if child.tag == f"{TEXT}s":
            parts.append(" " * int(child.get(f"{TEXT}c", "1")))
        elif child.tag == f"{TEXT}tab":
            parts.append("\t")
        elif child.tag == f"{TEXT}line-break":
            parts.append("\n")
        elif child.tag not in (f"{TEXT}note", f"{OFFICE}annotation", f"{TEXT}tracked-changes"):
            parts.append(odt_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odt_blocks(parent: ET.Element, out: list[str], bullet: str = "") -> None:
    for el in parent:
        if el.tag == f"{TEXT}h":
            text = odt_inline(el).strip()
            if text:
                out += ["#" * max(1, min(6, int(el.get(f"{TEXT}outline-level", "1")))) + " " + text, ""]
        elif el.tag == f"{TEXT}p":
            text = odt_inline(el).strip()
            if text:
                out.append(bullet + text)
                bullet = "  " if bullet else ""  # a list item's later paragraphs: indented, no new bullet
        elif el.tag == f"{TEXT}list":
            for item in el.findall(f"{TEXT}list-item"):
                _odt_blocks(item, out, "- ")
        elif el.tag == f"{TABLE}table":
            for row in el.iter(f"{TABLE}table-row"):
                cells = [" ".join(t for p in cell.iter(f"{TEXT}p") if (t := odt_inline(p).strip()))
                         for cell in row.findall(f"{TABLE}table-cell")]
                if any(cells):
                    out.append("\t".join(cells))
            out.append("")
        elif el.tag in (f"{TEXT}section", f"{TEXT}list-header"):
            _odt_blocks(el, out, bullet)


def odt_text(data: bytes) -> str:
    return _document(data, "content.xml", f"{OFFICE}body/{OFFICE}text", _odt_blocks,
                     "no text body (not a text document: a spreadsheet or a drawing?)")


# --- PDF ----------------------------------------------------------------------------------------------------------
EDGE_LINES = 2  # a page's first and last lines: where running heads and footers stand


def running_lines(pages: list[str]) -> tuple[list[str], int]:
    """The pages without their running heads and footers, and how many lines that removed. A line at a page's edge
    (its first or last EDGE_LINES lines) that stands at the edge of at least half the pages (3 at the least),
    digits aside ("Page 3 of 12", "ACME - Confidential"), is the document's, not the page's. Lines inside a page,
    such as a code listing's `}`, are never candidates."""
    if len(pages) < 4:
        return pages, 0
    split = [p.splitlines() for p in pages]

    def key(line: str) -> str:
        return _DIGITS.sub("#", " ".join(line.split())).lower()

    edges = [{key(x) for x in lines[:EDGE_LINES] + lines[-EDGE_LINES:] if x.strip()} for lines in split]
    counts = Counter(k for page in edges for k in page)
    running = {k for k, n in counts.items() if n >= max(3, math.ceil(len(pages) / 2))}
    out, dropped = [], 0
    for lines in split:
        kept = [x for i, x in enumerate(lines)
                if not ((i < EDGE_LINES or i >= len(lines) - EDGE_LINES) and x.strip() and key(x) in running)]
        dropped += len(lines) - len(kept)
        out.append("\n".join(kept))
    return out, dropped


def pdf_text(data: bytes) -> str:
    return pdf_document(data)[0]


def pdf_document(data: bytes, ocr: str | None = None) -> tuple[str, int]:
    """The text layer of every page without running heads and footers (empty for a scan, unless `ocr` names
    Tesseract's languages: then a page without text is read from its image), and how many such lines were
    dropped. `pdf_pages` counts the pages read by OCR."""
    text, dropped, _ = pdf_pages(data, ocr)
    return text, dropped


def pdf_pages(data: bytes, ocr: str | None = None) -> tuple[str, int, dict[str, int]]:
    """`pdf_document`, with what OCR did: pages read from their image, and scanned pages with no image it could
    decode."""
    import pypdf  # imported here: only PDF sources need it

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files warn on every object
    counts = {"ocr_pages": 0, "ocr_pages_unreadable": 0}
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise OfficeError("encrypted with a password; save an unprotected copy")
        pages = []
        for page in reader.pages:
            text = page.extract_text() or ""
            if ocr and len(text.strip()) < OCR_BELOW_CHARS:
                image = page_image(page)
                if image is None:
                    counts["ocr_pages_unreadable"] += 1
                else:
                    text = read_image(image, ocr)
                    counts["ocr_pages"] += 1
            pages.append(text)
    except OfficeError:
        raise
    except OcrError as e:
        raise OfficeError(f"page {len(pages) + 1}: {e}") from None
    except Exception as e:  # pypdf raises many types on damaged files (PdfReadError, KeyError, ValueError, ...)
        raise OfficeError(f"unreadable PDF ({type(e).__name__}: {e})") from None
    pages, dropped = running_lines(pages)
    return "\n\n".join(p.strip() for p in pages if p.strip()), dropped, counts


# --- PowerPoint and EPUB --------------------------------------------------------------------------------------------
DRAWING = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
PRES = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_SLIDE = re.compile(r"ppt/slides/slide(\d+)\.xml")


def _slides(data: bytes) -> list[str]:
    """The slide parts in presentation order (presentation.xml's list; file numbers when it is unreadable: a
    reordered deck keeps its files' names)."""
    names = members(data)
    by_number = sorted((n for n in names if _SLIDE.fullmatch(n)), key=lambda n: int(_SLIDE.fullmatch(n).group(1)))
    try:
        rels = {r.get("Id"): r.get("Target", "") for r in xml_member(data, "ppt/_rels/presentation.xml.rels")
                .iter(f"{PKG_REL}Relationship")}
        ids = [s.get(f"{REL}id") for s in xml_member(data, "ppt/presentation.xml").iter(f"{PRES}sldId")]
        ordered = [posixpath.normpath(posixpath.join("ppt", rels[i])) for i in ids if i in rels]
    except OfficeError:
        return by_number
    return [n for n in ordered if n in names] or by_number


DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"


def _odp_paragraphs(el: ET.Element, out: list[str]) -> None:
    for child in el:
        if child.tag in (f"{TEXT}p", f"{TEXT}h"):
            out.append(odt_inline(child).strip())
        elif child.tag != f"{PRESENTATION}notes":  # the speaker's notes, as for .pptx
            _odp_paragraphs(child, out)


def odp_text(data: bytes) -> str:
    """An OpenDocument presentation (LibreOffice Impress): each slide's paragraphs (titles, outlines, text boxes,
    table cells) in order, a blank line between slides; the speaker's notes left out."""
    body = xml_member(data, "content.xml").find(f"{OFFICE}body/{OFFICE}presentation")
    if body is None:
        raise OfficeError("content.xml has no presentation body")
    slides = []
    for page in body.iter(f"{DRAW}page"):
        paragraphs: list[str] = []
        _odp_paragraphs(page, paragraphs)
        slides.append("\n".join(p for p in paragraphs if p))
    return "\n\n".join(s for s in slides if s)


def pptx_text(data: bytes) -> str:
    """Each slide's paragraphs (titles, bullets, text boxes, table cells), a blank line between slides."""
    slides = []
    for name in _slides(data):
        paragraphs = ["".join(t.text or "" for t in p.iter(f"{DRAWING}t")).strip()
                      for p in xml_member(data, name).iter(f"{DRAWING}p")]
        slides.append("\n".join(p for p in paragraphs if p))
    return "\n\n".join(s for s in slides if s)


CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
OPF = "{http://www.idpf.org/2007/opf}"


def epub_text(data: bytes) -> str:
    """The book's XHTML documents in reading (spine) order, each read as an HTML page (fronde.data.markup)."""
    from fronde.data.markup import html_text

    rootfile = xml_member(data, "META-INF/container.xml").find(f".//{CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise OfficeError("META-INF/container.xml names no package document")
    opf_path = rootfile.get("full-path", "")
    opf = xml_member(data, opf_path)
    hrefs = {item.get("id"): item.get("href", "") for item in opf.iter(f"{OPF}item")}
    spine = [hrefs[ref.get("idref")] for ref in opf.iter(f"{OPF}itemref") if ref.get("idref") in hrefs]
    if not spine:
        raise OfficeError(f"{opf_path} has no reading order (spine)")
    base = posixpath.dirname(opf_path)
    chapters = [html_text(_member(data, posixpath.normpath(posixpath.join(base, unquote(href))))
                          .decode("utf-8", "replace"), with_title=False)[0] for href in spine]
    return "\n\n".join(c for c in chapters if c)


def _whole(read: Callable[[bytes], str]) -> Callable[[bytes], tuple[str, int]]:
    return lambda data: (read(data), 0)


def _rtf(data: bytes) -> tuple[str, int]:
    try:
        return rtf_text(data), 0
    except RtfError as e:
        raise OfficeError(str(e)) from None


def _legacy(name: str) -> Callable[[bytes], tuple[str, int]]:
    """A reader of fronde.data.legacy_office (imported when used: it raises this module's OfficeError)."""
    def read(data: bytes) -> tuple[str, int]:
        from fronde.data import legacy_office
        return getattr(legacy_office, name)(data), 0
    return read


# format -> (text, lines dropped as the document's own boilerplate)
READERS: dict[str, Callable[[bytes], tuple[str, int]]] = {
    "docx": _whole(docx_text), "odt": _whole(odt_text), "pptx": _whole(pptx_text), "epub": _whole(epub_text),
    "pdf": pdf_document, "rtf": _rtf, "doc": _legacy("doc_text"), "ppt": _legacy("ppt_text"),
    "odp": _whole(odp_text),
}
