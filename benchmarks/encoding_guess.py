"""Guessing the code page of files that are not UTF-8 (fronde.data.encoding) against charset-normalizer, the detector
`requests` and pip use, in one run.

    python benchmarks/encoding_guess.py

A guess is right when the file decodes to exactly the text that was written. Sets:
- held-out problems: GSM-Symbolic problems (question and worked answer) that fronde's identifier did not learn from
  (it is rebuilt here on the other 80% of each language's problems, as in benchmarks/langid.py), each written in
  its language's legacy code page(s), whole and cut to its first 150 characters;
- out of domain, where installed: Littré lines (French, Windows-1252; Debian's stardict-xmlittre);
- the CJK test files of CPython's own test suite (Lib/test/cjkencodings), each in the encoding its name gives;
- UTF-16 without a byte-order mark (as PowerShell writes it): the held-out problems in UTF-16-LE and -BE;
- binary files with NUL bytes, which must not be read as text (right = told binary): this interpreter's
  executable and shared libraries, zips, SQLite databases, PNGs, raw audio and number arrays.
"""

from __future__ import annotations

import gzip
import re
import sysconfig
import time
from pathlib import Path

from fronde.data import encoding, langid
from fronde.data.builtin import STARDICT_DIR

try:
    import charset_normalizer
except ImportError:  # pragma: no cover
    raise SystemExit("the peer is missing: pip install charset-normalizer") from None

CODE_PAGES = {  # language -> the legacy encodings its texts were saved in
    **{lang: ("cp1252",) for lang in ("fra", "deu", "spa", "ita", "por", "nld", "dan", "swe", "nob", "isl", "cat",
                                      "afr", "gle", "fao")},
    **{lang: ("cp1250",) for lang in ("pol", "ces", "slk", "hun", "slv", "hrv", "bos")},
    "rus": ("cp1251", "koi8_r"), "ukr": ("cp1251",), "bul": ("cp1251",), "bel": ("cp1251",),
    "ell": ("cp1253",), "tur": ("cp1254",), "ara": ("cp1256",), "pes": ("cp1256",), "urd": ("cp1256",),
    "lit": ("cp1257",), "lav": ("cp1257",), "est": ("cp1257",), "tha": ("cp874",), "jpn": ("cp932", "euc_jp"),
    "zho": ("gb18030",), "yue": ("big5",), "kor": ("cp949",),
}
CJK_FILES = {"big5.txt": "big5", "gb2312.txt": "gb2312", "gbk.txt": "gbk", "gb18030.txt": "gb18030",
             "euc_kr.txt": "euc_kr", "cp949.txt": "cp949", "euc_jp.txt": "euc_jp", "shift_jis.txt": "shift_jis"}


def cases() -> tuple[dict[str, list[tuple[bytes, str]]], langid.LanguageId]:
    raw = langid.training_texts(langid.templates_dir(), normalized=False)
    cut = {lang: int(len(texts) * 0.8) for lang, texts in raw.items()}
    lid = langid.build({lang: [langid.normalize(t) for t in texts[: cut[lang]]] for lang, texts in raw.items()})
    sets: dict[str, list[tuple[bytes, str]]] = {"held-out problems": [], "held-out, first 150 chars": []}
    for lang, codecs in CODE_PAGES.items():
        for text in raw.get(lang, [])[cut.get(lang, 0):]:
            for codec in codecs:
                for name, t in (("held-out problems", text), ("held-out, first 150 chars", text[:150])):
                    try:
                        data = t.encode(codec)
                    except UnicodeEncodeError:
                        continue  # a letter that code page does not have: such texts were never saved in it
                    if not data.isascii():
                        sets[name].append((data, t))
    littre = STARDICT_DIR / "XMLittre.dict.dz"
    if littre.is_file():
        text = re.sub(r"<[^>]+>", "\n", gzip.open(littre).read(6_000_000).decode("utf-8", "ignore"))
        lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) > 40 and not ln.isascii()]
        sets["Littré lines (fra)"] = [(ln.encode("cp1252"), ln) for ln in lines[5000::40][:300]
                                      if _encodable(ln, "cp1252")]
    cjk = Path(sysconfig.get_paths()["stdlib"]) / "test" / "cjkencodings"
    if cjk.is_dir():
        sets["CPython's CJK test files"] = [((cjk / f).read_bytes(), (cjk / f).read_bytes().decode(codec))
                                            for f, codec in CJK_FILES.items() if (cjk / f).is_file()]
    sets["UTF-16 without a byte-order mark"] = [(t.encode(codec), t) for t in
                                                 [t for lang in CODE_PAGES for t in raw.get(lang, [])[cut[lang]:]]
                                                 for codec in ("utf-16-le", "utf-16-be")]
    sets["binary files (told binary)"] = [(data, None) for data in binary_files()]
    return sets, lid


def binary_files() -> list[bytes]:
    """Real binary formats with NUL bytes in their first 8000 bytes, made or found on this machine."""
    import io
    import sqlite3
    import sys
    import zipfile

    import numpy as np

    out = [Path(sys.executable).resolve().read_bytes()[:1 << 20]]
    libs = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    out += [p.read_bytes()[:1 << 20] for p in sorted(libs.glob("*.so"))[:40]]
    rng = np.random.default_rng(0)
    for i in range(20):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED if i % 2 else zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"f{i}.txt", " ".join(map(str, rng.integers(0, 1000, 500))))
        out.append(buf.getvalue())
        db = sqlite3.connect(":memory:")
        db.execute("create table t (x text, y real)")
        db.executemany("insert into t values (?, ?)", [(f"row {j}", j / 7) for j in range(50 * (i + 1))])
        db.commit()
        out.append(db.serialize())
        out.append(rng.normal(0, 10 * (i + 1), 8000).astype("<i2").tobytes())  # audio, quiet to loud
        out.append(rng.normal(0, 1, 4000).astype(["<f4", ">f4", "<f8"][i % 3]).tobytes())
        out.append(rng.integers(0, 300 * (i + 1), 4000).astype(["<i4", "<u2", ">i4"][i % 3]).tobytes())
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        for i in range(10):
            fig = plt.figure(figsize=(2, 2))
            plt.plot(rng.normal(size=20))
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
            out.append(buf.getvalue())
    except ImportError:  # pragma: no cover
        pass
    return [b for b in out if b"\x00" in b[:8000]]


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
        return True
    except UnicodeEncodeError:
        return False


def fronde_guess(lid: langid.LanguageId):
    def decode(data: bytes) -> str | None:
        if b"\x00" in data[:8000] and encoding.bom_encoding(data) is None and encoding.bomless_utf16(data) is None:
            return None  # binary, as fronde.data.files.binary_drop says
        return data.decode(encoding.detect(data, True, lid=lid).name, errors="replace")
    return decode


def peer_guess(data: bytes) -> str | None:
    best = charset_normalizer.from_bytes(data).best()
    return None if best is None else str(best)


def main() -> None:
    sets, lid = cases()
    methods = {"fronde (language-scored)": fronde_guess(lid), "charset-normalizer (peer)": peer_guess}
    print(f"{'set':32s} {'n':>5s} " + " ".join(f"{m:>26s}" for m in methods))
    totals = {m: [0, 0, 0.0] for m in methods}
    for name, items in sets.items():
        row = []
        for m, fn in methods.items():
            t0 = time.perf_counter()
            right = sum(fn(data) == text for data, text in items)
            dt = time.perf_counter() - t0
            totals[m][0] += right
            totals[m][1] += len(items)
            totals[m][2] += dt
            row.append(f"{100 * right / max(1, len(items)):9.1f}% ({1000 * dt / max(1, len(items)):5.1f} ms/file)")
        print(f"{name:32s} {len(items):5d} " + " ".join(f"{r:>26s}" for r in row))
    acc = {m: t[0] / max(1, t[1]) for m, t in totals.items()}
    (ours, peer) = acc.values()
    print(f"{'all':32s} {next(iter(totals.values()))[1]:5d} "
          + " ".join(f"{100 * a:9.1f}% ({1000 * t[2] / max(1, t[1]):5.1f} ms/file)".rjust(26)
                     for a, t in zip(acc.values(), totals.values())))
    print(f"wrong decodings: fronde {1 - ours:.1%}, charset-normalizer {1 - peer:.1%} "
          f"(fronde makes {(1 - ours) / max(1e-9, 1 - peer):.2f}x the peer's errors)")


if __name__ == "__main__":
    main()
