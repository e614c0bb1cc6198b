"""CSV and TSV files: a spreadsheet's, helpdesk's or CRM's export, one document a row from its text column.

A team's tickets, reviews or notes often leave their tool as a CSV file; read as plain text, the model would learn
ticket ids, dates and separators, all rows run together. As `datasets` and datatrove read such files, a row is a
record and `text_field` (default `text`, matched ignoring case) names the column that holds its text. What
exports really look like is handled: a header row; quoted fields holding separators and newlines (a stray quote
is an error for its row, counted, not every later row swallowed into one cell); the separator
of the locale (Excel writes `;` where the decimal mark is a comma, as in France or Germany; `\\t` in a .tsv; `|`);
Excel's "CSV UTF-8" byte-order mark and its plain "CSV" in the machine's code page (fronde.data.encoding); fields
longer than the csv module's 128 KB default.

A .csv without that column and with no `text_field` set is read as a text file, as before (a table of numbers is
still text to some corpora); with `text_field` set, a missing column is an error that lists the columns.
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterable, Iterator

SEPARATORS = ",;\t|"
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a whole article in one cell is a document, not an error


def separator(header: str, tsv: bool) -> str:
    """The separator a header line uses: a tab for .tsv, else the one of `,;\\t|` it holds most (`,` on a tie)."""
    if tsv:
        return "\t"
    counts = {s: header.count(s) for s in SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def find_column(header: list[str], want: str) -> int | None:
    """The index of column `want` (exact, else ignoring case and surrounding spaces), or None."""
    if want in header:
        return header.index(want)
    folded = [h.strip().casefold() for h in header]
    return folded.index(want.strip().casefold()) if want.strip().casefold() in folded else None


def read_table(text: Iterable[str], tsv: bool) -> tuple[list[str], Iterator[tuple[int, list[str] | str]]]:
    """The header's fields ([] for an empty file) and, for every non-blank row after it, (line number where the
    row ends, its fields or what is wrong with it): a malformed row (a NUL byte, a broken quote) is reported and
    reading goes on."""
    lines = iter(text)  # a text file opened with newline="", or decoded lines that keep their line ends
    first = next(lines, "")
    # strict: a stray quote is an error for its row, not the silent merging of every row after it into one cell
    reader = csv.reader(itertools.chain([first], lines), delimiter=separator(first, tsv), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return [], iter(())
    return header, _rows(reader)


def _rows(reader) -> Iterator[tuple[int, list[str] | str]]:
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            lines = f"line {start}" if reader.line_num <= start else f"lines {start}-{reader.line_num}"
            yield reader.line_num, f"malformed CSV row ({lines}): {e}"
            continue
        if any(cell.strip() for cell in row):
            yield reader.line_num, row
