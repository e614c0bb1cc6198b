"""A distillation teacher behind an OpenAI-compatible endpoint: the bigger model a team already serves.

The teacher worth distilling from is often too big for the machine that trains the student (a 70B model on the
team's vLLM or SGLang cluster, a llama.cpp server, another `fronde serve`). Sequence-level distillation only needs
its answers, so `distill.teacher = "http://host:8000/v1"` sends each prompt as a chat completion, `concurrency`
requests at a time (a server batches them), and the answers go through the same cache, verifier and SFT as a local
teacher's. The URL is the team's own server: nothing else is contacted. Logit distillation needs the teacher's
logits over the student's vocabulary, which an endpoint does not give: it is refused with a message.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fronde.train.https_client import client_options, tls_hint
from fronde.train.teacher import TeacherError


def is_endpoint(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


class EndpointTeacher:
    """`generate` as fronde.train.seq_distill.TextGenerator wants it, through the official `openai` client."""

    def __init__(self, url: str, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 600.0) -> None:
        import openai

        self.spec, self.concurrency = url, concurrency
        self.client = openai.OpenAI(base_url=url.rstrip("/"), api_key=os.environ.get(api_key_env) or "none",
                                    timeout=timeout_s, max_retries=3, **client_options(openai))
        self.model = model or self._only_model()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.APIConnectionError as e:
            if (hint := tls_hint(e, self.spec)) is not None:
                raise TeacherError(f"distill.teacher={hint}") from None
            raise TeacherError(f"distill.teacher={self.spec}: cannot reach the server ({e}); start it, or fix the "
                               "URL (it ends in /v1)") from None
        except openai.APIStatusError as e:
            raise TeacherError(f"distill.teacher={self.spec}: the server answered {e.status_code}: "
                               f"{e.message}") from None

    def _only_model(self) -> str:
        models = [m.id for m in self._call(self.client.models.list).data]
        if len(models) != 1:
            raise TeacherError(f"distill.teacher={self.spec} serves {len(models)} models ({', '.join(models)}); "
                               "name one with distill.teacher_model")
        return models[0]

    def vocab(self) -> dict[str, int]:
        raise TeacherError(f"distill.mode=logit needs the teacher's logits; the endpoint {self.spec} gives text. "
                           "Use mode='sequence' for it.")

    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0) -> list[str]:
        """One answer per conversation (see `answer_text`), `concurrency` requests in flight. Each request carries its
        own seed (`seed` + its index), for servers that honour it."""
        def one(i: int) -> str:
            reply = self._call(self.client.chat.completions.create, model=self.model, messages=conversations[i],
                               max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                               seed=(seed + i) % 2**31)
            return answer_text(reply.choices[0].message)

        with ThreadPoolExecutor(min(self.concurrency, max(1, len(conversations)))) as pool:
            return list(pool.map(one, range(len(conversations))))


def answer_text(message: Any) -> str:
    """A reply as one text: a reasoning model's trace (vLLM and SGLang with a reasoning parser return it apart, as
    `reasoning_content`, or `reasoning` in newer versions) goes back in front as `<think>...</think>`, the layout
    the same model writes without a parser. The trace is what R1-style distillation teaches, so it is kept: the
    verifier reads past it, and the SFT export makes it the assistant's `reasoning_content`."""
    extra = getattr(message, "model_extra", None) or {}
    reasoning = getattr(message, "reasoning_content", None) or extra.get("reasoning_content") or extra.get("reasoning")
    content = message.content or ""
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content}" if isinstance(reasoning, str) and reasoning.strip() \
        else content
