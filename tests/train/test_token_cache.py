"""The memory-mapped token cache gives what in-memory linting gives, and is reused or rebuilt."""

from __future__ import annotations

import polars as pl
import pytest

from tests.train._trainer_helpers import make_rows
from thresher.train.data import lint_rows
from thresher.train.data import token_cache as tc

KW = {"max_length": 40, "train_on": "all", "overlong": "truncate", "allow_special_in_content": False,
      "train_reasoning": True, "max_reasoning_tokens": 0}


def _df(n: int = 30) -> pl.DataFrame:
    rows = make_rows(n)
    rows[1]["messages"] = [{"role": "user", "content": "only a question"}]  # no_trainable_token
    for i, row in enumerate(rows):  # the generate stage's side column: a reasoning trace
        row["reasoning"] = "first the cat, then the mat" if i % 4 == 2 else None
    return pl.DataFrame(rows)


def _same(a, b) -> None:
    assert a.rows == b.rows and a.counts == b.counts and a.summary() == b.summary()
    assert a.to_stats() == b.to_stats()
    assert len(a.examples) == len(b.examples)
    for x, y in zip(a.examples, b.examples):
        assert (x.input_ids, x.labels, x.row_id, x.cut, x.n_full, x.traces, len(x), x.n_trained) == \
            (y.input_ids, y.labels, y.row_id, y.cut, y.n_full, y.traces, len(y), y.n_trained)
    for i, j in zip(a.issues, b.issues):
        assert (i.row_id, i.kind, i.message) == (j.row_id, j.kind, j.message)
        assert (i.example is None) == (j.example is None)
        if i.example is not None:
            assert (i.example.input_ids, i.example.labels) == (j.example.input_ids, j.example.labels)


@pytest.mark.parametrize("name", ["smollm2", "qwen2", "llama3"])
def test_cache_equals_in_memory_lint(tmp_path, chat_tokenizers, name):
    tok, df = chat_tokenizers[name], _df()
    want = lint_rows(tok, df, **KW)
    got, stats = tc.cached_lint(tok, df, tmp_path, batch_rows=7, **KW)
    assert not stats["reused"] and stats["tokens"] > 0
    assert any(i.kind == "response_cut" for i in want.issues)  # truncated rows are in both lists
    assert any(e.traces for e in want.examples)
    _same(want, got)


def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = tc._lint.lint_rows

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(tc._lint, "lint_rows", counted)
    return calls


def test_second_run_reuses_the_cache(tmp_path, chat_tokenizers, monkeypatch):
    tok, df = chat_tokenizers["smollm2"], _df()
    calls = _counting(monkeypatch)
    first, s1 = tc.cached_lint(tok, df, tmp_path, batch_rows=10, **KW)
    assert len(calls) == 3 and not s1["reused"]
    second, s2 = tc.cached_lint(tok, df, tmp_path, batch_rows=10, **KW)
    assert len(calls) == 3 and s2["reused"] and s2["key"] == s1["key"]
    _same(first, second)
    _, s3 = tc.cached_lint(tok, df, tmp_path, **{**KW, "train_reasoning": False})  # another option
    assert not s3["reused"] and s3["key"] != s1["key"]
    _, s4 = tc.cached_lint(tok, df.head(20), tmp_path, **KW)  # other rows
    assert not s4["reused"] and s4["key"] != s1["key"]


@pytest.mark.parametrize("damage", ["truncate", "no_meta", "temp_only"])
def test_partial_cache_is_rebuilt(tmp_path, chat_tokenizers, monkeypatch, damage):
    tok, df = chat_tokenizers["smollm2"], _df()
    _, s1 = tc.cached_lint(tok, df, tmp_path, **KW)
    want = lint_rows(tok, df, **KW)  # (the first report's memory map sees the damaged file)
    folder = tmp_path / s1["key"]
    if damage == "truncate":
        data = (folder / "ids.bin").read_bytes()
        (folder / "ids.bin").write_bytes(data[: len(data) // 2])
    elif damage == "no_meta":
        (folder / "meta.json").unlink()
    else:  # killed before the rename: only a temporary folder is left
        folder.rename(tmp_path / f".{s1['key']}.x.tmp")
    calls = _counting(monkeypatch)
    got, s2 = tc.cached_lint(tok, df, tmp_path, **KW)
    assert calls and not s2["reused"]
    _same(want, got)


def test_build_killed_midway_leaves_no_cache(tmp_path, chat_tokenizers, monkeypatch):
    tok, df = chat_tokenizers["smollm2"], _df()
    real = tc._lint.lint_rows
    calls: list[int] = []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tc._lint, "lint_rows", dies)
    with pytest.raises(KeyboardInterrupt):
        tc.cached_lint(tok, df, tmp_path, batch_rows=10, **KW)
    assert list(tmp_path.iterdir()) == []


def _losses(out):
    import json

    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r], [r["val_loss"] for r in recs if "val_loss" in r]


@pytest.mark.slow
def test_training_through_the_cache_equals_in_memory(tmp_path, tiny_lm_dir, monkeypatch):
    """Same losses with and without the cache; a restart's prepare reuses it (no tokenising)."""
    import json

    from tests.train._trainer_helpers import write_rows
    from thresher.train import stage
    from thresher.train.config import TrainConfig

    data = write_rows(tmp_path / "rows.jsonl", make_rows(24))
    config = TrainConfig(base=str(tiny_lm_dir), r=4, alpha=8, dropout=0.0, max_steps=3, batch_size=2,
                         packing=True, max_length=128, val_fraction=0.2, eval_every=3, report_to="none",
                         lr=3e-3)
    stage.run([data], tmp_path / "cached", config)
    stats = json.loads((tmp_path / "cached" / "stats.json").read_text())["token_cache"]
    assert stats["reused"] is False and stats["tokens"] > 0
    assert (tmp_path / "cached" / "token_cache" / stats["train"]["key"] / "meta.json").exists()

    real = stage.prepare
    monkeypatch.setattr(stage, "prepare", lambda *a, cache_dir=None, **k: real(*a, **k))
    stage.run([data], tmp_path / "memory", config)
    assert "token_cache" not in json.loads((tmp_path / "memory" / "stats.json").read_text())
    assert len(_losses(tmp_path / "cached")[0]) == 3
    assert _losses(tmp_path / "cached") == _losses(tmp_path / "memory")
    monkeypatch.undo()

    calls = _counting(monkeypatch)
    prep = stage.prepare([data], config, quiet=True, cache_dir=tmp_path / "cached" / "token_cache")
    assert calls == [] and prep.token_cache["reused"] is True
    assert prep.token_cache["tokens"] == stats["tokens"]


def test_prune_keeps_only_the_used_keys(tmp_path):
    for name in ("old", "new", ".new.x.tmp"):
        (tmp_path / name).mkdir()
    assert tc.prune(tmp_path, {"new"}) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".new.x.tmp", "new"]
    assert tc.prune(tmp_path / "missing", set()) == []


def test_lint_views_of_a_cached_report_are_the_same(tmp_path, chat_tokenizers):
    """print_report / render_token_view (what lint-masks prints) read cached examples alike."""
    from rich.console import Console

    from thresher.train.data.lint import print_report

    tok, df = chat_tokenizers["smollm2"], _df()
    texts = []
    for report in (lint_rows(tok, df, **KW), tc.cached_lint(tok, df, tmp_path, **KW)[0]):
        console = Console(record=True, width=120, force_terminal=False)
        print_report(report, tok, console, show=4)
        texts.append(console.export_text())
    assert "no_trainable_token" in texts[0] and "«" in texts[0]
    assert texts[0] == texts[1]
