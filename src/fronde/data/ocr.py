"""Scanned pages and images -> text, offline, with Tesseract (Debian's `tesseract-ocr`).

Much of a team's or a public lab's archive is scanned: signed contracts, old reports, printed books. Read as they
are, such PDFs have no text layer and are dropped as `empty`. With `ocr=fra` on a source (Tesseract's language
codes; `fra+eng` for both), a PDF page without a text layer is read from its image (the largest on the page: a
scanner makes one image a page), and image files (`.png`, `.jpg`, `.tif`, multi-page TIFF included, `.bmp`,
`.webp`) become documents. Tesseract's LSTM models are what OCRmyPDF and docling run offline; clean print comes
out near exactly (~0.7 s a page on one core, in the worker processes with the other PDFs), old or damaged print
with errors that the quality rules (`quality=web`) and the dedup then see like any other text. A page whose image
pypdf cannot decode (a JBIG2 scan) is counted in the file's manifest entry, not guessed.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from functools import cache

from fronde.data.errors import DataError

IMAGE_EXTS = {"png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"}  # what Tesseract's image library reads
PAGE_TIMEOUT_S = 300  # a page Tesseract has not read in 5 minutes is a broken file, not a slow one
LANGS = re.compile(r"^[a-z][a-z_]{1,15}(\+[a-z][a-z_]{1,15})*$")


class OcrError(ValueError):
    """Tesseract could not read an image; the message says why."""


@cache
def installed_languages() -> frozenset[str]:
    """The language models Tesseract has here (empty when Tesseract is not installed)."""
    if shutil.which("tesseract") is None:
        return frozenset()
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=60)
    return frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())


def check(langs: str) -> None:
    """Stop before reading anything when Tesseract or one of the language models `langs` asks for is missing."""
    wanted = langs.split("+")
    if shutil.which("tesseract") is None:
        raise DataError(f"ocr={langs} needs Tesseract: sudo apt-get install tesseract-ocr "
                        + " ".join(f"tesseract-ocr-{lang.replace('_', '-')}" for lang in wanted))
    missing = [lang for lang in wanted if lang not in installed_languages()]
    if missing:
        raise DataError(f"ocr={langs}: Tesseract has no model for {', '.join(missing)} (it has "
                        f"{', '.join(sorted(installed_languages())) or 'none'}): sudo apt-get install "
                        + " ".join(f"tesseract-ocr-{lang.replace('_', '-')}" for lang in missing))


def read_image(data: bytes, langs: str) -> str:
    """The text Tesseract reads in an image file's bytes (every page of a multi-page TIFF)."""
    try:
        done = subprocess.run(["tesseract", "stdin", "stdout", "-l", langs], input=data, capture_output=True,
                              timeout=PAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise OcrError(f"Tesseract took more than {PAGE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = [x for x in done.stderr.decode("utf-8", "replace").splitlines() if x.strip()]
        raise OcrError(f"Tesseract failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace").replace("\f", "\n").strip()


def page_image(page) -> bytes | None:
    """The largest image of a PDF page as PNG bytes, or None when it has none pypdf can decode."""
    best = None
    try:
        for img in page.images:
            size = img.image.width * img.image.height if img.image is not None else 0
            if size and (best is None or size > best[0]):
                best = (size, img.image)
    except Exception:  # noqa: BLE001 - pypdf raises many types on filters it cannot decode (JBIG2, odd CCITT)
        return None
    if best is None:
        return None
    buf = io.BytesIO()
    best[1].save(buf, "PNG")
    return buf.getvalue()
