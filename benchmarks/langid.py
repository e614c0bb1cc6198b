"""Language identification accuracy (`lang=` on a source, fronde.data.langid) against the classic it refines, in one
run: Cavnar & Trenkle's rank-order n-gram profiles (1994; the "out-of-place" distance over each language's 300 most
frequent n-grams), trained on the same texts.

    python benchmarks/langid.py

Both learn from 80% of each language's GSM-Symbolic problems and are scored on:
- held-out: the other 20% (questions and worked answers; ~108 languages);
- out of domain, where installed: Littré paragraphs (French), Webster 1913 paragraphs (English), and the docstrings
  of the running Python's standard library (English, with code in them).
fastText's lid.176 or GlotLID would be the stronger peers; they are downloads, which fronde does not make.
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import re
import time
from collections import Counter

from fronde.data import langid
from fronde.data.builtin import DICTD_DIR, STARDICT_DIR


class RankOrder:
    """Cavnar & Trenkle: each language's top-N n-grams by rank; a text goes to the profile nearest by out-of-place."""

    def __init__(self, texts: dict[str, list[str]], top: int = 300) -> None:
        self.top = top
        self.profiles = {}
        for lang, docs in texts.items():
            c: Counter[str] = Counter()
            for t in docs:
                c.update(langid.ngrams(t))
            self.profiles[lang] = {g: r for r, (g, _) in enumerate(c.most_common(top))}

    def identify(self, text: str) -> tuple[str, float] | None:
        norm = langid.normalize(text)
        ranked = [g for g, _ in langid.ngrams(norm).most_common(self.top)]
        if not ranked:
            return None
        best = min(self.profiles, key=lambda lang: sum(abs(self.profiles[lang].get(g, self.top) - r)
                                                       for r, g in enumerate(ranked)))
        return best, 1.0


def paragraphs(text: str, n: int = 200, size: int = 600) -> list[str]:
    step = max(1, (len(text) - size) // n)
    return [text[i : i + size] for i in range(0, len(text) - size, step)][:n]


def out_of_domain() -> dict[str, tuple[str, list[str]]]:
    sets: dict[str, tuple[str, list[str]]] = {}
    littre = STARDICT_DIR / "XMLittre.dict.dz"
    if littre.is_file():
        text = re.sub(r"<[^>]+>", " ", gzip.open(littre).read(4_000_000).decode("utf-8", "ignore"))
        sets["Littré (fra)"] = ("fra", paragraphs(text[200_000:]))
    gcide = DICTD_DIR / "gcide.dict.dz"
    if gcide.is_file():
        sets["Webster 1913 (eng)"] = ("eng", paragraphs(gzip.open(gcide).read(4_000_000).decode("utf-8", "ignore")
                                                        [200_000:]))
    docs = []
    for name in ("json", "re", "collections", "inspect", "pathlib", "argparse", "textwrap", "statistics"):
        module = importlib.import_module(name)
        for attr in dir(module):
            doc = inspect.getdoc(getattr(module, attr, None))
            if doc and len(doc) > 200 and not attr.startswith("_"):
                docs.append(doc)
    sets["stdlib docstrings (eng)"] = ("eng", sorted(set(docs))[:300])
    return sets


def main() -> None:
    texts = langid.training_texts(langid.templates_dir())
    train = {lang: docs[: int(len(docs) * 0.8)] for lang, docs in texts.items()}
    held = [(lang, t) for lang, docs in texts.items() for t in docs[int(len(docs) * 0.8):]]
    sets = {"held-out problems": (None, held), **out_of_domain()}
    methods = {"fronde (naive Bayes, 1-4-grams)": langid.build(train), "Cavnar & Trenkle (peer)": RankOrder(train)}
    print(f"{len(texts)} languages; training texts: {sum(len(d) for d in train.values()):,}\n")
    print("| method | " + " | ".join(sets) + " | ms / text |")
    print("| --- |" + " ---: |" * (len(sets) + 1))
    scores = {}
    for name, model in methods.items():
        cells, n, start = [], 0, time.perf_counter()
        for want, items in sets.values():
            pairs = items if want is None else [(want, t) for t in items]
            right = sum((model.identify(t) or ("?",))[0] == lang for lang, t in pairs)
            cells.append(right / len(pairs))
            n += len(pairs)
        scores[name] = cells
        ms = (time.perf_counter() - start) / n * 1000
        print(f"| {name} | " + " | ".join(f"{c:.1%}" for c in cells) + f" | {ms:.2f} |", flush=True)
    ours, peer = scores.values()
    print("\nerrors, peer / fronde: " + ", ".join(
        f"{s}: {(1 - p) / (1 - o):.1f}x" if o < 1 else f"{s}: fronde none, peer {1 - p:.1%}"
        for s, o, p in zip(sets, ours, peer)))


if __name__ == "__main__":
    main()
