"""One interface for every model an evaluation can hold side by side.

    load_eval_model("runs/x/sft/model")                  a fronde dir: fronde's engine (batched, latent cache)
    load_eval_model("path/to/hf-dir" | "m.gguf" | "smollm2-135m-instruct")
                                                        transformers, through fronde.train.teacher (offline)
    load_eval_model(endpoint="http://host/v1", model="name", api_key=...)
                                                        an OpenAI-compatible server (fronde serve, vLLM, Ollama, ...)

Every model answers the same three questions, so a score means the same thing whatever produced it:

- `generate(conversations, max_new_tokens, temperature, seed)`: one reply per conversation, through the model's chat
  template (canonical text: fronde.data.replies);
- `loglikelihood(context, continuation)`: (sum of log p(continuation tokens | context), their count, whether greedy
  decoding would have produced them), plain text without a chat template, as lm-evaluation-harness does;
- `loglikelihood_rolling(text)`: (sum of log p over every token of the text, the count), for loss and bits per byte.

`name` labels results; `info` carries what is known of the model (kind, spec, total/active parameters, run dir);
`last_speed` the throughput of the last `generate` call.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fronde.eval.errors import EvalError


@dataclass
class Speed:
    """What one `generate` call measured. ttft is from submission (queueing included), as a client sees it."""

    seconds: float = 0.0
    requests: int = 0
    generated_tokens: int = 0
    ttft_s: list[float] = field(default_factory=list)  # per request; empty where the path cannot see first tokens
    tokens_estimated: bool = False  # counted by re-tokenising the reply text (transformers/endpoint paths)

    def merge(self, other: Speed) -> Speed:
        return Speed(self.seconds + other.seconds, self.requests + other.requests,
                     self.generated_tokens + other.generated_tokens, self.ttft_s + other.ttft_s,
                     self.tokens_estimated or other.tokens_estimated)

    def summary(self) -> dict[str, Any]:
        """The figures a result file stores: tokens/s over the wall time and time-to-first-token quantiles."""
        out: dict[str, Any] = {"seconds": round(self.seconds, 3), "requests": self.requests,
                               "generated_tokens": self.generated_tokens,
                               "tokens_per_s": round(self.generated_tokens / self.seconds, 2) if self.seconds else None,
                               "tokens_estimated": self.tokens_estimated}
        if self.ttft_s:
            ttft = sorted(self.ttft_s)
            out |= {"ttft_s_mean": round(sum(ttft) / len(ttft), 4), "ttft_s_p50": round(_quantile(ttft, 0.5), 4),
                    "ttft_s_p90": round(_quantile(ttft, 0.9), 4)}
        return out


def _quantile(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


@dataclass
class ModelDescription:
    """What a result file records about the model evaluated."""

    name: str
    kind: str  # fronde | transformers | gguf | endpoint
    spec: str
    total_params: int | None = None
    active_params: int | None = None
    run_dir: str | None = None  # runs/<name> when a fronde model dir sits inside a run (its ledger is there)
    native_reasoning: bool = False  # the chat template takes reasoning_content (fronde's think/answer tokens)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToolReply:
    """A reply reached through tool calls: the final turn's text and what it took to get there."""

    text: str
    tool_calls: int = 0
    tool_errors: int = 0
    turns: int = 1
    stop: str = "answer"  # answer | length | max_turns (fronde.tools.episode)
    transcript: list[dict[str, str]] = field(default_factory=list)


class EvalModel(Protocol):
    """What every evaluator needs from a model (see the module docstring)."""

    name: str
    info: ModelDescription
    last_speed: Speed | None

    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]: ...

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, int, bool]: ...

    def loglikelihood_rolling(self, text: str) -> tuple[float, int]: ...


def slug(text: str) -> str:
    """A file-name-safe form of a model or task name (`arithmetic:3` -> `arithmetic-3`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._") or "unnamed"


def run_dir_of(model_dir: Path) -> Path | None:
    """runs/<name> for a model at runs/<name>/<stage>/model (the run dir holds ledger.json), else None."""
    path = model_dir.resolve()
    if path.name == "model" and (path.parent.parent / "ledger.json").is_file():
        return path.parent.parent
    return None


def default_name(spec: str) -> str:
    """`<run>-<stage>` for a model inside a run dir, else the directory (or file stem, or built-in) name."""
    path = Path(spec).expanduser()
    if path.is_dir():
        run = run_dir_of(path)
        return f"{run.name}-{path.resolve().parent.name}" if run is not None else path.resolve().name
    if path.is_file():
        return path.name.split(".gguf")[0] if path.suffix.lower() == ".gguf" else path.stem
    return spec


def is_fronde_dir(path: Path) -> bool:
    """A fronde model dir: a DeepseekV3 checkpoint with fronde's tokenizer (its config names fronde's special ids)."""
    config = path / "tokenizer_config.json"
    if not (path / "config.json").is_file() or not config.is_file():
        return False
    try:
        return "fronde_special_ids" in json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:  # damaged: neither fronde nor transformers can say what the model is
        raise EvalError(f"{config}: not valid JSON ({e}); the file is corrupt: copy it again from where the model "
                        "came from") from None
    except OSError:
        return False


def load_eval_model(spec: str | None = None, *, endpoint: str | None = None, model: str | None = None,
                    api_key: str | None = None, name: str | None = None, device: str = "cpu",
                    batch_size: int = 16) -> EvalModel:
    """The model for a spec (fronde dir, transformers dir, .gguf file, built-in name, an endpoint's URL) or an
    endpoint + model name (which may be left out when the endpoint serves one model).

    `batch_size` is the engine's batch for fronde dirs, the generate batch for transformers and the number of
    concurrent requests for endpoints. Nothing is ever downloaded.
    """
    if spec and spec.startswith(("http://", "https://")) and endpoint is None:
        spec, endpoint = None, spec  # a URL where a model goes: the endpoint, as `fronde agent URL` takes it
    if endpoint is not None:
        if spec:
            raise EvalError(f"give either a MODEL ({spec!r}) or --endpoint ({endpoint!r}), not both")
        from fronde.eval.endpoint_model import EndpointModel

        return EndpointModel(endpoint, model, api_key=api_key, name=name, concurrency=batch_size)
    if not spec:
        raise EvalError("no model: pass a fronde or transformers model dir, a .gguf file, smollm2-135m-instruct, "
                        "or --endpoint URL --model NAME")
    path = Path(spec).expanduser()
    if path.is_dir() and is_fronde_dir(path):
        from fronde.eval.fronde_model import FrondeModel

        return FrondeModel(path, device=device, max_batch=batch_size, name=name)
    from fronde.eval.hf_model import HFModel

    return HFModel(spec, device=device, batch_size=batch_size, name=name)
