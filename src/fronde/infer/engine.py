"""The inference engine: continuous batching over MLA's absorbed latent-cache path.

Each `step()` prefills at most `prefill_chunk` prompt tokens (several short prompts at once, a long one in pieces, so
a long prompt never stalls the running decodes for long) and runs one batched decode step for every sequence that
is generating; requests join and leave between steps. Memory is the
paged latent cache's fixed pool; a request is admitted only when the pool can hold its prompt plus max_tokens, so
no running sequence ever has to be evicted.

Prefix caching (on by default, as in vLLM): a prompt whose start is already in the cache, from an earlier request
or one still running, prefills only the rest (fronde.infer.prefix_index). Two prompts that start alike and arrive
together are not prefilled side by side: the second waits a step and reuses what the first computed. The cache is
forgotten when the model's weights change (GRPO samples with the policy it is training).

Speculative decoding by prompt lookup (`speculative_tokens` > 0, off by default): a generating sequence whose last
tokens occurred earlier is fed the tokens that followed them then (fronde.infer.lookup) with its last token, in
one forward; its tokens are then sampled position by position as plain decoding would sample them (same logits,
same draws of its generator) for as long as each equals the guess, and the cache of the guesses that were wrong is
dropped. The output is the one plain decoding gives, token for token; only the number of forwards changes.
With `speculative_method="mtp"` the guess is the model's own MTP layer's (DeepSeek-V3's multi-token prediction,
trained with the model): after every step the layer reads the last hidden state and the token just sampled and
guesses the one after, every step, in free text as well as in copies.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn

from fronde.infer.constrain import Constraint, GrammarError, Grammars
from fronde.infer.graphs import DecodeGraphs
from fronde.infer.lookup import PromptLookup
from fronde.infer.paged_cache import PagedLatentCache
from fronde.infer.sampling import SamplerState, SamplingParams, sample_batch
from fronde.model.model import CausalLM


@dataclass(eq=False)  # identity: the scheduler looks requests up in its lists
class Request:
    id: int
    prompt_ids: list[int]
    params: SamplingParams
    sampler: SamplerState
    prefilled: int = 0  # prompt tokens already in the cache
    finish_reason: str | None = None  # "stop" | "length" | "abort"
    followers: list[Request] = field(default_factory=list)  # other samples of the same prompt (n > 1)
    awaiting_fork: bool = False  # a follower: gets the leader's prefilled cache instead of its own prefill
    reserved_blocks: int = 0
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    constraint: Constraint | None = None  # JSON mode: the grammar's state for this sequence
    error: str | None = None  # why the sequence ended early, when it did
    cache_salt: str | None = None  # shares cached prefixes only with requests of the same salt
    cached_tokens: int = 0  # prompt tokens found in the prefix cache (not prefilled)
    matching: bool = True  # has not started its own prefill: may still take cached blocks
    lookup: PromptLookup | None = None  # the sequence's n-grams, for speculative decoding
    draft: list[int] = field(default_factory=list)  # the MTP layer's guess at the token after the last one

    @property
    def output_ids(self) -> list[int]:
        return self.sampler.output_ids


TopLogprobs = tuple[tuple[int, float], ...]  # (token, logprob) alternatives, likeliest first


@dataclass(frozen=True)
class TokenEvent:
    request_id: int
    token: int
    logprob: float
    finish_reason: str | None
    top_logprobs: tuple[tuple[int, float], ...] = ()


class Engine:
    def __init__(self, model: CausalLM, *, max_batch: int = 32, max_model_len: int | None = None,
                 n_blocks: int | None = None, block_size: int = 16, prefill_chunk: int | None = None,
                 grammars: Grammars | None = None, cuda_graphs: bool | None = None,
                 prefix_caching: bool = True, speculative_tokens: int = 0,
                 speculative_method: str = "ngram") -> None:
        """prefill_chunk: prompt tokens prefilled per step (None: 2048 on a GPU, 256 on a CPU, where a forward over
        more tokens would hold the running decodes back for longer; vLLM's max_num_batched_tokens plays this part).
        cuda_graphs: replay the decode step as CUDA graphs (fronde.infer.graphs). None: on for bf16 weights on
        a GPU (in fp32 the experts run a padded matmul whose size is read on the host, which a graph cannot hold).
        True on a CPU runs the same padded static-shape step eagerly (what the tests check it with).
        prefix_caching: reuse the cache of prompts' starts computed before (vLLM's automatic prefix caching).
        speculative_tokens: at most this many guessed tokens checked per decode step (0: off).
        speculative_method: "ngram" (prompt lookup) or "mtp" (the model's MTP layer; one token a step)."""
        self.model = model.eval()
        self.config = model.config
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk or (2048 if self.device.type == "cuda" else 256)
        self.max_model_len = max_model_len or self.config.max_position_embeddings
        blocks_per_seq = -(-self.max_model_len // block_size)
        n_blocks = n_blocks or max_batch * blocks_per_seq + 1
        self.mtp = check_speculative(model, speculative_method, speculative_tokens)
        self.cache = PagedLatentCache(self.config, n_blocks, block_size, self.device, self.dtype, prefix_caching,
                                      mtp=self.mtp)
        use_graphs = cuda_graphs
        if use_graphs is None:
            use_graphs = self.device.type == "cuda" and self.dtype == torch.bfloat16
        use_graphs = use_graphs and not self.mtp  # every MTP step is a checking step: nothing to replay
        self.graphs = DecodeGraphs(self.model, self.cache, max_batch, blocks_per_seq) if use_graphs else None
        self._weights: tuple[int, int] | None = None  # weights_version the cached prefixes were computed with
        self.prompt_tokens = self.cached_tokens = 0  # over all requests: prompt tokens, of which found cached
        self.speculative_tokens = speculative_tokens
        self.drafted_tokens = self.accepted_tokens = 0  # guesses checked, and those the model would have written
        self.stop_ids = {self.config.eos_token_id} if self.config.eos_token_id is not None else set()
        self.grammars = grammars  # needed only for requests with a grammar (it knows the tokenizer)
        self.waiting: deque[list[Request]] = deque()  # groups: a prompt's n samples are admitted together
        self.running: list[Request] = []
        self._ids = itertools.count()
        self._reserved_blocks = 0

    # -- requests -------------------------------------------------------------------------------------------
    def add_request(self, prompt_ids: list[int], params: SamplingParams | None = None) -> int:
        return self.add_group(prompt_ids, [params or SamplingParams()])[0]

    def add_group(self, prompt_ids: list[int], params: list[SamplingParams], cache_salt: str | None = None
                  ) -> list[int]:
        """Several samples of one prompt (OpenAI's n): the prompt is prefilled once and its cache shared.
        cache_salt: reuse cached prefixes only of requests with the same salt (vLLM's; one per tenant)."""
        self.check_prompt(prompt_ids)
        if len(params) > self.max_batch:
            raise ValueError(f"n={len(params)} samples exceed the engine's batch of {self.max_batch}")
        for p in params:
            if len(prompt_ids) + p.max_tokens > self.max_model_len:
                raise ValueError(f"prompt ({len(prompt_ids)} tokens) + max_tokens ({p.max_tokens}) exceeds the "
                                 f"context of {self.max_model_len} tokens")
        if any(p.grammar for p in params) and self.grammars is None:
            raise ValueError("constrained decoding needs an engine built with grammars=Grammars(tokenizer, ...)")
        reqs = [Request(next(self._ids), list(prompt_ids), p, SamplerState(p, list(prompt_ids)),
                        constraint=self.grammars.matcher(p.grammar) if p.grammar and self.grammars else None,
                        cache_salt=cache_salt,
                        lookup=PromptLookup(prompt_ids) if self.speculative_tokens and not self.mtp else None)
                for p in params]
        bs = self.cache.block_size
        shared = len(prompt_ids) // bs
        for i, r in enumerate(reqs):
            r.reserved_blocks = -(-(len(prompt_ids) + r.params.max_tokens) // bs) - (shared if i else 0)
            r.awaiting_fork = i > 0
        reqs[0].followers = reqs[1:]
        self.waiting.append(reqs)
        return [r.id for r in reqs]

    def abort(self, request_id: int) -> None:
        """Cancel a request (e.g. the client went away) and free its cache at once."""
        for req in list(self.running) + [r for group in self.waiting for r in group]:
            if req.id == request_id:
                req.finish_reason = "abort"
                self._finish(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _admit(self) -> None:
        if self.waiting and self.cache.prefix is not None:
            version = weights_version(self.model)
            if version != self._weights:
                self.cache.forget_prefixes()
                self._weights = version
        while self.waiting and len(self.running) + len(self.waiting[0]) <= self.max_batch:
            need = sum(r.reserved_blocks for r in self.waiting[0])
            if self._reserved_blocks + need > self.cache.n_blocks - 1:
                break  # wait for running requests to finish
            for req in self.waiting.popleft():
                self.cache.add(req.id, req.cache_salt)
                self.running.append(req)
            self._reserved_blocks += need

    def _finish(self, req: Request) -> None:
        waiting = [f for f in req.followers if f.awaiting_fork and f.finish_reason is None]
        if waiting:  # a leader leaving before its prefill ends hands the prompt to its first follower
            waiting[0].awaiting_fork, waiting[0].followers = False, waiting[1:]
        if req in self.running:
            self.running.remove(req)
            self._reserved_blocks -= req.reserved_blocks
            self.cache.release(req.id)
        else:
            for group in self.waiting:
                if req in group:
                    group.remove(req)
            while self.waiting and not self.waiting[0]:
                self.waiting.popleft()

    # -- one scheduling step ---------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> list[TokenEvent]:
        self._admit()
        events: list[TokenEvent] = []
        decoding = [r for r in self.running if r.prefilled == len(r.prompt_ids) and r.output_ids]
        # prefill: up to prefill_chunk prompt tokens this step, over as many waiting prompts as fit, in one forward
        # (rows padded to the longest chunk; a GRPO batch's prompts are all prefilled in the first steps)
        budget, chunks, computing = self.prefill_chunk, [], set()
        for r in self.running:
            if budget <= 0:
                break
            if r.prefilled < len(r.prompt_ids) and not r.awaiting_fork:
                if r.matching and self._wait_for_prefix(r, computing):
                    continue
                chunk = r.prompt_ids[r.prefilled : r.prefilled + budget]
                chunks.append((r, chunk))
                budget -= len(chunk)
        entries: list[MTPEntries] = []  # what the MTP layer reads this step, once the tokens are sampled
        if chunks:
            logits, hidden = self._forward([r for r, _ in chunks], [c for _, c in chunks], hidden=self.mtp)
            self._commit([r for r, _ in chunks])
            if hidden is not None:
                self._mtp_prompts(chunks, hidden)
            for b, ((req, chunk), row) in enumerate(zip(chunks, logits)):
                req.prefilled += len(chunk)
                if req.prefilled == len(req.prompt_ids):
                    siblings = [f for f in req.followers if f in self.running]
                    for f in siblings:  # share the prompt's cache before anyone can finish and free it
                        self.cache.fork(req.id, f.id)
                        f.prefilled, f.awaiting_fork = len(f.prompt_ids), False
                    events.extend(self._emit([req, *siblings], row.expand(1 + len(siblings), -1)))
                    if hidden is not None:  # the prompt's last position, with each sample's first token
                        entries += [(r, len(r.prompt_ids) - 1, hidden[b, len(chunk) - 1 : len(chunk)],
                                     r.output_ids[-1:]) for r in (req, *siblings) if r.finish_reason is None]
        if decoding:
            drafts = self._drafts(decoding) if self.speculative_tokens else []
            if any(drafts) or self.mtp:
                events.extend(self._verify(decoding, drafts, entries))
            else:
                logits = self._decode(decoding)
                self._commit(decoding)
                events.extend(self._emit(decoding, logits))
        if entries:
            self._mtp_drafts(entries)
        return events

    def _drafts(self, reqs: list[Request]) -> list[list[int]]:
        """Each sequence's guessed next tokens (prompt lookup or the MTP layer's), never past its max_tokens: the
        positions fed stay within what its admission reserved."""
        room = [min(self.speculative_tokens, r.params.max_tokens - len(r.output_ids) - 1) for r in reqs]
        if self.mtp:
            return [r.draft[: max(0, k)] for r, k in zip(reqs, room)]
        return [r.lookup.propose(k) if r.lookup is not None else [] for r, k in zip(reqs, room)]

    def _verify(self, reqs: list[Request], drafts: list[list[int]], entries: list[MTPEntries]) -> list[TokenEvent]:
        """Feed each sequence its last token and its guesses in one forward, sample position by position while the
        sampled token is the guess, then drop the cache of what came after the first wrong guess. With MTP, the
        positions kept and the tokens sampled after them go to `entries`."""
        starts = [self.cache.lengths[r.id] for r in reqs]
        drafts = drafts or [[] for _ in reqs]
        fed = [[r.output_ids[-1], *d] for r, d in zip(reqs, drafts)]
        counts = [len(t) for t in fed]
        width = max(counts)
        ids = torch.tensor([t + [0] * (width - len(t)) for t in fed], device=self.device)
        out = self.model(ids, cache=self.cache.view([r.id for r in reqs], counts), return_hidden=self.mtp)
        logits = out.logits.float()
        events: list[TokenEvent] = []
        right = [1] * len(reqs)  # fed tokens known right (the last token always is)
        live = list(range(len(reqs)))
        for j in range(width):
            rows = live
            emitted = self._emit([reqs[i] for i in rows], logits[rows, j])
            events.extend(emitted)
            live = []
            for i, ev in zip(rows, emitted):
                right[i] = j + 1
                if ev.finish_reason is None and j < len(drafts[i]) and ev.token == drafts[i][j]:
                    live.append(i)
            if not live:
                break
        for i, r in enumerate(reqs):
            self.drafted_tokens += len(drafts[i])
            self.accepted_tokens += right[i] - 1
            if r.finish_reason is None:
                self.cache.lengths[r.id] = starts[i] + right[i]
                if out.hidden is not None:
                    entries.append((r, starts[i], out.hidden[i, : right[i]], r.output_ids[-right[i]:]))
        self._commit([r for r in reqs if r.finish_reason is None])
        return events

    # -- drafting with the MTP layer -------------------------------------------------------------------------
    def _mtp_prompts(self, chunks: list[tuple[Request, list[int]]], hidden: torch.Tensor) -> None:
        """The MTP layer's entries for the prompt positions just prefilled whose next token is the prompt's (the
        last position's waits for the sampled token): stored before the prompt's cache is shared with its other
        samples, so that they have them too."""
        rows = []
        for b, (req, chunk) in enumerate(chunks):
            start = req.prefilled
            n = min(len(chunk), len(req.prompt_ids) - 1 - start)
            if n > 0:
                rows.append((req, start, hidden[b, :n], req.prompt_ids[start + 1 : start + 1 + n]))
        if rows:
            self._mtp_run(rows, want_drafts=False)

    def _mtp_drafts(self, entries: list[MTPEntries]) -> None:
        """Store the entries of the tokens sampled this step; each sequence's last one gives its next guess."""
        live = [e for e in entries if e[0].finish_reason is None]  # a finished sequence's blocks are freed
        for (req, *_), token in zip(live, self._mtp_run(live, want_drafts=True) if live else []):
            req.draft = [token]

    def _mtp_run(self, rows: list[MTPEntries], want_drafts: bool) -> list[int]:
        """One forward of the MTP layer over rows of entries (padded to the longest); the greedy guess after each
        row's last entry. Only the guesses' quality depends on it: whatever the layer guesses, the model's own
        sampling decides the output."""
        counts = [len(t) for _, _, _, t in rows]
        width = max(counts)
        hidden = torch.zeros(len(rows), width, rows[0][2].shape[-1], device=self.device, dtype=rows[0][2].dtype)
        for b, (_, _, h, _) in enumerate(rows):
            hidden[b, : h.shape[0]] = h
        ids = torch.tensor([list(t) + [0] * (width - len(t)) for _, _, _, t in rows], device=self.device)
        view = self.cache.mtp_view([r.id for r, *_ in rows], [start for _, start, _, _ in rows], counts)
        at = torch.tensor(counts, device=self.device) - 1 if want_drafts else None
        logits = self.model.mtp_logits(hidden, ids, view, at)
        return logits.argmax(-1).tolist() if logits is not None else []

    def _wait_for_prefix(self, req: Request, computing: set) -> bool:
        """Start req on the cached blocks of its prompt; True when the next block it would compute is one another
        prompt computes in this very step (it takes it from the cache next step instead)."""
        req.prefilled = req.cached_tokens = self.cache.match(req.id, req.prompt_ids)
        key = self.cache.next_key(req.id, req.prompt_ids)
        if key is not None and key in computing:
            return True
        req.matching = False
        self.prompt_tokens += len(req.prompt_ids)
        self.cached_tokens += req.cached_tokens
        if key is not None:
            computing.add(key)
        return False

    def _commit(self, reqs: list[Request]) -> None:
        """Index the blocks that filled up (one in block_size decode steps: the check is kept cheap)."""
        cache = self.cache
        if cache.prefix is None:
            return
        bs, lengths, nodes = cache.block_size, cache.lengths, cache.nodes
        for r in reqs:
            indexed = nodes.get(r.id)
            if indexed is not None and lengths[r.id] // bs >= len(indexed):  # root + one node per indexed block
                cache.commit(r.id, r.prompt_ids, r.output_ids)

    def _decode(self, reqs: list[Request]) -> torch.Tensor:
        """One new token for every decoding request: through the captured graphs when they are on."""
        if self.graphs is None or not self.graphs.active:
            return self._forward(reqs, [[r.output_ids[-1]] for r in reqs])[0]
        for r in reqs:
            self.cache.reserve(r.id, 1)
        logits = self.graphs.logits([r.output_ids[-1] for r in reqs], [self.cache.lengths[r.id] for r in reqs],
                                    [self.cache.tables[r.id] for r in reqs])
        for r in reqs:
            self.cache.lengths[r.id] += 1
        return logits

    def _forward(self, reqs: list[Request], tokens: list[list[int]], hidden: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed each request its tokens (rows padded to the longest); each row's logits after its last token, and
        the hidden states of every position when asked for."""
        counts = [len(t) for t in tokens]
        width = max(counts)
        ids = torch.tensor([t + [0] * (width - len(t)) for t in tokens], device=self.device)
        view = self.cache.view([r.id for r in reqs], counts)
        last = torch.tensor(counts, device=self.device) - 1
        out = self.model(ids, cache=view, logits_at=last, return_hidden=hidden)
        return out.logits[:, 0].float(), out.hidden

    def _emit(self, reqs: list[Request], logits: torch.Tensor) -> list[TokenEvent]:
        """Sample one token for each request from its row of logits (all rows in one batched draw) and book it."""
        stops = [self.stop_ids | set(r.params.stop_token_ids) for r in reqs]
        allowed: list[torch.Tensor | None] = []
        for req, stop in zip(reqs, stops):
            mask = req.constraint.allowed(logits.shape[-1]) if req.constraint is not None else None
            if mask is not None and not mask.any():  # the grammar cannot continue: end rather than draw garbage
                mask[list(stop)] = True
            allowed.append(mask)
        events = []
        for req, stop, (token, logprob, top) in zip(reqs, stops, sample_batch(logits, [r.sampler for r in reqs],
                                                                             allowed)):
            req.output_ids.append(token)
            if req.lookup is not None:
                req.lookup.append(token)
            req.logprobs.append(logprob)
            req.top_logprobs.append(top)
            if req.constraint is not None and token not in stop:
                try:
                    req.constraint.consume(token)
                except GrammarError as e:
                    req.error, req.finish_reason = str(e), "stop"
            if token in stop:
                req.finish_reason = "stop"
            elif len(req.output_ids) >= req.params.max_tokens:
                req.finish_reason = "length"
            if req.finish_reason:
                self._finish(req)
            events.append(TokenEvent(req.id, token, logprob, req.finish_reason, tuple(top)))
        return events

    # -- prompt scoring --------------------------------------------------------------------------------------
    SCORE_TOKENS = 4096  # tokens a scoring forward holds (its logits are tokens x vocab floats)

    @torch.no_grad()
    def prompt_logprobs(self, prompts: list[list[int]], top_k: int = 0) -> list[list[tuple[float, TopLogprobs]]]:
        """For each prompt, log p(prompt[i] | prompt[:i]) and the top_k alternatives there, for i >= 1 (OpenAI's
        `echo` with logprobs: what lm-evaluation-harness scores answers with). Outside the cache, in right-padded
        batches of similar lengths (a causal model's earlier positions never see the padding)."""
        for ids in prompts:
            self.check_prompt(ids)
            if len(ids) > self.max_model_len:
                raise ValueError(f"prompt ({len(ids)} tokens) exceeds the context of {self.max_model_len} tokens")
        out: list[list[tuple[float, TopLogprobs]]] = [[] for _ in prompts]
        batch: list[int] = []
        for i in sorted(range(len(prompts)), key=lambda i: len(prompts[i])):
            if batch and len(prompts[i]) * (len(batch) + 1) > self.SCORE_TOKENS:
                self._score(prompts, batch, top_k, out)
                batch = []
            batch.append(i)
        if batch:
            self._score(prompts, batch, top_k, out)
        return out

    def _score(self, prompts: list[list[int]], rows: list[int], top_k: int,
               out: list[list[tuple[float, TopLogprobs]]]) -> None:
        width = max(len(prompts[i]) for i in rows)
        if width < 2:  # one-token prompts: nothing precedes their token, nothing to score
            return
        ids = torch.tensor([prompts[i] + [0] * (width - len(prompts[i])) for i in rows], device=self.device)
        logits = self.model(ids[:, :-1]).logits
        for b, i in enumerate(rows):
            n = len(prompts[i]) - 1
            for start in range(0, n, 256):  # log-softmax in fp32 a slice at a time: T x V floats is big
                logp = logits[b, start:min(start + 256, n)].float().log_softmax(-1)
                picked = logp.gather(1, ids[b, start + 1:start + 1 + logp.shape[0], None])[:, 0].tolist()
                tops = logp.topk(top_k, dim=-1) if top_k else None
                for j, value in enumerate(picked):
                    top = tuple(zip(tops.indices[j].tolist(), tops.values[j].tolist())) if tops is not None else ()
                    out[i].append((value, top))

    def check_prompt(self, prompt_ids: list[int]) -> None:
        """A token id outside the vocabulary would fail the whole batched step it joins, not just its request."""
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        low, high = min(prompt_ids), max(prompt_ids)
        if low < 0 or high >= self.config.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"prompt token id {bad} is outside the vocabulary (0 to {self.config.vocab_size - 1})")

    def grow(self, max_model_len: int) -> None:
        """Take longer sequences from now on (a multi-turn episode's later turns): the pool grows, the cache and its
        prefixes stay; decode graphs are captured again for the wider tables."""
        if max_model_len <= self.max_model_len:
            return
        assert not self.has_work(), "an engine grows between rounds, not while it runs"
        bs = self.cache.block_size
        blocks_per_seq = -(-max_model_len // bs)
        self.cache.grow(self.max_batch * blocks_per_seq + 1)
        self.max_model_len = max_model_len
        if self.graphs is not None and self.graphs.active:
            self.graphs = DecodeGraphs(self.model, self.cache, self.max_batch, blocks_per_seq)

    # -- convenience -----------------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Request]:
        """Run prompts to completion (continuously batched) and return their finished requests, in order."""
        plist = params if isinstance(params, list) else [params] * len(prompts)
        reqs: dict[int, Request] = {}
        for prompt, p in zip(prompts, plist):
            rid = self.add_request(prompt, p)
            reqs[rid] = self.waiting[-1][0]
        while self.has_work():
            self.step()
        return list(reqs.values())


MTPEntries = tuple[Request, int, torch.Tensor, list[int]]  # a sequence, a start position, h of each, the next tokens


def check_speculative(model: CausalLM, method: str, tokens: int) -> bool:
    """Whether the guesses come from the model's MTP layer; a clear error for a method the model cannot use."""
    if method not in ("ngram", "mtp"):
        raise ValueError(f"unknown speculative method {method!r}: use 'ngram' (prompt lookup) or 'mtp'")
    if method == "ngram" or tokens == 0:
        return False
    if model.mtp is None:
        raise ValueError("this model has no MTP layer (num_nextn_predict_layers = 0) to draft with: train one with "
                         "model.overrides.num_nextn_predict_layers=1, or use the 'ngram' method")
    if tokens != 1:
        raise ValueError(f"the MTP layer guesses one token a step (depth-1 MTP), not {tokens}: use 1")
    return True


def weights_version(model: nn.Module) -> tuple[int, int]:
    """Changes whenever the weights may have: fronde's optimizers count their steps in `model.generation` (a fused
    optimizer step leaves tensors' version counters as they were), and any other in-place write to a parameter or
    persistent buffer bumps that tensor's version counter."""
    try:
        versions = sum(t._version for t in model.state_dict(keep_vars=True).values())
    except RuntimeError:  # tensors made under torch.inference_mode keep no version counter (and cannot be trained)
        versions = -1
    return int(getattr(model, "generation", 0)), versions
