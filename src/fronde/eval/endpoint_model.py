"""An OpenAI-compatible server behind the evaluation interface (fronde serve, vLLM, SGLang, Ollama, a hosted API).

Generation is /v1/chat/completions (the server applies its chat template), `batch_size` requests in flight at once,
request i seeded with seed + i. Log-likelihoods need the prompt's own token logprobs: /v1/completions with
`echo: true, logprobs: 1, max_tokens: 1`, as lm-evaluation-harness asks vLLM (fronde serve and vLLM return them).
Servers that do not (llama.cpp's server, hosted APIs) get a clear error for multiple choice and bits per byte, while
generative tasks still work. A text scored whole (bits per byte) is tokenized by the server's /tokenize (vLLM's
endpoint, fronde serve's too) and scored in windows of the served context, as a local model is: a document longer
than the server's context is not refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fronde.eval.errors import EvalError
from fronde.eval.models import ModelDescription, Speed, ToolReply
from fronde.eval.replies import openai_reply
from fronde.tools import Toolbox
from fronde.train.https_client import client_options, tls_hint

T = TypeVar("T")

NO_ECHO = ("does not return the prompt's token logprobs (/v1/completions with echo=true and logprobs); multiple "
           "choice and bits-per-byte need them. Evaluate the model locally (a model dir or .gguf), or serve it with "
           "a server that supports echo (e.g. vLLM); generative tasks work with this endpoint as it is")


class EndpointModel:
    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, name: str | None = None,
                 concurrency: int = 8, timeout_s: float = 600.0) -> None:
        try:
            import openai
        except ImportError:
            raise EvalError("--endpoint needs the openai package: pip install openai") from None
        self._openai = openai
        base = url.rstrip("/")
        self.url = base if base.endswith("/v1") else base + "/v1"
        self.client = openai.OpenAI(base_url=self.url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=2,
                                    **client_options(openai))
        self.model = model
        if model is None:
            self.model = self._served_model()
        self.concurrency = max(1, concurrency)
        self.name = name or self.model
        self.info = ModelDescription(name=self.name, kind="endpoint", spec=f"{self.url} {self.model}")
        self.last_speed: Speed | None = None
        self._has_tokenize = True  # until the server says otherwise

    def _served_model(self) -> str:
        """The model id when the server serves exactly one (fronde serve, vLLM, SGLang, llama.cpp's server)."""
        ids = [m.id for m in self._call(lambda model: self.client.models.list()).data]
        if len(ids) != 1:
            raise EvalError(f"{self.url} serves {len(ids)} models ({', '.join(ids) or 'none'}); pass --model NAME")
        return ids[0]

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        """One API call, with OpenAI errors turned into messages that say what to fix."""
        o = self._openai
        try:
            return fn(model=self.model, **kwargs)
        except o.AuthenticationError:
            raise EvalError(f"{self.url}: the API key was refused; pass --api-key KEY") from None
        except o.NotFoundError as e:
            raise EvalError(f"{self.url}: model {self.model!r} not found ({_message(e)}); GET {self.url}/models "
                            "lists what the server serves") from None
        except o.APIConnectionError as e:
            if (hint := tls_hint(e, self.url)) is not None:
                raise EvalError(hint) from None
            raise EvalError(f"cannot reach {self.url} ({e}); is the server running?") from None
        except o.APIStatusError as e:
            raise EvalError(f"{self.url}: HTTP {e.status_code}: {_message(e)}") from None

    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        def one(i: int) -> tuple[str, int]:
            out = self._call(self.client.chat.completions.create, messages=conversations[i],
                             max_tokens=max_new_tokens, temperature=temperature, seed=seed + i)
            tokens = out.usage.completion_tokens if out.usage is not None else 0
            return openai_reply(out.choices[0].message), tokens

        return self._in_flight(one, len(conversations))

    def generate_with_tools(self, conversations: list[list[dict[str, Any]]], toolbox: Toolbox, max_new_tokens: int,
                            temperature: float = 0.0, seed: int = 0, max_turns: int = 4) -> list[ToolReply]:
        """Multi-turn episodes through the server's tool-calling protocol: the tools run here between turns (as
        `fronde agent URL` runs them), the final turn is the reply. Turn t of conversation i is seeded with
        seed + i + 1_000_003 * t."""
        lock = threading.Lock()  # tools not marked concurrent run one at a time, as fronde.tools.episode runs them

        def run(name: str, arguments: str) -> tuple[str, bool]:
            if toolbox.concurrent(name):
                res = toolbox.call(name, arguments)
            else:
                with lock:
                    res = toolbox.call(name, arguments)
            return res.content, res.ok

        def one(i: int) -> tuple[ToolReply, int]:
            messages, reply, tokens = list(conversations[i]), ToolReply(""), 0
            for turn in range(max_turns):
                out = self._call(self.client.chat.completions.create, messages=messages, tools=toolbox.schemas(),
                                 max_tokens=max_new_tokens, temperature=temperature, seed=seed + i + 1_000_003 * turn)
                tokens += out.usage.completion_tokens if out.usage is not None else 0
                choice = out.choices[0]
                calls = choice.message.tool_calls or []
                reply.text, reply.turns = openai_reply(choice.message), turn + 1
                if not calls or choice.finish_reason == "length":
                    reply.stop = "length" if choice.finish_reason == "length" else "answer"
                    return reply, tokens
                if turn == max_turns - 1:
                    reply.stop = "max_turns"
                    return reply, tokens
                messages.append(assistant_message(choice.message))
                for call in calls:
                    result, ok = run(call.function.name, call.function.arguments)
                    reply.tool_calls += 1
                    reply.tool_errors += not ok
                    reply.transcript.append({"name": call.function.name, "arguments": call.function.arguments,
                                             "result": result})
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            return reply, tokens

        return self._in_flight(one, len(conversations))

    def _in_flight(self, one: Callable[[int], tuple[T, int]], n: int) -> list[T]:
        """one(i) for i < n, `concurrency` requests in flight; last_speed from the generated tokens each counted."""
        start = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            results = list(pool.map(one, range(n)))
        self.last_speed = Speed(seconds=time.perf_counter() - start, requests=len(results),
                                generated_tokens=sum(t for _, t in results))
        return [r for r, _ in results]

    def _echo(self, prompt: str) -> dict[str, Any]:
        out = self._call(self.client.completions.create, prompt=prompt, max_tokens=1, temperature=0.0, echo=True,
                         logprobs=1)
        choice = out.choices[0]
        lp = choice.logprobs
        data = lp.model_dump() if lp is not None and hasattr(lp, "model_dump") else (lp or {})
        if not (choice.text or "").startswith(prompt) or not data.get("text_offset"):
            raise EvalError(f"{self.url} ({self.model}) {NO_ECHO}")
        return data

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, int, bool]:
        if not continuation:
            raise EvalError("loglikelihood: the continuation is empty")
        prompt = context + continuation
        return parse_echo(self._echo(prompt), len(context), len(prompt))

    def loglikelihood_rolling(self, text: str) -> tuple[float, int]:
        """Every token after the first (the start token where the server adds one), in windows of the served
        context, each predicted once (fronde.eval.likelihood.score_rolling's windows); the whole text in one echo
        where the server has no /tokenize."""
        tokenized = self._tokenize(text)
        if tokenized is None:
            total, n, _ = parse_echo(self._echo(text), 0, len(text))
            return total, n
        ids, context = tokenized
        window = context - 2  # predictions per request: its prompt and the one generated token fill the context
        if window < 1:
            raise EvalError(f"{self.url} ({self.model}) serves a context of {context} tokens: too short to score text")
        total, count = 0.0, 0
        for start in range(0, len(ids) - 1, window):
            piece = ids[start:start + window + 1]
            values = self._echo_ids(piece)
            total, count = total + sum(values), count + len(values)
        return total, count

    def _tokenize(self, text: str) -> tuple[list[int], int] | None:
        """(token ids as /v1/completions would tokenize the prompt, the served context) from /tokenize, or None where
        the server has no such endpoint (llama.cpp's takes other fields; OpenAI's API has none)."""
        if not self._has_tokenize:
            return None
        root = self.url.removesuffix("/v1")

        def post(model: str | None) -> Any:
            try:
                return self.client.post(f"{root}/tokenize", cast_to=object,
                                        body={"model": model, "prompt": text, "add_special_tokens": True})
            except self._openai.APIStatusError:
                return None

        out = self._call(post)
        if not (isinstance(out, dict) and isinstance(out.get("tokens"), list) and out.get("max_model_len")):
            self._has_tokenize = False
            return None
        return [int(t) for t in out["tokens"]], int(out["max_model_len"])

    def _echo_ids(self, ids: list[int]) -> list[float]:
        """log p of ids[1:] each given the ids before it: the echoed prompt's logprobs, the generated token left out."""
        out = self._call(self.client.completions.create, prompt=ids, max_tokens=1, temperature=0.0, echo=True,
                         logprobs=1)
        lp = out.choices[0].logprobs
        values = (lp.token_logprobs if lp is not None else None) or []
        if len(values) < len(ids) or any(v is None for v in values[1:len(ids)]):
            raise EvalError(f"{self.url} ({self.model}) {NO_ECHO}")
        return [float(v) for v in values[1:len(ids)]]


def parse_echo(logprobs: dict[str, Any], start_char: int, end_char: int) -> tuple[float, int, bool]:
    """(sum, count, all greedy) over the echoed prompt tokens whose text starts in [start_char, end_char).

    `logprobs` is a /v1/completions choice's `logprobs` (tokens, token_logprobs, text_offset, top_logprobs); the
    token generated after the prompt starts at end_char and is excluded."""
    offsets = logprobs.get("text_offset") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(values)
    total, count, greedy = 0.0, 0, True
    for offset, value, top in zip(offsets, values, tops):
        if not start_char <= offset < end_char or value is None:
            continue
        total += value
        count += 1
        if top:
            greedy = greedy and value >= max(top.values()) - 1e-6
    if count == 0:
        raise EvalError(f"the server's echoed logprobs hold no token in characters [{start_char}, {end_char})")
    return total, count, greedy


def assistant_message(message: Any) -> dict[str, Any]:
    """An assistant reply as the next request sends it back: content, the reasoning where the server gave one
    (`reasoning_content`, or vLLM's `reasoning`), and the tool calls with their ids."""
    extra = getattr(message, "model_extra", None) or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if reasoning := extra.get("reasoning_content") or extra.get("reasoning"):
        out["reasoning_content"] = reasoning
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.function.name, "arguments": c.function.arguments}}
                             for c in message.tool_calls]
    return out


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(e)
