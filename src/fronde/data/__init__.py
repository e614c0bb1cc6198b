"""fronde's data layer: a team's own files -> clean, accounted-for tokenizer and training shards.

The bottom layer of fronde: it imports nothing from fronde.model/train/infer/eval/serve/cli.

Entry points for later stages:
- `prepare(DataConfig, out)` builds a data directory (shards + tokenizer + manifest.json);
- `Tokenizer.load(dir / "tokenizer")`: `encode`, `decode`, `special` ids by role, `render_chat`;
- `render_chat(tok, messages, tools=None, add_generation_prompt=False) -> (ids, assistant_mask)`;
- `ShardLoader(dir, split, seq_len, batch_size, rank, world_size, seed)`: (input, target) batches.
"""

from __future__ import annotations

from fronde.lazy import lazy_exports

# Names resolved on first use (PEP 562): `fronde --help`, `fronde runs` and `fronde data` start without importing
# torch (ShardLoader's) or the whole pipeline.
_EXPORTS = {
    "CHAT_TEMPLATE": "chat", "normalize_messages": "chat", "render_chat": "chat", "render_chat_text": "chat",
    "DataConfig": "config", "SourceConfig": "config", "load_recipe": "config",
    "DataError": "errors",
    "ShardLoader": "loader",
    "check_accounting": "manifest", "read_manifest": "manifest",
    "PrepareResult": "pipeline", "collect_documents": "pipeline", "prepare": "pipeline",
    "SPECIAL_TOKENS": "tokenizer", "SpecialIds": "tokenizer", "Tokenizer": "tokenizer", "train_tokenizer": "tokenizer",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
