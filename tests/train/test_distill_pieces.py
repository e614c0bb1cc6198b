"""Distillation building blocks: the logit losses, teachers (a tiny fronde dir and the real SmolLM2 GGUF), and the
resumable sequence-level distillation cache."""

from __future__ import annotations

import json
import threading
import math
import time

import pytest
import torch

from fronde.data.errors import DataError
from fronde.data.tokenizer import train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.train.distill_loss import LOSS_KINDS, distill_loss, vocab_compatible
from fronde.train.seq_distill import PromptItem, build_distill_set, cache_files, export_sft, read_cache_set
from fronde.train.teacher import TeacherError, load_teacher
from tests.model.helpers import memorise_chats, tiny_model


def _logits(*shape: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


# --- losses -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOSS_KINDS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_loss_is_zero_when_student_equals_teacher(kind, temperature):
    logits = _logits(2, 5, 11)
    mask = torch.ones(2, 5, dtype=torch.bool)
    for beta in (0.0, 0.3, 1.0):
        loss = distill_loss(logits, logits.clone(), mask, kind, beta=beta, temperature=temperature)
        assert loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_loss_is_positive_on_random_logits(kind):
    s, t = _logits(3, 7, 13, seed=1), _logits(3, 7, 13, seed=2)
    mask = torch.ones(3, 7)
    for beta in (0.0, 0.1, 0.5, 0.9, 1.0):
        for temperature in (0.7, 1.0, 3.0):
            assert distill_loss(s, t, mask, kind, beta=beta, temperature=temperature).item() > 0


def test_forward_kl_matches_hand_computation():
    # one position, vocab of 3: p_T = softmax(log [0.7, 0.2, 0.1]) = [0.7, 0.2, 0.1], p_S = [0.5, 0.25, 0.25]
    teacher = torch.tensor([[0.7, 0.2, 0.1]]).log()
    student = torch.tensor([[0.5, 0.25, 0.25]]).log()
    expected = 0.7 * math.log(0.7 / 0.5) + 0.2 * math.log(0.2 / 0.25) + 0.1 * math.log(0.1 / 0.25)
    loss = distill_loss(student, teacher, torch.ones(1), "forward_kl")
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    reverse = 0.5 * math.log(0.5 / 0.7) + 0.25 * math.log(0.25 / 0.2) + 0.25 * math.log(0.25 / 0.1)
    assert distill_loss(student, teacher, torch.ones(1), "reverse_kl").item() == pytest.approx(reverse, rel=1e-6)
    # temperature divides both logits and the result is scaled by T^2
    p_t, p_s = torch.softmax(teacher / 2, -1), torch.softmax(student / 2, -1)
    hand = 4 * (p_t * (p_t.log() - p_s.log())).sum().item()
    assert distill_loss(student, teacher, torch.ones(1), "forward_kl", temperature=2.0).item() == pytest.approx(hand)


def test_jsd_ends_are_the_kls_and_middle_is_symmetric():
    s, t = _logits(2, 6, 17, seed=3), _logits(2, 6, 17, seed=4)
    mask = torch.ones(2, 6)
    fwd, rev = distill_loss(s, t, mask, "forward_kl"), distill_loss(s, t, mask, "reverse_kl")
    assert distill_loss(s, t, mask, "jsd", beta=0.0).item() == pytest.approx(fwd.item())
    assert distill_loss(s, t, mask, "jsd", beta=1.0).item() == pytest.approx(rev.item())
    # beta = 0.5 is the symmetric JSD; and it is bounded by log 2
    half = distill_loss(s, t, mask, "jsd", beta=0.5).item()
    assert half == pytest.approx(distill_loss(t, s, mask, "jsd", beta=0.5).item(), rel=1e-5)
    assert 0 < half < math.log(2)


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_masked_positions_do_not_contribute(kind):
    s, t = _logits(2, 8, 19, seed=5), _logits(2, 8, 19, seed=6)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 2:5] = True
    mask[1, 6] = True
    base = distill_loss(s, t, mask, kind)
    s2 = s.clone()
    s2[~mask] = _logits(int((~mask).sum()), 19, seed=7, scale=50.0)  # wild values only where masked out
    assert distill_loss(s2, t, mask, kind).item() == pytest.approx(base.item(), rel=1e-6)
    # and the mean is over the masked tokens only
    only = distill_loss(s[mask], t[mask], torch.ones(4, dtype=torch.bool), kind)
    assert only.item() == pytest.approx(base.item(), rel=1e-6)
    assert distill_loss(s, t, torch.zeros(2, 8), kind).item() == 0.0


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_chunked_equals_unchunked_values_and_gradients(kind):
    t = _logits(3, 10, 23, seed=8)
    mask = _logits(3, 10, seed=9) > 0
    results = []
    for chunk in (1, 4, 7, 10_000):
        s = _logits(3, 10, 23, seed=10).requires_grad_()
        loss = distill_loss(s, t, mask, kind, beta=0.4, temperature=1.5, chunk_size=chunk)
        loss.backward()
        results.append((loss.detach(), s.grad))
    for loss, grad in results[1:]:
        torch.testing.assert_close(loss, results[0][0])
        torch.testing.assert_close(grad, results[0][1])
    assert results[0][1][~mask].abs().max() == 0  # no gradient reaches masked positions


def test_forward_kl_gradient_moves_student_toward_teacher():
    t = _logits(4, 9, 31, seed=11)
    s = _logits(4, 9, 31, seed=12).requires_grad_()
    mask = torch.ones(4, 9, dtype=torch.bool)
    before = distill_loss(s, t, mask, "forward_kl")
    before.backward()
    with torch.no_grad():
        s -= 1.0 * s.grad
    after = distill_loss(s, t, mask, "forward_kl")
    assert after.item() < before.item()


def test_bf16_logits_are_computed_in_float32():
    s, t = _logits(2, 4, 29, seed=13), _logits(2, 4, 29, seed=14)
    mask = torch.ones(2, 4)
    low = distill_loss(s.bfloat16(), t.bfloat16(), mask, "forward_kl")
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(distill_loss(s.bfloat16().float(), t.bfloat16().float(), mask,
                                                    "forward_kl").item(), rel=1e-6)


def test_loss_errors_name_the_problem():
    s, mask = _logits(2, 3, 5), torch.ones(2, 3)
    with pytest.raises(ValueError, match="vocab_compatible"):
        distill_loss(s, _logits(2, 3, 6), mask, "forward_kl")
    with pytest.raises(ValueError, match="kind='kl'"):
        distill_loss(s, s, mask, "kl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta=1.5"):
        distill_loss(s, s, mask, "jsd", beta=1.5)
    with pytest.raises(ValueError, match="mask"):
        distill_loss(s, s, torch.ones(3, 2), "jsd")


def test_vocab_compatible():
    assert vocab_compatible({"a": 0, "b": 1}, {"b": 1, "a": 0})
    assert not vocab_compatible({"a": 0, "b": 1}, {"a": 1, "b": 0})
    assert not vocab_compatible({"a": 0}, {"a": 0, "b": 1})


# --- teachers ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fronde_dir(tmp_path_factory):
    """A tiny fronde model dir with a real trained tokenizer and chat template (random weights)."""
    model_dir = tmp_path_factory.mktemp("teacher") / "tiny-teacher"
    text = ["The quick brown fox jumps over the lazy dog. 0123456789\n", "def f(x):\n    return x + 1\n"]
    tok = train_tokenizer(text * 100, vocab_size=600)
    tok.save(model_dir)
    model = tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos, num_hidden_layers=2)
    save_pretrained(model, model_dir, dtype=torch.float32)
    return model_dir


@pytest.fixture(scope="module")
def tiny_teacher(fronde_dir):
    return load_teacher(str(fronde_dir))


def test_fronde_dir_teacher_logits_and_generate(tiny_teacher, fronde_dir):
    from fronde.data.tokenizer import Tokenizer

    tok = Tokenizer.load(fronde_dir)
    vocab = tiny_teacher.vocab()
    assert len(vocab) == tok.vocab_size and vocab_compatible(vocab, tok.hf.get_vocab(with_added_tokens=True))
    assert tok.special.end in tiny_teacher.stop_ids and tok.special.eos in tiny_teacher.stop_ids
    ids = torch.randint(0, tok.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    logits = tiny_teacher.logits(ids, torch.ones_like(ids))
    assert logits.shape == (2, 7, tok.vocab_size) and not logits.requires_grad
    chats = [[{"role": "user", "content": "The quick brown fox"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def f(x):"}]]
    out = tiny_teacher.generate(chats, max_new_tokens=5)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert tiny_teacher.generate(chats, max_new_tokens=5) == out  # greedy is deterministic
    # left padding: the shorter prompt's answer does not depend on the longer one being in the batch
    assert tiny_teacher.generate(chats[:1], max_new_tokens=5) == out[:1]
    sampled = tiny_teacher.generate(chats, max_new_tokens=5, temperature=1.0, seed=3)
    assert sampled == tiny_teacher.generate(chats, max_new_tokens=5, temperature=1.0, seed=3)


def test_a_fronde_teachers_reasoning_and_answer_stay_apart(tmp_path):
    """A fronde teacher run by transformers writes <|think|>...<|/think|><|answer|>...<|/answer|>: special tokens that
    skip_special_tokens dropped, gluing the reasoning to the answer ("= 42" + "42" read "= 4242", which no verifier
    accepts). Its replies come back in the canonical form, and the SFT export makes them the same turn again."""
    from fronde.data.chat import render_chat
    from fronde.data.tokenizer import Tokenizer
    from fronde.train.seq_distill import assistant_message

    chat = [{"role": "user", "content": "What is 6 x 7?"},
            {"role": "assistant", "reasoning_content": "6 x 7 = 42", "content": "42"}]
    tok = train_tokenizer(["What is 6 x 7? 6 x 7 = 42\n"] * 50, vocab_size=300)
    tok.save(tmp_path / "teacher")
    torch.manual_seed(0)
    save_pretrained(memorise_chats(tok, [chat], steps=80, num_hidden_layers=2), tmp_path / "teacher")

    teacher = load_teacher(str(tmp_path / "teacher"))
    (reply,) = teacher.generate([chat[:1]], max_new_tokens=20)
    assert reply == "<think>6 x 7 = 42</think>\n<answer>42</answer>"
    message = assistant_message(reply)
    assert message == chat[1] | {"role": "assistant"}
    assert render_chat(Tokenizer.load(tmp_path / "teacher"), [chat[0], message])[0] == render_chat(tok, chat)[0]


def test_a_lora_adapter_is_a_teacher_merged_in_memory(fronde_dir, tmp_path):
    """A team's LoRA adapter (TRL/PEFT output) on a local model teaches as the adapted model does; lineage pins the
    adapter and its base by content. A base named by a Hub id is not fetched."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from fronde.data.io import sha256_file
    from fronde.train.lineage import teacher_identity

    def base():
        return AutoModelForCausalLM.from_pretrained(fronde_dir, dtype=torch.float32, local_files_only=True)

    torch.manual_seed(0)
    peft_model = get_peft_model(base(), LoraConfig(r=4, target_modules=["q_a_proj", "o_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)  # no tokenizer saved: the base's is used
    ids = torch.randint(0, 300, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base(), adapter).eval()(ids).logits
        plain = base()(ids).logits
    teacher = load_teacher(str(adapter))
    got = teacher.logits(ids)
    assert (got - expected).abs().max() < 1e-4 and (plain - expected).abs().max() > 1e-3
    assert len(teacher.generate([[{"role": "user", "content": "def f(x):"}]], max_new_tokens=3)) == 1
    identity = teacher_identity(str(adapter))
    assert identity["kind"] == "peft-adapter"
    assert identity["weights_sha256"] == sha256_file(adapter / "adapter_model.safetensors")
    assert identity["base"]["weights_sha256"] == sha256_file(fronde_dir / "model.safetensors")

    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "org/on-the-hub"}))
    with pytest.raises(TeacherError, match="'org/on-the-hub' is not a model dir here"):
        load_teacher(str(adapter))
    assert "error" in teacher_identity(str(adapter))


def test_teacher_spec_errors(tmp_path):
    with pytest.raises(TeacherError, match="not a built-in name"):
        load_teacher(str(tmp_path / "nope"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(TeacherError, match="not a .gguf"):
        load_teacher(str(tmp_path / "weights.bin"))
    (tmp_path / "weights.bin").rename(tmp_path / "m.gguf")
    with pytest.raises(TeacherError, match="m.gguf: pass one of those files"):
        load_teacher(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TeacherError, match="has no tokenizer"):
        load_teacher(str(tmp_path))


@pytest.mark.slow  # 33-50 s on 2 cores, nearly all of it transformers parsing the GGUF (three passes)
def test_smollm2_gguf_teacher_generates_offline(smollm2):
    assert smollm2.tokenizer.convert_ids_to_tokens(smollm2.stop_ids[-1]) == "<|im_end|>"
    chats = [[{"role": "user", "content": "What is the capital of France?"}],
             [{"role": "user", "content": "Say hello."}],
             [{"role": "user", "content": "Name a colour."}]]
    start = time.perf_counter()
    out = smollm2.generate(chats, max_new_tokens=8)
    print(f"SmolLM2 generated 3 x 8 tokens in {time.perf_counter() - start:.1f}s: {out}")
    assert len(out) == 3 and all(isinstance(o, str) and o for o in out)
    assert "Paris" in out[0]
    assert not any("<|im_end|>" in o or "<|im_start|>" in o for o in out)


# --- sequence-level distillation ----------------------------------------------------------------------------------


class CountingTeacher:
    """Wraps a teacher and records every conversation it is asked to answer."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.asked: list[str] = []

    def generate(self, conversations, max_new_tokens, temperature=0.0, top_p=1.0, seed=0):
        self.asked += [c[-1]["content"] for c in conversations]
        return self.teacher.generate(conversations, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)


def _prompts() -> list[PromptItem]:
    texts = ["The quick brown fox", "def f(x):", "jumps over the lazy dog", "0123456789"]
    return [PromptItem(id=f"p{i}", messages=[{"role": "user", "content": t}], meta={"even": i % 2 == 0})
            for i, t in enumerate(texts)]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_distill_set_resumes_after_a_kill_and_exports_kept_rows(tiny_teacher, tmp_path):
    cache, prompts = tmp_path / "cache.jsonl", _prompts()

    def verifier(completion: str, item: PromptItem) -> float:
        return 1.0 if item.meta["even"] else 0.0

    first = CountingTeacher(tiny_teacher)
    seen: list[tuple[int, int]] = []
    stats = build_distill_set(first, prompts, cache, batch_size=2, max_new_tokens=4, verifier=verifier,
                              progress=lambda done, total: seen.append((done, total)))
    assert (stats.generated, stats.kept, stats.rejected, stats.resumed_from) == (4, 2, 2, 0)
    assert seen == [(0, 4), (2, 4), (4, 4)] and len(first.asked) == 4
    rows = _rows(cache)
    assert [(r["id"], r["sample"], r["kept"], r["reward"]) for r in rows] == [
        ("p0", 0, True, 1.0), ("p1", 0, False, 0.0), ("p2", 0, True, 1.0), ("p3", 0, False, 0.0)]

    # a kill in the middle of writing the last row: cut the file inside its line
    data = cache.read_bytes()
    cache.write_bytes(data[:data.rfind(b"\n", 0, len(data) - 1) + 1 + 15])
    second = CountingTeacher(tiny_teacher)
    stats = build_distill_set(second, prompts, cache, batch_size=2, max_new_tokens=4, verifier=verifier)
    assert (stats.resumed_from, stats.skipped_corrupt_lines, stats.generated) == (3, 1, 1)
    assert second.asked == ["0123456789"]  # only the torn row was generated again
    assert (stats.kept, stats.rejected) == (2, 2)
    assert _rows(cache) == rows  # greedy: the same row as before the kill, and no torn bytes left behind

    # nothing left to do: no teacher call at all
    third = CountingTeacher(tiny_teacher)
    stats = build_distill_set(third, prompts, cache, batch_size=2, max_new_tokens=4, verifier=verifier)
    assert (stats.generated, stats.resumed_from, third.asked) == (0, 4, [])

    sft = tmp_path / "sft.jsonl"
    assert export_sft(cache, sft) == 2
    exported = _rows(sft)
    assert [e["messages"] for e in exported] == [
        [*r["messages"], {"role": "assistant", "content": r["completion"]}] for r in rows if r["kept"]]


def test_ranks_share_the_missing_rows_and_any_process_count_resumes(tiny_teacher, tmp_path):
    """Under torchrun each rank answers every world-th missing pair into its own file; the set is the union, so a
    run on another process count (here 3, then 1) generates only what is still missing, and export reads it all."""
    cache, prompts = tmp_path / "cache.jsonl", _prompts()
    ready: list[int] = []
    first = CountingTeacher(tiny_teacher)
    stats = build_distill_set(first, prompts[:3], cache, batch_size=2, max_new_tokens=4, shard=(1, 2),
                              ready=lambda: ready.append(1))
    assert first.asked == ["def f(x):"] and stats.generated == 1 and ready == [1]  # pending p0, p1, p2: rank 1 of 2
    assert not cache.exists() and (tmp_path / "cache.rank1.jsonl").is_file()
    # all four prompts now, on three "ranks" (threads; `ready` is their barrier, as torchrun's ranks have): p1 is
    # done, and p0, p2, p3 are split one each
    teachers = [CountingTeacher(tiny_teacher) for _ in range(3)]
    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=build_distill_set, args=(teachers[rank], prompts, cache),
                                kwargs={"batch_size": 2, "max_new_tokens": 4, "shard": (rank, 3),
                                        "ready": barrier.wait}) for rank in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(t.asked[0] for t in teachers) == ["0123456789", "The quick brown fox", "jumps over the lazy dog"]
    assert all(len(t.asked) == 1 for t in teachers)
    assert {p.name for p in cache_files(cache)} == {"cache.jsonl", "cache.rank1.jsonl", "cache.rank2.jsonl"}
    last = CountingTeacher(tiny_teacher)
    stats = build_distill_set(last, prompts, cache, batch_size=2, max_new_tokens=4)
    assert (last.asked, stats.resumed_from) == ([], 4)
    assert sorted(read_cache_set(cache)) == [(f"p{i}", 0) for i in range(4)]
    assert export_sft(cache, tmp_path / "sft.jsonl") == 4


def test_distill_set_guards(tiny_teacher, tmp_path):
    cache, prompts = tmp_path / "cache.jsonl", _prompts()
    with pytest.raises(ValueError, match="temperature > 0"):
        build_distill_set(tiny_teacher, prompts, cache, samples_per_prompt=2)
    with pytest.raises(DataError, match="unique"):
        build_distill_set(tiny_teacher, prompts + prompts[:1], cache)
    build_distill_set(tiny_teacher, prompts[:1], cache, max_new_tokens=2)
    changed = [PromptItem(id="p0", messages=[{"role": "user", "content": "something else"}], meta={})]
    with pytest.raises(DataError, match="other messages"):
        build_distill_set(tiny_teacher, changed, cache, max_new_tokens=2)
    cache.write_text(cache.read_text() + "not json\n")
    with pytest.raises(DataError, match="cache.jsonl:2: not a JSON row"):
        build_distill_set(tiny_teacher, prompts, cache, max_new_tokens=2)
    # several samples per prompt with sampling: one row per (id, sample)
    many = tmp_path / "many.jsonl"
    stats = build_distill_set(tiny_teacher, prompts[:2], many, max_new_tokens=3, temperature=1.0,
                              samples_per_prompt=3, batch_size=4)
    assert stats.generated == 6
    assert sorted((r["id"], r["sample"]) for r in _rows(many)) == [(f"p{i}", s) for i in range(2) for s in range(3)]


def test_teacher_prompts_answer_each_problem_once_and_say_the_repeats():
    from fronde.train.distill import DistillRecipe, teacher_prompts

    recipe = DistillRecipe.model_validate({"run": {"name": "d"}, "distill": {
        "teacher": "smollm2-135m-instruct", "prompt_tasks": [{"name": "arithmetic:1", "n": 4096}]}})
    said = []
    items, verifiers = teacher_prompts(recipe, said.append)
    ids = [it.id for it in items]
    assert len(ids) == len(set(ids)) == len(verifiers) < 4096  # 4,096 draws from ~23k problems repeat some
    assert said == [f"distill: arithmetic:1: {4096 - len(ids)} of 4096 draws repeat a problem already drawn; the "
                    f"teacher answers each once ({len(ids)} prompts)"]


def test_prompt_files_are_scrubbed_before_the_teacher_sees_them(tmp_path):
    from collections import Counter

    from fronde.train.distill import DistillRecipe, distill_inputs, teacher_prompts

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "Reply to max@lab-mail.org"}]}) + "\n")
    recipe = DistillRecipe.model_validate({"run": {"name": "d"}, "distill": {
        "teacher": "smollm2-135m-instruct", "prompt_files": [str(prompts)]}})
    counts: Counter[str] = Counter()
    items, _ = teacher_prompts(recipe, lambda _: None, counts)
    assert items[0].messages[0]["content"] == "Reply to <EMAIL>" and counts["email"] == 1
    assert distill_inputs(recipe, tmp_path, counts)["prompt_pii"]["replacements"]["email"] == 1
    raw = DistillRecipe.model_validate({"run": {"name": "d"}, "sft": {"pii": False}, "distill": {
        "teacher": "smollm2-135m-instruct", "prompt_files": [str(prompts)]}})
    assert teacher_prompts(raw, lambda _: None)[0][0].messages[0]["content"] == "Reply to max@lab-mail.org"
    assert distill_inputs(raw, tmp_path)["prompt_pii"] == {"scrubbed": False}


def test_a_reasoning_teachers_trace_becomes_the_students_reasoning(tmp_path):
    """A reasoning model behind vLLM/SGLang returns its trace apart (`reasoning_content`, or `reasoning`): it is kept
    in front as <think>...</think>, as the model writes it without a parser, and the SFT export turns a leading
    think block into the assistant's reasoning_content, which fronde's chat template renders in its think tokens."""
    from openai.types.chat import ChatCompletionMessage

    from fronde.data.chat import render_chat
    from fronde.train.seq_distill import assistant_message
    from fronde.train.sft_data import read_chat_file
    from fronde.train.teacher_endpoint import answer_text

    def message(**fields):
        return ChatCompletionMessage.model_validate({"role": "assistant", **fields})

    traced = answer_text(message(content="The answer is 42.", reasoning_content=" 6 x 7 = 42 "))
    assert traced == "<think>\n6 x 7 = 42\n</think>\n\nThe answer is 42."
    assert answer_text(message(content="x", reasoning="r")) == "<think>\nr\n</think>\n\nx"
    assert answer_text(message(content="plain")) == "plain"
    assert assistant_message(traced) == {"role": "assistant", "content": "The answer is 42.",
                                         "reasoning_content": "6 x 7 = 42"}
    assert assistant_message("no trace <think>inside</think>") == {"role": "assistant",
                                                                    "content": "no trace <think>inside</think>"}

    cache = tmp_path / "teacher_samples.jsonl"
    cache.write_text(json.dumps({"id": "q1", "sample": 0, "messages": [{"role": "user", "content": "6 x 7?"}],
                                 "completion": traced, "reward": 1.0, "kept": True}) + "\n")
    assert export_sft(cache, tmp_path / "sft.jsonl") == 1
    (conv,) = read_chat_file(tmp_path / "sft.jsonl")
    assert conv.messages[-1]["reasoning_content"] == "6 x 7 = 42"
    tok = train_tokenizer(["6 x 7 = 42. The answer is 42."] * 20, vocab_size=300)
    ids, mask = render_chat(tok, conv.messages)
    assert tok.special.think in ids  # rendered in fronde's own think tokens, trained on (assistant mask)
    assert mask[ids.index(tok.special.think)] == 1
