"""fronde's tokenizer: byte-level BPE (HF `tokenizers`) with special tokens for documents and chat.

Train with `train_tokenizer`, save with `Tokenizer.save(dir)`, load with `Tokenizer.load(dir)`.
The saved directory is also a valid `transformers.AutoTokenizer` directory whose `chat_template`
reproduces `fronde.data.chat.render_chat` exactly.

Text is put in Unicode NFC before it is split (an NFC normaliser in tokenizer.json, which transformers and vLLM
apply too): "é" typed as e + a combining accent (macOS file names, some Vietnamese keyboards, text copied from PDFs)
gets the ids of the "é" the corpus was cleaned into, not rarer byte sequences the model never trained on.

Ordinary text never turns into special tokens: fronde encodes with `encode_special_tokens=True`, so
a document (or a chat message) that contains the literal string `<|assistant|>` cannot forge a turn.
Special ids only ever come from structure (document boundaries, chat roles).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from fronde.data.errors import DataError
from fronde.data.io import atomic_write_json, atomic_write_text, sha256_bytes

# Role -> token string. Order fixes the ids: they are the first ids of the vocabulary (0..14).
SPECIAL_TOKENS: dict[str, str] = {
    "pad": "<|pad|>",
    "bos": "<|bos|>",  # starts every document and every chat
    "eos": "<|eos|>",  # ends every document
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "end": "<|end|>",  # ends a system/user/assistant turn; generation stops on it
    "tool_call": "<|tool_call|>",
    "tool_call_end": "<|/tool_call|>",
    "tool_result": "<|tool_result|>",
    "tool_result_end": "<|/tool_result|>",
    "think": "<|think|>",
    "think_end": "<|/think|>",
    "answer": "<|answer|>",
    "answer_end": "<|/answer|>",
}

# Qwen2's split pattern: GPT-4's with every digit its own pre-token. Digits one by one make arithmetic a small
# model can learn (the same 10 x 10 facts for every number, not a table over 2-digit tokens: docs/log.md,
# 2026-11-23) and spend no merges on numbers; the pattern is llama.cpp's "qwen2" pre-tokenizer, so a GGUF export
# tokenizes exactly as fronde does.
SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
DEFAULT_MODEL_MAX_LENGTH = 65536


@dataclass(frozen=True)
class SpecialIds:
    """Special-token ids by role, e.g. `tok.special.bos`, `tok.special.assistant`."""

    pad: int
    bos: int
    eos: int
    system: int
    user: int
    assistant: int
    end: int
    tool_call: int
    tool_call_end: int
    tool_result: int
    tool_result_end: int
    think: int
    think_end: int
    answer: int
    answer_end: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Tokenizer:
    """A trained fronde tokenizer: `encode`/`decode`, special ids by role, chat rendering."""

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        self.hf.encode_special_tokens = True  # text is text: see the module docstring
        ids = {}
        for role, token in SPECIAL_TOKENS.items():
            tid = hf.token_to_id(token)
            if tid is None:
                raise DataError(f"no special token {token!r} ({role}): not a tokenizer fronde trained")
            ids[role] = tid
        self.special = SpecialIds(**ids)
        self.special_ids = frozenset(ids.values())

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        """Load a directory written by `save` (or a tokenizer.json file)."""
        p = Path(path)
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise DataError(f"no tokenizer at {p} (expected {file}); run `fronde data prepare` first")
        try:
            hf = HFTokenizer.from_file(str(file))
        except Exception as e:  # tokenizers raises a bare Exception for a truncated or foreign file
            raise DataError(f"{file}: not a tokenizer `tokenizers` can read ({e}); a copy cut short? copy it again "
                            "from where the model came from") from None
        try:
            return cls(hf)
        except DataError as e:  # another model's tokenizer: fronde's chat and document tokens are missing
            raise DataError(f"{file}: {e}. fronde trains and serves models with its own tokenizer; a model made "
                            "elsewhere can be evaluated (fronde eval) or be a teacher (distill.teacher)") from None

    @classmethod
    def from_str(cls, json_str: str) -> "Tokenizer":
        return cls(HFTokenizer.from_str(json_str))

    def save(self, directory: str | Path, model_max_length: int = DEFAULT_MODEL_MAX_LENGTH) -> None:
        """Write tokenizer.json, tokenizer_config.json (with `chat_template`), chat_template.jinja and
        special_tokens_map.json, each atomically. Loadable offline by `AutoTokenizer.from_pretrained`."""
        from fronde.data.chat import CHAT_TEMPLATE, RESPONSE_TEMPLATE

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "tokenizer.json", self._file_json(pretty=True))
        sp = SPECIAL_TOKENS
        extra = [t for r, t in sp.items() if r not in ("bos", "eos", "pad")]
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": sp["bos"],
            "eos_token": sp["eos"],
            "pad_token": sp["pad"],
            "unk_token": None,
            "extra_special_tokens": extra,
            "additional_special_tokens": extra,
            "model_max_length": model_max_length,
            "padding_side": "right",
            "clean_up_tokenization_spaces": False,
            "add_bos_token": self.adds_bos,  # tokenizers fronde trained before 2026-12-07 do not
            "add_eos_token": False,
            "split_special_tokens": False,
            "added_tokens_decoder": {
                str(self.hf.token_to_id(t)): {"content": t, "lstrip": False, "rstrip": False, "normalized": False,
                                              "single_word": False, "special": True}
                for t in sp.values()
            },
            "chat_template": CHAT_TEMPLATE,
            "response_template": RESPONSE_TEMPLATE,
            "fronde_special_ids": self.special.as_dict(),
        }
        atomic_write_json(d / "tokenizer_config.json", config)
        atomic_write_json(d / "special_tokens_map.json", {
            "bos_token": sp["bos"], "eos_token": sp["eos"], "pad_token": sp["pad"],
            "additional_special_tokens": extra})
        atomic_write_text(d / "chat_template.jinja", CHAT_TEMPLATE)

    # --- use ---------------------------------------------------------------------------------------
    def for_clean_text(self) -> Tokenizer:
        """The same ids for text fronde.data.clean has already put in NFC, without normalising it again (a tenth
        of the encode time): the copy the data pipeline tokenises its cleaned documents with."""
        if not isinstance(self.hf.normalizer, normalizers.NFC):
            return self
        hf = HFTokenizer.from_str(self._file_json())
        hf.normalizer = None
        return Tokenizer(hf)

    @property
    def adds_bos(self) -> bool:
        """Whether transformers' encode (add_special_tokens=True) starts a text with <|bos|>."""
        return isinstance(self.hf.post_processor, processors.TemplateProcessing)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @property
    def sha256(self) -> str:
        """Hash of what fixes fronde's ids (vocab, merges, specials, normaliser, pre-tokenizer). The post-processor
        is left out: fronde never applies it (add_special_tokens=False), and transformers rewrites it whenever it
        saves a tokenizer (a model fine-tuned with TRL came back "tokenized with another tokenizer" than its
        data). A tokenizer without one hashes as it always did."""
        if self.hf.post_processor is None:
            return sha256_bytes(self._file_json().encode())
        bare = HFTokenizer.from_str(self._file_json())
        bare.post_processor = None
        return sha256_bytes(bare.to_str().encode())

    def _file_json(self, pretty: bool = False) -> str:
        """tokenizer.json as saved: without fronde's encode_special_tokens, a setting no one loading the file should
        inherit."""
        self.hf.encode_special_tokens = False
        try:
            return self.hf.to_str(pretty=pretty)
        finally:
            self.hf.encode_special_tokens = True

    def token_id(self, token: str) -> int:
        tid = self.hf.token_to_id(token)
        if tid is None:
            raise KeyError(token)
        return tid

    def id_to_token(self, tid: int) -> str | None:
        return self.hf.id_to_token(tid)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Text -> ids. Special-token strings inside `text` are encoded as ordinary text."""
        ids = self.hf.encode(text, add_special_tokens=False).ids
        if bos:
            ids.insert(0, self.special.bos)
        if eos:
            ids.append(self.special.eos)
        return ids

    def encode_batch(self, texts: Sequence[str], *, bos: bool = False, eos: bool = False) -> list[list[int]]:
        """Many texts at once, in parallel threads inside `tokenizers` (Rust)."""
        encs = self.hf.encode_batch_fast(list(texts), add_special_tokens=False)
        pre = [self.special.bos] if bos else []
        post = [self.special.eos] if eos else []
        return [pre + e.ids + post for e in encs]

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[dict], tools: list[dict] | None = None,
                    add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """See `fronde.data.chat.render_chat`."""
        from fronde.data.chat import render_chat

        return render_chat(self, messages, tools=tools, add_generation_prompt=add_generation_prompt)


def new_bpe() -> HFTokenizer:
    """An untrained byte-level BPE with fronde's pre-tokenizer and decoder."""
    tok = HFTokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def min_vocab_size() -> int:
    return 256 + len(SPECIAL_TOKENS)


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, length: int | None = None,
                    min_frequency: int = 2) -> Tokenizer:
    """Train byte-level BPE on `texts` (an iterator is fine; `tokenizers` trains in parallel).

    The result may have fewer than `vocab_size` ids when the corpus has too few repeated pairs.
    """
    if vocab_size < min_vocab_size():
        raise DataError(f"vocab_size {vocab_size} is too small: 256 byte tokens + {len(SPECIAL_TOKENS)} "
                        f"special tokens need at least {min_vocab_size()}")
    hf = new_bpe()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS.values()],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(texts, trainer=trainer, length=length)  # cleaned text: NFC already
    hf.normalizer = normalizers.NFC()  # for everything else: prompts, chat files, tasks (module docstring)
    # Every training document starts with <|bos|>: transformers' and vLLM's encode of a plain prompt add it too (as
    # Llama 3's tokenizer does), as fronde serve and llama.cpp do. fronde itself encodes with add_special_tokens=False
    # and the chat template writes its own <|bos|>, which apply_chat_template and vLLM's chat do not double.
    bos = SPECIAL_TOKENS["bos"]
    hf.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                      special_tokens=[(bos, hf.token_to_id(bos))])
    return Tokenizer(hf)


def tokenizer_config(directory: str | Path) -> dict:
    """The saved tokenizer_config.json of a tokenizer directory."""
    return json.loads((Path(directory) / "tokenizer_config.json").read_text(encoding="utf-8"))
