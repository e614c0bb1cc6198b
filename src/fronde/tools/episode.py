"""Multi-turn tool use at the token level: the model writes a turn, the environment runs the calls it made and
appends their results, and generation goes on until a turn without calls (the final answer), the turn limit or the
context limit.

GRPO trains on these episodes and evaluation scores them, so two things are exact here:
- the ids are the ones the model sampled plus the ones the chat template would render for the tool results
  (`<|tool_result|>text<|/tool_result|>` per call, then `<|assistant|>`), so an episode is token for token the
  conversation `render_chat` writes for the same messages;
- `mask` is 1 on what the model wrote and 0 on what the environment inserted, so a loss never trains the model to
  predict a tool's output.

Generation is a callable over a batch of contexts, so this bottom layer runs on fronde's engine (evaluation), on
GRPO's rollouts or on a scripted sampler in tests, and every episode of a batch advances one turn per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from fronde.data.tokenizer import Tokenizer
from fronde.tools.base import Toolbox
from fronde.tools.calls import ParsedCall, parse_calls

# contexts, max new tokens, seed -> per context (generated ids including the stop token, ended on a stop token)
Generate = Callable[[list[list[int]], int, int], list[tuple[list[int], bool]]]
Stop = Literal["", "answer", "length", "max_turns"]


@dataclass
class Episode:
    prompt: list[int]
    ids: list[int] = field(default_factory=list)  # everything after the prompt: model turns and tool results
    mask: list[int] = field(default_factory=list)  # 1: written by the model, 0: inserted by the environment
    last_turn: list[int] = field(default_factory=list)  # the model's final turn (its stop token included)
    stop: Stop = ""  # answer: a turn without calls; length: a turn or the context ran out; max_turns: still calling
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0  # malformed calls, unknown tools, bad arguments, failures and timeouts
    transcript: list[dict[str, str]] = field(default_factory=list)  # {name, arguments, result} per call

    @property
    def finished(self) -> bool:
        """Ended with an answer (what GRPO's truncation handling and the format reward care about)."""
        return self.stop == "answer"


def result_ids(tok: Tokenizer, results: Sequence[str]) -> list[int]:
    """The ids the chat template renders for tool messages followed by the next assistant turn's opening."""
    sp = tok.special
    ids: list[int] = []
    for text in results:
        ids += [sp.tool_result, *tok.encode(text), sp.tool_result_end]
    return ids + [sp.assistant]


def run_calls(tok: Tokenizer, turns: list[tuple[Toolbox, list[int], Episode]]) -> list[list[str]]:
    """Run every call of each (toolbox, generated turn, episode); each call gives one result text, an error text
    where it cannot run. Calls to tools that wait on a subprocess or on files (the sandboxed `python`,
    `search_files`) run side by side on threads, as many as cores: a GRPO step's episodes each calling `python`
    (~50 ms a call) would otherwise wait for one another. The rest run one by one; results come back in order."""
    parsed = [(box, parse_calls(tok, ids)) for box, ids, _ in turns]

    def run(box: Toolbox, call: ParsedCall) -> tuple[str, bool]:
        if call.error is not None:
            return f"error: {call.error}", False
        res = box.call(call.name or "", call.arguments if call.arguments is not None else {})
        return res.content, res.ok

    side = [(box, call) for box, calls in parsed for call in calls if call.error is None and box.concurrent(call.name)]
    done: dict[int, tuple[str, bool]] = {}
    if len(side) > 1:
        with ThreadPoolExecutor(min(len(side), os.cpu_count() or 1)) as pool:
            futures = [pool.submit(run, box, call) for box, call in side]
        done = {id(call): f.result() for (_, call), f in zip(side, futures)}
    out = []
    for (box, calls), (_, _, ep) in zip(parsed, turns):
        texts = []
        for call in calls:
            text, ok = done[id(call)] if id(call) in done else run(box, call)
            ep.tool_calls += 1
            ep.tool_errors += not ok
            ep.transcript.append({"name": call.name or "", "arguments": call.arguments_json, "result": text})
            texts.append(text)
        out.append(texts)
    return out


def run_episodes(generate: Generate, tok: Tokenizer, prompts: list[list[int]], toolboxes: Toolbox | list[Toolbox],
                 max_turns: int, max_new_tokens: int, max_len: int, seed: int = 0) -> list[Episode]:
    """One episode per prompt, all advanced together a turn at a time. `toolboxes`: one for all prompts or one each
    (a prompt whose toolbox is empty still gets an error result if the model calls a tool anyway)."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    boxes = toolboxes if isinstance(toolboxes, list) else [toolboxes] * len(prompts)
    eps = [Episode(list(p)) for p in prompts]
    active = list(range(len(eps)))
    for turn in range(max_turns):
        room = [i for i in active if len(eps[i].prompt) + len(eps[i].ids) + max_new_tokens <= max_len]
        for i in set(active) - set(room):
            eps[i].stop = "length"  # the context cannot hold another turn
        if not room:
            break
        outs = generate([eps[i].prompt + eps[i].ids for i in room], max_new_tokens, seed * 1_000_003 + turn)
        ended_turns = []
        for i, (ids, ended) in zip(room, outs):
            ep = eps[i]
            ep.ids += ids
            ep.mask += [1] * len(ids)
            ep.last_turn, ep.turns = list(ids), ep.turns + 1
            if not ended:
                ep.stop = "length"
                continue
            ended_turns.append(i)
        active = []
        for i, results in zip(ended_turns, run_calls(tok, [(boxes[i], eps[i].last_turn, eps[i]) for i in ended_turns])):
            ep = eps[i]
            if not results:
                ep.stop = "answer"
            elif turn == max_turns - 1:
                ep.stop = "max_turns"
            else:
                inserted = result_ids(tok, results)
                ep.ids += inserted
                ep.mask += [0] * len(inserted)
                active.append(i)
    return eps


def final_text(tok: Tokenizer, ep: Episode, stop_ids: Sequence[int]) -> str:
    """The final turn as the verifiers read it: special tokens spelled out, the stop token left off."""
    ids = ep.last_turn[:-1] if ep.last_turn and ep.last_turn[-1] in stop_ids else ep.last_turn
    return tok.decode(ids)
