"""The facts judge over an OpenAI-compatible server (a loopback server standing in for the
API): the rubric file goes out as the system prompt and the score comes back per row."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.schema import make_rows

from ..distill.loopback import ScriptedServer

RUBRIC = Path(__file__).resolve().parents[2] / "recipes" / "rubrics" / "facts.txt"


def test_facts_judge_through_an_openai_server(tmp_path):
    def verdict(text):  # the judge: a flipped fact ("No") gets 1, the rest 5
        return json.dumps({"score": 1 if "[assistant]\nNo\n" in text else 5, "reason": "checked"})

    server = ScriptedServer(model="judge-model", content=verdict)
    try:
        rows = make_rows([
            {"id": "right", "messages": [{"role": "user", "content": "Is water wet?"},
                                         {"role": "assistant", "content": "Yes, it is."}]},
            {"id": "flipped", "messages": [{"role": "user", "content": "Is the sun a star?"},
                                           {"role": "assistant", "content": "No"}]},
        ])
        path = tmp_path / "rows.parquet"
        rows.write_parquet(path)
        res = CliRunner().invoke(cli, [
            "curate", "score", str(path), "--out", str(tmp_path / "s"), "--no-cache",
            "--scorer", "facts=judge:openai:judge-model", "--judge-base-url", server.base_url,
            "--judge-rubric", str(RUBRIC), "--judge-scale", "5"])
        assert res.exit_code == 0, res.output
        got = pl.read_parquet(tmp_path / "s" / "kept.parquet").sort("id")
        assert dict(zip(got["id"], got["score_facts"])) == {"flipped": 1.0, "right": 5.0}
        assert server.requests[0]["messages"][0]["content"] == RUBRIC.read_text().strip()
        # the API calls are metered: tokens and requests in stats.json and the manifest, an
        # unknown model's cost "unknown" (never 0)
        stats = json.loads((tmp_path / "s" / "stats.json").read_text())
        api = stats["scorers"]["facts"]["api"]
        assert api["requests"] == len(server.requests) == 2
        assert api["price"] == "unknown" and api["cost_usd"] is None
        usage = json.loads((tmp_path / "s" / "manifest.json").read_text())["usage"]
        assert usage["requests"] == 2 and usage["cost_usd"] is None
    finally:
        server.stop()
