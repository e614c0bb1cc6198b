"""Do vLLM and SGLang read a fronde model's replies? Runs the runtime's own response-template parser (what `vllm serve
DIR --reasoning-parser hf --tool-call-parser hf --enable-auto-tool-choice`, or `python3 -m sglang.launch_server
--model-path DIR --reasoning-parser response_template --tool-call-parser response_template`, uses) on every assistant
turn of the chat tests and compares with the message each turn came from, whole and token by token, as each server's
chat completions do (vLLM: one parser; SGLang: its reasoning parser, then its tool-call parser on what is left).

Not a test: both are multi-GB installs that pin their own torch. Their parsers are plain Python, so a CPU machine
can check them in a side environment that borrows this one's packages (the wheel alone, no CUDA stack):

    python3 -m venv --system-site-packages /tmp/vv
    /tmp/vv/bin/pip install --no-deps vllm==0.34.0 einops
    /tmp/vv/bin/pip install --no-deps xgrammar==0.2.9 apache-tvm-ffi==0.1.11 pyzmq aiohttp multidict yarl propcache \\
        aiohappyeyeballs aiosignal frozenlist pybase64 cachetools openai-harmony cbor2 msgspec uvloop \\
        partial-json-parser
    /tmp/vv/bin/python scripts/runtime_parser_check.py vllm [MODEL_OR_TOKENIZER_DIR]

    python3 -m venv --system-site-packages /tmp/sv
    /tmp/sv/bin/pip install --no-deps sglang==0.5.23 pybase64 triton msgspec pyzmq aiohttp multidict yarl \\
        propcache aiohappyeyeballs aiosignal frozenlist partial-json-parser xgrammar==0.2.9 apache-tvm-ffi==0.1.11
    /tmp/sv/bin/python scripts/runtime_parser_check.py sglang [MODEL_OR_TOKENIZER_DIR]

Without a dir it trains the chat tests' small tokenizer. Prints one line a turn and exits 1 if any differs.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from fronde.data.chat import render_chat  # noqa: E402
from fronde.data.tokenizer import Tokenizer, train_tokenizer  # noqa: E402
from tests.data.test_tokenizer_chat import CHATS, TOOLS  # noqa: E402

Parsed = tuple[str, str, list[dict[str, Any]]]  # reasoning, content, tool calls {name, arguments}


def small_tokenizer_dir() -> Path:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:40]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files] + ["Émile Littré écrivit."] * 20
    d = Path(tempfile.mkdtemp(prefix="fronde-tok-"))
    train_tokenizer(iter(texts), 1024).save(d)
    return d


def calls_of(calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"name": name, "arguments": json.loads(arguments or "{}")} for name, arguments in calls]


def decode(tok: Any, ids: list[int]) -> str:
    """As both servers decode for a response-template parser: special tokens kept, no spaces around them."""
    return tok.decode(ids, skip_special_tokens=False, spaces_between_special_tokens=False)


def pieces(tok: Any, out_ids: list[int]) -> Iterator[tuple[int, bool, str]]:
    """(index, last, new text) one token a step; text is released once it is whole UTF-8, as the servers' incremental
    detokenizers do."""
    sent = ""
    for k in range(len(out_ids)):
        last = k == len(out_ids) - 1
        text = decode(tok, out_ids[:k + 1])
        if text.endswith("\ufffd") and not last:
            continue
        yield k, last, text[len(sent):]
        sent = text


def vllm_parsers(d: Path) -> dict[str, Callable[[list[int], list[int]], Parsed]]:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser.response_template import ResponseTemplateParser, validate_tokenizer_response_template
    from vllm.tokenizers import get_tokenizer

    tok = get_tokenizer(str(d))
    validate_tokenizer_response_template(tok, reasoning_parser="hf", tool_parser="hf")  # what startup checks

    def request(stream: bool) -> Any:
        return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], tools=TOOLS,
                                     tool_choice="auto", stream=stream)

    def whole(prompt: list[int], out_ids: list[int]) -> Parsed:
        parser = ResponseTemplateParser(tok, TOOLS, enable_auto_tools=True)
        parser.set_prompt_token_ids(prompt)
        req = parser.adjust_request(request(False))  # sets skip_special_tokens=False, as the server does
        reasoning, content, calls = parser.parse(decode(tok, out_ids), req, enable_auto_tools=True,
                                                 model_output_token_ids=out_ids)
        return reasoning or "", content or "", calls_of([(c.name, c.arguments) for c in calls or []])

    def streamed(prompt: list[int], out_ids: list[int]) -> Parsed:
        parser = ResponseTemplateParser(tok, TOOLS, enable_auto_tools=True)
        req = parser.adjust_request(request(True))
        reasoning, content, calls = "", "", {}
        for k, last, new in pieces(tok, out_ids):
            delta = parser.parse_delta(new, out_ids[k:k + 1], req, prompt_token_ids=prompt, finished=last)
            if delta is None:
                continue
            reasoning += delta.reasoning or ""
            content += delta.content or ""
            for call in delta.tool_calls or []:
                name, arguments = calls.get(call.index, ("", ""))
                if call.function is not None:
                    calls[call.index] = (name + (call.function.name or ""), arguments + (call.function.arguments or ""))
        return reasoning, content, calls_of([calls[i] for i in sorted(calls)])

    return {"whole": whole, "streamed": streamed}


def sglang_parsers(d: Path) -> dict[str, Callable[[list[int], list[int]], Parsed]]:
    from sglang.srt.entrypoints.openai.protocol import Tool
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    tools = [Tool.model_validate(t) for t in TOOLS]
    ReasoningParser(model_type="response_template", tokenizer=tok)  # what the server's first request checks

    def whole(prompt: list[int], out_ids: list[int]) -> Parsed:
        """serving_chat's non-streaming path: the reasoning parser, then the tool-call parser on what is left, both
        given the rendered prompt as their prefix."""
        prefix = decode(tok, prompt)
        reasoning_parser = ReasoningParser(model_type="response_template", stream_reasoning=False, tokenizer=tok,
                                           tool_call_parser_active=True, prefix=prefix)
        reasoning, text = reasoning_parser.parse_non_stream(decode(tok, out_ids))
        calls = []
        if not reasoning_parser.detector.answer_started:
            parser = FunctionCallParser(tools, "response_template", tokenizer=tok, tool_choice="auto", prefix=prefix)
            if parser.has_tool_call(text):
                text, items = parser.parse_non_stream(text)
                calls = [(item.name, item.parameters) for item in items]
        return reasoning or "", text or "", calls_of(calls)

    def streamed(prompt: list[int], out_ids: list[int]) -> Parsed:
        """serving_chat's streaming path, one token a step: each new piece of text goes through the reasoning
        parser, then, until an answer opens, the tool-call parser; both are flushed with the last token."""
        prefix = decode(tok, prompt)
        reasoning_parser = ReasoningParser("response_template", True, tokenizer=tok, tool_call_parser_active=True,
                                           prefix=prefix)
        tool_parser = FunctionCallParser(tools, "response_template", tokenizer=tok, prefix=prefix)
        reasoning, content, calls = "", "", {}
        for _, last, new in pieces(tok, out_ids):
            thought, delta = reasoning_parser.parse_stream_chunk(new)
            if last:
                end_thought, end_delta = reasoning_parser.parse_stream_end()
                thought, delta = (thought or "") + (end_thought or ""), (delta or "") + (end_delta or "")
            reasoning += thought or ""
            if reasoning_parser.detector.answer_started:
                content += delta or ""
                continue
            normal, items = tool_parser.parse_stream_chunk(delta or "")
            if last:
                end_normal, end_items = tool_parser.parse_stream_end()
                normal, items = (normal or "") + end_normal, list(items) + list(end_items)
            content += normal or ""
            for item in items:
                name, arguments = calls.get(item.tool_index, ("", ""))
                calls[item.tool_index] = (name + (item.name or ""), arguments + (item.parameters or ""))
        return reasoning, content, calls_of([calls[i] for i in sorted(calls)])

    return {"whole": whole, "streamed": streamed}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("vllm", "sglang"):
        print(__doc__)
        return 2
    d = Path(sys.argv[2]) if len(sys.argv) > 2 else small_tokenizer_dir()
    try:
        parsers = (vllm_parsers if sys.argv[1] == "vllm" else sglang_parsers)(d)
    except (TypeError, ValueError) as e:
        print(f"{sys.argv[1]} refuses {d}: {e}")
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
            want = (message.get("reasoning_content") or "", message.get("content") or "", calls_of([
                (c["function"]["name"], a if isinstance(a := c["function"]["arguments"], str) else json.dumps(a))
                for c in message.get("tool_calls") or []]))
            got = {how: parse(prompt, out_ids) for how, parse in parsers.items()}
            ok = all(result == want for result in got.values())
            good += ok
            turns += 1
            print("ok  " if ok else "DIFF", repr(fronde_tok.decode(out_ids, skip_special_tokens=False))[:100])
            if not ok:
                print(f"     want {want}" + "".join(f"\n     {how} {result}" for how, result in got.items()))
    print(f"{good} of {turns} assistant turns parsed back by {sys.argv[1]}'s response-template parser "
          f"({', '.join(parsers)})")
    return 0 if good == turns else 1


if __name__ == "__main__":
    raise SystemExit(main())
