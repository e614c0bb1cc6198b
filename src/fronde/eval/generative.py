"""Generative tasks scored by their verifiers: accuracy, and pass@k over n samples per problem.

Greedy by default (temperature 0, one sample). With `samples` n > 1 (temperature > 0), every problem is sampled n
times and pass@k is the unbiased estimator (fronde.eval.passk) for each requested k <= n; `accuracy` is always the
mean reward over every sample (pass@1's unbiased estimate). A sample is correct when its reward is 1.0.

Request order is fixed (problem-major, then sample) and request i samples with its own seed (seed x 1,000,003 + i),
so the same settings give the same numbers, however the requests are batched or shared out across processes
(fronde.eval.shards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from fronde.data.errors import DataError
from fronde.data.progress import NullReporter, Reporter
from fronde.eval import shards
from fronde.eval.errors import EvalError
from fronde.eval.models import EvalModel, Speed, ToolReply
from fronde.eval.partial import PartialReplies
from fronde.eval.passk import mean_pass_at_k
from fronde.eval.prompts import conversation, draw_shots, resolve_system
from fronde.eval.results import dataset_hash
from fronde.tasks import Example, Task
from fronde.tools import Toolbox, load_tools
from fronde.train.distributed import DistContext

CHUNK = 64  # conversations per generate call: the progress bar's step (and the engine's batch horizon)


@dataclass
class GenerationSettings:
    """Every option that changes a generative score; stored verbatim in the result file."""

    n: int | None = 100  # first n problems of the split (None: all)
    samples: int = 1
    ks: list[int] = field(default_factory=lambda: [1])
    shots: int = 0
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 256
    system: str | None = None  # a prompt, or a preset name of fronde.eval.prompts
    save_outputs: bool = True
    tools: list[str] = field(default_factory=list)  # tools the model may call (fronde.tools specs); [] = none
    max_turns: int = 4  # model turns per problem when it has tools
    tools_root: str | None = None  # the folder search_files may read

    def toolbox(self) -> Toolbox | None:
        if not self.tools:
            return None
        try:
            return Toolbox(load_tools(self.tools, root=Path(self.tools_root) if self.tools_root else None))
        except DataError as e:
            raise EvalError(f"--tool: {e}") from None

    def label(self, task: str) -> str:
        """The result's task name: `arithmetic:1+calculator` with tools, so both runs sit side by side."""
        return task + "".join(f"+{t.rsplit(':', 1)[-1]}" for t in self.tools)

    def check(self) -> None:
        if self.samples < 1:
            raise EvalError(f"--samples must be >= 1 (got {self.samples})")
        if not 0 <= self.temperature <= 2:
            raise EvalError(f"--temperature must be between 0 and 2 (got {self.temperature})")
        if self.samples > 1 and self.temperature == 0:
            raise EvalError(f"--samples {self.samples} with --temperature 0 would repeat one greedy reply; "
                            "pass --temperature > 0 (e.g. 0.8) for pass@k")
        bad = [k for k in self.ks if not 1 <= k <= self.samples]
        if bad:
            raise EvalError(f"--k {','.join(map(str, bad))}: each k must be between 1 and --samples ({self.samples})")
        if self.shots < 0 or self.max_new_tokens < 1 or (self.n is not None and self.n < 0):
            raise EvalError("--shots and --n must be >= 0 and --max-new-tokens >= 1")
        if self.max_turns < 1:
            raise EvalError(f"--max-turns must be >= 1 (got {self.max_turns})")
        self.toolbox()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"system": resolve_system(self.system)}


@dataclass
class GenerativeScore:
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    speed: Speed | None
    examples: list[dict[str, Any]]


def tool_use_metrics(replies: list[ToolReply]) -> dict[str, float]:
    """Per reply: tool calls, calls that failed, and the share that ran out of turns while still calling."""
    n = len(replies)
    return {"tool_calls_per_problem": sum(r.tool_calls for r in replies) / n,
            "tool_errors_per_problem": sum(r.tool_errors for r in replies) / n,
            "used_tools_percent": 100 * sum(r.tool_calls > 0 for r in replies) / n,
            "max_turns_percent": 100 * sum(r.stop == "max_turns" for r in replies) / n}


def evaluate_generative(model: EvalModel, task: Task, settings: GenerationSettings,
                        examples: list[Example] | None = None, progress: Reporter | None = None,
                        title: str | None = None, ctx: DistContext | None = None,
                        open_cache: Callable[[list[Example], list[Example]], PartialReplies] | None = None,
                        ) -> GenerativeScore:
    """Score `model` on `examples` (default: the first n of the task's test split); under torchrun (`ctx`) each
    process generates its share (fronde.eval.shards) and every process returns the whole score. `open_cache(examples,
    shots)` gives the replies an earlier, stopped run of the same evaluation kept (fronde.eval.partial)."""
    settings.check()
    progress = progress or NullReporter()
    exs = examples if examples is not None else task.test(settings.n)
    if not exs:
        raise EvalError(f"{task.name}: the test split is empty. A JSONL task evaluates its rows marked \"split\": "
                        "\"test\"; a row without a split is held out for testing with probability 0.1 (by a hash of "
                        "its id), and none of these was. For a file that is only for evaluation, add "
                        "\"split\": \"test\" to every row")
    shots = draw_shots(task, settings.shots, settings.seed)
    system = resolve_system(settings.system)
    native = model.info.native_reasoning
    convs = [conversation(task, ex, system, shots, native) for ex in exs for _ in range(settings.samples)]
    toolbox = settings.toolbox()
    if toolbox is not None and not hasattr(model, "generate_with_tools"):
        raise EvalError(f"--tool: {model.name} is a {model.info.kind} model; evaluation with tools runs fronde models "
                        "and OpenAI-compatible servers (serve it with vLLM, llama-server or `fronde serve` and pass "
                        "the URL)")
    mine = shards.span(len(convs), ctx)
    cache = open_cache(exs, shots) if open_cache is not None else None
    resumed = f" (resumed: {cache.cached} replies kept)" if cache is not None and cache.cached else ""
    progress.start(shards.title(title or task.name, ctx) + resumed, total=len(mine))
    replies: list[str] = []
    tool_replies: list[ToolReply] = []
    speeds: list[Speed] = []
    for start in range(mine.start, mine.stop, CHUNK):
        chunk = convs[start:min(start + CHUNK, mine.stop)]
        kept = cache.get(start, len(chunk)) if cache is not None else None
        if kept is not None:
            texts, got, speed = kept
        else:
            seed = settings.seed * 1_000_003 + start  # request i samples with seed + i: its index in the whole list
            if toolbox is None:
                texts, got = model.generate(chunk, settings.max_new_tokens, settings.temperature, seed=seed), None
            else:
                got = model.generate_with_tools(chunk, toolbox, settings.max_new_tokens, settings.temperature,
                                                seed=seed, max_turns=settings.max_turns)
                texts = [r.text for r in got]
            speed = model.last_speed
            if cache is not None:
                cache.add(start, texts, got, speed)
        replies.extend(texts)
        tool_replies.extend(got or [])
        if speed is not None:
            speeds.append(speed)
        progress.advance(len(chunk))
    progress.done()
    n = settings.samples
    # each process verifies its own replies (HumanEval's are sandboxed test runs), then the shares are gathered
    rewards = [task.verify(r, exs[i // n]) for r, i in zip(replies, mine)]
    if shards.shared(ctx):
        replies, tool_replies, speeds, rewards = (shards.gather(x, ctx)
                                                  for x in (replies, tool_replies, speeds, rewards))
    # the devices' seconds add up: tokens/s stays a per-device figure, comparable with one-device runs
    speed = reduce(Speed.merge, speeds) if speeds else None

    per_example = [rewards[i * n:(i + 1) * n] for i in range(len(exs))]
    correct = [sum(r >= 1.0 for r in rs) for rs in per_example]
    metrics: dict[str, Any] = {"accuracy": 100 * sum(rewards) / len(rewards)}
    metrics |= {f"pass@{k}": 100 * mean_pass_at_k(correct, n, k) for k in sorted(set(settings.ks))}
    if tool_replies:
        metrics |= tool_use_metrics(tool_replies)
    rows = [{"id": ex.id, "rewards": rs, **({"outputs": replies[i * n:(i + 1) * n]} if settings.save_outputs else {}),
             **({"tools": [{k: v for k, v in asdict(r).items() if k != "text"}
                        for r in tool_replies[i * n:(i + 1) * n]]}
                if tool_replies and settings.save_outputs else {})}
            for i, (ex, rs) in enumerate(zip(exs, per_example))]
    dataset = {"split": "test" if examples is None else "given", "examples": len(exs),
               "hash": dataset_hash([ex.id, ex.prompt, ex.answer] for ex in exs)}
    if shots:
        dataset["shots_hash"] = dataset_hash([ex.id, ex.prompt, ex.answer] for ex in shots)
    return GenerativeScore(metrics, dataset, speed, rows)
