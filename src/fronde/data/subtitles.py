"""Subtitles and captions (.srt, .vtt) -> the words spoken, as training text.

Subtitles are much of the text a local-language lab can find for its language (films, series, broadcasts, courses,
and the captions of its own recorded meetings), but read as plain text a model would learn cue numbers and
`00:01:02,500 --> 00:01:04,000` as often as words. Read here, as OpenSubtitles' corpus tools and ffmpeg's subtitle
parsers do:

- SubRip (`.srt`): the cue number and timing lines left out; formatting tags (`<i>`, `<font color=...>`) and ASS
  override codes (`{\\an8}`) removed.
- WebVTT (`.vtt`): the `WEBVTT` header, `NOTE`, `STYLE` and `REGION` blocks, cue identifiers and cue settings
  (`align:start`) left out; voice, class, language and karaoke timestamp tags removed (`<v Anne>`, `<c.yellow>`,
  `<00:00:01.500>`) and entities decoded.
- A cue's lines are joined into one line (a sentence broken for the screen is one sentence; a dialogue line
  starting with a dash keeps its own), one cue a line; a line that repeats the line before it is dropped: roll-up
  captions (YouTube's automatic ones) show each line in two cues, and the text should not learn it twice.

The file's encoding is decided as any text file's (fronde.data.encoding): old subtitles are mostly in the code page of
their language (Windows-1252, -1251, -1256...).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.files import pieces, whole_text

_TIMING = re.compile(r"^\s*(\d+:)?\d{1,2}:\d{2}[,.]\d{1,3}\s*-->\s*(\d+:)?\d{1,2}:\d{2}[,.]\d{1,3}")
_TAGS = re.compile(r"</?[a-zA-Z][^>]*>|<\d{1,2}:\d{2}(:\d{2})?\.\d{3}>|\{\\[^}]*\}")


def _cues(text: str) -> Iterator[list[str]]:
    """Each cue's text lines, in order: the lines after a timing line up to an empty line (WebVTT's rule), the next
    timing line, or the next cue's number or identifier (the line just before a timing line). A line of spaces ends
    a cue that has text; before any, it is skipped (YouTube's captions start their cues with one). Lines outside
    cues (the header, NOTE, STYLE and REGION blocks) are never text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    n, i = len(lines), 0
    while i < n:
        if not _TIMING.match(lines[i]):
            i += 1
            continue
        i, cue = i + 1, []
        while i < n and lines[i] != "" and not _TIMING.match(lines[i]):
            if i + 1 < n and _TIMING.match(lines[i + 1]):
                break  # the next cue's number or identifier
            if lines[i].strip():
                cue.append(lines[i])
            elif cue:
                break
            i += 1
        yield cue


def subtitle_text(text: str) -> str:
    """The spoken text of an .srt or .vtt file: a cue a line, a line repeating the one before it dropped."""
    out: list[str] = []
    for cue in _cues(text.lstrip("\ufeff")):
        words = ""
        for line in cue:
            line = " ".join(html.unescape(_TAGS.sub("", line)).split())
            # a line of dialogue (`- Tu viens ?` / `- J'arrive !`) is a speaker's turn: its own line
            words += ("\n" if line.startswith(("-", "–", "—")) else " ") + line if words and line else line
        if words and (not out or words != out[-1]):
            # roll-up captions: a cue holding the line before it and a new one gives the new one
            if out and words.startswith(out[-1] + " "):
                words = words[len(out[-1]) + 1:]
            out.append(words)
    return "\n".join(out)


def read_subtitles(sf: SourceFile, max_chars: int, pii: bool = True, declared: str | None = None
                   ) -> Iterator[Document | Drop]:
    """A subtitle file as one document (pieces of `max_chars` for a long one)."""
    if isinstance(got := whole_text(sf, declared), Drop):
        yield got
        return
    raw, bad = got
    yield from pieces(sf, subtitle_text(raw), max_chars, "no cue with text (not subtitles?)", bad, pii)
