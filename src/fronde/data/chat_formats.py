"""Chat datasets in the shapes teams have them, read as OpenAI messages.

SFT data rarely starts in fronde's own format. Each row (a JSON object) is recognised by its keys, as TRL and
LLaMA-Factory recognise them:

- `messages`: `messages` (+ `tools`), OpenAI chat, fronde's own;
- `sharegpt`: `conversations` of `{"from", "value"}` turns (+ `system`, `tools`): human/user -> user,
  gpt/assistant/model -> assistant, system, function_call -> an assistant tool call, observation/tool -> tool;
- `prompt-completion`: `prompt` and `completion`, as text or as message lists (TRL's conversational form): a user
  turn and an assistant turn;
- `alpaca`: `instruction` (+ `input`), `output` (+ `system`, `history`): a user turn (the instruction, a blank
  line, the input) and an assistant turn, after the earlier rounds `history` lists (LLaMA-Factory's multi-turn).

Files: `.jsonl`/`.ndjson` (a row a line), `.json` (a list of rows), `.parquet` and `.arrow` (a row a record: what
`datasets` saves, `to_parquet` and `save_to_disk`'s data-*.arrow), the first two also gzipped; and tables,
`.csv`/`.tsv` and `.xlsx`/`.xls`/`.ods` sheets, whose header row names the columns (ignoring case: `Prompt`,
`completion`, `instruction`, `input`, `output`, `system`; a FAQ's `question` and `answer` read as prompt and
completion). A bad row stops the run with its file, row and what is
wrong: a chat file is hand-made and small enough to fix, unlike a pretraining corpus, where bad records are counted
and dropped.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fronde.data import spreadsheet
from fronde.data.chat import normalize_messages
from fronde.data import columnar
from fronde.data.columnar import ColumnarError
from fronde.data.encoding import decode
from fronde.data.errors import DataError
from fronde.data.io import jsonl_rows
from fronde.data.office import OfficeError
from fronde.data.tables import read_table

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system",
                  "observation": "tool", "tool": "tool", "function_response": "tool"}


def iter_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, row) for every row of a chat file, rows decoded but not yet checked."""
    if not path.is_file():
        raise DataError(f"{path}: no such chat file")
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = (suffixes[:-1] if gz else suffixes)[-1:] or [""]
    if ext[0] in (".parquet", ".arrow"):
        kind, name = ("parquet", "Parquet") if ext[0] == ".parquet" else ("arrow", "Arrow IPC")
        if gz:
            raise DataError(f"{path}: gzipped {name} is not read here; it compresses itself (write it plain)")
        try:
            for n, row in columnar.rows(str(path), kind):
                yield f"{path.name} row {n}", row
        except ColumnarError as e:
            raise DataError(f"{path}: not a readable {name} file ({e})") from None
        return
    if ext[0] in (".csv", ".tsv", ".xlsx", ".xls", ".ods"):
        yield from _table_rows(path, ext[0], gz)
        return
    if ext[0] != ".json":
        for n, row in jsonl_rows(path, DataError):
            yield f"{path.name}:{n}", row
        return
    try:
        with (gzip.open if gz else open)(path, "rt", encoding="utf-8-sig") as f:  # (a BOM from Windows tools)
            rows = json.load(f)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: a .json chat file holds a list of rows; use .jsonl for a row a line")
    for i, row in enumerate(rows, 1):
        yield f"{path.name} row {i}", row


_FAQ = {"question": "prompt", "answer": "completion"}
_KNOWN = {"prompt", "instruction", "question"}  # a header with one of these is a chat table


def _table_rows(path: Path, ext: str, gz: bool) -> Iterator[tuple[str, Any]]:
    """A CSV file's or a workbook's rows as dicts keyed by their header (lower-cased; a FAQ's question/answer as
    prompt/completion). Every sheet whose header names a known column is read; a table with none is an error."""
    with gzip.open(path) if gz else open(path, "rb") as f:
        data = f.read()
    if ext in (".csv", ".tsv"):
        text, bad, enc = decode(data)
        if bad:
            raise DataError(f"{path}: not readable text (bytes invalid in {enc.name}, its encoding as read); save it "
                            "as UTF-8") from None
        header, body = read_table(io.StringIO(text, newline=""), tsv=ext == ".tsv")
        tables = [(header, [(f"{path.name}:{line}", row) for line, row in body])]
    else:
        try:
            sheets = spreadsheet.READERS[ext[1:]](data)
        except OfficeError as e:
            raise DataError(f"{path}: not a readable {ext[1:]} workbook ({e})") from None
        tables = [(rows[0][1], [(f"{path.name}:{name}!{n}", row) for n, row in rows[1:]]) for name, rows in sheets
                  if rows]
    found = False
    for header, body in tables:
        keys = [h.strip().lower() for h in header]
        if not _KNOWN & set(keys):
            continue
        found = True
        if "prompt" not in keys:
            keys = [_FAQ.get(k, k) for k in keys]
        for loc, row in body:
            if isinstance(row, str):  # a malformed CSV row
                raise DataError(f"{loc}: {row}")
            yield loc, {k: cell for k, cell in zip(keys, row) if k}
    if not found:
        first = tables[0][0] if tables else []
        raise DataError(f"{path}: no header row names a chat column (prompt, instruction or question, ignoring case); "
                        f"the first has {', '.join(map(repr, first[:12])) or 'nothing'}")


def row_chat(row: Any, answered: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, str]:
    """(messages, tools, format) of one row; ValueError says what is wrong. `answered=False` (a distillation prompt,
    which the teacher answers) lets the answer be missing."""
    if not isinstance(row, dict):
        raise ValueError(f"a row is a JSON object, not {type(row).__name__}")
    if "messages" in row:
        fmt, messages, tools = "messages", normalize_messages(row["messages"]), row.get("tools")
        if tools is None and isinstance(row.get("functions"), list):  # OpenAI's legacy function definitions
            tools = [{"type": "function", "function": f} for f in row["functions"]]
    elif "conversations" in row:
        fmt, (messages, tools) = "sharegpt", _sharegpt(row)
    elif "prompt" in row:
        fmt, messages, tools = "prompt-completion", _prompt_completion(row, answered), row.get("tools")
    elif "instruction" in row:
        fmt, messages, tools = "alpaca", _alpaca(row, answered), None
    else:
        hint = " (plain text belongs in pretraining data: fronde data prepare)" if "text" in row else ""
        raise ValueError(f"keys {sorted(row)[:8]} are no chat format fronde reads{hint}; one of: `messages` "
                         "(OpenAI), `conversations` (ShareGPT), `prompt` + `completion` (TRL), `instruction` + "
                         "`output` (Alpaca)")
    if isinstance(tools, str):  # ShareGPT and some exports keep tools as a JSON string
        try:
            tools = json.loads(tools) if tools.strip() else None
        except json.JSONDecodeError:
            raise ValueError("`tools` is a string that is not JSON") from None
    if tools is not None and not isinstance(tools, list):
        raise ValueError("`tools` must be a list of tool definitions")
    if answered and not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant message: nothing to train on")
    return messages, tools or None, fmt


def _text(row: dict[str, Any], key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"`{key}` must be text, not {type(value).__name__}")
    return value


def _sharegpt(row: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    turns = row["conversations"]
    if not isinstance(turns, list) or not turns:
        raise ValueError("`conversations` must be a non-empty list")
    if all(isinstance(t, dict) and "role" in t for t in turns):  # some exports already hold OpenAI messages here
        return normalize_messages(turns), row.get("tools")
    messages: list[dict[str, Any]] = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append({"role": "system", "content": row["system"]})
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "from" not in t or "value" not in t:
            raise ValueError(f"conversations[{i}] has no `from` and `value`")
        who, value = str(t["from"]).lower(), t["value"]
        if who == "function_call":
            try:
                call = json.loads(value) if isinstance(value, str) else value
                messages.append({"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": call["name"], "arguments": call.get("arguments", {})}}]})
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"conversations[{i}]: a function_call value is JSON with a `name`") from None
        elif who in SHAREGPT_ROLES:
            messages.append({"role": SHAREGPT_ROLES[who], "content": value})
            _sharegpt_weight(t.get("weight"), messages[-1], i)
        else:
            raise ValueError(f"conversations[{i}] is from {t['from']!r}; known: {', '.join(SHAREGPT_ROLES)}, "
                             "function_call")
    return normalize_messages(messages), row.get("tools")


def _sharegpt_weight(weight: Any, message: dict[str, Any], i: int) -> None:
    """A turn's `weight` (SlimOrca's 0.0/1.0, Axolotl's 0/1; null: unset): 0 on an assistant turn keeps it as
    context out of the loss; other turns are never trained on, so weight 1 there cannot be honoured."""
    if weight is None:
        return
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight not in (0, 1):
        raise ValueError(f"conversations[{i}]: weight must be 0 or 1, not {weight!r}")
    if message["role"] == "assistant":
        if weight == 0:
            message["weight"] = 0
    elif weight == 1:
        raise ValueError(f"conversations[{i}]: weight 1 on a {message['role']} turn; fronde trains on the "
                         "assistant's turns only")


def _prompt_completion(row: dict[str, Any], answered: bool) -> list[dict[str, Any]]:
    prompt, completion = row["prompt"], row.get("completion")
    if isinstance(prompt, list):  # TRL's conversational prompt-completion
        if completion is None and not answered:
            return normalize_messages(prompt)
        if not isinstance(completion, list):
            raise ValueError("a message-list `prompt` needs a message-list `completion`")
        return normalize_messages(prompt + completion)
    messages = [{"role": "user", "content": _text(row, "prompt")}]
    if completion is not None or answered:
        messages.append({"role": "assistant", "content": _text(row, "completion")})
    return normalize_messages(messages)


def _alpaca(row: dict[str, Any], answered: bool) -> list[dict[str, Any]]:
    user = _text(row, "instruction")
    extra = _text(row, "input", required=False)
    messages = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) and \
        row["system"].strip() else []
    messages += _alpaca_history(row.get("history"))
    messages.append({"role": "user", "content": f"{user}\n\n{extra}" if extra.strip() else user})
    if row.get("output") is not None or answered:
        messages.append({"role": "assistant", "content": _text(row, "output")})
    return normalize_messages(messages)


def _alpaca_history(history: Any) -> list[dict[str, Any]]:
    """LLaMA-Factory's multi-turn Alpaca: `history` holds the earlier [instruction, response] rounds, which come
    before this row's instruction (and are trained on, as LLaMA-Factory trains every response by default)."""
    if history is None:
        return []
    if not isinstance(history, list) or not all(
            isinstance(turn, list) and len(turn) == 2 and all(isinstance(x, str) for x in turn) for turn in history):
        raise ValueError("`history` must be a list of [instruction, response] pairs of text (LLaMA-Factory's "
                         "multi-turn Alpaca)")
    return [{"role": role, "content": text} for turn in history for role, text in zip(("user", "assistant"), turn)]
