"""vLLM's tokenizer endpoints (/tokenizer_info, /tokenize, /detokenize): clients count tokens without a copy of
the tokenizer, and lm-evaluation-harness's `local-completions` finds the tokenizer on the server by itself."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fronde.data.chat import CHAT_TEMPLATE, render_chat
from fronde.serve.protocol import DetokenizeRequest, TokenizeRequest, error_body

# transformers' `{% generation %}` tag (it marks assistant tokens for training masks) is unknown to plain Jinja,
# which clients render with: an `if true` block with the same whitespace control renders the same text.
PORTABLE_TEMPLATE = re.sub(r"\{%(-?)\s*endgeneration\s*(-?)%\}", r"{%\1 endif \2%}",
                           re.sub(r"\{%(-?)\s*generation\s*(-?)%\}", r"{%\1 if true \2%}", CHAT_TEMPLATE))


def tokenizer_router(server: Any) -> APIRouter:
    """`server` is fronde.serve.app.Server (its tokenizer, engine and served name)."""
    router = APIRouter()

    def refused() -> JSONResponse | None:
        if not server.ready:
            return JSONResponse(error_body("the model is still loading", kind="server_error"), status_code=503)
        return None

    def bad(message: str, param: str) -> JSONResponse:
        return JSONResponse(error_body(message, param=param), status_code=400)

    @router.get("/tokenizer_info")
    async def tokenizer_info():
        if (r := refused()) is not None:
            return r
        tok = server.tok
        name = tok.hf.id_to_token
        return {"tokenizer_class": "fronde", "bos_token": name(tok.special.bos), "eos_token": name(tok.special.eos),
                "pad_token": name(tok.special.pad), "chat_template": PORTABLE_TEMPLATE,
                "model_max_length": server.engine.engine.max_model_len, "vocab_size": tok.vocab_size}

    @router.post("/tokenize")
    async def tokenize(req: TokenizeRequest):
        if (r := refused()) is not None:
            return r
        tok = server.tok
        if (req.prompt is None) == (req.messages is None):
            return bad("give either prompt or messages", "prompt")
        if req.messages is not None:
            try:
                ids, _ = render_chat(tok, [m.model_dump(exclude_none=True) for m in req.messages],
                                     add_generation_prompt=req.add_generation_prompt)
            except (ValueError, KeyError) as e:
                return bad(f"messages: {e}", "messages")
        else:
            ids = tok.encode(req.prompt, bos=req.add_special_tokens)
        return {"tokens": ids, "count": len(ids), "max_model_len": server.engine.engine.max_model_len}

    @router.post("/detokenize")
    async def detokenize(req: DetokenizeRequest):
        if (r := refused()) is not None:
            return r
        try:
            server.engine.engine.check_prompt(req.tokens or [0])
        except ValueError as e:
            return bad(str(e).replace("prompt token", "token"), "tokens")
        return {"prompt": server.tok.decode(req.tokens)}

    return router
