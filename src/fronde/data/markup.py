"""HTML pages and Jupyter notebooks -> the text a reader sees, as training documents.

A team's documents often come as an intranet or wiki export (HTML) and as notebooks. Read as plain text, a page is
mostly markup, scripts and styles, and a notebook is JSON with its outputs (base64 images, long tables): a model
trained on that learns tags and escapes. So, as web-scale pipelines do (FineWeb extracts text with trafilatura;
StarCoder turned notebooks into their cells), fronde reads:

- HTML (`.html`, `.htm`, `.xhtml`): the visible text, with the standard library's tolerant `html.parser`: no script,
  style, template, SVG or navigation menu; block elements end lines; headings as `#` lines and list items as `- `
  lines (Markdown, which a model also meets in chats); `<pre>` keeps its spacing; entities decoded. A line that
  several earlier pages of the same source had (a site's header, footer, sidebar, cookie banner), or a long
  paragraph any earlier page had, is dropped, as CCNet drops repeated paragraphs; preformatted lines are kept,
  since code repeats legitimately. A redirect stub (`<meta http-equiv="refresh">` and little text) has no text.
- Notebooks (`.ipynb`): the cells in order, Markdown and raw cells as they are, code cells fenced with the
  notebook's language; outputs left out.

A source with `extract = false` reads these files as plain text instead (markup kept: for a model that should
write HTML).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from html.parser import HTMLParser

# Elements whose content is never visible text (or is a site's menu, repeated on every page).
SKIP = {"script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object", "nav", "select"}
# Elements that start and end a line of their own.
BLOCK = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html", "legend", "li", "main", "ol",
    "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "title", "tr", "ul",
    "h1", "h2", "h3", "h4", "h5", "h6",
}
_SPACES = re.compile(r"[ \t\f\v\r\n]+")
_BLANKS = re.compile(r"\n{3,}")


class _VisibleText(HTMLParser):
    def __init__(self, with_title: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[str, bool]] = []  # finished lines, and whether each is preformatted
        self.line: list[str] = []  # the line being built
        self.skip = 0  # depth inside SKIP elements
        self.pre = 0  # depth inside <pre>
        self.head = False  # inside <head>, where only <title> is text
        self.title = False
        self.with_title = with_title  # an e-book chapter's <title> repeats its heading or the book's name
        self.cells = 0  # cells so far in the current table row
        self.redirect = False  # <meta http-equiv="refresh">: a page that only sends the browser elsewhere

    def _break(self, blank: bool = False) -> None:
        text = "".join(self.line)
        if self.pre:
            self.lines.append((text, True))
        elif text.strip():
            self.lines.append((text.strip(), False))
        if blank and self.lines and self.lines[-1][0] != "":
            self.lines.append(("", False))
        self.line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta" and any(k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs):
            self.redirect = True
        if tag in SKIP:
            self.skip += 1
        elif tag == "head":
            self.head = True
        elif tag == "br":
            self._break()
        elif tag in BLOCK:
            self._break(blank=tag in {"p", "pre", "table", "blockquote"} or tag[0] == "h" and tag[1:].isdigit())
            if tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.line.append("- ")
            elif tag[0] == "h" and tag[1:].isdigit():
                self.line.append("#" * int(tag[1]) + " ")
            elif tag == "tr":
                self.cells = 0
            elif tag == "title":
                self.title = True
        elif tag in ("td", "th"):
            if self.cells:
                self.line.append("\t")
            self.cells += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            self.handle_starttag(tag, attrs)
        if tag in ("br", "hr"):
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "head":
            self.head = False
        elif tag in BLOCK:
            self._break(blank=tag in {"p", "pre", "table", "blockquote", "title"} or tag[0] == "h" and
                        tag[1:].isdigit())
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            elif tag == "title":
                self.title = False

    def handle_data(self, data: str) -> None:
        if self.skip or (self.head and not (self.title and self.with_title)):
            return
        if self.pre:
            self.line.append(data)
            return
        text = _SPACES.sub(" ", data)
        if not self.line or self.line[-1].endswith((" ", "\t")) or self.line[-1] in ("- ",):
            text = text.lstrip(" ")
        self.line.append(text)

    def result(self) -> list[tuple[str, bool]]:
        self.close()
        self._break()
        return self.lines


REDIRECT_TEXT = 500  # a page that redirects and shows less text than this is a redirect stub
BOILERPLATE_PAGES = 4  # a line that this many earlier pages had is the site's, not the page's
LONG_LINE = 100  # a paragraph this long that an earlier page had is a copy (a "print this book" page)


class SiteLines:
    """How many earlier pages of a source had each line. A line BOILERPLATE_PAGES earlier pages had is boilerplate
    (header, footer, sidebar, help popup) and is dropped: the first pages keep it, in one pass over the files. A
    short line two or three pages share (a title a stub repeats, a heading in two editions of a book) stays; a
    paragraph, or a whole preformatted block, of LONG_LINE characters or more that any earlier page had is a copy
    and goes. Lines inside a preformatted block are never dropped one by one (code repeats `}` legitimately), nor
    are repeats within one page."""

    def __init__(self) -> None:
        self.pages: dict[bytes, int] = {}

    def keep(self, lines: list[tuple[str, bool]]) -> tuple[list[str], int]:
        """The page's lines without the site's boilerplate and copies, and how many were dropped."""
        kept: list[str] = []
        dropped, page = 0, set()
        for pre, group in itertools.groupby(lines, key=lambda line: line[1]):
            units = ["\n".join(text for text, _ in group)] if pre else [text for text, _ in group]
            for text in units:  # a preformatted block is one unit, a line of text another
                if not text.strip():
                    kept.append(text)
                    continue
                key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                page.add(key)
                if self.pages.get(key, 0) >= (1 if len(text) >= LONG_LINE else math.inf if pre else
                                              BOILERPLATE_PAGES):
                    dropped += text.count("\n") + 1
                else:
                    kept.append(text)
        for key in page:
            self.pages[key] = self.pages.get(key, 0) + 1
        return kept, dropped


def html_text(html: str, site: SiteLines | None = None, with_title: bool = True) -> tuple[str, int]:
    """The visible text of an HTML page or fragment (empty when it shows none), and how many of its lines `site`
    (the lines of the source's earlier pages) made it drop."""
    parser = _VisibleText(with_title)
    parser.feed(html)
    lines = parser.result()
    if parser.redirect and sum(len(text) for text, _ in lines) < REDIRECT_TEXT:
        return "", 0  # "Redirecting to ch20-05-macros.html...": nothing to learn
    kept, dropped = site.keep(lines) if site is not None else ([text for text, _ in lines], 0)
    return _BLANKS.sub("\n\n", "\n".join(kept)).strip("\n"), dropped


class NotebookError(ValueError):
    """Not a Jupyter notebook: the message says what is wrong."""


def notebook_text(raw: str) -> str:
    """A notebook's cells in order: Markdown and raw cells as text, code cells fenced with the notebook's language."""
    try:
        nb = json.loads(raw)
    except json.JSONDecodeError as e:
        raise NotebookError(f"invalid JSON: {e.msg} at line {e.lineno}") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if cells is None and isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for w in nb["worksheets"] if isinstance(w, dict) for c in w.get("cells") or []]
    if not isinstance(cells, list):
        raise NotebookError("no `cells` list (not a Jupyter notebook)")
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    lang = ((meta.get("language_info") or {}).get("name") or (meta.get("kernelspec") or {}).get("language")
            or "python")
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", cell.get("input", ""))
        text = "".join(source) if isinstance(source, list) else source if isinstance(source, str) else ""
        if not text.strip():
            continue
        parts.append(f"```{lang}\n{text.strip(chr(10))}\n```" if cell.get("cell_type") == "code" else text.strip())
    return "\n\n".join(parts)
