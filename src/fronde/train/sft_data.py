"""SFT data: chats (OpenAI `messages` JSONL, and built-in task problems with worked solutions) rendered through the
chat template, trained on assistant tokens only, and packed into fixed-length rows.

Packing is greedy in a seeded order: each row of seq_len + 1 tokens takes whole conversations while they fit and is
padded at the end (padding targets are IGNORE_INDEX). A conversation longer than a row is cut to the row and
counted, never dropped silently. Conversations sharing a row attend to each other (no block-diagonal mask), as in
most packed SFT; each starts with <|bos|> so the model knows where one begins.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fronde.data.chat import map_message_text, render_chat, render_chats
from fronde.data.chat_formats import iter_rows, row_chat
from fronde.data.errors import DataError
from fronde.data.manifest import read_manifest
from fronde.data.pii import scrub_pii
from fronde.data.shards import open_split
from fronde.data.tokenizer import Tokenizer
from fronde.model.loss import IGNORE_INDEX


ENCODE_BATCH = 4096  # conversations tokenised together: all cores busy, memory bounded


@dataclass
class Conversation:
    source: str  # "file.jsonl:12" or "task:arithmetic"
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None


@dataclass
class PackStats:
    conversations: int = 0
    truncated: int = 0  # longer than a row: cut to the row
    without_assistant_tokens: int = 0  # nothing to learn from: skipped and counted
    rows: int = 0
    tokens: int = 0  # real (non-padding) tokens
    trained_tokens: int = 0  # tokens with a loss (assistant tokens)
    text_rows: int = 0  # rows of plain pretraining text replayed among them (sft.text_fraction)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def read_chat_file(path: Path, pii: Counter[str] | None = None, formats: Counter[str] | None = None
                   ) -> list[Conversation]:
    """Every row of a chat file, in any format fronde.data.chat_formats reads (OpenAI messages, ShareGPT, TRL
    prompt-completion, Alpaca; JSONL, JSON or Parquet); an error names the file, the row and what is wrong. With
    `pii` (a Counter), every message's text is PII-scrubbed as `fronde data prepare` scrubs user files, and the
    replacements are counted into it; `formats` counts the rows by format."""
    out = []
    for loc, row in iter_rows(path):
        try:
            messages, tools, fmt = row_chat(row)
        except ValueError as e:
            raise DataError(f"{path.parent / loc}: {e}") from None
        if formats is not None:
            formats[fmt] += 1
        if pii is not None:
            map_message_text(messages, lambda text: scrub_pii(text, pii))
        out.append(Conversation(loc, messages, tools))
    return out


def is_val(conv: Conversation, fraction: float) -> bool:
    """A stable hash split of conversations, independent of file order."""
    h = hashlib.sha256(json.dumps(conv.messages, sort_keys=True).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def encode(tok: Tokenizer, conv: Conversation) -> tuple[list[int], list[int]]:
    """(ids, targets) for one conversation, targets shifted left: targets[t] is ids[t+1] when that token is an
    assistant token, else IGNORE_INDEX. The trailing element predicts nothing."""
    return _targets(*render_chat(tok, conv.messages, tools=conv.tools))


def encode_all(tok: Tokenizer, convs: list[Conversation]) -> list[tuple[list[int], list[int]]]:
    """`encode` for many conversations, their texts tokenised in one batch."""
    return [_targets(ids, mask) for ids, mask in render_chats(tok, [(c.messages, c.tools) for c in convs])]


def _targets(ids: list[int], mask: list[int]) -> tuple[list[int], list[int]]:
    return ids, [t if m else IGNORE_INDEX for t, m in zip(ids[1:], mask[1:])] + [IGNORE_INDEX]


@dataclass
class PackedRows:
    inputs: torch.Tensor  # (rows, seq_len)
    targets: torch.Tensor  # (rows, seq_len)
    stats: PackStats = field(default_factory=PackStats)


def pack(tok: Tokenizer, convs: list[Conversation], seq_len: int, seed: int) -> PackedRows:
    order = list(range(len(convs)))
    random.Random(seed).shuffle(order)
    stats = PackStats()
    rows_x: list[list[int]] = []
    rows_y: list[list[int]] = []
    cur_x: list[int] = []
    cur_y: list[int] = []

    def close() -> None:
        nonlocal cur_x, cur_y
        if cur_x:
            pad = seq_len - len(cur_x)
            rows_x.append(cur_x + [tok.special.pad] * pad)
            rows_y.append(cur_y + [IGNORE_INDEX] * pad)
            cur_x, cur_y = [], []

    batches = (encode_all(tok, [convs[i] for i in order[k:k + ENCODE_BATCH]])
               for k in range(0, len(order), ENCODE_BATCH))
    for ids, targets in (pair for batch in batches for pair in batch):
        stats.conversations += 1
        if len(ids) > seq_len:
            ids, targets = ids[:seq_len], targets[:seq_len]
            stats.truncated += 1
        if all(t == IGNORE_INDEX for t in targets):
            stats.without_assistant_tokens += 1
            continue
        if len(cur_x) + len(ids) > seq_len:
            close()
        cur_x += ids
        cur_y += targets
        stats.tokens += len(ids)
        stats.trained_tokens += sum(t != IGNORE_INDEX for t in targets)
    close()
    stats.rows = len(rows_x)
    if not rows_x:
        raise DataError("SFT data produced no rows with assistant tokens; check the chat files and tasks")
    return PackedRows(torch.tensor(rows_x), torch.tensor(rows_y), stats)


def with_text(rows: PackedRows, tok: Tokenizer, data_dir: Path, fraction: float, seed: int) -> PackedRows:
    """`rows` plus enough windows of plain text from a prepared data dir's train split that they make up `fraction`
    of all rows, every token with a loss: replaying pretraining text keeps SFT on a narrow task from erasing what
    the model knew (a tiny model SFT'd on arithmetic alone ends worse than uniform on its own corpus)."""
    if fraction <= 0:
        return rows
    manifest = read_manifest(data_dir)
    if manifest["tokenizer"]["sha256"] != tok.sha256:
        raise DataError(f"sft.text_data: {data_dir} was tokenized with another tokenizer than the model's; prepare "
                        "it with the model's tokenizer or point sft.text_data at the run's own data dir")
    seq = rows.inputs.shape[1]
    stream = [shard.tokens for shard in open_split(data_dir, "train", manifest) if len(shard.tokens) > seq]
    if not stream:
        raise DataError(f"sft.text_data: {data_dir} has no train shard longer than a row ({seq + 1} tokens)")
    n = round(len(rows.inputs) * fraction / (1 - fraction))
    rng = random.Random(seed)
    sizes = [len(t) for t in stream]
    windows = []
    for _ in range(n):  # a shard in proportion to its size, then a uniform start: every window seq + 1 real tokens
        tokens = rng.choices(stream, weights=sizes)[0]
        start = rng.randrange(len(tokens) - seq)
        windows.append(torch.from_numpy(tokens[start : start + seq + 1].astype("int64")))
    text = torch.stack(windows)
    stats = PackStats(**rows.stats.as_dict())
    stats.rows += n
    stats.text_rows = n
    stats.tokens += n * seq  # trained_tokens stays the assistant tokens: the text rows are counted apart
    return PackedRows(torch.cat([rows.inputs, text[:, :-1]]), torch.cat([rows.targets, text[:, 1:]]), stats)


class RowLoader:
    """Batches of packed rows in a seeded order that changes each epoch; resumable exactly (epoch, cursor)."""

    def __init__(self, rows: PackedRows, batch_size: int, seed: int) -> None:
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.n = rows.inputs.shape[0]
        self.epoch, self.cursor = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = []
        while len(idx) < self.batch_size:
            if self.cursor == self.n:
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(self.batch_size - len(idx), self.n - self.cursor)
            idx.extend(self._order[self.cursor:self.cursor + take].tolist())
            self.cursor += take
        sel = torch.tensor(idx)
        return self.rows.inputs[sel], self.rows.targets[sel]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cursor": self.cursor, "rows": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("rows") != self.n:
            raise DataError(f"the checkpoint's SFT data had {state.get('rows')} rows, this run's has {self.n}: "
                            "resume with the same data and recipe")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._permutation(self.epoch)


def fixed_batches(rows: PackedRows, batch_size: int, max_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first rows, in order, as evaluation batches (the same every time)."""
    out = []
    for i in range(0, min(rows.inputs.shape[0], batch_size * max_batches), batch_size):
        out.append((rows.inputs[i:i + batch_size], rows.targets[i:i + batch_size]))
    return out
