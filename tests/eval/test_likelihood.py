"""Log-likelihood evaluations on a tiny real fronde model, checked against a manual forward pass: bits per byte,
rolling windows, multiple choice (acc and length-normalised acc), and the input files' errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fronde.data.tokenizer import Tokenizer
from fronde.eval import EvalError, load_eval_model
from fronde.eval.bpb import Document, evaluate_bpb, read_documents
from fronde.eval.likelihood import score_rolling
from fronde.eval.multiple_choice import PROMPT, evaluate_mc, read_questions
from fronde.model.checkpoint import from_pretrained

TEXT = "def f(x):\n    return x + 1 # é\n"


@pytest.fixture(scope="module")
def model(tiny_dir):
    return load_eval_model(str(tiny_dir))


@pytest.fixture(scope="module")
def manual(tiny_dir):
    """log p(ids[1:] | prefix) by one plain forward pass, token by token."""
    tok, net = Tokenizer.load(tiny_dir), from_pretrained(tiny_dir)

    def logprobs(ids: list[int]) -> list[float]:
        with torch.no_grad():
            lp = net(torch.tensor([ids[:-1]])).logits[0].log_softmax(-1)
        return [float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)]

    return tok, logprobs


def test_bits_per_byte_by_hand(model, manual):
    tok, logprobs = manual
    ids = [tok.special.bos] + tok.encode(TEXT)
    nats = -sum(logprobs(ids))
    n_bytes = len(TEXT.encode("utf-8"))
    assert n_bytes == len(TEXT) + 1  # é is two bytes: bytes, not characters, are the unit
    metrics, dataset, rows = evaluate_bpb(model, [Document("t", TEXT)])
    assert metrics["tokens"] == len(ids) - 1 and metrics["bytes"] == n_bytes
    assert metrics["loss"] == pytest.approx(nats / (len(ids) - 1), rel=1e-5)
    assert metrics["bpb"] == pytest.approx(nats / (math.log(2) * n_bytes), rel=1e-5)
    assert rows[0]["nats"] == pytest.approx(nats, rel=1e-5) and dataset["examples"] == 1


def test_rolling_windows_score_every_token_once():
    calls = []

    def forward(x: torch.Tensor) -> torch.Tensor:  # uniform over 10 tokens: every token costs ln 10
        calls.append(x.shape[1])
        return torch.zeros(1, x.shape[1], 10)

    total, count = score_rolling(forward, list(range(10)) + [1, 2], max_len=5)
    assert count == 11 and calls == [5, 5, 1]
    assert total == pytest.approx(-11 * math.log(10))


def test_multiple_choice_picks_the_highest_loglikelihood(model, manual, tmp_path):
    tok, logprobs = manual
    question, choices = "Which gas do plants take in?", ["Oxygen", "Carbon dioxide", "x"]
    context = PROMPT.format(question=question)
    by_hand = []
    for c in choices:
        n_ctx = len(tok.encode(context))
        ids = [tok.special.bos] + tok.encode(context + " " + c)
        by_hand.append(sum(logprobs(ids)[n_ctx:]))
        assert model.loglikelihood(context, " " + c)[0] == pytest.approx(by_hand[-1], rel=1e-5)
    best = max(range(3), key=lambda i: by_hand[i])
    best_norm = max(range(3), key=lambda i: by_hand[i] / len(choices[i]))
    worst = min(range(3), key=lambda i: by_hand[i])
    path = tmp_path / "mc.jsonl"
    path.write_text(f'{{"question": "{question}", "choices": ["Oxygen", "Carbon dioxide", "x"], "answer": {best}}}\n'
                    f'{{"question": "{question}", "choices": ["Oxygen", "Carbon dioxide", "x"], '
                    f'"answer": "{choices[worst]}"}}\n')
    metrics, _, rows = evaluate_mc(model, read_questions(path))
    assert [r["pick"] for r in rows] == [best, best] and [r["pick_norm"] for r in rows] == [best_norm] * 2
    assert rows[1]["answer"] == worst
    assert metrics["acc"] == 50.0  # right on the first (answer = argmax), wrong on the second (answer = argmin)
    assert metrics["acc_norm"] == 50.0 * (best_norm == best) + 50.0 * (best_norm == worst)
    assert rows[0]["loglikelihoods"] == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("line,message", [
    ('{"question": "q", "choices": ["a"], "answer": 0}', "at least two"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}', "out of range"),
    ('{"question": "q", "choices": ["a", "b"], "answer": "c"}', r"neither one of the choices .* labels \['A', 'B'\]"),
    ('{"choices": ["a", "b"], "answer": 0}', '"question"'),
    ("not json", "not valid JSON"),
])
def test_bad_multiple_choice_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer": 1}\n' + line + "\n")
    with pytest.raises(EvalError, match=f"bad.jsonl:2: .*{message}"):
        read_questions(path)


def test_multiple_choice_reads_the_hub_shapes_of_arc_and_mmlu(tmp_path):
    """ARC as the Hub serves it (choices {text, label}, answerKey), MMLU's (choices, answer index), answer letters,
    and their Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arc = {"id": "Mercury_1", "question": "Which gas do plants take in?", "answerKey": "2",
           "choices": {"text": ["Oxygen", "Carbon dioxide", "Helium"], "label": ["1", "2", "3"]}}
    mmlu = {"question": "2 + 2 =", "subject": "arithmetic", "choices": ["3", "4", "5", "6"], "answer": 1}
    letter = {"question": "2 + 3 =", "choices": ["4", "5"], "answer": "B"}
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (arc, mmlu, letter)))
    pq.write_table(pa.Table.from_pylist([arc, arc]), tmp_path / "arc.parquet")
    got = read_questions(tmp_path / "mc.jsonl")
    assert [(q.id, q.choices[q.answer]) for q in got] == [("Mercury_1", "Carbon dioxide"), ("mc.jsonl:2", "4"),
                                                          ("mc.jsonl:3", "5")]
    from_parquet = read_questions(tmp_path / "arc.parquet")
    assert [q.choices[q.answer] for q in from_parquet] == ["Carbon dioxide"] * 2
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EvalError, match="bad.parquet: not a readable Parquet file"):
        read_questions(tmp_path / "bad.parquet")


def test_bpb_reads_a_data_dir_val_split_and_jsonl(model, data_dir, tmp_path):
    docs = read_documents(data_dir, n=3)
    assert len(docs) == 3 and all(d.text and "<|bos|>" not in d.text for d in docs)
    metrics, _, _ = evaluate_bpb(model, docs)
    assert metrics["bytes"] == sum(len(d.text.encode()) for d in docs) and 0 < metrics["bpb"] < 50
    jsonl = tmp_path / "held_out.jsonl"
    jsonl.write_text('{"text": "hello"}\n{"id": "b", "text": "world"}\n{"text": ""}\n')
    with pytest.raises(EvalError, match="held_out.jsonl:3"):
        read_documents(jsonl)
    assert [d.id for d in read_documents(jsonl, n=2)] == ["held_out.jsonl:1", "b"]
    with pytest.raises(EvalError, match="prepared data dir"):
        read_documents(tmp_path)


def test_bpb_reads_a_parquet_text_column_and_refuses_binary_files(tmp_path):
    """wikitext and other corpora as the Hub serves them are Parquet; the file was read as UTF-8 text (a
    UnicodeDecodeError traceback)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": " = Title = "}, {"text": ""}, {"text": "A line."}]),
                   tmp_path / "wiki.parquet")
    docs = read_documents(tmp_path / "wiki.parquet")
    assert [(d.id, d.text) for d in docs] == [("wiki.parquet row 1", " = Title = "), ("wiki.parquet row 3", "A line.")]
    assert len(read_documents(tmp_path / "wiki.parquet", n=1)) == 1
    pq.write_table(pa.Table.from_pylist([{"page": "x"}]), tmp_path / "pages.parquet")
    with pytest.raises(EvalError, match=r'no "text" column \(columns: page\)'):
        read_documents(tmp_path / "pages.parquet")
    (tmp_path / "scan.txt").write_bytes(b"text \xff\xfe more")
    with pytest.raises(EvalError, match="scan.txt: not UTF-8 text"):
        read_documents(tmp_path / "scan.txt")
