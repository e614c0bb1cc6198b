"""CUDA graphs for the decode step on a real GPU: captured, verified against the eager step, and replaying exactly
what the same static-shape step computes eagerly, over a whole continuously batched generation."""

from __future__ import annotations

import warnings

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from tests.model.helpers import tiny_model

pytestmark = pytest.mark.gpu


def _generate(model, capture: bool):
    engine = Engine(model, max_batch=6, max_model_len=80, block_size=16)
    assert engine.graphs is not None  # on by default for bf16 on a GPU
    engine.graphs.capture = capture
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(2, 4096, (n,), generator=g).tolist() for n in (5, 40, 17, 3, 22)]
    params = [SamplingParams(max_tokens=n, temperature=0) for n in (30, 12, 25, 33, 8)]
    params[2] = SamplingParams(max_tokens=25, temperature=1.0, seed=3)
    reqs = engine.generate(prompts, params)
    return engine, [r.output_ids for r in reqs], [r.logprobs for r in reqs]


def test_captured_decode_replays_the_static_step_exactly():
    model = tiny_model(eos_token_id=None).cuda().to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a capture that fell back to eager fails the test
        engine, ids, logprobs = _generate(model, capture=True)
    assert engine.graphs.active, engine.graphs.failed
    captured = [e for e in engine.graphs.entries.values() if e.graph is not None]
    assert len(captured) >= 3 and all(e.verified for e in captured)
    _, eager_ids, eager_logprobs = _generate(model, capture=False)
    assert ids == eager_ids
    assert logprobs == eager_logprobs


def test_fp32_on_gpu_decodes_eagerly():
    model = tiny_model(eos_token_id=None).cuda()
    assert Engine(model).graphs is None
