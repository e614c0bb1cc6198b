"""The static-shape decode step CUDA graphs replay (fronde.infer.graphs), checked eagerly on the CPU: padded rows,
padded block tables and the on-device slot arithmetic must give the paged engine's own results."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.graphs import bucket
from fronde.infer.sampling import SamplingParams
from tests.model.helpers import RecordOps, tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(eos_token_id=None)


def _prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, 4096, (n,), generator=g).tolist() for n in lengths]


def _run(model, prompts, params, **kw):
    engine = Engine(model, **kw)
    reqs = engine.generate(prompts, params)
    return engine, [(r.output_ids, r.logprobs) for r in reqs]


def test_bucket():
    assert [bucket(n, 48) for n in (1, 2, 3, 5, 16, 17, 33, 48)] == [1, 2, 4, 8, 16, 32, 48, 48]


def test_static_decode_step_equals_the_paged_step(model):
    # 5 rows (padded to 8), prompts of different lengths crossing 4-token blocks, a context that is not a power of
    # two of blocks (cap 11 blocks), and rows finishing at different steps so the batch shrinks between buckets
    prompts = _prompts([3, 17, 9, 1, 30])
    params = [SamplingParams(max_tokens=n, temperature=0) for n in (14, 5, 12, 9, 11)]
    kw = dict(max_batch=5, max_model_len=42, block_size=4, prefill_chunk=64)
    _, eager = _run(model, prompts, params, cuda_graphs=False, **kw)
    engine, static = _run(model, prompts, params, cuda_graphs=True, **kw)
    for (ids_e, lp_e), (ids_s, lp_s) in zip(eager, static):
        assert ids_s == ids_e
        assert lp_s == pytest.approx(lp_e, abs=1e-4)
    assert engine.graphs is not None and engine.graphs.active
    rows = {r for r, _ in engine.graphs.entries}
    widths = {w for _, w in engine.graphs.entries}
    assert 5 in rows and rows <= {1, 2, 4, 5}  # 3 rows run padded to 4; 5 is the cap, not 8
    assert 8 in widths and 11 in widths  # the 30-token prompt + 11 new needs 11 blocks: the cap, not 16
    assert engine.cache.usage() == 0.0


def test_static_decode_samples_like_the_paged_step(model):
    # GRPO's shape: one prompt's samples share its prefilled blocks (fork) and draw with their own seeds
    prompt = _prompts([13], seed=2)[0]
    params = [SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=7 + i) for i in range(6)]
    eager_engine = Engine(model, max_batch=6, block_size=4, cuda_graphs=False)
    eager_engine.add_group(prompt, params)
    static_engine = Engine(model, max_batch=6, block_size=4, cuda_graphs=True)
    static_engine.add_group(prompt, params)
    outs = []
    for engine in (eager_engine, static_engine):
        reqs = list(engine.waiting[0])
        while engine.has_work():
            engine.step()
        outs.append([r.output_ids for r in reqs])
    assert outs[0] == outs[1]


def test_graphs_are_off_on_cpu_by_default(model):
    assert Engine(model).graphs is None


def test_the_static_step_has_nothing_a_graph_cannot_hold(model):
    # On a GPU these ops wait for the device or copy from the host: inside a capture they fail it (and graphs would
    # fall back to eager). The op sequence is device-independent, so the CPU shows it; the experts take the grouped
    # GEMM path here, as they do in bf16 on a GPU.
    engine = Engine(model, max_batch=4, block_size=4, cuda_graphs=True)
    engine.generate(_prompts([6, 9]), SamplingParams(max_tokens=2, temperature=0))  # a decode step builds a view
    entry = next(iter(engine.graphs.entries.values()))
    with RecordOps() as ops:
        engine.graphs._run(entry.view)
    assert ops.counts["aten._grouped_mm"] or ops.counts["aten.grouped_mm"]
    assert not ops.host_syncs()


def test_a_replay_that_differs_from_eager_turns_graphs_off(model):
    # what a GPU would do with a graph that captured the wrong thing: the first replay is checked against the eager
    # step, the engine warns, drops its graphs and decodes eagerly, and the output is still right
    engine = Engine(model, max_batch=2, block_size=4, cuda_graphs=True)
    graphs, build = engine.graphs, engine.graphs._build

    class WrongGraph:
        def __init__(self, out):
            self.out = out

        def replay(self):
            self.out.fill_(0.5)

    def build_wrong(rows, width):
        entry = build(rows, width)
        entry.logits = torch.zeros(rows, model.config.vocab_size)
        entry.graph = WrongGraph(entry.logits)
        return entry

    graphs._build = build_wrong
    prompts = _prompts([5, 11], seed=6)
    params = SamplingParams(max_tokens=7, temperature=0)
    with pytest.warns(RuntimeWarning, match="away from the eager forward"):
        out = engine.generate(prompts, params)
    assert not graphs.active and not graphs.entries
    eager = Engine(model, max_batch=2, block_size=4, cuda_graphs=False).generate(prompts, params)
    assert [r.output_ids for r in out] == [r.output_ids for r in eager]
