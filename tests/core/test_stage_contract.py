"""The stage contract at the edges (issue 12): one input path, nothing lost on read, read
options in the fingerprint, content ids, declared drop codes; every stage command alike."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import invoke as _invoke

GOOD = [
    ("What is the capital of France?", "Paris is the capital of France, on the Seine."),
    ("Name a prime number please.", "Seven is a prime number, divisible only by one and itself."),
    ("Write one sentence about the sea.", "The sea stretches blue and restless to the far horizon."),
    ("How many legs does a spider have?", "A spider has eight legs, unlike insects which have six."),
]


def _conv(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "category": "chat"}


def write_with_two_bad_rows(path: Path) -> Path:
    """6 lines: 4 good conversations, a malformed JSON line (3) and an empty user turn (5)."""
    lines = [json.dumps(_conv(*GOOD[0])), json.dumps(_conv(*GOOD[1])), '{"messages": [oops',
             json.dumps(_conv(*GOOD[2])),
             json.dumps({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "x"}]}),
             json.dumps(_conv(*GOOD[3]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _commands() -> dict[str, list[str]]:
    """name -> command line of every registered stage with a command (its ``cli`` and
    ``cli_group`` facts: ``["curate", "filter"]``, ``["train", "lora"]``, ``["eval"]``)."""
    import importlib

    from thresher import registry

    out = {}
    for name in registry.names():
        cls = registry.stage_class(name)
        if cls.cli and cls.name == name:  # an alias (evaluate) has no command of its own
            module, attr = cls.cli.split(":")
            cmd = getattr(importlib.import_module(module), attr)
            out[name] = [cls.cli_group, cmd.name] if cls.cli_group else [cmd.name]
    return out


COMMANDS = _commands()
#: stages whose command reads no rows, or whose test lives elsewhere
NOT_ROW_COMMANDS = {"report": "reads a run folder", "eval": "models answer the rows: tests/evaluate"}
STAGES = [n for n in COMMANDS if n not in NOT_ROW_COMMANDS]


def _stage_options(name: str, tmp_path: Path, tiny_lm_dir: Path) -> list:
    """The options a stage needs to run on a few rows (none for most)."""
    if name == "generate":
        return ["--teacher", tiny_lm_dir, "--max-tokens", "4"]
    if name == "score":
        return ["-s", f"loglik:{tiny_lm_dir}", "--no-cache"]
    if name == "decontam":
        bench = tmp_path / "bench.jsonl"
        bench.write_text(json.dumps({"id": "b1", "text": "completely unrelated benchmark words here"}) + "\n")
        return ["--against", bench, "-n", "3"]
    if name == "mix":
        spec = tmp_path / "mix.yaml"
        spec.write_text("on_shortfall: keep\ncategories:\n  chat: {weight: 1.0}\n")
        return ["--spec", spec]
    if name == "select":
        return ["--k", "2", "--method", "diversity", "--model", tiny_lm_dir, "--max-length", "16"]
    if name == "train":
        return ["--base", tiny_lm_dir, "--max-steps", "1", "--batch-size", "2", "--val-fraction", "0"]
    return []


def test_the_contract_lists_are_the_registry():
    assert STAGES == ["generate", "score", "filter", "dedup", "decontam", "mix", "select", "train"]
    assert COMMANDS["train"] == ["train", "lora"] and COMMANDS["eval"] == ["eval"]


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_keeps_account_of_rows_rejected_on_read(name, tmp_path, tiny_lm_dir):
    src = write_with_two_bad_rows(tmp_path / "in.jsonl")
    out = tmp_path / name
    opts = _stage_options(name, tmp_path, tiny_lm_dir)
    res = _invoke(*COMMANDS[name], src, *opts, "--on-bad-rows", "skip", "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    dropped = pl.read_parquet(out / "dropped.parquet")
    assert kept.height + dropped.height == 6
    read = dropped.filter(pl.col("drop_stage") == "read")
    assert read.height == 2
    assert sorted(read["drop_code"].to_list()) == ["invalid-messages", "malformed-json"]
    reasons = sorted(read["drop_reason"].to_list())
    assert reasons[0].startswith(f"{src}:3: malformed JSON") and reasons[1].startswith(f"{src}:5: message 1 (user)")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == 6 and stats["rows_rejected_on_read"] == 2
    assert stats["drop_codes"]["read:malformed-json"] == 1


@pytest.mark.parametrize("name", [*STAGES, "eval", "lint-masks"])
def test_every_stage_command_shows_the_read_options(name):
    res = _invoke(*COMMANDS.get(name, ["train", name]), "--help")
    assert res.exit_code == 0, res.output
    for opt in ("--format", "--on-bad-rows", "--split"):
        assert opt in res.output, (name, opt)


#: the data stages that read rows (generate is left out: it answers with a model)
RUN_FOLDER_STAGES = [n for n in STAGES if n not in ("generate", "train")]


@pytest.mark.parametrize("name", RUN_FOLDER_STAGES)
def test_every_stage_command_accepts_a_run_folder(name, tmp_path, tiny_lm_dir):
    src = write_with_two_bad_rows(tmp_path / "in.jsonl")
    first = tmp_path / "first"
    assert _invoke("curate", "filter", src, "--on-bad-rows", "skip", "--out", first).exit_code == 0
    out = tmp_path / "second"
    res = _invoke(*COMMANDS[name], first, *_stage_options(name, tmp_path, tiny_lm_dir), "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height + pl.read_parquet(out / "dropped.parquet").height == 4


def test_a_recipe_run_folder_stands_for_its_dataset(tmp_path):
    from thresher.io.inputs import resolve_input

    stage = tmp_path / "run" / "03-filter"
    stage.mkdir(parents=True)
    pl.DataFrame({"id": ["a"]}).write_parquet(stage / "kept.parquet")
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"dataset": str(stage / "kept.parquet")}))
    assert resolve_input(tmp_path / "run") == stage / "kept.parquet"
    assert resolve_input(stage) == stage / "kept.parquet"


def test_dedup_skip_counts_bad_rows_instead_of_losing_them(tmp_path):
    """Bug: `curate dedup IN --on-bad-rows skip` said "4 rows in" and kept no trace of 2 rows."""
    src = write_with_two_bad_rows(tmp_path / "in.jsonl")
    res = _invoke("curate", "dedup", src, "--on-bad-rows", "skip", "--out", tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert "dedup: 6 rows in, 4 kept" in res.output


def test_identical_conversations_without_ids_are_exact_duplicates(tmp_path):
    """Bug: identical rows without ids were refused as "duplicate id" (or vanished as bad rows)."""
    src = tmp_path / "dups.jsonl"
    row = json.dumps(_conv(*GOOD[0]))
    src.write_text("\n".join([row, json.dumps(_conv(*GOOD[1])), row, row]) + "\n")
    res = _invoke("curate", "dedup", src, "--out", tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert "4 rows in, 2 kept (2 exact" in res.output
    dropped = pl.read_parquet(tmp_path / "d" / "dropped.parquet")
    kept = pl.read_parquet(tmp_path / "d" / "kept.parquet")
    base = kept["id"][0]
    assert sorted(dropped["id"].to_list()) == [f"{base}-1", f"{base}-2"]
    assert set(dropped["drop_code"]) == {"exact-duplicate"}
    # the same input gives the same ids again
    assert _invoke("curate", "dedup", src, "--out", tmp_path / "e").exit_code == 0
    assert pl.read_parquet(tmp_path / "e" / "dropped.parquet")["id"].to_list() == dropped["id"].to_list()


def test_a_duplicate_id_given_by_the_input_names_both_lines(tmp_path):
    src = tmp_path / "ids.jsonl"
    src.write_text("\n".join(json.dumps({"id": "x", **_conv(q, a)}) for q, a in GOOD[:2]) + "\n")
    res = _invoke("curate", "dedup", src, "--out", tmp_path / "d")
    assert res.exit_code == 1
    assert res.output == f"Error: {src}:2: duplicate id 'x' (first seen at line 1)\n"


def test_ids_of_rows_without_duplicates_are_the_plain_content_hash(tmp_path):
    from thresher.io import read_table
    from thresher.schema import content_id

    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(_conv(q, a)) for q, a in GOOD) + "\n")
    df = read_table(src)
    assert df["id"].to_list() == [content_id(m) for m in df["messages"].to_list()]
    df.drop("id").write_parquet(tmp_path / "noid.parquet")  # the fast Parquet path agrees
    assert read_table(tmp_path / "noid.parquet")["id"].to_list() == df["id"].to_list()


@pytest.mark.parametrize("change", [("--format", "messages"), ("--on-bad-rows", "skip")])
def test_read_options_are_part_of_the_fingerprint(change, tmp_path):
    """Bug: rerunning with another --format or --on-bad-rows reused the stale result."""
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(_conv(q, a)) for q, a in GOOD) + "\n")
    out = tmp_path / "f"
    assert _invoke("curate", "filter", src, "--out", out).exit_code == 0
    again = _invoke("curate", "filter", src, "--out", out)
    assert "already finished" in again.output
    changed = _invoke("curate", "filter", src, *change, "--out", out)
    assert changed.exit_code == 0 and "already finished" not in changed.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["read"][{"--format": "fmt", "--on-bad-rows": "on_bad_rows"}[change[0]]] == change[1]


def test_dropped_rows_carry_a_stable_code(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(_conv(q, a)) for q, a in GOOD) + "\n")
    res = _invoke("curate", "filter", src, "--min-chars", "50", "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    d = pl.read_parquet(tmp_path / "f" / "dropped.parquet")
    assert d.height == 1 and set(d["drop_code"]) == {"too-short-chars"}
    assert d["drop_reason"][0].startswith("too_short_chars=")
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    assert stats["drop_codes"] == {"too-short-chars": 1}


def test_no_stale_rejects_file_survives_a_clean_rerun(tmp_path):
    src = write_with_two_bad_rows(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    assert _invoke("convert", src, out, "--on-bad-rows", "skip").exit_code == 0
    assert (tmp_path / "out.rejects.jsonl").exists()
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(json.dumps(_conv(q, a)) for q, a in GOOD) + "\n")
    assert _invoke("convert", clean, out, "--on-bad-rows", "skip").exit_code == 0
    assert not (tmp_path / "out.rejects.jsonl").exists()


def test_split_picks_a_datasetdict_split(tmp_path):
    import datasets

    rows = [_conv(q, a) for q, a in GOOD]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                               "test": datasets.Dataset.from_list(rows[3:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    res = _invoke("curate", "filter", tmp_path / "dd", "--split", "test", "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "f" / "kept.parquet").height == 1
    res = _invoke("curate", "filter", tmp_path / "dd", "--split", "nope", "--out", tmp_path / "g")
    assert res.exit_code == 1 and "has no 'nope' split" in res.output


def test_data_stages_and_stage_modules_come_from_the_registry():
    from thresher import registry
    from thresher.recipe.spec import stage_module

    assert registry.data_stages() == ("inputs", "generate", "score", "filter", "dedup", "decontam", "mix",
                                      "select")
    assert stage_module("filter").__name__ == "thresher.curate.filter.stage"
    assert registry.stage_class("mix").name == "mix" and not registry.stage_class("train").makes_data


def test_model_folders_come_from_the_manifest_not_a_glob(tmp_path):
    from thresher.evaluate.models import find_model_dirs
    from thresher.stage import StageFolder

    out = tmp_path / "train"
    stage = StageFolder("train", out, quiet=True)
    assert not stage.done
    (stage.path("adapter") / "adapter_config.json").parent.mkdir()
    (stage.path("adapter") / "adapter_config.json").write_text("{}")
    (stage.path("checkpoints") / "best").mkdir(parents=True)
    (stage.path("checkpoints") / "best" / "adapter_config.json").write_text("{}")
    stage.finish(pl.DataFrame({"id": ["a"]}), artefacts={"adapter": "adapter"})
    assert find_model_dirs(out) == (out / "adapter", None)
    (tmp_path / "loose" / "x").mkdir(parents=True)  # an adapter nobody declared is not guessed
    (tmp_path / "loose" / "x" / "adapter_config.json").write_text("{}")
    assert find_model_dirs(tmp_path / "loose") == (None, None)


def test_filter_declares_its_thresholds(tmp_path):
    src = tmp_path / "a.parquet"
    rows = [{**_conv(q, a), "score_q": float(i)} for i, (q, a) in enumerate(GOOD)]
    pl.DataFrame(rows).write_parquet(src)
    res = _invoke("curate", "filter", src, "--min", "score_q=1.5", "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    assert stats["thresholds"] == {"score_q": [1.5]} and stats["drop_codes"] == {"below-min": 2}


def test_why_explains_a_row_rejected_on_read(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "ok1", **_conv(*GOOD[0])}) + "\n" + json.dumps(
        {"id": "bad1", "messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "x"}]}) + "\n")
    assert _invoke("curate", "filter", src, "--on-bad-rows", "skip", "--out", tmp_path / "r" / "01-filter").exit_code == 0
    res = _invoke("why", tmp_path / "r", "bad1")
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"row bad1 was rejected on read by stage 01-filter: {src}:2: message 1 (user): empty content")
