"""`fronde model ...`: inspect presets and model directories."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.model.config import ModelConfig, load_preset, preset_names
from fronde.model.info import model_info

app = typer.Typer(help="Inspect model presets and model directories; merge LoRA adapters; upgrade older model dirs.",
                  no_args_is_help=True)
console = CliConsole()


def resolve_config(spec: str) -> tuple[ModelConfig, str]:
    """A preset name or a model directory -> its config and a label."""
    path = Path(spec)
    if path.is_dir():
        from fronde.model.checkpoint import load_config  # (torch: only for a directory; presets start fast)

        return load_config(path), str(path)
    if spec in preset_names():
        return load_preset(spec), f"preset {spec}"
    raise typer.BadParameter(
        f"{spec!r} is neither a model directory nor a preset (presets: {', '.join(preset_names())})",
        param_hint="PRESET|DIR",
    )


def _human(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return str(int(n))


@app.command("info")
def info(
    spec: str = typer.Argument(..., metavar="PRESET|DIR", help="A preset name (tiny, probe, gpu-1b) or a model dir."),
    seq_len: int = typer.Option(1024, help="Sequence length for the attention FLOPs."),
    kv_dtype_bytes: int = typer.Option(2, help="Bytes per cached number (2 for bf16/fp16, 4 for fp32)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Parameters (total and active), training FLOPs per token and KV-cache bytes per token (MLA vs MHA)."""
    try:
        config, label = resolve_config(spec)
    except (FileNotFoundError, ValueError) as e:
        print_error(console, e)
        raise typer.Exit(2) from e
    mi = model_info(config, seq_len=seq_len, kv_dtype_bytes=kv_dtype_bytes)
    if as_json:
        typer.echo(json.dumps({"model": label, **mi.as_dict(), "config": config.model_dump()}, indent=2))
        return
    t = Table(title=escape(f"fronde model info: {label}"), show_header=False)
    t.add_row("architecture", f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, "
              f"{config.num_attention_heads} MLA heads, vocab {config.vocab_size}")
    t.add_row("experts", f"{config.n_routed_experts} routed (top-{config.num_experts_per_tok}, "
              f"{config.n_group} groups keep {config.topk_group}) + {config.n_shared_experts} shared; "
              f"first {config.first_k_dense_replace} layer(s) dense")
    t.add_row("total parameters", f"{_human(mi.total_params)} ({mi.total_params:,})")
    t.add_row("active parameters / token", f"{_human(mi.active_params)} ({mi.active_params:,})")
    if mi.mtp_params:
        t.add_row("MTP layer parameters", f"{_human(mi.mtp_params)} ({mi.mtp_params:,})")
    t.add_row(f"training FLOPs / token (T={seq_len})", f"{_human(mi.train_flops_per_token)}")
    t.add_row("KV cache / token, MLA", f"{mi.kv_bytes_per_token_mla:,} bytes")
    t.add_row("KV cache / token, MHA same heads", f"{mi.kv_bytes_per_token_mha:,} bytes")
    t.add_row("MLA saves", f"{mi.kv_reduction:.1%} ({mi.kv_bytes_per_token_mha / mi.kv_bytes_per_token_mla:.1f}x smaller)")
    console.print(t)


EFFECT_WARNING = 0.9  # below this share of the adapter's effect kept, the merge says how to keep it all


@app.command("merge-lora")
def merge_lora(
    adapter: Path = typer.Argument(..., metavar="ADAPTER_DIR", help="A PEFT LoRA adapter dir (adapter_config.json + "
                                   "adapter_model.safetensors), e.g. TRL's output with a peft_config."),
    out: Path = typer.Argument(..., metavar="OUT_DIR", help="Where to write the merged fronde model dir."),
    base: Path | None = typer.Option(None, help="The base model dir (default: the adapter's "
                                     "base_model_name_or_path, when it is a directory here)."),
    dtype: str = typer.Option("auto", help="Weights of the merged model: auto (the base's), float32, bfloat16, "
                              "float16."),
    force: bool = typer.Option(False, "--force", help="Replace OUT_DIR if it exists."),
) -> None:
    """Merge a LoRA adapter trained with PEFT/TRL into its base: a fronde model dir that serve, eval, export and
    later stages read, checked against the adapter's own outputs, with the adapter in its lineage."""
    from fronde.train.merge_lora import DTYPES, AdapterError
    from fronde.train.merge_lora import merge_lora as merge

    if dtype != "auto" and dtype not in DTYPES:
        raise typer.BadParameter(f"{dtype!r}: choose auto, {', '.join(DTYPES)}", param_hint="--dtype")
    try:
        with console.status("merging") as status:
            report = merge(adapter, out, base=base, dtype=DTYPES.get(dtype), force=force,
                           say=lambda line: status.update(escape(line)))
    except (AdapterError, FileNotFoundError, ValueError) as e:
        print_error(console, e)
        raise typer.Exit(2) from e
    t = Table(title=escape(f"merged {adapter} into {report.base}"), show_header=False)
    t.add_row("model dir", escape(str(report.out)))
    t.add_row("weights changed", f"{report.changed:,} of {report.tensors:,} tensors, "
              f"{report.relative_change:.3%} of their norm")
    t.add_row("check against the adapter", f"logits agree to {report.probe_diff:.1e} of their scale")
    dtype_name = str(report.dtype).removeprefix("torch.")
    t.add_row("dtype", dtype_name)
    if report.effect_kept is not None:
        t.add_row(f"adapter's effect kept in {dtype_name}", f"{report.effect_kept:.1%} (on the probe's logits)")
    t.add_row("tokenizer from", escape(str(report.tokenizer_from)))
    console.print(t)
    if report.effect_kept is not None and report.effect_kept < EFFECT_WARNING:
        console.print(f"[yellow]warning:[/yellow] rounding the merged weights to {dtype_name} lost "
                      f"{1 - report.effect_kept:.0%} of what the adapter changes; merge again with --dtype float32 to "
                      "keep it all", highlight=False)
    console.print(f"serve it: fronde serve {escape(str(report.out))}", highlight=False)


@app.command("upgrade")
def upgrade(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="A fronde model dir written by an older fronde."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; write nothing."),
) -> None:
    """Bring an older model dir up to what checkpoints write today (stop ids, context length, response template),
    in place; the weights and everything fronde.json hashes stay as they are."""
    from fronde.train.upgrade import upgrade_model_dir

    try:
        changes = upgrade_model_dir(model_dir, write=not dry_run)
    except (FileNotFoundError, ValueError) as e:
        print_error(console, e)
        raise typer.Exit(2) from e
    if not changes:
        console.print(f"{escape(str(model_dir))}: already current", highlight=False)
    for line in changes:
        console.print(("would change " if dry_run else "changed ") + escape(line), highlight=False)
