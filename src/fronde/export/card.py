"""What a model's card says of it, for the files an export writes: the licence, languages and tags in the front
matter of fronde's MODEL_CARD.md (or a Hub README.md), and a LICENSE file's text.

A GGUF file or an Ollama model leaves the model directory, its card and fronde.json behind; the licence travels in
it or it is lost (`ollama show --license`, llama.cpp's `general.license`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MODEL_CARDS = ("MODEL_CARD.md", "README.md")  # fronde writes the first; the Hub shows the second
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md")
_FRONT_MATTER = re.compile(r"^---\s*\n(.*?)\n---\s*(\n|$)", re.DOTALL)


def card_fields(model_dir: Path) -> dict[str, Any]:
    """The card's front matter as a dict ({} without a card or front matter; a malformed one too, since the card is
    documentation and the export must not fail on it)."""
    card = next((model_dir / n for n in MODEL_CARDS if (model_dir / n).is_file()), None)
    if card is None:
        return {}
    match = _FRONT_MATTER.match(card.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        return {}
    try:
        fields = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return fields if isinstance(fields, dict) else {}


def strings(value: Any) -> list[str]:
    """A front-matter field that may be one string or a list of them, as a list of non-empty strings."""
    items = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def model_license(model_dir: Path) -> str | None:
    """A LICENSE file's text, else the card's `license` with its name and link."""
    for name in LICENSE_FILES:
        if (model_dir / name).is_file():
            return (model_dir / name).read_text(encoding="utf-8").strip() or None
    fields = card_fields(model_dir)
    if not strings(fields.get("license")):
        return None
    parts = strings(fields.get("license_name")) or strings(fields.get("license"))
    return " ".join(parts[:1] + strings(fields.get("license_link"))[:1])
