"""report.md / report.html and `thresher why` on a run made with the fake stages."""

from __future__ import annotations

import base64
import json

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli


@pytest.fixture
def run_dir(fake_stages, write_recipe, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", str(write_recipe(fake_recipe())), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_report_stage_writes_card_and_html(run_dir):
    md = (run_dir / "report.md").read_text()
    meta = _front_matter(md)
    # usable as a Hugging Face dataset card: standard metadata keys, data files that exist
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert meta["language"] == ["en"] and "license" in meta and "thresher" in meta["tags"]
    data = meta["configs"][0]["data_files"][0]
    assert data["split"] == "train" and (run_dir / data["path"]).exists()
    assert pl.read_parquet(run_dir / data["path"]).height == pl.read_parquet(run_dir / "04-dedup/kept.parquet").height
    for section in ("## Overview", "## Funnel: rows kept after every stage", "## Score distributions",
                    "## Response lengths before and after curation", "## Duplicates", "## Training",
                    "## Evaluation on held-out prompts", "## Label-bias indicators", "## How to reproduce"):
        assert section in md, section
    # the eval section: means with CIs per model, the pair table and the verdict (fake students all end
    # in one sentence, so nothing differs)
    assert "| base | all | 100.0% | [100.0%, 100.0%] | 4 |" in md
    assert "| curated vs random | all | 0/4/0 | +0.0 pts | [+0.0, +0.0] pts | 1.000 | 1.000 |" in md
    assert ("**Verdict:** On 'all' over 4 held-out prompts, the curated student is not significantly different "
            "from the base (100% vs 100%, p = 1.00) and the random-subset student (100% vs 100%, p = 1.00).") in md
    # funnel per category and label bias numbers come from the data
    assert "| history | 7 | 21 | 21 | 7 | 6 |" in md
    assert "| opens by agreeing | 33.3% | 0.0% |" in md and "| truncated | 33.3% | 100.0% |" in md
    html = (run_dir / "report.html").read_text()
    pngs = html.split("data:image/png;base64,")[1:]
    assert len(pngs) >= 8  # funnel x2, scores x2, lengths, clusters, loss, payoff, bias
    assert base64.b64decode(pngs[0].split("'")[0])[:4] == b"\x89PNG"
    assert (run_dir / "07-report/report.md").exists()  # the stage folder holds a copy
    # the stage folder's card points at the same data from where it lies
    assert (run_dir / "07-report" / _front_matter((run_dir / "07-report/report.md").read_text())
            ["configs"][0]["data_files"][0]["path"]).exists()


def test_report_command_on_partial_run_and_thresholds(run_dir, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    for f in ("recipe.yaml", "05-train", "06-evaluate", "07-report"):
        shutil.rmtree(partial / f) if (partial / f).is_dir() else (partial / f).unlink()
    # a threshold the filter stage declares in its stats is marked in the score table
    stats = json.loads((partial / "03-filter/stats.json").read_text())
    (partial / "03-filter/stats.json").write_text(json.dumps({**stats, "thresholds": {"score_len": [7.5]}}))
    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["report", str(partial), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "## Funnel" in md and "## Training" not in md and "## Did curation pay off?" not in md
    assert "| score_len | 60 |" in md and md.split("| score_len | 60 |")[1].split("\n")[0].rstrip().endswith("| 7.5 |")


def test_report_errors(tmp_path):
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "run directory not found" in res.output
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "not a run directory" in res.output


def test_why_dropped_survived_prompt_and_unknown(run_dir):
    def why(row_id):
        return CliRunner().invoke(cli, ["why", str(run_dir), row_id])

    dropped = pl.read_parquet(run_dir / "04-dedup/dropped.parquet").row(0, named=True)
    res = why(dropped["id"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"row {dropped['id']} was dropped by stage 04-dedup: near-duplicate (J=1.00)")
    assert "score_len=" in res.output
    best = pl.read_parquet(run_dir / "03-filter/dropped.parquet").row(0, named=True)
    res = why(best["id"][:10])  # a unique prefix is enough
    assert "dropped by stage 03-filter: best_of: not among the best" in res.output
    final = pl.read_parquet(run_dir / "04-dedup/kept.parquet").row(0, named=True)
    res = why(final["id"])
    assert res.output.startswith(f"row {final['id']} survived every stage")
    assert "score_len=" in res.output and f"category={final['category']}" in res.output
    res = why(final["parent_id"])
    assert res.output.startswith(f"prompt {final['parent_id']} has 3 generated samples:")
    assert res.output.count("survived every stage") == 1
    held = pl.read_parquet(run_dir / "00-inputs/heldout.parquet")["id"][0]
    assert "dropped by stage 00-inputs: held out for evaluation" in why(held).output
    res = why("zzzz")
    assert res.exit_code == 1 and res.output == f"Error: row zzzz is not in any stage of {run_dir}\n"
    res = why("")
    assert res.exit_code == 1 and "must not be empty" in res.output


def test_label_bias_indicators():
    from thresher.report.sections import bias_indicators
    from thresher.schema import make_rows

    answers = ["Yes, you're right: Paris.", "You're absolutely right!", "I'm sorry, but I can't help with that.",
               "As an AI, I have no opinion.", "I'm sorry for the confusion, here it is: 4.", "The answer is 4."]
    df = make_rows([{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": a}],
                     "finish_reason": "length" if i < 3 else "stop"} for i, a in enumerate(answers)])
    got = bias_indicators(df)
    assert got == {"agree": 2 / 6, "refusal": 2 / 6, "truncated": 0.5}
    assert bias_indicators(df.drop("finish_reason"))["truncated"] is None
