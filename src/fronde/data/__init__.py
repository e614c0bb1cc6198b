"""fronde's data layer: a team's own files -> clean, accounted-for tokenizer and training shards.

The bottom layer of fronde: it imports nothing from fronde.model/train/infer/eval/serve/cli.

Entry points for later stages:
- `prepare(DataConfig, out)` builds a data directory (shards + tokenizer + manifest.json);
- `Tokenizer.load(dir / "tokenizer")`: `encode`, `decode`, `special` ids by role, `render_chat`;
- `render_chat(tok, messages, tools=None, add_generation_prompt=False) -> (ids, assistant_mask)`;
- `ShardLoader(dir, split, seq_len, batch_size, rank, world_size, seed)`: (input, target) batches.
"""

from fronde.data.chat import CHAT_TEMPLATE, normalize_messages, render_chat, render_chat_text
from fronde.data.config import DataConfig, SourceConfig, load_recipe
from fronde.data.errors import DataError
from fronde.data.loader import ShardLoader
from fronde.data.manifest import check_accounting, read_manifest
from fronde.data.pipeline import PrepareResult, collect_documents, prepare
from fronde.data.tokenizer import SPECIAL_TOKENS, SpecialIds, Tokenizer, train_tokenizer

__all__ = [
    "CHAT_TEMPLATE", "DataConfig", "DataError", "PrepareResult", "SPECIAL_TOKENS", "ShardLoader", "SourceConfig",
    "SpecialIds", "Tokenizer", "check_accounting", "collect_documents", "load_recipe", "normalize_messages",
    "prepare", "read_manifest", "render_chat", "render_chat_text", "train_tokenizer",
]
