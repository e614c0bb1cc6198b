"""Does vLLM read a fronde model's replies? Runs vLLM's own response-template parser (what `vllm serve DIR
--reasoning-parser hf --tool-call-parser hf --enable-auto-tool-choice` uses) on every assistant turn of the chat
tests, whole and token by token as its streaming server does, and compares with the message each turn came from.

Not a test: vLLM is a multi-GB install that pins its own torch. Its parser is plain Python, so a CPU machine can
check it in a side environment that borrows this one's packages (the 239 MB wheel, no CUDA stack):

    python3 -m venv --system-site-packages /tmp/vv
    /tmp/vv/bin/pip install --no-deps vllm==0.34.0
    /tmp/vv/bin/pip install --no-deps xgrammar==0.2.9 apache-tvm-ffi==0.1.11 pyzmq aiohttp multidict yarl propcache \\
        aiohappyeyeballs aiosignal frozenlist pybase64 cachetools openai-harmony cbor2 msgspec uvloop \\
        partial-json-parser
    /tmp/vv/bin/python scripts/vllm_parser_check.py [MODEL_OR_TOKENIZER_DIR]

Without a dir it trains the chat tests' small tokenizer. Prints one line a turn and exits 1 if any differs.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest  # noqa: E402
from vllm.parser.response_template import ResponseTemplateParser, validate_tokenizer_response_template  # noqa: E402
from vllm.tokenizers import get_tokenizer  # noqa: E402

from fronde.data.chat import render_chat  # noqa: E402
from fronde.data.tokenizer import Tokenizer, train_tokenizer  # noqa: E402
from tests.data.test_tokenizer_chat import CHATS, TOOLS  # noqa: E402


def small_tokenizer_dir() -> Path:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:40]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files] + ["Émile Littré écrivit."] * 20
    d = Path(tempfile.mkdtemp(prefix="fronde-tok-"))
    train_tokenizer(iter(texts), 1024).save(d)
    return d


def request(stream: bool) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], tools=TOOLS,
                                 tool_choice="auto", stream=stream)


def calls_of(calls: list) -> list[dict]:
    return [{"name": c["name"], "arguments": json.loads(c["arguments"] or "{}")} for c in calls]


def parse_whole(tok, prompt: list[int], out_ids: list[int], text: str) -> tuple:
    parser = ResponseTemplateParser(tok, TOOLS, enable_auto_tools=True)
    parser.set_prompt_token_ids(prompt)
    req = parser.adjust_request(request(False))  # sets skip_special_tokens=False, as the server does
    reasoning, content, calls = parser.parse(text, req, enable_auto_tools=True, model_output_token_ids=out_ids)
    return reasoning or "", content or "", calls_of([{"name": c.name, "arguments": c.arguments} for c in calls or []])


def parse_streamed(tok, prompt: list[int], out_ids: list[int]) -> tuple:
    """One token a step; text is released only once it is whole UTF-8, as vLLM's incremental detokenizer does."""
    parser = ResponseTemplateParser(tok, TOOLS, enable_auto_tools=True)
    req = parser.adjust_request(request(True))
    reasoning, content, calls, sent = "", "", {}, ""
    for k in range(len(out_ids)):
        last = k == len(out_ids) - 1
        text = tok.decode(out_ids[:k + 1], skip_special_tokens=False, spaces_between_special_tokens=False)
        if text.endswith("\ufffd") and not last:
            continue
        delta = parser.parse_delta(text[len(sent):], out_ids[k:k + 1], req, prompt_token_ids=prompt, finished=last)
        sent = text
        if delta is None:
            continue
        reasoning += delta.reasoning or ""
        content += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    return reasoning, content, calls_of([calls[i] for i in sorted(calls)])


def main() -> int:
    d = Path(sys.argv[1]) if len(sys.argv) > 1 else small_tokenizer_dir()
    tok = get_tokenizer(str(d))
    try:
        validate_tokenizer_response_template(tok, reasoning_parser="hf", tool_parser="hf")
    except TypeError as e:
        print(f"vLLM refuses {d}: {e}")
        return 1
    fronde_tok = Tokenizer.load(d)
    good = turns = 0
    for chat in CHATS:
        for i, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            prompt, _ = render_chat(fronde_tok, chat[:i], add_generation_prompt=True, tools=TOOLS)
            full, _ = render_chat(fronde_tok, chat[:i + 1], tools=TOOLS)
            out_ids = full[len(prompt):]
            text = tok.decode(out_ids, skip_special_tokens=False, spaces_between_special_tokens=False)
            want = (message.get("reasoning_content") or "", message.get("content") or "", [
                {"name": c["function"]["name"], "arguments": json.loads(a) if isinstance(
                    a := c["function"]["arguments"], str) else a} for c in message.get("tool_calls") or []])
            whole, streamed = parse_whole(tok, prompt, out_ids, text), parse_streamed(tok, prompt, out_ids)
            ok = whole == want == streamed
            good += ok
            turns += 1
            print("ok  " if ok else "DIFF", repr(text)[:100])
            if not ok:
                print(f"     want {want}\n     whole {whole}\n     streamed {streamed}")
    print(f"{good} of {turns} assistant turns parsed back by vLLM's response-template parser, whole and streamed")
    return 0 if good == turns else 1


if __name__ == "__main__":
    raise SystemExit(main())
