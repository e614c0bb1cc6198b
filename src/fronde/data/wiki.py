"""MediaWiki XML dumps (Wikipedia, Wiktionary, a team's own wiki export) -> an article's plain text each.

A Wikipedia in the team's language is the first corpus most local-language labs reach for; a company wiki exports
to the same format (Special:Export). The dump (`*-pages-articles.xml.bz2`, read as it is) is streamed page by page,
and each article's wikitext is turned into the text a reader sees, as WikiExtractor does for most pipelines built on
Wikipedia: templates (infoboxes, citations), tables, references, comments, files and categories left out; links
read as their label; headings as `#` lines and list items as `- ` lines (as HTML pages are read,
fronde.data.markup); bold and italic marks dropped; entities decoded. Only articles are kept (namespace 0, as
the dump's own namespace list says, so localized `Fichier:` or `Kategorie:` links are known); redirects and
pages of other namespaces (talk, user, template...) are counted in the file's manifest entry. The wikitext stripper
is a good approximation, not MediaWiki's parser: text produced by templates (a date, a converted unit) is lost with
them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from xml.etree import ElementTree as ET

_FILE_NS, _CATEGORY_NS = "6", "14"
_CANONICAL = {"file", "image", "category", "media"}
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_DROP_TAGS = re.compile(r"<(ref|gallery|math|score|timeline|syntaxhighlight|source|templatedata|graph|mapframe)"
                        r"\b[^>]*?(/>|>.*?</\1\s*>)", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*?/?>")
_TEMPLATE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.S)  # innermost first, repeated: templates nest
_TABLE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL = re.compile(r"\[(?:https?:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_HEADING = re.compile(r"^(={1,6})\s*(.*?)\s*\1\s*$", re.M)
_LIST = re.compile(r"^[*#]+\s*", re.M)
_INDENT = re.compile(r"^[:;]+\s*", re.M)
_QUOTES = re.compile(r"'{2,5}")
_MAGIC = re.compile(r"__[A-Z]+__")
_BLANKS = re.compile(r"\n{3,}")
_INTERWIKI = re.compile(r"^[a-z]{2,3}(-[a-z]+)?$")  # [[en:Paris]]: the same article in another language


@dataclass
class Page:
    title: str
    namespace: str
    redirect: bool
    wikitext: str


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(f: BinaryIO) -> Iterator[tuple[Page, set[str]]]:
    """The dump's pages in order, each with the lower-cased prefixes of links to drop (files, categories), streamed:
    a page's elements are freed once read, so a multi-gigabyte dump needs the memory of one page."""
    drop = set(_CANONICAL)
    root = None
    for event, el in ET.iterparse(f, events=("start", "end")):
        if root is None:
            root = el
        if event == "start":
            continue
        name = _local(el.tag)
        if name == "namespace" and el.get("key") in (_FILE_NS, _CATEGORY_NS) and el.text:
            drop.add(el.text.strip().lower())
        elif name == "page":
            fields = {_local(child.tag): child for child in el}
            revision = fields.get("revision")
            ns = el.tag[: el.tag.index("}") + 1] if "}" in el.tag else ""  # the export format's XML namespace
            text = revision.find(f"{ns}text") if revision is not None else None
            yield Page(title=(fields["title"].text or "") if "title" in fields else "",
                       namespace=(fields["ns"].text or "0").strip() if "ns" in fields else "0",
                       redirect="redirect" in fields,
                       wikitext=(text.text or "") if text is not None else ""), drop
            root.clear()  # the pages read so far, emptied or not, would otherwise stay children of the root


def _link(m: re.Match[str], drop: set[str]) -> str:
    target, _, label = m.group(1).partition("|")
    prefix, colon, _ = target.partition(":")
    if colon and (prefix.strip().lower() in drop or _INTERWIKI.match(prefix.strip())):
        return ""  # a file, a category, or the article in another language
    return (label or target).strip()


def wikitext_to_text(text: str, drop: set[str] | frozenset[str] = frozenset(_CANONICAL)) -> str:
    """The text a reader sees in an article's wikitext (see the module's docstring)."""
    text = _DROP_TAGS.sub("", _COMMENT.sub("", text))
    for pattern in (_TEMPLATE, _TABLE):
        while True:
            text, n = pattern.subn("", text)
            if not n:
                break
    dropped = set(drop)
    while True:  # links nest too: [[File:x.jpg|a [[label]] in a caption]]
        text, n = _LINK.subn(lambda m: _link(m, dropped), text)
        if not n:
            break
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    text = _INDENT.sub("", _LIST.sub("- ", text))  # (before headings become `#` lines: wikitext's `#` is a list)
    text = _HEADING.sub(lambda m: "#" * len(m.group(1)) + " " + m.group(2), text)
    text = _TAG.sub("", _MAGIC.sub("", _QUOTES.sub("", text)))
    lines = [line.rstrip() for line in html.unescape(text).split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def article(page: Page, drop: set[str]) -> str:
    """An article as a document: its title as a heading, then its text ("" when nothing is left)."""
    body = wikitext_to_text(page.wikitext, drop)
    return f"# {page.title}\n\n{body}" if body else ""
