"""`fronde data ...`: prepare a corpus into tokenizer + shards, and inspect the result."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.data.config import DataConfig, SourceConfig, load_recipe, recipe_out
from fronde.data.errors import DataError, validation_message
from fronde.data.inspect import sample_documents
from fronde.data.manifest import read_manifest, summary_rows, verify_outputs
from fronde.data.pipeline import prepare
from fronde.data.progress import RichReporter
from fronde.tasks import decontamination_guard

app = typer.Typer(help="Turn your own files into a tokenizer and training shards, with a manifest.",
                  no_args_is_help=True)
console = CliConsole()
err_console = CliConsole(stderr=True)


def _fail(e: Exception) -> typer.Exit:
    print_error(err_console, e)
    return typer.Exit(2)


@app.command("prepare")
def prepare_cmd(
    source: list[str] = typer.Option(None, "--source", "-s", help="PATH, DIR, GLOB or built-in (python-stdlib, "
                                     "littre, gcide); options as PATH::licence=X::name=Y::text_field=F::pii=false "
                                     "(::quality=web: drop scraped pages that fail the Gopher/FineWeb rules; "
                                     "::lang=fra: keep French documents only, lang=*: record the languages; "
                                     "::weight=3: its train documents three times in the mixture; "
                                     "::encoding=cp1251: its files' encoding, when not UTF-8 and not to be guessed; "
                                     "::ocr=fra: read scanned PDF pages and images with Tesseract). "
                                     "Repeatable. Default: python-stdlib. Killed? Run it again: it resumes."),
    out: Path = typer.Option(None, "--out", "-o", help="Output directory (or the recipe's `out`)."),
    recipe: Path = typer.Option(None, "--recipe", help="TOML file whose \\[data] section fills the config."),
    vocab_size: int = typer.Option(None, "--vocab-size", help="BPE vocabulary size (default 8192)."),
    no_pii: bool = typer.Option(False, "--no-pii", help="Do not scrub PII (default: scrub user files)."),
    pii: bool = typer.Option(False, "--pii", help="Scrub PII in every source, built-ins included."),
    licence: str = typer.Option(None, "--licence", help="Licence tag for user sources that set none."),
    text_field: str = typer.Option(None, "--text-field", help="JSON/JSONL/Parquet field with text or messages."),
    val_fraction: float = typer.Option(None, "--val-fraction", help="Share of documents in val (default 0.02)."),
    tokenizer: Path = typer.Option(None, "--tokenizer", help="Reuse this tokenizer dir instead of training."),
    workers: int = typer.Option(None, "--workers", help="Tokeniser threads, Word/PDF-reading and "
                                "document-work processes (0 = all cores)."),
    decontaminate: list[str] = typer.Option(None, "--decontaminate", help="Drop documents sharing a 13-word "
                                            "passage with this evaluation's test problems: humaneval, "
                                            "gsm-symbolic:eng, a tasks .jsonl... Repeatable."),
    sets: list[str] = typer.Option(None, "--set", help="Any DataConfig field as key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the inputs are unchanged."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON at the end."),
) -> None:
    """Read, clean, deduplicate, scrub, split, train a BPE tokenizer and write shards + manifest.json."""
    try:
        config = load_recipe(recipe) if recipe else DataConfig()
        out = out or (Path(o) if recipe and (o := recipe_out(recipe)) else None)
        if out is None:
            raise DataError("no output directory: pass --out DIR (or set `out` in the recipe's [data] section)")
        fields = config.model_dump()
        if source:
            fields["sources"] = [SourceConfig.parse_spec(s).model_dump() for s in source]
        for name, value in (("vocab_size", vocab_size), ("licence", licence), ("text_field", text_field),
                            ("val_fraction", val_fraction), ("workers", workers),
                            ("tokenizer", str(tokenizer) if tokenizer else None)):
            if value is not None:
                fields[name] = value
        if decontaminate:
            fields["decontaminate"] = list(decontaminate)
        if no_pii and pii:
            raise DataError("--pii and --no-pii contradict each other")
        if no_pii or pii:
            fields["pii"] = pii
        config = DataConfig.model_validate(fields).with_overrides(sets or [])
        guard = decontamination_guard(config.decontaminate)
        with RichReporter(err_console) as reporter:
            result = prepare(config, out, progress=reporter, force=force, guard=guard)
    except DataError as e:
        raise _fail(e) from None
    except ValidationError as e:  # a CLI value or --set the config refuses: `field: what is wrong (got value)`
        raise _fail(DataError(validation_message(e, show_input=True, model=DataConfig))) from None
    except ValueError as e:
        raise _fail(DataError(str(e))) from None
    m = result.manifest
    if as_json:
        typer.echo(json.dumps(m, indent=2, ensure_ascii=False))
        return
    verb = "up to date (inputs unchanged), reused" if result.reused else "prepared"
    if m.get("resumed"):
        verb += f" (resumed: kept the interrupted run's {', '.join(m['resumed'])})"
    console.print(f"[green]{verb}[/green] {escape(str(out))}")
    _summary(m, str(out))


def _summary(m: dict, label: str) -> None:
    t = Table(title=escape(f"fronde data: {label}"), show_header=False)
    for k, v in summary_rows(m):
        t.add_row(k, escape(v))  # file names, source specs
    console.print(t)


@app.command("inspect")
def inspect_cmd(
    directory: Path = typer.Argument(..., help="A directory written by `fronde data prepare`."),
    samples: int = typer.Option(3, "--samples", "-n", help="Decoded sample documents to show."),
    split: str = typer.Option("train", help="Split to sample from."),
    seed: int = typer.Option(0, help="Seed for picking samples."),
    max_tokens: int = typer.Option(120, help="Show at most this many tokens per sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest summary and samples as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Hash every shard, index and the tokenizer against the "
                                "manifest (after copying the directory to another machine); exit 2 on a mismatch."),
) -> None:
    """Print the manifest summary and a few decoded sample documents."""
    try:
        m = read_manifest(directory)
        if verify:
            with RichReporter(err_console) as reporter:
                problems = verify_outputs(directory, m, reporter)
            if problems:
                raise DataError(f"{directory}: {len(problems)} file(s) differ from the manifest; copy them again or "
                                "re-run `fronde data prepare`:\n- " + "\n- ".join(problems))
            err_console.print(f"{directory}: every shard, index and the tokenizer match the manifest",
                              highlight=False, soft_wrap=True)
        picked = sample_documents(directory, split, samples, seed, max_tokens) if samples else []
    except DataError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps({"summary": dict(summary_rows(m)), "samples": picked}, indent=2, ensure_ascii=False))
        return
    _summary(m, str(directory))
    for s in picked:
        more = " …" if s["truncated"] else ""
        console.rule(f"{s['shard']} document {s['document']} ({s['tokens']} tokens)")
        console.print(s["text"] + more, markup=False, highlight=False)
