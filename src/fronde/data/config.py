"""`DataConfig`: every knob of `fronde data prepare`, filled from a TOML `[data]` section, CLI flags
or `--set key=value`.

Field names are flat on purpose so that `--set near_dup_threshold=0.9` works without dotted paths.
Sources are the one structured field: a list of `SourceConfig`, written in TOML as
`[[data.sources]]` tables or on the command line as `PATH[::key=value...]` specs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fronde.data.errors import DataError, validation_message

DEFAULT_SOURCE = "python-stdlib"


class SourceConfig(BaseModel):
    """One input: a file, a directory, a glob, or a built-in corpus name."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File, directory, glob (** allowed) or built-in corpus name.")
    name: str | None = Field(None, description="Label in the manifest; default: built-in name or path.")
    licence: str | None = Field(None, min_length=1, description="Licence tag recorded in the manifest (SPDX id if "
                                 "any).")
    text_field: str | None = Field(None, description="JSON/JSONL/Parquet field holding text or chat `messages`.")
    pii: bool | None = Field(None, description="Scrub PII; default: on for user files, off for built-ins.")
    max_documents: int | None = Field(None, ge=1, description="Read at most this many documents.")
    extract: bool = Field(True, description="HTML -> its visible text, .ipynb -> its cells (fronde.data.markup); "
                          "false reads them as plain text, markup kept.")
    quality: Literal["off", "web"] = Field("off", description="web: drop documents that fail the Gopher / C4 / "
                                           "FineWeb quality rules for scraped prose (fronde.data.quality).")
    weight: float = Field(1.0, gt=0, le=1000, description="Its share of the training mixture: each train document "
                          "written this many times (2.5: twice, and a third time for half of them; 0.5: half of "
                          "them, the rest `downsampled`), chosen by content hash. Validation is never weighted.")
    lang: list[str] | None = Field(None, description="Keep only documents identified as one of these languages "
                                   "(ISO 639-3 codes, e.g. fra or fra,eng; fronde.data.langid); * keeps every "
                                   "language and records which the source holds.")

    encoding: str | None = Field(None, description="The files' character encoding (utf-8, cp1252, cp1251, "
                                 "shift_jis...) when you know it; default: a byte-order mark, else UTF-8 when valid, "
                                 "else the file's own declaration, else a guess (fronde.data.encoding).")

    ocr: str | None = Field(None, description="Read scanned PDF pages and image files with Tesseract in these "
                            "languages (its codes: fra, eng, fra+eng, deu...; fronde.data.ocr). Off by default.")

    @field_validator("ocr")
    @classmethod
    def _ocr_langs(cls, value: str | None) -> str | None:
        from fronde.data.ocr import LANGS

        if value is not None and not LANGS.match(value):
            raise ValueError(f"{value!r} is not a list of Tesseract language codes (fra, eng, fra+eng, chi_sim...)")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from fronde.data.encoding import codec_name

        try:
            return codec_name(value)
        except DataError as e:
            raise ValueError(str(e)) from None

    @field_validator("lang", mode="before")
    @classmethod
    def _split_langs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if value is not None and value != ["*"]:  # "*": identify and record, drop nothing
            from fronde.data.langid import available_languages

            known = available_languages()
            unknown = [v for v in value if v not in known]
            if unknown or not value:
                raise ValueError(f"unknown language code(s) {', '.join(unknown) or '(none given)'}: use ISO 639-3 "
                                 f"codes (three letters: fra for French, eng, deu, spa...), or * alone to keep every "
                                 f"language and record which; codes: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _quality_knows_the_language(self) -> "SourceConfig":
        """quality=web on a source kept to languages whose stop words it does not know would drop every document,
        found only at the end of the documents pass: said now."""
        from fronde.data.quality import LANGUAGES

        if self.quality == "web" and self.lang and self.lang != ["*"] and not set(self.lang) & set(LANGUAGES):
            raise ValueError(f"quality=web knows the stop words of {' and '.join(LANGUAGES)} only, and would drop "
                             f"every document of a source kept to lang={','.join(self.lang)}; leave quality off for "
                             "it")
        return self

    @classmethod
    def parse_spec(cls, spec: str) -> "SourceConfig":
        """`PATH[::key=value]...`, e.g. `notes/**/*.md::licence=proprietary::name=handbook`."""
        path, *opts = spec.split("::")
        fields: dict[str, Any] = {"path": path}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep:
                raise DataError(f"source option {opt!r} in {spec!r} is not key=value "
                                f"(keys: {', '.join(k for k in cls.model_fields if k != 'path')})")
            fields[key.strip()] = value.strip()
        try:
            return cls.model_validate(fields)
        except ValidationError as e:
            raise DataError(f"bad source spec {spec!r}: {validation_message(e, model=cls)}") from None


class DataConfig(BaseModel):
    """How to turn sources into a tokenizer and training shards. Defaults suit a laptop-sized run."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(path=DEFAULT_SOURCE)])
    licence: str = Field("unspecified", min_length=1, description="Licence tag for user sources that set none.")
    text_field: str = Field("text", description="Default JSON/JSONL/Parquet text field ('messages' for chats).")
    pii: bool | None = Field(None, description="Force PII scrubbing on/off for every source.")
    max_doc_chars: int = Field(1_000_000, ge=1_000, description="Longer documents are split at a line/space.")
    min_doc_chars: int = Field(1, ge=1, description="Documents shorter than this after cleaning are dropped.")
    exact_dedup: bool = True
    near_dedup: bool = True
    near_dup_threshold: float = Field(0.85, gt=0.0, lt=1.0, description="MinHash-LSH Jaccard threshold.")
    minhash_perms: int = Field(128, ge=16, le=1024)
    shingle_words: int = Field(5, ge=1, le=32, description="Words per shingle for near-duplicate detection.")
    val_fraction: float = Field(0.02, ge=0.0, lt=1.0, description="Share of documents (by hash) in val.")
    vocab_size: int = Field(8192, ge=512, le=1 << 20)
    tokenizer: str | None = Field(None, description="Reuse this trained tokenizer dir instead of training one.")
    decontaminate: list[str] = Field(default_factory=list, description="Evaluation test sets (task specs: humaneval, "
                                     "gsm-symbolic:eng, a tasks .jsonl) no training document may share a 13-word "
                                     "passage with (fronde.data.decontam).")
    tokenizer_train_chars: int = Field(300_000_000, ge=1, description="Cap on text fed to BPE training.")
    shard_tokens: int = Field(1 << 24, ge=1 << 10, description="Target tokens per shard file.")
    workers: int = Field(0, ge=0, description="Tokeniser threads, Word/PDF-reading and document-work processes; 0 = all "
                         "cores.")

    @field_validator("sources")
    @classmethod
    def _nonempty(cls, v: list[SourceConfig]) -> list[SourceConfig]:
        if not v:
            raise ValueError("at least one source is needed")
        return v

    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change the output (not `workers`, which only changes speed)."""
        fields = self.model_dump(mode="json", exclude={"workers"})
        for source in fields.get("sources") or []:
            if source.get("lang") is None:  # added later: data prepared before them keeps its cache key
                source.pop("lang", None)
            if source.get("weight") == 1.0:
                source.pop("weight", None)
            for key in ("encoding", "ocr"):  # added later: data prepared before them keeps its cache key
                if source.get(key) is None:
                    source.pop(key, None)
        return fields

    def with_overrides(self, sets: list[str]) -> "DataConfig":
        """Apply `key=value` strings (the CLI's `--set`) to the flat fields."""
        data = self.model_dump()
        for item in sets:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in type(self).model_fields or key == "sources":
                known = ", ".join(k for k in type(self).model_fields if k != "sources")
                raise DataError(f"--set {item!r}: expected key=value with key one of: {known}")
            data[key] = None if value.strip().lower() in ("none", "null") else value.strip()
        return _validate(data, "--set")


def _validate(data: dict[str, Any], where: str) -> DataConfig:
    try:
        return DataConfig.model_validate(data)
    except ValidationError as e:
        raise DataError(f"{where}: {validation_message(e, model=DataConfig)}") from None


def load_recipe(path: str | Path, section: str = "data") -> DataConfig:
    """Read a TOML recipe's `[data]` section (or a file that is only that section)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"recipe {p} does not exist")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"recipe {p} is not valid TOML: {e}") from None
    body = doc.get(section, doc)
    if not isinstance(body, dict):
        raise DataError(f"recipe {p}: [{section}] must be a table")
    body = dict(body)
    body.pop("out", None)  # the output directory is given on the command line or in the recipe's `out`
    return _validate(body, f"recipe {p} [{section}]")


def recipe_out(path: str | Path, section: str = "data") -> str | None:
    """The recipe's optional `out` directory."""
    doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    body = doc.get(section, doc)
    out = body.get("out") if isinstance(body, dict) else None
    return str(out) if out else None
